-- bootstrap.sql — LOCAL STACK ONLY. Not a migration.
--
-- Makes a plain PostgreSQL 15 database look enough like a Supabase database for supabase/migrations/*.sql and
-- PostgREST 12 to behave as they do on a real project: the API roles and the authenticator, the `extensions`
-- schema, a minimal GoTrue-shaped `auth` schema with auth.uid()/role()/jwt(), a minimal Storage-shaped `storage`
-- schema, and Supabase's default privileges in `public`. The supabase CLI stack already has all of this, so this
-- file is never applied there.
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
-- auth: a GoTrue-shaped users table and the JWT helper functions policies use.
-- ---------------------------------------------------------------------------------------------------------------
create schema if not exists auth;

create table if not exists auth.users (
  instance_id uuid,
  id uuid not null primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  invited_at timestamptz,
  confirmation_token varchar(255) default '',
  confirmation_sent_at timestamptz,
  recovery_token varchar(255) default '',
  recovery_sent_at timestamptz,
  email_change_token_new varchar(255) default '',
  email_change varchar(255) default '',
  email_change_sent_at timestamptz,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb default '{}'::jsonb,
  raw_user_meta_data jsonb default '{}'::jsonb,
  is_super_admin boolean,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  phone text unique default null,
  phone_confirmed_at timestamptz,
  phone_change text default '',
  phone_change_token varchar(255) default '',
  phone_change_sent_at timestamptz,
  confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
  email_change_token_current varchar(255) default '',
  email_change_confirm_status smallint default 0,
  banned_until timestamptz,
  reauthentication_token varchar(255) default '',
  reauthentication_sent_at timestamptz,
  is_sso_user boolean not null default false,
  deleted_at timestamptz,
  is_anonymous boolean not null default false
);

-- Columns added by later GoTrue versions, for databases bootstrapped by an older version of this file.
alter table auth.users
  add column if not exists is_anonymous boolean not null default false,
  add column if not exists deleted_at timestamptz,
  add column if not exists banned_until timestamptz;

create index if not exists users_instance_id_idx on auth.users (instance_id);

-- The claims PostgREST stores for the request. Newer PostgREST sets request.jwt.claims (JSON); older ones set one
-- GUC per claim (request.jwt.claim.sub, ...), which is why every helper falls back to those.
create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

create or replace function auth.uid() returns uuid
language sql stable
as $$
  select nullif(coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
  ), '')::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'
  )
$$;

create or replace function auth.email() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email'
  )
$$;

grant usage on schema auth to anon, authenticated, service_role;
grant execute on function auth.jwt(), auth.uid(), auth.role(), auth.email() to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------------------------
-- storage: just enough of Supabase Storage's schema for the migrations' bucket rows and object policies.
-- ---------------------------------------------------------------------------------------------------------------
create schema if not exists storage;

create table if not exists storage.buckets (
  id text not null primary key,
  name text not null,
  owner uuid,
  public boolean default false,
  avif_autodetection boolean default false,
  file_size_limit bigint,
  allowed_mime_types text[],
  owner_id text,
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);
create unique index if not exists bname on storage.buckets (name);

create table if not exists storage.objects (
  id uuid not null default gen_random_uuid() primary key,
  bucket_id text references storage.buckets (id),
  name text,
  owner uuid,
  owner_id text,
  metadata jsonb,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored,
  version text,
  user_metadata jsonb,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now()
);
create unique index if not exists bucketid_objname on storage.objects (bucket_id, name);

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;

-- The folders of an object path: 'a/b/c.txt' -> {a,b}. Policies compare the first folder with auth.uid().
create or replace function storage.foldername(name text) returns text[]
language plpgsql immutable
as $$
declare
  parts text[] := string_to_array(name, '/');
begin
  return parts[1 : array_length(parts, 1) - 1];
end
$$;

create or replace function storage.filename(name text) returns text
language plpgsql immutable
as $$
declare
  parts text[] := string_to_array(name, '/');
begin
  return parts[array_length(parts, 1)];
end
$$;

create or replace function storage.extension(name text) returns text
language plpgsql immutable
as $$
declare
  fname text := storage.filename(name);
  parts text[] := string_to_array(fname, '.');
begin
  if array_length(parts, 1) < 2 then
    return '';
  end if;
  return parts[array_length(parts, 1)];
end
$$;

grant usage on schema storage to anon, authenticated, service_role;
grant all on storage.buckets, storage.objects to anon, authenticated, service_role;
grant execute on function storage.foldername(text), storage.filename(text), storage.extension(text)
  to anon, authenticated, service_role;

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
