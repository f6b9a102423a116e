// Package migset knows our migration files as the supabase CLI sees them — `<version>_<name>.sql`, applied in
// version order, each recorded in supabase_migrations.schema_migrations — and which of them are cutover
// migrations (`*_cutover_*`: the ones that end the original server's access and are applied last, when it is
// switched off).
//
// It is shared by the operator tools (cmd/dbcheck, scripts/db.sh) and the upgrade tests, so that "applied",
// "pending" and "before the cutover" mean the same thing everywhere.
package migset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// File is one migration file.
type File struct {
	Version string // the digits before the first '_', as the CLI records them
	Name    string // the rest of the base name without .sql, as the CLI records it
	Path    string
}

// Base is the file's base name.
func (f File) Base() string { return f.Version + "_" + f.Name + ".sql" }

// Cutover reports whether f is a cutover migration.
func (f File) Cutover() bool { return IsCutover(f.Base()) }

// IsCutover reports whether a migration's base name marks it as a cutover migration.
func IsCutover(base string) bool { return strings.Contains(base, "_cutover_") }

// fileName is the pattern the CLI accepts for a migration it applies; it skips other files with a warning.
var fileName = regexp.MustCompile(`^([0-9]+)_(.*)\.sql$`)

// Dir lists the migrations of dir in version order. Files that do not follow the CLI's naming are an error here
// (the CLI would silently skip them), and so are two files with one version.
func Dir(dir string) ([]File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("migset: %w", err)
	}
	var out []File
	seen := map[string]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migset: %s: not <version>_<name>.sql", filepath.Join(dir, e.Name()))
		}
		if other, dup := seen[m[1]]; dup {
			return nil, fmt.Errorf("migset: %s and %s share version %s", other, e.Name(), m[1])
		}
		seen[m[1]] = e.Name()
		out = append(out, File{Version: m[1], Name: m[2], Path: filepath.Join(dir, e.Name())})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("migset: no migrations in %s", dir)
	}
	Sort(out)
	return out, nil
}

// Sort orders files by version the way the CLI does (by version string; versions are timestamps of one length).
func Sort(files []File) {
	sort.Slice(files, func(i, j int) bool { return files[i].Version < files[j].Version })
}

// PreCutover returns files without the cutover migrations.
func PreCutover(files []File) []File {
	var out []File
	for _, f := range files {
		if !f.Cutover() {
			out = append(out, f)
		}
	}
	return out
}

// Digest identifies a set of migration files by their names and contents (sha256 over `base\0sha256(content)\n`
// in order). A manifest records the digest of the files it was built from, so that a stale manifest shows.
func Digest(files []File) (string, error) {
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f.Path)
		if err != nil {
			return "", fmt.Errorf("migset: %w", err)
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(h, "%s\x00%s\n", f.Base(), hex.EncodeToString(sum[:]))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// DigestContents is Digest over contents already in memory (base name -> SQL), in name order.
func DigestContents(files map[string]string) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		sum := sha256.Sum256([]byte(files[n]))
		fmt.Fprintf(h, "%s\x00%s\n", n, hex.EncodeToString(sum[:]))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Record is one row of the CLI's history table.
type Record struct {
	Version string
	Name    string
}

// HistoryTable is where the supabase CLI records what it applied.
const HistoryTable = "supabase_migrations.schema_migrations"

// Recorded reads the CLI's history in version order. A database the CLI never pushed to has no history table:
// that is no records, not an error. Only reads.
func Recorded(ctx context.Context, conn *pgx.Conn) ([]Record, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `select to_regclass($1) is not null`, HistoryTable).Scan(&exists); err != nil {
		return nil, fmt.Errorf("migset: %w", err)
	}
	if !exists {
		return nil, nil
	}
	// name came later in the CLI's table; read it if it is there.
	var hasName bool
	if err := conn.QueryRow(ctx, `select exists (select 1 from pg_attribute where attrelid = to_regclass($1)
	                              and attname = 'name' and not attisdropped)`, HistoryTable).Scan(&hasName); err != nil {
		return nil, fmt.Errorf("migset: %w", err)
	}
	q := `select version, '' from ` + HistoryTable + ` order by version`
	if hasName {
		q = `select version, coalesce(name, '') from ` + HistoryTable + ` order by version`
	}
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("migset: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Record, error) {
		var rec Record
		err := r.Scan(&rec.Version, &rec.Name)
		return rec, err
	})
	if err != nil {
		return nil, fmt.Errorf("migset: %w", err)
	}
	return out, nil
}

// Status is how the files compare with a database's history.
type Status struct {
	Applied []File   // ours, recorded
	Pending []File   // ours, not recorded
	Foreign []Record // recorded, not ours (on an existing deployment: the original app's migrations)
}

// Compare splits files and records into applied, pending and foreign.
func Compare(files []File, recorded []Record) Status {
	rec := map[string]bool{}
	for _, r := range recorded {
		rec[r.Version] = true
	}
	ours := map[string]bool{}
	var s Status
	for _, f := range files {
		ours[f.Version] = true
		if rec[f.Version] {
			s.Applied = append(s.Applied, f)
		} else {
			s.Pending = append(s.Pending, f)
		}
	}
	for _, r := range recorded {
		if !ours[r.Version] {
			s.Foreign = append(s.Foreign, r)
		}
	}
	return s
}

// State names what a database's history says about our migrations.
type State int

const (
	StateNone       State = iota // none of ours applied: the database is what it was before us
	StatePreCutover              // every migration but the cutover ones applied
	StateFinal                   // every migration applied
	StatePartial                 // anything else: no known state describes it
)

func (s State) String() string {
	switch s {
	case StateNone:
		return "none of ours applied"
	case StatePreCutover:
		return "all but the cutover migrations applied"
	case StateFinal:
		return "all migrations applied"
	default:
		return "partially applied"
	}
}

// StateOf classifies s. With no cutover migration in the set, "everything applied" is StateFinal.
func StateOf(s Status) State {
	switch {
	case len(s.Applied) == 0:
		return StateNone
	case len(s.Pending) == 0:
		return StateFinal
	}
	for _, f := range s.Applied {
		if f.Cutover() {
			return StatePartial
		}
	}
	for _, f := range s.Pending {
		if !f.Cutover() {
			return StatePartial
		}
	}
	return StatePreCutover
}

// ErrForeignAfterOurs means the history holds a version we do not know that is not older than our first
// migration: not the original app's history, so not something to paper over.
var ErrForeignAfterOurs = errors.New("migset: the history holds versions that are not ours and not older than our first migration")

// Placeholders returns the foreign records that the CLI needs to find as local files before it pushes.
//
// Why: `supabase db push` refuses to run when the history table holds versions that have no local file
// ("Remote migration versions not found in local migrations directory") — and every existing deployment's
// history holds the original app's migrations, which our repository does not contain (and must not copy).
// A placeholder file per such version (a comment, never executed: the CLI applies only versions the history lacks)
// lets the CLI accept the history without rewriting it, which `supabase migration repair` would do.
// Only versions older than our first migration qualify; anything else is ErrForeignAfterOurs.
func Placeholders(files []File, recorded []Record) ([]Record, error) {
	s := Compare(files, recorded)
	if len(s.Foreign) == 0 {
		return nil, nil
	}
	first := files[0].Version
	for _, f := range files {
		if f.Version < first {
			first = f.Version
		}
	}
	var late []string
	for _, r := range s.Foreign {
		if r.Version >= first {
			late = append(late, r.Version)
		}
	}
	if len(late) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrForeignAfterOurs, strings.Join(late, ", "))
	}
	return s.Foreign, nil
}

// PlaceholderBase is the file name of a placeholder for r.
func PlaceholderBase(r Record) string {
	name := r.Name
	if name == "" {
		name = "applied_before_suparelay"
	}
	return r.Version + "_" + name + ".sql"
}

// PlaceholderSQL is the content of every placeholder file.
const PlaceholderSQL = "-- Placeholder: this version was applied to the database before suparelay's migrations (recorded in\n" +
	"-- supabase_migrations.schema_migrations). The supabase CLI never runs it; it only needs to find the file.\n"

// Workdir lays out a supabase CLI project in dir for pushing files: supabase/config.toml and
// supabase/signing_keys.json copied from repoRoot, the migration files, and a placeholder per record of
// placeholders. dir must exist and be empty.
func Workdir(dir, repoRoot string, files []File, placeholders []Record) error {
	mig := filepath.Join(dir, "supabase", "migrations")
	if err := os.MkdirAll(mig, 0o755); err != nil {
		return fmt.Errorf("migset: %w", err)
	}
	for _, name := range []string{"config.toml", "signing_keys.json"} {
		if err := copyFile(filepath.Join(repoRoot, "supabase", name), filepath.Join(dir, "supabase", name)); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := copyFile(f.Path, filepath.Join(mig, f.Base())); err != nil {
			return err
		}
	}
	for _, r := range placeholders {
		if err := os.WriteFile(filepath.Join(mig, PlaceholderBase(r)), []byte(PlaceholderSQL), 0o644); err != nil {
			return fmt.Errorf("migset: %w", err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("migset: %w", err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return fmt.Errorf("migset: %w", err)
	}
	return nil
}
