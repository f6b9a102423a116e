// Package dbsetup applies the repository's SQL to a PostgreSQL database: the local-stack bootstrap
// (scripts/sql/bootstrap.sql), the supabase/migrations in lexical order, and supabase/seed.sql.
//
// scripts/stack.sh applies the same files with psql; this package exists so that Go tests can build throwaway
// databases exactly the way the stack builds its own. Every file is sent in ONE simple-protocol Exec, which
// PostgreSQL runs as one implicit transaction: a failing migration leaves nothing half-applied. The files therefore
// must not contain psql meta-commands or explicit transaction control.
package dbsetup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Paths of the SQL files, relative to the repository root.
const (
	BootstrapPath  = "scripts/sql/bootstrap.sql"
	MigrationsDir  = "supabase/migrations"
	SeedPath       = "supabase/seed.sql"
	baselineSuffix = "_baseline.sql"
)

// Bootstrap makes a plain PostgreSQL database look like a Supabase one (roles, auth, storage, extensions).
// Only for the local stack and tests: a supabase CLI database already has all of it.
func Bootstrap(ctx context.Context, conn *pgx.Conn, repoRoot string) error {
	return ExecFile(ctx, conn, filepath.Join(repoRoot, BootstrapPath))
}

// Migrate applies every supabase/migrations/*.sql in lexical (= timestamp) order. The migrations are idempotent,
// so calling Migrate on an already migrated database is safe.
func Migrate(ctx context.Context, conn *pgx.Conn, repoRoot string) error {
	files, err := MigrationFiles(repoRoot)
	if err != nil {
		return err
	}
	return execAll(ctx, conn, files)
}

// MigrateBaseline applies only the baseline migration (the reproduction of production, defects included).
func MigrateBaseline(ctx context.Context, conn *pgx.Conn, repoRoot string) error {
	files, err := MigrationFiles(repoRoot)
	if err != nil {
		return err
	}
	for _, f := range files {
		if strings.HasSuffix(f, baselineSuffix) {
			return ExecFile(ctx, conn, f)
		}
	}
	return fmt.Errorf("dbsetup: no *%s in %s", baselineSuffix, MigrationsDir)
}

// MigrateFixes applies every migration after the baseline, in order.
func MigrateFixes(ctx context.Context, conn *pgx.Conn, repoRoot string) error {
	files, err := MigrationFiles(repoRoot)
	if err != nil {
		return err
	}
	var fixes []string
	for _, f := range files {
		if !strings.HasSuffix(f, baselineSuffix) {
			fixes = append(fixes, f)
		}
	}
	return execAll(ctx, conn, fixes)
}

// Seed applies supabase/seed.sql (idempotent demo data).
func Seed(ctx context.Context, conn *pgx.Conn, repoRoot string) error {
	return ExecFile(ctx, conn, filepath.Join(repoRoot, SeedPath))
}

// MigrationFiles lists the migration files, sorted lexically, as absolute paths.
func MigrationFiles(repoRoot string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(repoRoot, MigrationsDir, "*.sql"))
	if err != nil {
		return nil, fmt.Errorf("dbsetup: list migrations: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("dbsetup: no migrations in %s", filepath.Join(repoRoot, MigrationsDir))
	}
	sort.Strings(files)
	return files, nil
}

func execAll(ctx context.Context, conn *pgx.Conn, files []string) error {
	for _, f := range files {
		if err := ExecFile(ctx, conn, f); err != nil {
			return err
		}
	}
	return nil
}

// ExecFile sends the whole file in one simple-protocol Exec. Errors name the file and, for server errors, the
// line the failing statement is on.
func ExecFile(ctx context.Context, conn *pgx.Conn, path string) error {
	sql, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("dbsetup: %w", err)
	}
	return execSQL(ctx, conn, filepath.Base(path), string(sql))
}

// execSQL sends sql in one simple-protocol Exec; errors name the file (and the line, for server errors).
func execSQL(ctx context.Context, conn *pgx.Conn, name, sql string) error {
	if _, err := conn.Exec(ctx, sql); err != nil {
		var pgErr *pgconn.PgError
		// Position counts characters, not bytes (the files contain non-ASCII punctuation).
		if runes := []rune(sql); errors.As(err, &pgErr) && pgErr.Position > 0 && int(pgErr.Position) <= len(runes) {
			line := 1 + strings.Count(string(runes[:pgErr.Position-1]), "\n")
			return fmt.Errorf("dbsetup: %s:%d: %w", name, line, err)
		}
		return fmt.Errorf("dbsetup: %s: %w", name, err)
	}
	return nil
}

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("dbsetup: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("dbsetup: go.mod not found above the working directory")
		}
		dir = parent
	}
}
