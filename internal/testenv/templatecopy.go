package testenv

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/qryptchat/suparelay/internal/dbsetup"
)

// TemplateCopy creates a throwaway database on the stack's server as a copy of the stack's template (the schemas
// the real Supabase Auth and Storage created, nothing of ours), applies scripts/sql/bootstrap.sql to it (a copy
// made with CREATE DATABASE … TEMPLATE does not carry the template's database settings, such as the search_path
// with `extensions`), and returns a superuser connection and the database's URL. The database is dropped (WITH
// FORCE) when the test ends. prefix names it (prefix + random hex), so that a leftover shows whose it is.
func TemplateCopy(t testing.TB, prefix string) (*pgx.Conn, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adminURL := DatabaseURL(t)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("connect to the stack database: %v", err)
	}
	name := prefix + RandomHex(6)
	if _, err := admin.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()+" template "+
		pgx.Identifier{TemplateDB(t)}.Sanitize()); err != nil {
		admin.Close(ctx)
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		admin.Close(ctx)
	})
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path, u.RawPath = "/"+name, ""
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("connect to %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	root, err := dbsetup.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := dbsetup.Bootstrap(ctx, conn, root); err != nil {
		t.Fatalf("bootstrap %s: %v", name, err)
	}
	return conn, u.String()
}
