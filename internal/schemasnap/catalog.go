package schemasnap

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Snapshot reads the catalog of schema public (tables, columns, constraints, indexes, sequences, views, types,
// functions, triggers, row-level security, policies, the ACLs of tables, columns, functions, sequences and of the
// schema itself), the extensions, and of schema storage what our migrations manage there: the policies and grants
// of storage.objects and storage.buckets and the bucket rows.
//
// Everything is read in one REPEATABLE READ, READ ONLY transaction (one consistent picture; safe on a read-only
// session and on a live database) with search_path set to pg_catalog only for its duration: the catalog's
// deparsing functions (pg_get_constraintdef, pg_get_expr, pg_get_indexdef, …) qualify names by the session's
// search_path, and a fixed one makes their text independent of the connection's settings.
//
// Objects that belong to an extension are left out (they are the extension's, not ours). Deparsed texts carry
// names, never OIDs; ACL lists, role lists and function settings are sorted; a NULL ACL is written as the
// default it stands for, so that "never granted" and "granted exactly the default" are the same.
func Snapshot(ctx context.Context, conn *pgx.Conn) (Snap, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("schemasnap: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "set local search_path = pg_catalog"); err != nil {
		return nil, fmt.Errorf("schemasnap: %w", err)
	}
	snap := Snap{}
	for _, q := range catalogQueries {
		if err := collect(ctx, tx, snap, q.what, q.sql); err != nil {
			return nil, err
		}
	}
	var hasStorage bool
	if err := tx.QueryRow(ctx, `select to_regclass('storage.buckets') is not null`).Scan(&hasStorage); err != nil {
		return nil, fmt.Errorf("schemasnap: %w", err)
	}
	if hasStorage {
		if err := buckets(ctx, tx, snap); err != nil {
			return nil, err
		}
	}
	return snap, nil
}

// collect runs one query returning (kind, name, definition) rows into snap.
func collect(ctx context.Context, tx pgx.Tx, snap Snap, what, sql string) error {
	rows, err := tx.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("schemasnap: %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k Key
		var def string
		if err := rows.Scan(&k.Kind, &k.Name, &def); err != nil {
			return fmt.Errorf("schemasnap: %s: %w", what, err)
		}
		if err := snap.add(k, def); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("schemasnap: %s: %w", what, err)
	}
	return nil
}

func (s Snap) add(k Key, def string) error {
	if _, dup := s[k]; dup {
		return fmt.Errorf("schemasnap: %s read twice", k)
	}
	// Line endings are how a file was saved, not what it means.
	s[k] = strings.ReplaceAll(def, "\r\n", "\n")
	return nil
}

// buckets reads the Storage bucket rows through to_jsonb, so that a Storage version without one of the columns
// (file_size_limit and allowed_mime_types came later) still gives a snapshot.
func buckets(ctx context.Context, tx pgx.Tx, snap Snap) error {
	rows, err := tx.Query(ctx, `select id, to_jsonb(b)::text from storage.buckets b order by id collate "C"`)
	if err != nil {
		return fmt.Errorf("schemasnap: buckets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, raw string
		if err := rows.Scan(&id, &raw); err != nil {
			return fmt.Errorf("schemasnap: buckets: %w", err)
		}
		var b struct {
			Name             *string   `json:"name"`
			Public           *bool     `json:"public"`
			FileSizeLimit    *int64    `json:"file_size_limit"`
			AllowedMimeTypes *[]string `json:"allowed_mime_types"`
		}
		if err := json.Unmarshal([]byte(raw), &b); err != nil {
			return fmt.Errorf("schemasnap: bucket %s: %w", id, err)
		}
		if err := snap.add(Key{"bucket", id}, bucketDef(b.Name, b.Public, b.FileSizeLimit, b.AllowedMimeTypes)); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("schemasnap: buckets: %w", err)
	}
	return nil
}

func bucketDef(name *string, public *bool, limit *int64, mimes *[]string) string {
	field := func(label string, v any, ok bool) string {
		if !ok {
			return label + "=null"
		}
		return fmt.Sprintf("%s=%v", label, v)
	}
	var n, p, l, m any
	if name != nil {
		n = *name
	}
	if public != nil {
		p = *public
	}
	if limit != nil {
		l = *limit
	}
	if mimes != nil {
		sorted := append([]string(nil), *mimes...)
		sort.Strings(sorted)
		m = "[" + strings.Join(sorted, ",") + "]"
	}
	return strings.Join([]string{
		field("name", n, name != nil), field("public", p, public != nil),
		field("file_size_limit", l, limit != nil), field("allowed_mime_types", m, mimes != nil),
	}, " ")
}

// notExtensionMember is a predicate on `classid, oid`: the object does not belong to an extension.
func notExtensionMember(catalog, oidExpr string) string {
	return fmt.Sprintf(`not exists (select 1 from pg_depend d where d.classid = '%s'::regclass and d.objid = %s and d.deptype = 'e')`,
		catalog, oidExpr)
}

// sortedACL renders an aclitem[] expression (NULL meaning the default for kind and owner) as sorted text.
func sortedACL(acl, kind, owner string) string {
	return fmt.Sprintf(`coalesce(array_to_string(array(select x::text from unnest(coalesce(%s, acldefault('%s', %s))) x
	                                                  order by x::text collate "C"), ','), '')`, acl, kind, owner)
}

// storageTables are the Storage tables whose policies and grants our migrations manage.
const storageTables = `(n.nspname = 'storage' and c.relname in ('objects', 'buckets'))`

var catalogQueries = []struct{ what, sql string }{
	{"extensions", `
		select 'extension', e.extname::text, 'schema=' || n.nspname
		  from pg_extension e join pg_namespace n on n.oid = e.extnamespace`},
	{"schema acl", `
		select 'schema-acl', n.nspname::text, ` + sortedACL("n.nspacl", "n", "n.nspowner") + `
		  from pg_namespace n where n.nspname = 'public'`},
	{"tables", `
		select 'table', n.nspname || '.' || c.relname,
		       concat_ws(' ', 'kind=' || case c.relkind when 'p' then 'partitioned' else 'table' end,
		                 'persistence=' || c.relpersistence::text,
		                 'options=' || coalesce(array_to_string(array(select o from unnest(c.reloptions) o order by o collate "C"), ','), ''),
		                 'columns=' || coalesce((select string_agg(quote_ident(a.attname), ',' order by a.attnum)
		                                           from pg_attribute a
		                                          where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), ''))
		  from pg_class c join pg_namespace n on n.oid = c.relnamespace
		 where n.nspname = 'public' and c.relkind in ('r', 'p') and ` + notExtensionMember("pg_class", "c.oid")},
	{"columns", `
		select 'column', n.nspname || '.' || c.relname || '.' || a.attname,
		       format_type(a.atttypid, a.atttypmod)
		       || case when a.attnotnull then ' not null' else '' end
		       || case when a.attidentity::text <> '' then ' identity=' || a.attidentity::text else '' end
		       || case when a.attgenerated::text <> '' then ' generated=' || pg_get_expr(ad.adbin, ad.adrelid)
		               when ad.adbin is not null then ' default=' || pg_get_expr(ad.adbin, ad.adrelid) else '' end
		       || case when a.attcollation <> t.typcollation then ' collate=' || coalesce(co.collname::text, '?') else '' end
		  from pg_attribute a
		  join pg_class c on c.oid = a.attrelid
		  join pg_namespace n on n.oid = c.relnamespace
		  join pg_type t on t.oid = a.atttypid
		  left join pg_attrdef ad on ad.adrelid = a.attrelid and ad.adnum = a.attnum
		  left join pg_collation co on co.oid = a.attcollation
		 where n.nspname = 'public' and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped
		   and ` + notExtensionMember("pg_class", "c.oid")},
	{"constraints", `
		select 'constraint', n.nspname || '.' || coalesce(c.relname, t.typname) || '.' || con.conname,
		       con.contype::text || ' ' || pg_get_constraintdef(con.oid)
		  from pg_constraint con
		  join pg_namespace n on n.oid = con.connamespace
		  left join pg_class c on c.oid = con.conrelid
		  left join pg_type t on t.oid = con.contypid
		 where n.nspname = 'public'`},
	{"indexes", `
		select 'index', n.nspname || '.' || ic.relname,
		       pg_get_indexdef(i.indexrelid) || case when not i.indisvalid then ' INVALID' else '' end
		  from pg_index i join pg_class ic on ic.oid = i.indexrelid join pg_namespace n on n.oid = ic.relnamespace
		 where n.nspname = 'public' and ` + notExtensionMember("pg_class", "i.indrelid")},
	{"sequences", `
		select 'sequence', n.nspname || '.' || c.relname,
		       format('type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s owned_by=%s',
		              format_type(s.seqtypid, null), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
		              coalesce((select dc.relname || '.' || da.attname
		                          from pg_depend d
		                          join pg_class dc on dc.oid = d.refobjid
		                          join pg_attribute da on da.attrelid = d.refobjid and da.attnum = d.refobjsubid
		                         where d.classid = 'pg_class'::regclass and d.objid = c.oid
		                           and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')
		                         order by dc.relname || '.' || da.attname collate "C" limit 1), '-'))
		  from pg_sequence s join pg_class c on c.oid = s.seqrelid join pg_namespace n on n.oid = c.relnamespace
		 where n.nspname = 'public' and ` + notExtensionMember("pg_class", "c.oid")},
	{"views", `
		select case c.relkind when 'm' then 'matview' else 'view' end, n.nspname || '.' || c.relname,
		       'options=' || coalesce(array_to_string(array(select o from unnest(c.reloptions) o order by o collate "C"), ','), '')
		       || E'\n' || pg_get_viewdef(c.oid)
		  from pg_class c join pg_namespace n on n.oid = c.relnamespace
		 where n.nspname = 'public' and c.relkind in ('v', 'm') and ` + notExtensionMember("pg_class", "c.oid")},
	{"types", `
		select 'type', n.nspname || '.' || t.typname,
		       case t.typtype
		         when 'e' then 'enum ' || coalesce((select string_agg(quote_literal(e.enumlabel), ',' order by e.enumsortorder)
		                                              from pg_enum e where e.enumtypid = t.oid), '')
		         when 'd' then 'domain ' || format_type(t.typbasetype, t.typtypmod)
		                       || case when t.typnotnull then ' not null' else '' end
		                       || coalesce(' default=' || t.typdefault, '')
		         when 'r' then 'range subtype=' || (select format_type(r.rngsubtype, null) from pg_range r where r.rngtypid = t.oid)
		         else 'composite ' || coalesce((select string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod),
		                                                          ', ' order by a.attnum)
		                                          from pg_attribute a
		                                         where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped), '')
		       end
		  from pg_type t join pg_namespace n on n.oid = t.typnamespace
		 where n.nspname = 'public'
		   and (t.typtype in ('e', 'd', 'r')
		        or (t.typtype = 'c' and exists (select 1 from pg_class c where c.oid = t.typrelid and c.relkind = 'c')))
		   and ` + notExtensionMember("pg_type", "t.oid")},
	{"functions", `
		select 'function', n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
		       concat_ws(E'\n',
		                 'kind=' || p.prokind::text,
		                 'args=' || pg_get_function_arguments(p.oid),
		                 'returns=' || coalesce(pg_get_function_result(p.oid), ''),
		                 'language=' || l.lanname,
		                 'volatility=' || p.provolatile::text,
		                 'strict=' || p.proisstrict,
		                 'security_definer=' || p.prosecdef,
		                 'leakproof=' || p.proleakproof,
		                 'parallel=' || p.proparallel::text,
		                 'cost=' || p.procost,
		                 'rows=' || p.prorows,
		                 'config=' || coalesce(array(select x from unnest(p.proconfig) x order by x collate "C")::text, '{}'),
		                 'body:',
		                 coalesce(pg_get_function_sqlbody(p.oid), p.prosrc, ''))
		  from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang
		 where n.nspname = 'public' and ` + notExtensionMember("pg_proc", "p.oid")},
	{"triggers", `
		select 'trigger', n.nspname || '.' || c.relname || '.' || tg.tgname,
		       pg_get_triggerdef(tg.oid) || case when tg.tgenabled <> 'O' then ' enabled=' || tg.tgenabled::text else '' end
		  from pg_trigger tg join pg_class c on c.oid = tg.tgrelid join pg_namespace n on n.oid = c.relnamespace
		 where n.nspname = 'public' and not tg.tgisinternal`},
	{"row-level security", `
		select 'rls', n.nspname || '.' || c.relname, 'enabled=' || c.relrowsecurity || ' forced=' || c.relforcerowsecurity
		  from pg_class c join pg_namespace n on n.oid = c.relnamespace
		 where c.relkind in ('r', 'p') and (n.nspname = 'public' or ` + storageTables + `)
		   and ` + notExtensionMember("pg_class", "c.oid")},
	{"policies", `
		select 'policy', p.schemaname || '.' || p.tablename || '.' || p.policyname,
		       concat_ws(E'\n', p.permissive, p.cmd,
		                 'roles=' || array_to_string(array(select r::text from unnest(p.roles) r order by r::text collate "C"), ','),
		                 'using=' || coalesce(p.qual, '-'),
		                 'check=' || coalesce(p.with_check, '-'))
		  from pg_policies p
		 where p.schemaname = 'public' or (p.schemaname = 'storage' and p.tablename in ('objects', 'buckets'))`},
	{"table acls", `
		select 'table-acl', n.nspname || '.' || c.relname, ` + sortedACL("c.relacl", "r", "c.relowner") + `
		  from pg_class c join pg_namespace n on n.oid = c.relnamespace
		 where c.relkind in ('r', 'p', 'v', 'm', 'f') and (n.nspname = 'public' or ` + storageTables + `)
		   and ` + notExtensionMember("pg_class", "c.oid")},
	{"column acls", `
		select 'column-acl', n.nspname || '.' || c.relname || '.' || a.attname,
		       array_to_string(array(select x::text from unnest(a.attacl) x order by x::text collate "C"), ',')
		  from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
		 where c.relkind in ('r', 'p', 'v', 'm', 'f') and (n.nspname = 'public' or ` + storageTables + `)
		   and a.attnum > 0 and not a.attisdropped and cardinality(a.attacl) > 0
		   and ` + notExtensionMember("pg_class", "c.oid")},
	{"function acls", `
		select 'function-acl', n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
		       ` + sortedACL("p.proacl", "f", "p.proowner") + `
		  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
		 where n.nspname = 'public' and ` + notExtensionMember("pg_proc", "p.oid")},
	{"sequence acls", `
		select 'sequence-acl', n.nspname || '.' || c.relname, ` + sortedACL("c.relacl", "s", "c.relowner") + `
		  from pg_class c join pg_namespace n on n.oid = c.relnamespace
		 where c.relkind = 'S' and n.nspname = 'public' and ` + notExtensionMember("pg_class", "c.oid")},
}
