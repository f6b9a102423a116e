package schemasnap

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// One object of every kind the snapshot reads, in one order…
const sampleSchema = `
create type public.snap_mood as enum ('happy', 'sad');
create domain public.snap_positive as integer check (value > 0);
create sequence public.snap_seq start 10 increment 5;
create table public.snap_parent (id uuid primary key default gen_random_uuid());
create table public.snap_t (
  id integer generated always as identity primary key,
  parent uuid references public.snap_parent (id) on delete cascade,
  name text collate "C" not null default 'x',
  doubled integer generated always as (id * 2) stored,
  mood public.snap_mood,
  score public.snap_positive
);
alter table public.snap_t add constraint snap_t_name_check check (length(name) < 100) not valid;
create index snap_t_name_idx on public.snap_t (lower(name)) where name <> '';
create view public.snap_v with (security_invoker = true) as select id, name from public.snap_t;
create function public.snap_f(p integer, q text default 'd') returns integer
  language plpgsql stable security definer set search_path = '' set statement_timeout = '1s'
  as $$ begin return p; end $$;
create function public.snap_trg() returns trigger language plpgsql as $$ begin return new; end $$;
create trigger snap_t_trg before insert on public.snap_t for each row execute function public.snap_trg();
alter table public.snap_t enable row level security;
alter table public.snap_t force row level security;
create policy "snap read" on public.snap_t for select to authenticated, anon using (name <> 'hidden');
revoke all on public.snap_t from anon, authenticated, service_role;
grant select on public.snap_t to authenticated;
grant select, insert on public.snap_t to service_role;
grant update (name) on public.snap_t to authenticated;
revoke execute on function public.snap_f(integer, text) from public, anon;
grant usage on sequence public.snap_seq to authenticated;
create policy "snap storage read" on storage.objects for select to authenticated using (bucket_id = 'snap');
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('snap', 'snap', false, 1024, '{text/plain,image/png}');
`

// …and the same objects created in another order, with grants made in another order, from a session with
// another search_path. The snapshots must be equal.
const sampleSchemaReordered = `
set search_path = storage, public, extensions;
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('snap', 'snap', false, 1024, '{text/plain,image/png}');
create policy "snap storage read" on storage.objects for select to authenticated using (bucket_id = 'snap');
create sequence public.snap_seq increment 5 start 10;
create domain public.snap_positive as integer check (value > 0);
create type public.snap_mood as enum ('happy', 'sad');
create table public.snap_parent (id uuid primary key default gen_random_uuid());
create function public.snap_trg() returns trigger language plpgsql as $$ begin return new; end $$;
create function public.snap_f(p integer, q text default 'd') returns integer
  language plpgsql stable security definer set statement_timeout = '1s' set search_path = ''
  as $$ begin return p; end $$;
create table public.snap_t (
  id integer generated always as identity primary key,
  parent uuid references public.snap_parent (id) on delete cascade,
  name text collate "C" not null default 'x',
  doubled integer generated always as (id * 2) stored,
  mood public.snap_mood,
  score public.snap_positive
);
create trigger snap_t_trg before insert on public.snap_t for each row execute function public.snap_trg();
create index snap_t_name_idx on public.snap_t (lower(name)) where name <> '';
alter table public.snap_t add constraint snap_t_name_check check (length(name) < 100) not valid;
create policy "snap read" on public.snap_t for select to anon, authenticated using (name <> 'hidden');
alter table public.snap_t force row level security;
alter table public.snap_t enable row level security;
create view public.snap_v with (security_invoker = true) as select id, name from public.snap_t;
revoke all on public.snap_t from service_role, authenticated, anon;
grant update (name) on public.snap_t to authenticated;
grant insert, select on public.snap_t to service_role;
grant select on public.snap_t to authenticated;
revoke execute on function public.snap_f(integer, text) from anon, public;
grant usage on sequence public.snap_seq to authenticated;
`

func TestSnapshotOfSampleSchema(t *testing.T) {
	t.Parallel()
	a, _ := testenv.TemplateCopy(t, "suparelay_snap_")
	b, bURL := testenv.TemplateCopy(t, "suparelay_snap_")
	ctx := ctxT(t)
	exec(t, a, sampleSchema)
	exec(t, b, sampleSchemaReordered)

	sa := snapshot(t, a)
	// b through a read-only session whose search_path is not the default: neither may change the result.
	cfg, err := pgx.ParseConfig(bURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["default_transaction_read_only"] = "on"
	cfg.RuntimeParams["search_path"] = "storage, auth, public"
	roB, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer roB.Close(context.Background())
	sb := snapshot(t, roB)
	if d := Diff(sa, sb); !d.Empty() {
		t.Fatalf("the same schema built in another order differs:\n%s", d.Format("a", "b"))
	}

	want := map[Key]string{
		{"type", "public.snap_mood"}:                               "enum 'happy','sad'",
		{"column", "public.snap_t.id"}:                             "integer not null identity=a",
		{"column", "public.snap_t.name"}:                           `text not null default='x'::text collate=C`,
		{"column", "public.snap_t.doubled"}:                        "integer generated=(id * 2)",
		{"column", "public.snap_t.mood"}:                           "public.snap_mood",
		{"constraint", "public.snap_t.snap_t_name_check"}:          "c CHECK ((length(name) < 100)) NOT VALID",
		{"constraint", "public.snap_t.snap_t_parent_fkey"}:         "f FOREIGN KEY (parent) REFERENCES public.snap_parent(id) ON DELETE CASCADE",
		{"constraint", "public.snap_positive.snap_positive_check"}: "c CHECK ((VALUE > 0))",
		{"index", "public.snap_t_name_idx"}:                        "CREATE INDEX snap_t_name_idx ON public.snap_t USING btree (lower(name)) WHERE (name <> ''::text)",
		{"trigger", "public.snap_t.snap_t_trg"}:                    "CREATE TRIGGER snap_t_trg BEFORE INSERT ON public.snap_t FOR EACH ROW EXECUTE FUNCTION public.snap_trg()",
		{"rls", "public.snap_t"}:                                   "enabled=true forced=true",
		{"policy", "public.snap_t.snap read"}:                      "PERMISSIVE\nSELECT\nroles=anon,authenticated\nusing=(name <> 'hidden'::text)\ncheck=-",
		{"table-acl", "public.snap_t"}:                             "authenticated=r/postgres,postgres=arwdDxtm/postgres,service_role=ar/postgres",
		{"column-acl", "public.snap_t.name"}:                       "authenticated=w/postgres",
		{"bucket", "snap"}:                                         "name=snap public=false file_size_limit=1024 allowed_mime_types=[image/png,text/plain]",
		{"policy", "storage.objects.snap storage read"}:            "PERMISSIVE\nSELECT\nroles=authenticated\nusing=(bucket_id = 'snap'::text)\ncheck=-",
	}
	for k, def := range want {
		got, ok := sa[k]
		switch {
		case !ok:
			t.Errorf("%s missing", k)
		case k.Kind == "table-acl":
			// The owner's own privileges depend on the server version (MAINTAIN, 'm', came in 17).
			if strings.ReplaceAll(got, "arwdDxt/", "arwdDxtm/") != def {
				t.Errorf("%s = %q, want %q", k, got, def)
			}
		case got != def:
			t.Errorf("%s = %q, want %q", k, got, def)
		}
	}
	f := sa[Key{"function", "public.snap_f(p integer, q text)"}]
	for _, w := range []string{"args=p integer, q text DEFAULT 'd'::text", "returns=integer", "language=plpgsql", "volatility=s",
		"security_definer=true", `config={"search_path=\"\"",statement_timeout=1s}`, "body:\n begin return p; end "} {
		if !strings.Contains(f, w) {
			t.Errorf("function definition lacks %q:\n%s", w, f)
		}
	}
	if acl := sa[Key{"function-acl", "public.snap_f(p integer, q text)"}]; strings.Contains(acl, "anon=") || strings.HasPrefix(acl, "=X") {
		t.Errorf("function ACL = %q, want no anon and no PUBLIC", acl)
	}
	for _, k := range []Key{{"sequence", "public.snap_seq"}, {"sequence", "public.snap_t_id_seq"}, {"view", "public.snap_v"},
		{"type", "public.snap_positive"}, {"extension", "pgcrypto"}, {"schema-acl", "public"}, {"sequence-acl", "public.snap_seq"},
		{"table", "public.snap_t"}, {"rls", "storage.objects"}, {"table-acl", "storage.objects"}} {
		if _, ok := sa[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}
	if !strings.Contains(sa[Key{"view", "public.snap_v"}], "security_invoker=true") {
		t.Errorf("view options lost: %q", sa[Key{"view", "public.snap_v"}])
	}
	if got := sa[Key{"table", "public.snap_t"}]; !strings.HasSuffix(got, "columns=id,parent,name,doubled,mood,score") {
		t.Errorf("table = %q", got)
	}
	for k := range sa {
		if strings.HasPrefix(k.Name, "auth.") || (strings.HasPrefix(k.Name, "storage.") && !strings.HasPrefix(k.Name, "storage.objects") &&
			!strings.HasPrefix(k.Name, "storage.buckets")) {
			t.Errorf("snapshot reaches beyond what our migrations own: %s", k)
		}
	}

	// Changes that matter show as exactly those objects.
	exec(t, b, `grant select (id) on public.snap_t to anon;
	            create or replace function public.snap_f(p integer, q text default 'd') returns integer
	              language plpgsql stable security definer set search_path = '' set statement_timeout = '1s'
	              as $$ begin return p + 1; end $$;
	            alter table public.snap_t validate constraint snap_t_name_check;
	            update storage.buckets set public = true where id = 'snap';`)
	d := Diff(sa, snapshot(t, b))
	got := strings.Join(d.Lines("a", "b"), "\n")
	wantLines := "differs: bucket snap\n" +
		"only in b: column-acl public.snap_t.id\n" +
		"differs: constraint public.snap_t.snap_t_name_check\n" +
		"differs: function public.snap_f(p integer, q text)"
	if got != wantLines {
		t.Errorf("delta:\n%s\nwant:\n%s", got, wantLines)
	}
	if !strings.Contains(d.Format("a", "b"), "+ begin return p + 1; end ") {
		t.Errorf("the body change is not shown:\n%s", d.Format("a", "b"))
	}
}

func snapshot(t *testing.T, conn *pgx.Conn) Snap {
	t.Helper()
	s, err := Snapshot(ctxT(t), conn)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func exec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(ctxT(t), sql); err != nil {
		t.Fatal(err)
	}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
