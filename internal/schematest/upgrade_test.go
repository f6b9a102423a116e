package schematest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/qryptchat/suparelay/internal/migset"
	"github.com/qryptchat/suparelay/internal/schemasnap"
)

// The upgrade paths, all through the pinned supabase CLI (cliPush), each on the real Auth and Storage schemas:
//
//   - fresh: our migrations on an empty database;
//   - upgrade: the 105 production migrations, a realistic data set in every table, then ours;
//   - again: ours a second time over each of the two. The CLI applies only what its history lacks, so the rows of
//     our versions are deleted from supabase_migrations.schema_migrations first, in place; the push then re-runs
//     every one of our files exactly as it ran the first time.
//
// All must succeed; fresh and upgrade must end in the same schema (a normalized pg_dump of public, and the
// Storage policies, grants and buckets from schemasnap); the upgrade must keep every row (count and checksum per
// table, before ours and after, and after the second run) and leave no constraint unvalidated; a second run must
// change nothing. Every push prints its per-file table (ok / ERROR).
func TestUpgradePaths(t *testing.T) {
	t.Parallel()
	ours := ourMigrations(t)
	prod, prodURL, _, _ := productionState(t)
	dumpBin := pgDump(t, prod)
	fresh, freshURL := templateCopy(t)

	// Each path runs even when the other failed (both per-file tables are worth seeing); the comparisons and
	// "again" need both pushes to have succeeded.
	var freshOK, upgraded bool
	t.Run("fresh", func(t *testing.T) {
		res := pushMigrations(t, fresh, freshURL, ours)
		t.Logf("ours on an empty database (supabase db push):\n%s", resultTable(res, ours, fresh))
		if !res.ok() {
			t.Fatalf("push failed: %v\n%s", res.err, tail(res.out, 20))
		}
		freshOK = true
	})

	_, err := prod.Exec(ctxT(t), productionData)
	must(t, "production data set", err)
	tables := dataTables(t, prod)
	before := checksums(t, prod, tables)
	logCounts(t, tables, before)

	t.Run("upgrade", func(t *testing.T) {
		res := pushMigrations(t, prod, prodURL, ours)
		t.Logf("ours over the production schema (supabase db push):\n%s", resultTable(res, ours, prod))
		if !res.ok() {
			t.Fatalf("push failed: %v\n%s", res.err, tail(res.out, 20))
		}
		upgraded = true
		assertRowsKept(t, prod, tables, before)
		assertValidated(t, prod)
		assertHistory(t, prod, ours)
		if freshOK {
			compareSchemas(t, dumpBin, "fresh", fresh, freshURL, "upgrade", prod, prodURL)
		}
	})
	if !freshOK || !upgraded {
		t.FailNow()
	}

	t.Run("again", func(t *testing.T) {
		for _, db := range []struct {
			name string
			conn *pgx.Conn
			url  string
		}{{"fresh", fresh, freshURL}, {"upgrade", prod, prodURL}} {
			snapBefore, dumpBefore := snapOf(t, db.conn), schemaDump(t, dumpBin, db.url)
			forgetOurs(t, db.conn, ours)
			res := pushMigrations(t, db.conn, db.url, ours)
			t.Logf("ours again over %s (history of our versions cleared, supabase db push):\n%s", db.name,
				resultTable(res, ours, db.conn))
			if !res.ok() {
				t.Errorf("second push over %s failed: %v\n%s", db.name, res.err, tail(res.out, 20))
				continue
			}
			assertHistory(t, db.conn, ours)
			if d := schemasnap.Diff(snapBefore, snapOf(t, db.conn)); !d.Empty() {
				t.Errorf("the second run changed %s's schema:\n%s", db.name, capText(d.Format("first run", "second run"), 200))
			}
			if diff := schemasnap.LineDiff(dumpBefore, schemaDump(t, dumpBin, db.url), db.name+" after the first run",
				db.name+" after the second run"); diff != "" {
				t.Errorf("the second run changed %s's pg_dump:\n%s", db.name, capText(diff, 200))
			}
		}
		assertRowsKept(t, prod, tables, before)
		assertValidated(t, prod)
		compareSchemas(t, dumpBin, "fresh+again", fresh, freshURL, "upgrade+again", prod, prodURL)
	})
}

// forgetOurs deletes the history rows of our versions, so that the next push applies every one of our files again.
func forgetOurs(t *testing.T, conn *pgx.Conn, files []migset.File) {
	t.Helper()
	versions := make([]string, len(files))
	for i, f := range files {
		versions[i] = f.Version
	}
	_, err := conn.Exec(ctxT(t), `delete from `+migset.HistoryTable+` where version = any($1)`, versions)
	must(t, "clear our history rows", err)
}

// assertHistory checks that the CLI recorded every one of our files, with its name.
func assertHistory(t *testing.T, conn *pgx.Conn, files []migset.File) {
	t.Helper()
	recorded, err := migset.Recorded(ctxT(t), conn)
	must(t, "history", err)
	s := migset.Compare(files, recorded)
	if len(s.Pending) > 0 {
		t.Errorf("history lacks %d of our files after the push, e.g. %s", len(s.Pending), s.Pending[0].Base())
	}
	names := map[string]string{}
	for _, r := range recorded {
		names[r.Version] = r.Name
	}
	for _, f := range s.Applied {
		if names[f.Version] != f.Name {
			t.Errorf("history names %s %q, want %q", f.Version, names[f.Version], f.Name)
		}
	}
}

// compareSchemas fails when the two databases differ in their normalized pg_dump of public or in the Storage part
// of their snapshots; the snapshot diff then also names the differing objects.
func compareSchemas(t *testing.T, dumpBin, nameA string, a *pgx.Conn, urlA, nameB string, b *pgx.Conn, urlB string) {
	t.Helper()
	if diff := schemasnap.LineDiff(schemaDump(t, dumpBin, urlA), schemaDump(t, dumpBin, urlB), nameA, nameB); diff != "" {
		t.Errorf("pg_dump --schema-only --schema=public differs between %s and %s:\n%s", nameA, nameB, capText(diff, 300))
	}
	if diff := schemasnap.LineDiff(objectComments(t, a), objectComments(t, b), nameA, nameB); diff != "" {
		t.Errorf("object comments (COMMENT ON) in public differ between %s and %s:\n%s", nameA, nameB, capText(diff, 120))
	}
	sa, sb := snapOf(t, a), snapOf(t, b)
	if diff := schemasnap.LineDiff(storageText(sa), storageText(sb), nameA, nameB); diff != "" {
		t.Errorf("Storage policies, grants or buckets differ between %s and %s:\n%s", nameA, nameB, capText(diff, 200))
	}
	if d := schemasnap.Diff(sa, sb); !d.Empty() {
		t.Errorf("schema snapshots differ between %s and %s in %d objects:\n  %s", nameA, nameB, d.Len(),
			capText(strings.Join(d.Lines(nameA, nameB), "\n  "), 100))
	}
}

// objectComments lists the comments (COMMENT ON) of the objects of schema public and of the schema itself, one
// per line: `identity: text`. They are compared apart from the dump (schemaDump leaves them out) so that a
// difference in comments alone reads as such.
func objectComments(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	lines := queryStrings(t, conn, `
		select (o.type || ' ' || o.identity || ': ' || replace(d.description, E'\n', '\n')) collate "C"
		  from pg_description d cross join lateral pg_identify_object(d.classoid, d.objoid, d.objsubid) o
		 where o.schema = 'public' or (o.type = 'schema' and o.identity = 'public')
		 order by 1`)
	return strings.Join(lines, "\n")
}

// tableSpec is a table whose rows the upgrade must keep: its columns as they were before our migrations (so that
// an added column does not count as a changed row, and a dropped one fails the checksum query) and the order the
// checksum reads rows in (the primary key, else the whole row).
type tableSpec struct {
	name  string // quoted, qualified
	cols  []string
	order string
}

// dataTables lists every table of public plus storage.objects and auth.users (ours must not touch them either).
func dataTables(t *testing.T, conn *pgx.Conn) []tableSpec {
	t.Helper()
	rows, err := conn.Query(ctxT(t), `
		select format('%I.%I', n.nspname, c.relname),
		       array(select quote_ident(a.attname) from pg_attribute a
		              where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum),
		       array(select quote_ident(a.attname)
		               from pg_constraint con cross join lateral unnest(con.conkey) with ordinality k(attnum, ord)
		               join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum
		              where con.conrelid = c.oid and con.contype = 'p' order by k.ord)
		  from pg_class c join pg_namespace n on n.oid = c.relnamespace
		 where c.relkind in ('r', 'p')
		   and (n.nspname = 'public' or (n.nspname, c.relname) in (('storage', 'objects'), ('auth', 'users')))
		 order by 1`)
	must(t, "list tables", err)
	var out []tableSpec
	for rows.Next() {
		var s tableSpec
		var pk []string
		must(t, "list tables", rows.Scan(&s.name, &s.cols, &pk))
		s.order = strings.Join(pk, ", ")
		if s.order == "" {
			s.order = "row(" + strings.Join(s.cols, ", ") + ")::text"
		}
		out = append(out, s)
	}
	must(t, "list tables", rows.Err())
	return out
}

// tableSum is a table's row count and the md5 of its rows' text in checksum order.
type tableSum struct {
	rows int64
	md5  string
}

func checksums(t *testing.T, conn *pgx.Conn, tables []tableSpec) map[string]tableSum {
	t.Helper()
	out := map[string]tableSum{}
	for _, s := range tables {
		q := fmt.Sprintf(`select count(*), md5(coalesce(string_agg(row(%s)::text, E'\n' order by %s), '')) from %s`,
			strings.Join(s.cols, ", "), s.order, s.name)
		var sum tableSum
		if err := conn.QueryRow(ctxT(t), q).Scan(&sum.rows, &sum.md5); err != nil {
			t.Errorf("checksum of %s: %v", s.name, err)
			continue
		}
		out[s.name] = sum
	}
	return out
}

func logCounts(t *testing.T, tables []tableSpec, sums map[string]tableSum) {
	t.Helper()
	var b strings.Builder
	var empty []string
	for _, s := range tables {
		fmt.Fprintf(&b, "  %-40s %4d rows  %s\n", s.name, sums[s.name].rows, sums[s.name].md5)
		if sums[s.name].rows == 0 {
			empty = append(empty, s.name)
		}
	}
	t.Logf("the production data set, before ours:\n%s", b.String())
	if len(empty) > 0 {
		t.Errorf("the data set leaves tables empty (add rows to productionData): %v", empty)
	}
}

func assertRowsKept(t *testing.T, conn *pgx.Conn, tables []tableSpec, before map[string]tableSum) {
	t.Helper()
	after := checksums(t, conn, tables)
	for _, s := range tables {
		if b, a := before[s.name], after[s.name]; a != b {
			t.Errorf("%s: %d rows (md5 %s) before ours, %d rows (md5 %s) after", s.name, b.rows, b.md5, a.rows, a.md5)
		}
	}
}

// assertValidated fails on constraints left NOT VALID (the data was never checked against them) and on invalid
// indexes (a failed concurrent build) in public.
func assertValidated(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	if bad := queryStrings(t, conn, `select format('%s %s', conrelid::regclass, conname) from pg_constraint
	                                 where connamespace = 'public'::regnamespace and not convalidated order by 1`); len(bad) > 0 {
		t.Errorf("constraints left NOT VALID: %v", bad)
	}
	if bad := queryStrings(t, conn, `select indexrelid::regclass::text from pg_index i join pg_class c on c.oid = i.indexrelid
	                                 where c.relnamespace = 'public'::regnamespace and not i.indisvalid order by 1`); len(bad) > 0 {
		t.Errorf("invalid indexes: %v", bad)
	}
}
