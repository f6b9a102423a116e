package schematest

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/qryptchat/suparelay/internal/migset"
	"github.com/qryptchat/suparelay/internal/schemasnap"
)

// writeManifests makes TestManifestsCurrent rewrite supabase/manifests instead of comparing. It is a flag of this
// package's tests only: `go test ./internal/schematest -run '^TestManifestsCurrent$' -count=1 -write-manifests`,
// which is what `scripts/db.sh manifests` runs.
var writeManifests = flag.Bool("write-manifests", false, "rewrite supabase/manifests from the states built on the stack")

// manifestsDir is where the committed manifests are, relative to the repository root.
const manifestsDir = "supabase/manifests"

// TestManifestsCurrent builds the three known states on throwaway databases of the stack, the way an operator's
// databases get them (template copies with the bootstrap, every migration through the CLI):
//
//	production   the original app's 105 migrations (from the vendored archive)
//	pre-cutover  ours except *_cutover_*, on a fresh copy
//	final        then the cutover migrations, on the same copy
//
// and fails when supabase/manifests does not hold exactly their manifests, listing the differing objects.
// With -write-manifests it writes them instead.
func TestManifestsCurrent(t *testing.T) {
	t.Parallel()
	ours := ourMigrations(t)
	pre := migset.PreCutover(ours)
	type state struct {
		file, about, digest string
		snap                schemasnap.Snap
	}
	var states []state

	prod, _, _, prodDigest := productionState(t)
	states = append(states, state{schemasnap.ProductionManifest,
		"production: the schema the original app's 105 production migrations leave (on the real Supabase Auth and Storage schemas)",
		prodDigest, snapOf(t, prod)})

	db, url := templateCopy(t)
	for _, step := range []struct {
		file, about string
		files       []migset.File
	}{
		{schemasnap.PreCutoverManifest, "pre-cutover: every migration of supabase/migrations except *_cutover_*, on an empty database", pre},
		{schemasnap.FinalManifest, "final: every migration of supabase/migrations, on an empty database", ours},
	} {
		res := pushMigrations(t, db, url, step.files)
		if !res.ok() {
			t.Fatalf("%s: push failed: %v\n%s", step.file, res.err, resultTable(res, step.files, nil))
		}
		digest, err := migset.Digest(step.files)
		must(t, "digest", err)
		states = append(states, state{step.file, step.about, digest, snapOf(t, db)})
	}

	dir := filepath.Join(repoRoot(t), manifestsDir)
	for _, s := range states {
		built := s.snap.Hashes()
		text := schemasnap.ManifestFile(built, s.about, s.digest)
		path := filepath.Join(dir, s.file)
		if *writeManifests {
			must(t, "mkdir", os.MkdirAll(dir, 0o755))
			must(t, "write "+s.file, os.WriteFile(path, []byte(text), 0o644))
			t.Logf("wrote %s: %d objects (%s)", path, len(built), countsSummary(s.snap))
			continue
		}
		raw, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is missing: run scripts/db.sh manifests", path)
			continue
		}
		must(t, "read "+s.file, err)
		committed, err := schemasnap.ParseManifest(string(raw))
		if err != nil {
			t.Errorf("%s: %v", s.file, err)
			continue
		}
		t.Logf("%s: %d objects (%s)", s.file, len(built), countsSummary(s.snap))
		if d := schemasnap.DiffManifests(committed, built); !d.Empty() {
			t.Errorf("%s is stale (%d objects differ; run scripts/db.sh manifests and review the change):\n  %s",
				s.file, d.Len(), strings.Join(d.Lines("committed manifest", "built state"), "\n  "))
		} else if got := schemasnap.HeaderDigest(string(raw)); got != s.digest {
			t.Errorf("%s lists the right objects but names other migration files (built-from %s, want %s): run scripts/db.sh manifests",
				s.file, got, s.digest)
		}
	}
}

// The cutover migrations must sort after every other migration: scripts/db.sh push --before-cutover and then a
// plain push would otherwise leave the CLI with files older than its last recorded version, which it refuses to
// insert (without --include-all). Needs no stack.
func TestManifestCutoverMigrationsSortLast(t *testing.T) {
	t.Parallel()
	ours := ourMigrations(t)
	lastPre := ""
	for _, f := range migset.PreCutover(ours) {
		lastPre = max(lastPre, f.Version)
	}
	for _, f := range ours {
		if f.Cutover() && f.Version < lastPre {
			t.Errorf("cutover migration %s sorts before %s, the last migration that is not a cutover one", f.Base(), lastPre)
		}
	}
}

func countsSummary(s schemasnap.Snap) string {
	c := s.Counts()
	var parts []string
	for _, k := range []string{"table", "column", "constraint", "index", "function", "trigger", "policy", "bucket"} {
		parts = append(parts, k+" "+itoa(c[k]))
	}
	return strings.Join(parts, ", ")
}

func itoa(n int) string { return strconv.Itoa(n) }
