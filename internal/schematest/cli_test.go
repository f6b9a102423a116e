package schematest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

	"github.com/qryptchat/suparelay/internal/dbsetup"
	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// envSupabaseCLI names the pinned supabase CLI binary that scripts/stack.sh exports.
const envSupabaseCLI = "SUPARELAY_TEST_SUPABASE_CLI"

// signingKeysFile is the development signing key file that supabase/config.toml names in auth.signing_keys_path.
const signingKeysFile = "supabase/signing_keys.json"

// The committed key file must be exactly the project's development key: the CLI stack and the Docker-free stack
// then sign user tokens with the same ES256 key and kid. Compared as JSON values, so an extra or missing field
// fails too. Needs no stack.
func TestSupabaseCLISigningKeysFile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), signingKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	var got []any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%s: %v", signingKeysFile, err)
	}
	want := jsonValue(t, []devkeys.PrivateJWK{devkeys.SigningJWK()})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s differs from devkeys.SigningJWK():\n got %s\nwant %s", signingKeysFile, raw, mustJSON(t, want))
	}
}

// The pinned CLI loads and validates the whole config.toml (and the signing key file) before it looks for a
// container runtime: `supabase start` with no docker or podman on PATH prints every config warning and then fails
// on the missing runtime. `supabase db push` does not validate the auth sections, so this is the check that keeps
// config.toml free of deprecated sections and of the "Disabling phone login" fallback. `gen bearer-jwt` then shows
// that the CLI signs with the development key.
func TestSupabaseCLIConfig(t *testing.T) {
	t.Parallel()
	cli := newSupabaseCLI(t)

	out, err := cli.run(t, "start")
	assertNoConfigWarnings(t, "start", out)
	if err == nil || !strings.Contains(out, "docker: command not found") {
		t.Fatalf("supabase start without a container runtime: err %v, want it to get as far as looking for docker:\n%s", err, out)
	}

	const sub = "00000000-0000-4000-8000-00000000c11a"
	out, err = cli.run(t, "gen", "bearer-jwt", "--role", "authenticated", "--sub", sub)
	assertNoConfigWarnings(t, "gen bearer-jwt", out)
	if err != nil {
		t.Fatalf("supabase gen bearer-jwt: %v\n%s", err, out)
	}
	token := lastJWT(out)
	if token == "" {
		t.Fatalf("supabase gen bearer-jwt printed no token:\n%s", out)
	}
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) {
		if tok.Header["kid"] != devkeys.KID {
			return nil, errors.New("kid is not the development key's")
		}
		return &devkeys.PrivateKey().PublicKey, nil
	}, jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}))
	if err != nil || !parsed.Valid {
		t.Fatalf("the CLI's token does not verify with the development key (kid %s): %v\n%s", devkeys.KID, err, token)
	}
	if claims["role"] != "authenticated" || claims["sub"] != sub {
		t.Errorf("CLI token claims = %v, want role authenticated and sub %s", claims, sub)
	}
}

// The pinned CLI pushes supabase/migrations to a fresh Supabase-shaped database: the dry run lists every file and
// applies nothing, the push records every file in supabase_migrations.schema_migrations and ends in the same
// catalog as internal/dbsetup's own applier, and a second push has nothing to do.
func TestSupabaseCLIDBPush(t *testing.T) {
	t.Parallel()
	cli := newSupabaseCLI(t)
	conn := throwawayDB(t)
	dbURL := throwawayURL(t, conn)
	files := migrationFiles(t)

	tablesBefore := queryInt(t, conn, `select count(*) from pg_tables where schemaname = 'public'`)

	out, err := cli.run(t, "db", "push", "--db-url", dbURL, "--dry-run")
	assertNoConfigWarnings(t, "db push --dry-run", out)
	if err != nil {
		t.Fatalf("supabase db push --dry-run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "DRY RUN") || !strings.Contains(out, "Would push these migrations") {
		t.Errorf("dry run output does not announce a dry run:\n%s", out)
	}
	for _, f := range files {
		if !hasLine(out, "• "+f) {
			t.Errorf("dry run does not list %s:\n%s", f, out)
		}
	}
	if strings.Contains(out, "Applying migration") {
		t.Errorf("dry run applied migrations:\n%s", out)
	}
	if n := queryInt(t, conn, `select count(*) from pg_tables where schemaname = 'public'`); n != tablesBefore {
		t.Errorf("dry run changed public: %d tables, %d before", n, tablesBefore)
	}
	if recorded := recordedMigrations(t, conn); len(recorded) != 0 {
		t.Errorf("dry run recorded migrations: %v", recorded)
	}

	out, err = cli.run(t, "db", "push", "--db-url", dbURL)
	assertNoConfigWarnings(t, "db push", out)
	if err != nil {
		t.Fatalf("supabase db push: %v\n%s", err, out)
	}
	for _, f := range files {
		if !strings.Contains(out, "Applying migration "+f) {
			t.Errorf("push did not apply %s:\n%s", f, out)
		}
	}
	var want []string
	for _, f := range files {
		version, name, _ := strings.Cut(strings.TrimSuffix(f, ".sql"), "_")
		want = append(want, version+" "+name)
	}
	if got := recordedMigrations(t, conn); !reflect.DeepEqual(got, want) {
		t.Errorf("schema_migrations = %q, want %q", got, want)
	}
	assertFinalSchema(t, conn)

	// The CLI's push must build the catalog our own applier (what scripts/stack.sh and the other tests use) builds.
	ours := throwawayDB(t)
	ctx, root := ctxT(t), repoRoot(t)
	must(t, "bootstrap", dbsetup.Bootstrap(ctx, ours, root))
	must(t, "migrate", dbsetup.Migrate(ctx, ours, root))
	a, b := snapshot(t, conn), snapshot(t, ours)
	for part := range a {
		if onlyCLI, onlyOurs := diffLines(a[part], b[part]); len(onlyCLI)+len(onlyOurs) > 0 {
			t.Errorf("%s differ between the CLI's push and dbsetup.Migrate:\n  only CLI:%s\n  only dbsetup:%s",
				part, fmtLines(onlyCLI), fmtLines(onlyOurs))
		}
	}

	out, err = cli.run(t, "db", "push", "--db-url", dbURL)
	assertNoConfigWarnings(t, "second db push", out)
	if err != nil {
		t.Fatalf("second supabase db push: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Remote database is up to date") || strings.Contains(out, "Applying migration") {
		t.Errorf("second push is not a no-op:\n%s", out)
	}
	if got := recordedMigrations(t, conn); !reflect.DeepEqual(got, want) {
		t.Errorf("schema_migrations after the second push = %q, want %q", got, want)
	}
}

// supabaseCLI runs the pinned CLI over the repository (--workdir: supabase/config.toml, supabase/migrations) in a
// closed environment: an empty PATH (no docker, podman or anything else to spawn), a temporary HOME and
// SUPABASE_HOME (the CLI writes telemetry.json there even with telemetry off), telemetry and the update notifier
// off (with telemetry on it resolves its analytics host, the only non-loopback traffic it attempted), and nothing
// inherited from the test's environment, so that no SUPABASE_* variable overrides config.toml.
type supabaseCLI struct {
	bin, workdir string
	env          []string
}

func newSupabaseCLI(t *testing.T) *supabaseCLI {
	t.Helper()
	bin := testenv.Get(t, envSupabaseCLI)
	dir := t.TempDir()
	emptyPath := filepath.Join(dir, "bin")
	home := filepath.Join(dir, "home")
	tmp := filepath.Join(dir, "tmp")
	for _, d := range []string{emptyPath, home, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return &supabaseCLI{bin: bin, workdir: repoRoot(t), env: []string{
		"PATH=" + emptyPath,
		"HOME=" + home,
		"SUPABASE_HOME=" + filepath.Join(home, ".supabase"),
		"TMPDIR=" + tmp,
		"SUPABASE_TELEMETRY_DISABLED=1",
		"DO_NOT_TRACK=1",
		"SUPABASE_NO_UPDATE_NOTIFIER=1",
		"DOCKER_HOST=unix://" + filepath.Join(dir, "no-docker.sock"),
	}}
}

// run runs one CLI command non-interactively (--yes, stdin empty) with a timeout and returns stdout and stderr
// together (the CLI prints its progress and warnings on stderr).
func (c *supabaseCLI) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append(args, "--workdir", c.workdir, "--yes")...)
	cmd.Dir = c.workdir
	cmd.Env = c.env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("supabase %s: timed out: %v\n%s", strings.Join(args, " "), ctx.Err(), out)
	}
	t.Logf("supabase %s:\n%s", strings.Join(args, " "), out)
	return string(out), err
}

func assertNoConfigWarnings(t *testing.T, what, out string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(strings.ToUpper(line), "WARN") || strings.Contains(strings.ToLower(line), "deprecated") ||
			strings.Contains(line, "Disabling phone login") {
			t.Errorf("supabase %s warned: %s", what, line)
		}
	}
}

// throwawayURL is the URL of conn's database: the stack's superuser URL with the database name replaced.
func throwawayURL(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	u, err := url.Parse(testenv.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + conn.Config().Database
	u.RawPath = ""
	return u.String()
}

// migrationFiles returns the base names of supabase/migrations/*.sql, sorted.
func migrationFiles(t *testing.T) []string {
	t.Helper()
	paths, err := dbsetup.MigrationFiles(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = filepath.Base(p)
	}
	return names
}

// recordedMigrations returns "version name" of every row of the CLI's history table, or nothing if it does not exist.
func recordedMigrations(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	if queryInt(t, conn, `select count(*) from pg_class where oid = to_regclass('supabase_migrations.schema_migrations')`) == 0 {
		return nil
	}
	return queryStrings(t, conn, `select version || ' ' || coalesce(name, '') from supabase_migrations.schema_migrations order by version`)
}

func hasLine(out, want string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == want {
			return true
		}
	}
	return false
}

// lastJWT returns the last line of out that looks like a compact JWS.
func lastJWT(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.Count(l, ".") == 2 && strings.HasPrefix(l, "eyJ") {
			return l
		}
	}
	return ""
}

func jsonValue(t *testing.T, v any) []any {
	t.Helper()
	var out []any
	if err := json.Unmarshal(mustJSON(t, v), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
