-- 20261201000950_comments.sql — the schema's documentation starts from a clean page.
--
-- Production's migrations left comments on tables, columns and constraints of `public` (some of them stale), and
-- overwrote the comment of the schema itself. They are cleared, and the schema gets PostgreSQL's standard comment
-- back, so that an upgraded database and a fresh one read the same. Comments on functions are ours (the functions
-- migration replaced every function); triggers and policies carry none.
do $do$
declare
  d record;
begin
  for d in
    select c.oid::regclass as rel, a.attname, c.relkind
      from pg_description ds
      join pg_class c on c.oid = ds.objoid and ds.classoid = 'pg_class'::regclass
      left join pg_attribute a on a.attrelid = c.oid and a.attnum = ds.objsubid and ds.objsubid > 0
     where c.relnamespace = 'public'::regnamespace
  loop
    if d.attname is not null then
      execute format('comment on column %s.%I is null', d.rel, d.attname);
    elsif d.relkind = 'i' then
      execute format('comment on index %s is null', d.rel);
    elsif d.relkind = 'S' then
      execute format('comment on sequence %s is null', d.rel);
    elsif d.relkind = 'v' then
      execute format('comment on view %s is null', d.rel);
    else
      execute format('comment on table %s is null', d.rel);
    end if;
  end loop;
  for d in
    select con.conname, con.conrelid::regclass as rel
      from pg_description ds
      join pg_constraint con on con.oid = ds.objoid and ds.classoid = 'pg_constraint'::regclass
     where con.connamespace = 'public'::regnamespace and con.conrelid <> 0
  loop
    execute format('comment on constraint %I on %s is null', d.conname, d.rel);
  end loop;
end
$do$;

comment on schema public is 'standard public schema';
