package dbsetup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ProductionArchive is the vendored QryptChat source whose supabase/migrations built every production database.
const ProductionArchive = "qryptchat-web-563ed1c.tar.gz"

// VendorDir is where the vendored source archives are: SUPARELAY_VENDOR, else ../shared/vendor beside the repo.
func VendorDir(repoRoot string) string {
	if d := os.Getenv("SUPARELAY_VENDOR"); d != "" {
		return d
	}
	return filepath.Join(repoRoot, "..", "shared", "vendor")
}

// ErrNoVendor means the vendored archive is not there (a clone without the vendor folder).
var ErrNoVendor = errors.New("dbsetup: vendored archive not found")

// SQLFile is one migration file: its base name and content.
type SQLFile struct {
	Name string
	SQL  string
}

// maxMigrationSize bounds one file read from the archive.
const maxMigrationSize = 8 << 20

// ProductionMigrations reads the original app's migrations (supabase/migrations/*.sql of the vendored archive),
// in file order. They are test fixtures: applied to throwaway databases to get a production database.
func ProductionMigrations(repoRoot string) ([]SQLFile, error) {
	p := filepath.Join(VendorDir(repoRoot), ProductionArchive)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoVendor, p)
	}
	if err != nil {
		return nil, fmt.Errorf("dbsetup: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("dbsetup: %s: %w", p, err)
	}
	tr := tar.NewReader(gz)
	var out []SQLFile
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("dbsetup: %s: %w", p, err)
		}
		// <top folder>/supabase/migrations/<file>.sql
		parts := strings.SplitN(h.Name, "/", 2)
		if len(parts) != 2 || path.Dir(parts[1]) != "supabase/migrations" || !strings.HasSuffix(h.Name, ".sql") ||
			h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxMigrationSize))
		if err != nil {
			return nil, fmt.Errorf("dbsetup: %s: %w", h.Name, err)
		}
		out = append(out, SQLFile{Name: path.Base(h.Name), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil, fmt.Errorf("dbsetup: no supabase/migrations in %s", p)
	}
	return out, nil
}

// ApplyProduction applies the production migrations to conn, each file as one transaction, in order.
func ApplyProduction(ctx context.Context, conn *pgx.Conn, repoRoot string) error {
	files, err := ProductionMigrations(repoRoot)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := execSQL(ctx, conn, f.Name, f.SQL); err != nil {
			return err
		}
	}
	return nil
}
