-- 20261201000800_users_auth_user_id_unique.sql — one users row per auth uid.
--
-- Fixes schema.md §6.2 defect 8 (first half): users.auth_user_id is indexed but not unique, although every lookup
-- (the routes, current_user_internal_id(), the definer RPCs) treats the mapping as one-to-one. Adds the unique
-- index users_auth_user_id_unique — only when the data allows it: if duplicates exist the migration does not fail,
-- it leaves a WARNING naming the problem, and current_user_internal_id() keeps answering NULL for an ambiguous
-- caller (so such a user is refused rather than confused with another).
--
-- Not added: a foreign key to auth.users. Its ON DELETE action is a product decision (cascade would wipe a user's
-- whole history with the auth account, SET NULL would orphan it), and production rows may predate their auth users.
--
-- Idempotent: guarded by the index's existence.

do $do$
declare
  dup_count integer;
begin
  if to_regclass('public.users_auth_user_id_unique') is not null then
    return;
  end if;
  select count(*) into dup_count
    from (select auth_user_id from public.users where auth_user_id is not null
           group by auth_user_id having count(*) > 1) d;
  if dup_count > 0 then
    raise warning 'users.auth_user_id has % duplicated value(s); unique index users_auth_user_id_unique not created',
      dup_count;
    return;
  end if;
  create unique index users_auth_user_id_unique on public.users (auth_user_id);
end
$do$;
