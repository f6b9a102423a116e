package schematest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/qryptchat/suparelay/internal/dbsetup"
	"github.com/qryptchat/suparelay/internal/migset"
	"github.com/qryptchat/suparelay/internal/schemasnap"
)

// The upgrade tests and the manifest generator apply every migration the way an operator does: `supabase db
// push` of the pinned CLI (scripts/db.sh push), which runs each file in one transaction and records it in the
// history table. Our own applier (internal/dbsetup) is not used for that on purpose: what must work is the CLI's
// statement splitting, its transactions and its history bookkeeping on a database that already has a history.

// pushTimeout bounds one push: the 105 production migrations take a few seconds on the stack.
const pushTimeout = 5 * time.Minute

// pushResult is what one `supabase db push` did.
type pushResult struct {
	out     string   // the CLI's output
	err     error    // its exit error
	started []string // base names the CLI announced ("Applying migration X..."), in order
	failed  string   // the file the CLI was applying when it failed ("" when it did not fail in a file)
	failure string   // the CLI's error text for that file
}

func (r pushResult) ok() bool { return r.err == nil }

// templateCopy is a throwaway copy of the stack's template (the real Auth and Storage schemas) with the bootstrap
// applied: a template copy does not carry database settings, and the production migrations need the search_path
// (uuid-ossp lives in `extensions`). Returns the superuser connection and the database's URL.
func templateCopy(t *testing.T) (*pgx.Conn, string) {
	t.Helper()
	conn := throwawayDB(t)
	must(t, "bootstrap", dbsetup.Bootstrap(ctxT(t), conn, repoRoot(t)))
	return conn, throwawayURL(t, conn)
}

// cliPush runs the pinned CLI's `db push --db-url url --yes` from a temporary workdir holding supabase/config.toml,
// supabase/signing_keys.json, files and a placeholder file per record of placeholders (migset.Workdir).
func cliPush(t *testing.T, url string, files []migset.File, placeholders []migset.Record) pushResult {
	t.Helper()
	cli := newSupabaseCLI(t)
	work := t.TempDir()
	must(t, "CLI workdir", migset.Workdir(work, repoRoot(t), files, placeholders))
	ctx, cancel := context.WithTimeout(context.Background(), pushTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli.bin, "db", "push", "--db-url", url, "--workdir", work, "--yes")
	cmd.Dir = work
	cmd.Env = cli.env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("supabase db push: timed out after %v:\n%s", pushTimeout, out)
	}
	return parsePush(string(out), err)
}

// parsePush reads the CLI's progress lines: "Applying migration <file>..." per file, and after a failure
// "ERROR: <message> (SQLSTATE <code>)", "At statement: <n>", the statement, and a hint line.
func parsePush(out string, err error) pushResult {
	r := pushResult{out: out, err: err}
	lines := strings.Split(out, "\n")
	errAt := -1
	for i, l := range lines {
		if f, ok := strings.CutPrefix(strings.TrimSpace(l), "Applying migration "); ok {
			r.started = append(r.started, strings.TrimSuffix(f, "..."))
		}
		if errAt < 0 && strings.HasPrefix(strings.TrimSpace(l), "ERROR:") {
			errAt = i
		}
	}
	if err != nil && len(r.started) > 0 {
		r.failed = r.started[len(r.started)-1]
		if errAt >= 0 {
			var msg []string
			for _, l := range lines[errAt:] {
				if strings.HasPrefix(l, "Try rerunning the command") {
					break
				}
				msg = append(msg, strings.TrimRight(l, " "))
			}
			r.failure = strings.TrimPrefix(strings.TrimSpace(strings.Join(msg, "\n")), "ERROR: ")
		}
	}
	return r
}

// pushMigrations pushes files to the database of conn the way scripts/db.sh push does: the versions the history
// already holds that are not ours (the production migrations, when they were pushed by the CLI) get placeholder
// files so that the CLI accepts the history.
func pushMigrations(t *testing.T, conn *pgx.Conn, url string, files []migset.File) pushResult {
	t.Helper()
	recorded, err := migset.Recorded(ctxT(t), conn)
	must(t, "read the history", err)
	ph, err := migset.Placeholders(files, recorded)
	must(t, "placeholders", err)
	return cliPush(t, url, files, ph)
}

// envMigrationsDir points the upgrade and manifest tests at another migrations folder than supabase/migrations:
// a work-in-progress set, an old commit's files, or a tiny sample to check the harness itself.
const envMigrationsDir = "SUPARELAY_TEST_MIGRATIONS"

// ourMigrations is supabase/migrations (or $SUPARELAY_TEST_MIGRATIONS) as the CLI sees it.
func ourMigrations(t *testing.T) []migset.File {
	t.Helper()
	dir := filepath.Join(repoRoot(t), dbsetup.MigrationsDir)
	if d := os.Getenv(envMigrationsDir); d != "" {
		dir = d
		t.Logf("migrations from %s=%s", envMigrationsDir, d)
	}
	files, err := migset.Dir(dir)
	must(t, "our migrations", err)
	return files
}

// productionMigrationFiles writes the original app's migrations (read from the vendored archive, a test fixture
// only) into a temporary folder and returns them as CLI migration files, with their digest. Without the archive
// the test is skipped, and fails under CI.
func productionMigrationFiles(t *testing.T) ([]migset.File, string) {
	t.Helper()
	sqlFiles, err := dbsetup.ProductionMigrations(repoRoot(t))
	if errors.Is(err, dbsetup.ErrNoVendor) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("production migrations: %v", err)
		}
		t.Skipf("production migrations: %v (set SUPARELAY_VENDOR)", err)
	}
	must(t, "production migrations", err)
	dir := t.TempDir()
	contents := map[string]string{}
	for _, f := range sqlFiles {
		must(t, "write fixture", os.WriteFile(filepath.Join(dir, f.Name), []byte(f.SQL), 0o600))
		contents[f.Name] = f.SQL
	}
	files, err := migset.Dir(dir)
	must(t, "production migrations", err)
	return files, migset.DigestContents(contents)
}

// productionState is a throwaway database in the state of every existing deployment: the production migrations
// pushed by the CLI on the real Auth and Storage schemas.
func productionState(t *testing.T) (*pgx.Conn, string, []migset.File, string) {
	t.Helper()
	files, digest := productionMigrationFiles(t)
	conn, url := templateCopy(t)
	res := cliPush(t, url, files, nil)
	if !res.ok() {
		t.Fatalf("the production migrations through the CLI: %v\n%s\n%s", res.err, resultTable(res, files, nil), tail(res.out, 30))
	}
	return conn, url, files, digest
}

// resultTable renders one push as a table of files and results, like the issue's: ok, ERROR with the CLI's
// message, or — for the files after a failure, which the CLI does not get to — the result of applying each of
// them directly (one implicit transaction per file, through internal/dbsetup) over the state the failure left,
// marked "direct". direct may be nil: then those files are "not run".
func resultTable(r pushResult, files []migset.File, direct *pgx.Conn) string {
	width := 0
	for _, f := range files {
		width = max(width, len(f.Base()))
	}
	started := map[string]bool{}
	for _, s := range r.started {
		started[s] = true
	}
	var b strings.Builder
	afterFailure := false
	for _, f := range files {
		var res string
		switch {
		case f.Base() == r.failed:
			res = "ERROR " + oneLine(r.failure)
			afterFailure = true
		case afterFailure || (!r.ok() && !started[f.Base()]):
			afterFailure = true
			if direct == nil {
				res = "not run"
				break
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := dbsetup.ExecFile(ctx, direct, f.Path)
			cancel()
			if err != nil {
				res = "ERROR (direct) " + oneLine(err.Error())
			} else {
				res = "ok (direct)"
			}
		case started[f.Base()]:
			res = "ok"
		default:
			res = "already applied"
		}
		fmt.Fprintf(&b, "  %-*s  %s\n", width, f.Base(), res)
	}
	return b.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// snapOf is schemasnap.Snapshot of conn, failing the test on error.
func snapOf(t *testing.T, conn *pgx.Conn) schemasnap.Snap {
	t.Helper()
	s, err := schemasnap.Snapshot(ctxT(t), conn)
	must(t, "schema snapshot", err)
	return s
}

// pgDump returns the path of a pg_dump whose major version is at least the server's: Debian's layout for the
// server's major version, the stack's PostgreSQL (the file .stack/<stack>/pg.bin names), or pg_dump on PATH.
// Skipped (failed under CI) when there is none.
func pgDump(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var num int
	must(t, "server version", conn.QueryRow(ctxT(t), `select current_setting('server_version_num')::int`).Scan(&num))
	major := num / 10000
	var candidates []string
	candidates = append(candidates, fmt.Sprintf("/usr/lib/postgresql/%d/bin/pg_dump", major))
	if name := os.Getenv("STACK_NAME"); name != "" {
		if b, err := os.ReadFile(filepath.Join(repoRoot(t), ".stack", name, "pg.bin")); err == nil {
			candidates = append(candidates, filepath.Join(strings.TrimSpace(string(b)), "pg_dump"))
		}
	}
	if p, err := exec.LookPath("pg_dump"); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		out, err := exec.Command(c, "--version").Output()
		if err != nil {
			continue
		}
		// "pg_dump (PostgreSQL) 15.20 (Debian …)"
		f := strings.Fields(string(out))
		if len(f) >= 3 {
			if v, err := strconv.Atoi(strings.SplitN(f[2], ".", 2)[0]); err == nil && v >= major {
				return c
			}
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("no pg_dump of version >= %d (tried %v)", major, candidates)
	}
	t.Skipf("no pg_dump of version >= %d (tried %v)", major, candidates)
	return ""
}

// schemaDump is `pg_dump --schema-only --schema=public` of the database at url, normalized for comparison:
// comment lines, SET and set_config lines, psql's \restrict/\unrestrict lines (a random key per dump), blank lines
// and OWNER TO lines are dropped; privileges are kept. COMMENT ON statements are dropped too: objectComments
// compares them separately, so that a difference in comments alone reads as such.
func schemaDump(t *testing.T, pgDumpBin, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pgDumpBin, "--schema-only", "--schema=public", "--dbname", url)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("pg_dump: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("pg_dump: %v", err)
	}
	return normalizeDump(string(out))
}

func normalizeDump(dump string) string {
	var b strings.Builder
	inComment := false // inside a COMMENT ON statement whose text spans lines
	for _, l := range strings.Split(dump, "\n") {
		l = strings.TrimRight(l, " \r")
		if inComment || strings.HasPrefix(l, "COMMENT ON ") {
			inComment = !strings.HasSuffix(l, "';") && !strings.HasSuffix(l, " IS NULL;")
			continue
		}
		switch {
		case l == "", strings.HasPrefix(l, "--"), strings.HasPrefix(l, "SET "),
			strings.HasPrefix(l, "SELECT pg_catalog.set_config("), strings.HasPrefix(l, `\restrict`),
			strings.HasPrefix(l, `\unrestrict`), strings.Contains(l, " OWNER TO "):
			continue
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// storageText is the Storage part of a snapshot (policies, grants and RLS of storage.objects and storage.buckets,
// the bucket rows) as text, one object per block.
func storageText(s schemasnap.Snap) string {
	var b strings.Builder
	for _, k := range s.Keys() {
		if k.Kind == "bucket" || strings.HasPrefix(k.Name, "storage.") {
			fmt.Fprintf(&b, "%s\n  %s\n", k, strings.ReplaceAll(s[k], "\n", "\n  "))
		}
	}
	return b.String()
}

// capText shortens a long diff for the test log.
func capText(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) <= lines {
		return s
	}
	return strings.Join(l[:lines], "\n") + fmt.Sprintf("\n... (%d more lines)", len(l)-lines)
}
