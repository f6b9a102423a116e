-- 20250101000100_current_user_id.sql — translating the caller between the two id spaces, without recursion.
--
-- Fixes the root of schema.md §6.2 defect 2 (id-space mistakes) and prepares §6.3: policies and functions need the
-- caller's INTERNAL id (public.users.id), but the JWT only carries the AUTH uid (auth.uid()). Policies that look the
-- mapping up with a subquery on public.users run under the caller's RLS (and, on users itself, recurse); a STABLE
-- SECURITY DEFINER function does the lookup once per statement with the owner's rights instead.
--
--   public.current_user_internal_id() -> uuid   the caller's internal id; NULL when there is no JWT sub, no users
--                                               row, or (contract auth.md §6) more than one row for the auth uid.
--   public.request_is_privileged()   -> boolean true when the request does not run as an end-user API role:
--                                               the service role (PostgREST with the service-role key) or a direct
--                                               database session (migrations, the stack's superuser, jobs). Used
--                                               by the hardened SECURITY DEFINER functions to bind end users to
--                                               their own ids while leaving the server's service-role calls alone.
--
-- Why the `role` setting and not the JWT's role claim: PostgREST switches to the JWT's role with
-- set_config('role', ...) after verifying the signature, and SECURITY DEFINER does not change that setting, so it
-- still names the API role inside a definer function. A claim could in principle be present without the role
-- switch (e.g. request.jwt.claims set by hand in a direct session), the setting cannot lie about the role in force.
--
-- Idempotent: CREATE OR REPLACE only. Privileges are settled by the function-hardening migration.

create or replace function public.current_user_internal_id() returns uuid
language sql stable
security definer
set search_path = ''
as $$
  select (array_agg(u.id))[1]
    from public.users u
   where u.auth_user_id = auth.uid()
  having count(*) = 1
$$;

comment on function public.current_user_internal_id() is
  'The caller''s internal id (public.users.id) for auth.uid(); NULL if none or ambiguous. Used by RLS policies.';

create or replace function public.request_is_privileged() returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce(nullif(current_setting('role', true), ''), 'none') not in ('anon', 'authenticated')
$$;

comment on function public.request_is_privileged() is
  'True for the service role and direct database sessions; false for the anon and authenticated API roles.';
