// Command dbcheck tells an operator where a QryptChat database stands with respect to our migrations: which are
// applied (from the supabase CLI's history, supabase_migrations.schema_migrations; no table means none), which are
// pending, and how the live schema compares with the committed manifests of the three known states:
//
//	production.manifest   what the original app's 105 production migrations leave (every existing deployment)
//	pre-cutover.manifest  all our migrations except the *_cutover_* ones (the original server still serving)
//	final.manifest        all our migrations
//
// Usage:
//
//	DATABASE_URL=postgres://… go run ./cmd/dbcheck [-migrations supabase/migrations] [-manifests supabase/manifests]
//	                                               [-ignore-kinds extension,schema-acl] [-all]
//	DATABASE_URL=postgres://… go run ./cmd/dbcheck -print-placeholders
//	DATABASE_URL=postgres://… go run ./cmd/dbcheck -dump
//
// (scripts/db.sh check runs the first form.) The exit code is 0 when the schema matches the manifest expected
// for what the history says is applied (production for none, pre-cutover for all but the cutover migrations,
// final for all), 1 when it differs or the history matches no known state, 2 on usage, connection or read errors.
//
// dbcheck NEVER WRITES: it is meant to be pointed at production. The session is opened with
// default_transaction_read_only=on (every transaction of the session is read-only, so even a bug here cannot
// write), dbcheck verifies that the server accepted the setting before reading anything, and the catalog is read
// in one READ ONLY transaction.
//
// -dump prints the whole snapshot (every object with its definition) instead: what to look at when a manifest
// differs, since the manifests hold hashes only.
//
// -print-placeholders prints, one per line as `version<TAB>name`, the versions recorded in the history that are
// not ours (the original app's migrations on an existing deployment). scripts/db.sh push writes a placeholder
// file for each so that `supabase db push` accepts the history (see internal/migset.Placeholders); it exits 1 if
// the history holds unknown versions that are not older than our first migration.
//
// The manifests describe the states as the project's own stack builds them (the real Supabase Auth and Storage
// schemas plus scripts/sql/bootstrap.sql). A hosted Supabase project also has platform extensions and may show
// platform grantors in ACLs; -ignore-kinds leaves such kinds out of the comparison.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/qryptchat/suparelay/internal/migset"
	"github.com/qryptchat/suparelay/internal/schemasnap"
)

// Exit codes.
const (
	exitMatch   = 0
	exitDiffers = 1
	exitError   = 2
)

// The manifest files, as schemasnap names them.
const (
	ProductionManifest = schemasnap.ProductionManifest
	PreCutoverManifest = schemasnap.PreCutoverManifest
	FinalManifest      = schemasnap.FinalManifest
)

// shortList is how many differences dbcheck prints for a manifest other than the expected one (without -all).
const shortList = 15

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dbcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	migDir := fs.String("migrations", "supabase/migrations", "our migrations `dir`")
	manDir := fs.String("manifests", "supabase/manifests", "`dir` of production.manifest, pre-cutover.manifest, final.manifest")
	ignore := fs.String("ignore-kinds", "", "comma-separated object `kinds` left out of the comparison (e.g. extension)")
	all := fs.Bool("all", false, "list every difference for every manifest, not only for the expected one")
	dump := fs.Bool("dump", false, "print every object of the snapshot with its definition and exit 0")
	placeholders := fs.Bool("print-placeholders", false, "print the recorded versions that are not ours (for scripts/db.sh push) and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: DATABASE_URL=... dbcheck [flags]   (read-only; exit 0 match, 1 differs, 2 error)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dbcheck: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return exitError
	}
	dbURL := getenv("DATABASE_URL")
	if dbURL == "" {
		fmt.Fprintln(stderr, "dbcheck: DATABASE_URL is not set")
		return exitError
	}
	files, err := migset.Dir(*migDir)
	if err != nil {
		fmt.Fprintf(stderr, "dbcheck: %v\n", err)
		return exitError
	}

	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conn, err := connectReadOnly(ctx, dbURL)
	if err != nil {
		fmt.Fprintf(stderr, "dbcheck: %v\n", err)
		return exitError
	}
	defer conn.Close(context.Background())

	recorded, err := migset.Recorded(ctx, conn)
	if err != nil {
		fmt.Fprintf(stderr, "dbcheck: read the migration history: %v\n", err)
		return exitError
	}
	if *placeholders {
		ph, err := migset.Placeholders(files, recorded)
		if err != nil {
			fmt.Fprintf(stderr, "dbcheck: %v\n", err)
			return exitDiffers
		}
		for _, r := range ph {
			fmt.Fprintf(stdout, "%s\t%s\n", r.Version, r.Name)
		}
		return exitMatch
	}

	snap, err := schemasnap.Snapshot(ctx, conn)
	if err != nil {
		fmt.Fprintf(stderr, "dbcheck: %v\n", err)
		return exitError
	}
	if *dump {
		for _, k := range snap.Keys() {
			fmt.Fprintf(stdout, "%s\n\t%s\n", k, strings.ReplaceAll(snap[k], "\n", "\n\t"))
		}
		return exitMatch
	}
	manifests, digests, err := readManifests(*manDir)
	if err != nil {
		fmt.Fprintf(stderr, "dbcheck: %v\n", err)
		return exitError
	}
	ignored := map[string]bool{}
	for _, k := range strings.Split(*ignore, ",") {
		if k = strings.TrimSpace(k); k != "" {
			ignored[k] = true
		}
	}

	cfg := conn.Config()
	fmt.Fprintf(stdout, "database %s on %s:%d (read-only session)\n\n", cfg.Database, cfg.Host, cfg.Port)
	status := migset.Compare(files, recorded)
	state := migset.StateOf(status)
	printMigrations(stdout, *migDir, files, status, recorded)

	fmt.Fprintf(stdout, "\nschema: %d objects (%s)\n", len(snap), countsLine(snap.Counts()))
	if len(ignored) > 0 {
		fmt.Fprintf(stdout, "ignoring kinds: %s\n", strings.Join(sortedSet(ignored), ", "))
	}
	live := filterKinds(snap.Hashes(), ignored)
	expected := expectedManifest(state)
	wantDigest := map[string]string{}
	if d, err := migset.Digest(migset.PreCutover(files)); err == nil {
		wantDigest[PreCutoverManifest] = d
	}
	if d, err := migset.Digest(files); err == nil {
		wantDigest[FinalManifest] = d
	}
	var expectedDelta *schemasnap.Delta
	for _, name := range schemasnap.ManifestFiles {
		m, ok := manifests[name]
		if !ok {
			fmt.Fprintf(stdout, "  %-22s missing from %s\n", name, *manDir)
			continue
		}
		if want, got := wantDigest[name], digests[name]; want != "" && got != "" && want != got {
			fmt.Fprintf(stdout, "  %-22s NOTE: built from other migration files than %s holds (regenerate: scripts/db.sh manifests)\n", name, *migDir)
		}
		d := schemasnap.DiffManifests(live, filterKinds(m, ignored))
		if name == expected {
			expectedDelta = &d
		}
		if d.Empty() {
			fmt.Fprintf(stdout, "  %-22s matches\n", name)
			continue
		}
		fmt.Fprintf(stdout, "  %-22s differs in %d objects\n", name, d.Len())
		lines := d.Lines("database", "manifest")
		limit := len(lines)
		if !*all && name != expected && limit > shortList {
			limit = shortList
		}
		for _, l := range lines[:limit] {
			fmt.Fprintf(stdout, "      %s\n", l)
		}
		if limit < len(lines) {
			fmt.Fprintf(stdout, "      ... and %d more (-all lists them)\n", len(lines)-limit)
		}
	}

	fmt.Fprintln(stdout)
	switch {
	case expected == "":
		fmt.Fprintf(stdout, "RESULT: differs — the history is %s, a state no manifest describes\n", state)
		return exitDiffers
	case expectedDelta == nil:
		fmt.Fprintf(stderr, "dbcheck: %s (expected: %s) is missing from %s\n", expected, state, *manDir)
		return exitError
	case expectedDelta.Empty():
		fmt.Fprintf(stdout, "RESULT: ok — %s, and the schema matches %s\n", state, expected)
		return exitMatch
	default:
		fmt.Fprintf(stdout, "RESULT: differs — %s, but the schema differs from %s in %d objects\n", state, expected, expectedDelta.Len())
		return exitDiffers
	}
}

// connectReadOnly opens the session with default_transaction_read_only=on and checks that the server applied
// it: a connection pooler that drops startup parameters would otherwise leave a writable session.
func connectReadOnly(ctx context.Context, dbURL string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	cfg.RuntimeParams["default_transaction_read_only"] = "on"
	cfg.RuntimeParams["application_name"] = "suparelay-dbcheck"
	cfg.RuntimeParams["statement_timeout"] = "60s"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	var ro string
	if err := conn.QueryRow(ctx, "show transaction_read_only").Scan(&ro); err != nil || ro != "on" {
		conn.Close(context.Background())
		if err == nil {
			err = fmt.Errorf("transaction_read_only is %q", ro)
		}
		return nil, fmt.Errorf("the session is not read-only, refusing to go on: %w", err)
	}
	return conn, nil
}

// expectedManifest is the manifest that describes state, "" for a state none describes.
func expectedManifest(s migset.State) string {
	switch s {
	case migset.StateNone:
		return ProductionManifest
	case migset.StatePreCutover:
		return PreCutoverManifest
	case migset.StateFinal:
		return FinalManifest
	}
	return ""
}

func printMigrations(w io.Writer, dir string, files []migset.File, s migset.Status, recorded []migset.Record) {
	applied := map[string]bool{}
	for _, f := range s.Applied {
		applied[f.Version] = true
	}
	if recorded == nil {
		fmt.Fprintf(w, "history: no %s table (the CLI never pushed here): none of ours applied\n", migset.HistoryTable)
	}
	fmt.Fprintf(w, "migrations in %s: %d, applied %d, pending %d — %s\n", dir, len(files), len(s.Applied), len(s.Pending),
		migset.StateOf(s))
	for _, f := range files {
		mark := "pending"
		if applied[f.Version] {
			mark = "applied"
		}
		note := ""
		if f.Cutover() {
			note = "  (cutover)"
		}
		fmt.Fprintf(w, "  %-8s %s%s\n", mark, f.Base(), note)
	}
	if len(s.Foreign) > 0 {
		fmt.Fprintf(w, "other recorded versions (not in %s): %d, %s … %s\n", dir, len(s.Foreign),
			s.Foreign[0].Version, s.Foreign[len(s.Foreign)-1].Version)
	}
}

// readManifests reads the manifests of dir that exist, with the digest named in each one's header.
func readManifests(dir string) (map[string]schemasnap.Manifest, map[string]string, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, nil, fmt.Errorf("manifests: %w", err)
	}
	ms, digests := map[string]schemasnap.Manifest{}, map[string]string{}
	for _, name := range schemasnap.ManifestFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("manifests: %w", err)
		}
		m, err := schemasnap.ParseManifest(string(b))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		ms[name] = m
		digests[name] = schemasnap.HeaderDigest(string(b))
	}
	return ms, digests, nil
}

func filterKinds(m schemasnap.Manifest, ignored map[string]bool) schemasnap.Manifest {
	if len(ignored) == 0 {
		return m
	}
	out := schemasnap.Manifest{}
	for k, v := range m {
		if !ignored[k.Kind] {
			out[k] = v
		}
	}
	return out
}

func countsLine(counts map[string]int) string {
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
