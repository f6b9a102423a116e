package dbsetup

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The SQL files are applied by psql (scripts/stack.sh) and by one pgx simple-protocol Exec (this package), and by
// the supabase CLI: they must not depend on psql meta-commands or manage transactions themselves.
func TestSQLFilesArePortable(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := MigrationFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := filepath.Base(files[0]); !strings.HasSuffix(got, baselineSuffix) {
		t.Errorf("first migration = %s, want the baseline", got)
	}
	meta := regexp.MustCompile(`(?m)^\s*\\`)
	txn := regexp.MustCompile(`(?im)^\s*(begin|commit|rollback|start transaction)\s*;`)
	all := append([]string{filepath.Join(root, BootstrapPath), filepath.Join(root, SeedPath)}, files...)
	for _, f := range all {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if meta.Match(b) {
			t.Errorf("%s contains a psql meta-command", filepath.Base(f))
		}
		if txn.Match(b) {
			t.Errorf("%s controls transactions itself", filepath.Base(f))
		}
	}
}

func TestRepoRootHasGoMod(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("RepoRoot() = %s without go.mod: %v", root, err)
	}
}
