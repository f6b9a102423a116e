package schematest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/qryptchat/suparelay/internal/dbsetup"
	"github.com/qryptchat/suparelay/internal/testenv"
)

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := dbsetup.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// throwawayDB creates database suparelay_mig_<random> on the stack's server as a copy of the stack's template —
// the schemas the real Supabase Auth and Storage created with their own migrations, nothing of ours — and connects
// to it as the superuser. The database is dropped (WITH FORCE) when the test ends.
func throwawayDB(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx := ctxT(t)
	adminURL := testenv.DatabaseURL(t)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("connect to stack database: %v", err)
	}
	name := "suparelay_mig_" + testenv.RandomHex(6)
	if _, err := admin.Exec(ctx, "create database "+name+" template "+pgx.Identifier{testenv.TemplateDB(t)}.Sanitize()); err != nil {
		admin.Close(ctx)
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "drop database if exists "+name+" with (force)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		admin.Close(ctx)
	})
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = name
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// asRole runs fn inside a transaction that impersonates an API role the way PostgREST does (role switch plus the
// request.jwt.claims setting); the transaction is rolled back afterwards.
func asRole(t *testing.T, conn *pgx.Conn, role, sub string, fn func(tx pgx.Tx) error) error {
	t.Helper()
	ctx := ctxT(t)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	claims := map[string]any{"role": role}
	if sub != "" {
		claims["sub"] = sub
	}
	cj, _ := json.Marshal(claims)
	if _, err := tx.Exec(ctx, "select set_config('request.jwt.claims', $1, true), set_config('role', $2, true)",
		string(cj), role); err != nil {
		t.Fatal(err)
	}
	return fn(tx)
}

func countAs(t *testing.T, conn *pgx.Conn, role, sub, query string) (int, error) {
	t.Helper()
	var n int
	err := asRole(t, conn, role, sub, func(tx pgx.Tx) error {
		return tx.QueryRow(ctxT(t), query).Scan(&n)
	})
	return n, err
}

func queryStrings(t *testing.T, conn *pgx.Conn, query string) []string {
	t.Helper()
	rows, err := conn.Query(ctxT(t), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

func queryInt(t *testing.T, conn *pgx.Conn, query string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(ctxT(t), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// snapshot renders the parts of the catalog the migrations own as sorted lines, so that two databases built in
// different ways can be compared.
func snapshot(t *testing.T, conn *pgx.Conn) map[string][]string {
	t.Helper()
	return map[string][]string{
		"columns": queryStrings(t, conn, `
			select format('%s.%s %s null=%s default=%s', c.table_name, c.column_name, c.data_type, c.is_nullable,
			              coalesce(c.column_default, '-'))
			  from information_schema.columns c where c.table_schema = 'public' order by 1`),
		"constraints": queryStrings(t, conn, `
			select format('%s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
			  from pg_constraint where connamespace = 'public'::regnamespace order by 1`),
		"indexes": queryStrings(t, conn, `
			select indexdef from pg_indexes where schemaname = 'public' order by 1`),
		"triggers": queryStrings(t, conn, `
			select format('%s %s', tgrelid::regclass, pg_get_triggerdef(oid)) from pg_trigger
			 where not tgisinternal and tgrelid::regclass::text not like 'storage.%' order by 1`),
		"functions": queryStrings(t, conn, `
			select format('%s(%s) -> %s definer=%s acl=%s', p.proname, pg_get_function_arguments(p.oid),
			              pg_get_function_result(p.oid), p.prosecdef, coalesce(p.proacl::text, 'default'))
			  from pg_proc p where p.pronamespace = 'public'::regnamespace order by 1`),
		"policies": queryStrings(t, conn, `
			select format('%s.%s %s %s %s using=%s check=%s', schemaname, tablename, policyname, cmd, roles,
			              coalesce(qual, '-'), coalesce(with_check, '-'))
			  from pg_policies where schemaname in ('public', 'storage') order by 1`),
		"grants": queryStrings(t, conn, `
			select format('%s %s.%s %s', grantee, table_name, column_name, privilege_type)
			  from information_schema.column_privileges
			 where table_schema = 'public' and grantee in ('anon', 'authenticated', 'service_role') order by 1`),
		"rls": queryStrings(t, conn, `
			select format('%s rls=%s', relname, relrowsecurity) from pg_class
			 where relnamespace = 'public'::regnamespace and relkind = 'r' order by 1`),
	}
}

func diffLines(a, b []string) (onlyA, onlyB []string) {
	inB := map[string]int{}
	for _, s := range b {
		inB[s]++
	}
	for _, s := range a {
		if inB[s] > 0 {
			inB[s]--
			continue
		}
		onlyA = append(onlyA, s)
	}
	inA := map[string]int{}
	for _, s := range a {
		inA[s]++
	}
	for _, s := range b {
		if inA[s] > 0 {
			inA[s]--
			continue
		}
		onlyB = append(onlyB, s)
	}
	return onlyA, onlyB
}

func fmtLines(lines []string) string {
	out := ""
	for i, l := range lines {
		if i == 8 {
			return out + fmt.Sprintf("\n    ... and %d more", len(lines)-8)
		}
		out += "\n    " + l
	}
	return out
}
