-- bootstrap.sql — LOCAL STACK ONLY. Not a migration.
--
-- Makes a plain PostgreSQL 15 database look like a Supabase database before its services start: the API roles and
-- the authenticator, the admin roles and empty schemas of Supabase Auth and Storage (which then create their own
-- tables and functions, exactly as on a real project), the `extensions` schema, and Supabase's default privileges
-- in `public`. The supabase CLI stack already has all of this, so this file is never applied there.
--
-- Idempotent: it runs on every `scripts/stack.sh up`, including against a database that already has it (and the
-- migrations). It therefore never grants on EXISTING objects in `public` (that would undo the function-hardening
-- migration); it only sets default privileges for objects created later.
--
-- No psql meta-commands: Go applies this file with one simple-protocol Exec (internal/dbsetup).

-- ---------------------------------------------------------------------------------------------------------------
-- Roles (cluster-wide, so guarded).
-- ---------------------------------------------------------------------------------------------------------------
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$$;

-- Re-assert the attributes that matter if a role pre-existed with other settings. Roles are shared by every
-- database of the cluster, and concurrent updates of one pg_authid row fail ("tuple concurrently updated"), so each
-- change is made only when needed: bootstrapping several databases at once (the tests do) then writes nothing.
do $$
begin
  if exists (select 1 from pg_roles where rolname in ('anon', 'authenticated') and (rolcanlogin or rolinherit)) then
    alter role anon nologin noinherit;
    alter role authenticated nologin noinherit;
  end if;
  if exists (select 1 from pg_roles where rolname = 'service_role' and (rolcanlogin or rolinherit or not rolbypassrls)) then
    alter role service_role nologin noinherit bypassrls;
  end if;
  if exists (select 1 from pg_roles where rolname = 'authenticator' and (not rolcanlogin or rolinherit)) then
    alter role authenticator login noinherit;
  end if;
  -- A runaway request under the API must not hold the database; Supabase sets per-role timeouts too.
  if not exists (select 1 from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
                  where r.rolname = 'authenticator' and s.setdatabase = 0 and 'statement_timeout=8s' = any (s.setconfig)) then
    alter role authenticator set statement_timeout = '8s';
  end if;
  if not exists (select 1 from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
                  where r.rolname = 'anon' and s.setdatabase = 0 and 'statement_timeout=3s' = any (s.setconfig)) then
    alter role anon set statement_timeout = '3s';
  end if;
  if not exists (select 1 from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
                  where r.rolname = 'authenticated' and s.setdatabase = 0 and 'statement_timeout=8s' = any (s.setconfig)) then
    alter role authenticated set statement_timeout = '8s';
  end if;
  if not pg_has_role('authenticator', 'anon', 'member') then
    grant anon to authenticator;
  end if;
  if not pg_has_role('authenticator', 'authenticated', 'member') then
    grant authenticated to authenticator;
  end if;
  if not pg_has_role('authenticator', 'service_role', 'member') then
    grant service_role to authenticator;
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- Extensions live in `extensions`, as on Supabase (extensions.uuid_generate_v4()).
-- ---------------------------------------------------------------------------------------------------------------
create schema if not exists extensions;

do $$
declare
  ext text;
  cur text;
begin
  foreach ext in array array['uuid-ossp', 'pgcrypto'] loop
    select n.nspname into cur
      from pg_extension e join pg_namespace n on n.oid = e.extnamespace
     where e.extname = ext;
    if cur is null then
      execute format('create extension %I with schema extensions', ext);
    elsif cur <> 'extensions' then
      -- Both extensions are relocatable; move them where Supabase keeps them.
      execute format('alter extension %I set schema extensions', ext);
    end if;
  end loop;
end
$$;

grant usage on schema extensions to anon, authenticated, service_role;
grant execute on all functions in schema extensions to anon, authenticated, service_role;

-- Supabase resolves unqualified names through public, then extensions.
do $$
begin
  execute format('alter database %I set search_path to "$user", public, extensions', current_database());
end
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- auth and storage belong to the real services: Supabase Auth (`auth migrate`) and Supabase Storage (its own
-- migrations at start) create every table and function in them. Here only their admin roles and empty schemas,
-- as Supabase's database image prepares them.
-- ---------------------------------------------------------------------------------------------------------------
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'supabase_auth_admin') then
    create role supabase_auth_admin noinherit createrole login;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'supabase_storage_admin') then
    create role supabase_storage_admin noinherit createrole login;
  end if;
  if not exists (select 1 from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
                  where r.rolname = 'supabase_auth_admin' and s.setdatabase = 0 and 'search_path=auth' = any (s.setconfig)) then
    alter role supabase_auth_admin set search_path = auth;
  end if;
  if not exists (select 1 from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
                  where r.rolname = 'supabase_storage_admin' and s.setdatabase = 0 and 'search_path=storage' = any (s.setconfig)) then
    alter role supabase_storage_admin set search_path = storage;
  end if;
  -- Storage switches to the caller's API role for every request (set_config('role', ...)).
  if not pg_has_role('supabase_storage_admin', 'anon', 'member') then
    grant anon to supabase_storage_admin;
  end if;
  if not pg_has_role('supabase_storage_admin', 'authenticated', 'member') then
    grant authenticated to supabase_storage_admin;
  end if;
  if not pg_has_role('supabase_storage_admin', 'service_role', 'member') then
    grant service_role to supabase_storage_admin;
  end if;
end
$$;

create schema if not exists auth authorization supabase_auth_admin;
create schema if not exists storage authorization supabase_storage_admin;
grant usage on schema auth to anon, authenticated, service_role, supabase_storage_admin;
grant usage on schema storage to postgres, anon, authenticated, service_role;
grant usage on schema extensions to supabase_auth_admin, supabase_storage_admin;
grant execute on all functions in schema extensions to supabase_auth_admin, supabase_storage_admin;

-- What Storage creates is usable by the API roles, as on Supabase.
alter default privileges for role supabase_storage_admin in schema storage grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_storage_admin in schema storage grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_storage_admin in schema storage grant all on sequences to postgres, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------------------------
-- public: Supabase's grants. Existing objects are left alone (see the header); new ones get Supabase's defaults.
-- ---------------------------------------------------------------------------------------------------------------
grant usage on schema public to anon, authenticated, service_role;

alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;

-- Same defaults for objects the `postgres` role creates, when the migrations run as another superuser.
do $$
begin
  if exists (select 1 from pg_roles where rolname = 'postgres') and current_user <> 'postgres' then
    alter default privileges for role postgres in schema public grant all on tables to anon, authenticated, service_role;
    alter default privileges for role postgres in schema public grant all on sequences to anon, authenticated, service_role;
    alter default privileges for role postgres in schema public grant all on functions to anon, authenticated, service_role;
  end if;
end
$$;
