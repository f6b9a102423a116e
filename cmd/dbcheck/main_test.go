package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/qryptchat/suparelay/internal/dbsetup"
	"github.com/qryptchat/suparelay/internal/migset"
	"github.com/qryptchat/suparelay/internal/schemasnap"
	"github.com/qryptchat/suparelay/internal/testenv"
)

func TestManifestExpectedForState(t *testing.T) {
	t.Parallel()
	for state, want := range map[migset.State]string{
		migset.StateNone: ProductionManifest, migset.StatePreCutover: PreCutoverManifest,
		migset.StateFinal: FinalManifest, migset.StatePartial: "",
	} {
		if got := expectedManifest(state); got != want {
			t.Errorf("expectedManifest(%v) = %q, want %q", state, got, want)
		}
	}
}

// Usage errors exit 2 before anything connects.
func TestManifestCheckUsageErrors(t *testing.T) {
	t.Parallel()
	dir := sampleMigrations(t)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"no DATABASE_URL", []string{"-migrations", dir}, nil},
		{"extra argument", []string{"-migrations", dir, "extra"}, map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/x"}},
		{"unknown flag", []string{"-nope"}, map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/x"}},
		{"no migrations", []string{"-migrations", t.TempDir()}, map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/x"}},
		{"unreachable database", []string{"-migrations", dir},
			map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/x?connect_timeout=2&sslmode=disable"}},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &out, &errOut)
		if code != exitError {
			t.Errorf("%s: exit %d, want %d\n%s%s", tc.name, code, exitError, out.String(), errOut.String())
		}
	}
}

// dbcheck's session cannot write, whatever it runs: the server refuses with read_only_sql_transaction.
func TestSnapSessionIsReadOnly(t *testing.T) {
	t.Parallel()
	_, dbURL := throwaway(t)
	conn, err := connectReadOnly(ctxT(t), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctxT(t), "create table public.dbcheck_must_not_write (id int)")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("create table on dbcheck's session: %v, want SQLSTATE 25006 (read-only transaction)", err)
	}
}

// The whole check against a throwaway database: manifests built here from a sample migration set (one ordinary
// migration, one cutover), the CLI's history simulated, each state reported with the right exit code.
func TestManifestCheckAgainstDatabase(t *testing.T) {
	t.Parallel()
	conn, dbURL := throwaway(t)
	ctx := ctxT(t)
	migDir := sampleMigrations(t)
	files, err := migset.Dir(migDir)
	if err != nil {
		t.Fatal(err)
	}
	manDir := t.TempDir()
	snap := func() schemasnap.Snap {
		s, err := schemasnap.Snapshot(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	writeManifest := func(name string, s schemasnap.Snap, digest string) {
		if err := os.WriteFile(filepath.Join(manDir, name), []byte(schemasnap.ManifestFile(s.Hashes(), name, digest)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The "production" state here is the bare template; then ours, applied directly, one state at a time.
	writeManifest(ProductionManifest, snap(), "")
	for _, f := range files[:1] {
		if err := dbsetup.ExecFile(ctx, conn, f.Path); err != nil {
			t.Fatal(err)
		}
	}
	preDigest, _ := migset.Digest(migset.PreCutover(files))
	writeManifest(PreCutoverManifest, snap(), preDigest)
	if err := dbsetup.ExecFile(ctx, conn, files[1].Path); err != nil {
		t.Fatal(err)
	}
	finalDigest, _ := migset.Digest(files)
	writeManifest(FinalManifest, snap(), finalDigest)

	check := func(wantCode int, wantOut ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"-migrations", migDir, "-manifests", manDir},
			func(k string) string { return map[string]string{"DATABASE_URL": dbURL}[k] }, &out, &errOut)
		if code != wantCode {
			t.Errorf("exit %d, want %d\n%s%s", code, wantCode, out.String(), errOut.String())
		}
		for _, w := range wantOut {
			if !strings.Contains(out.String(), w) {
				t.Errorf("output lacks %q:\n%s", w, out.String())
			}
		}
		return out.String()
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}

	// No history table: none of ours applied, but the schema is the final one.
	check(exitDiffers, "no supabase_migrations.schema_migrations table", "final.manifest         matches",
		"RESULT: differs — none of ours applied", "pending  "+files[1].Base()+"  (cutover)")

	exec(`create schema supabase_migrations;
	      create table supabase_migrations.schema_migrations (version text primary key, statements text[], name text)`)
	record := func(versions ...string) {
		exec(`delete from supabase_migrations.schema_migrations`)
		for _, v := range versions {
			exec(`insert into supabase_migrations.schema_migrations (version, name) values ($1, 'x')`, v)
		}
	}
	record("20200101000000", files[0].Version, files[1].Version)
	out := check(exitMatch, "applied  "+files[0].Base(), "other recorded versions", "RESULT: ok — all migrations applied",
		"final.manifest         matches")
	if strings.Contains(out, "NOTE: built from other") {
		t.Errorf("digests of the sample manifests reported stale:\n%s", out)
	}

	record(files[1].Version)
	check(exitDiffers, "RESULT: differs — the history is partially applied")

	// Back to the pre-cutover schema and history.
	exec(`drop table public.dbcheck_sample_cutover`)
	record(files[0].Version)
	check(exitMatch, "RESULT: ok — all but the cutover migrations applied", "pre-cutover.manifest   matches")

	// A change behind the migrations' back shows by kind and name.
	exec(`create index dbcheck_sample_extra on public.dbcheck_sample (note)`)
	check(exitDiffers, "only in database: index public.dbcheck_sample_extra", "RESULT: differs")
	exec(`drop index public.dbcheck_sample_extra`)

	// A stale manifest is pointed out.
	if err := os.WriteFile(files[0].Path, []byte("-- changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check(exitMatch, "pre-cutover.manifest   NOTE: built from other migration files")
}

// -print-placeholders lists the foreign versions older than ours, and refuses newer unknown ones.
func TestManifestPrintPlaceholders(t *testing.T) {
	t.Parallel()
	conn, dbURL := throwaway(t)
	ctx := ctxT(t)
	migDir := sampleMigrations(t)
	env := func(k string) string { return map[string]string{"DATABASE_URL": dbURL}[k] }
	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"-migrations", migDir, "-print-placeholders"}, env, &out, &errOut); code != exitMatch || out.Len() != 0 {
		t.Errorf("no history: exit %d, output %q %s", code, out.String(), errOut.String())
	}
	if _, err := conn.Exec(ctx, `create schema supabase_migrations;
		create table supabase_migrations.schema_migrations (version text primary key, statements text[], name text);
		insert into supabase_migrations.schema_migrations (version, name) values
		  ('20250823125150', 'phone_authentication_system'), ('20260330000000', 'add_backup_pin')`); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run(ctx, []string{"-migrations", migDir, "-print-placeholders"}, env, &out, &errOut); code != exitMatch ||
		out.String() != "20250823125150\tphone_authentication_system\n20260330000000\tadd_backup_pin\n" {
		t.Errorf("production history: exit %d, output %q %s", code, out.String(), errOut.String())
	}
	if _, err := conn.Exec(ctx, `insert into supabase_migrations.schema_migrations (version, name) values ('20991231000000', 'unknown')`); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if code := run(ctx, []string{"-migrations", migDir, "-print-placeholders"}, env, &out, &errOut); code != exitDiffers ||
		!strings.Contains(errOut.String(), "20991231000000") {
		t.Errorf("unknown newer version: exit %d, stderr %q", code, errOut.String())
	}
}

// sampleMigrations writes a two-file migration set (an ordinary migration and a cutover one) to a temporary folder.
func sampleMigrations(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, sql := range map[string]string{
		"20261201000000_sample.sql":         "create table public.dbcheck_sample (id int primary key, note text);\n",
		"20261201090000_cutover_sample.sql": "create table public.dbcheck_sample_cutover (id int primary key);\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sql), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// throwaway is a bootstrapped copy of the stack's template database, dropped when the test ends.
func throwaway(t *testing.T) (*pgx.Conn, string) {
	t.Helper()
	return testenv.TemplateCopy(t, "suparelay_dbcheck_")
}
