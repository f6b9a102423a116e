-- 20261201000500_id_space_fixes.sql — policies that compared internal ids with auth.uid().
--
-- Fixes schema.md §6.2 defect 2 for the remaining tables (deliveries and the second conversations insert/update
-- pair were replaced by 20261201000400_membership_rls.sql):
--   * users update: one working own-row policy replaces the working one and the three dead `id = auth.uid()`
--     policies; WITH CHECK now pins the row to the caller. Column grants limit what a user may change about
--     themselves: display_name, avatar_url, bio, website, status, last_seen, updated_at, last_active_at, is_online,
--     default_message_retention_days, sms_notifications_enabled, salt, backup_pin_hash. NOT phone_number,
--     username, auth_user_id, unique_identifier, id, created_at (those need the service role).
--   * attachments read: participant (any left_at) of the message's conversation, by internal id.
--   * groups: read public groups, groups I created and groups I am an active member of; create only with
--     created_by = me; update by the creator or an active owner/admin. (Before: no user could create a group.)
--   * group_members: read my own rows and the members of groups I belong to or created; insert myself into a public
--     group or a group I created, or anyone as the group's creator/owner/admin; update (left_at only) and delete my
--     own row, or any row as creator/owner/admin. Role changes need the service role.
--
-- Idempotent: the policies migration before this one drops every policy of these tables, whatever its name.

create or replace function public.is_group_member(grp_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.group_members gm
                  where gm.group_id = grp_id and gm.user_id = public.current_user_internal_id() and gm.left_at is null)
$$;

create or replace function public.is_group_admin(grp_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.groups g
                  where g.id = grp_id and g.created_by = public.current_user_internal_id())
      or exists (select 1 from public.group_members gm
                  where gm.group_id = grp_id and gm.user_id = public.current_user_internal_id()
                    and gm.left_at is null and gm.role in ('owner', 'admin'))
$$;

create or replace function public.is_public_group(grp_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.groups g where g.id = grp_id and g.is_public)
$$;

-- users: updatable columns
revoke update on public.users from authenticated;
grant update (display_name, avatar_url, bio, website, status, last_seen, updated_at, last_active_at, is_online,
              default_message_retention_days, sms_notifications_enabled, salt, backup_pin_hash)
  on public.users to authenticated;

revoke update on public.group_members from authenticated;
grant update (left_at) on public.group_members to authenticated;

-- (Every earlier policy of these tables is gone: 20261201000300_policies.sql starts them from nothing.)

create policy users_update_own on public.users
  for update to authenticated
  using (id = (select public.current_user_internal_id()))
  with check (id = (select public.current_user_internal_id()));

create policy attachments_select_participant on public.attachments
  for select to authenticated
  using (public.can_read_message(message_id));

create policy groups_select_visible on public.groups
  for select to authenticated
  using (is_public or created_by = (select public.current_user_internal_id()) or public.is_group_member(id));
create policy groups_insert_own on public.groups
  for insert to authenticated
  with check (created_by = (select public.current_user_internal_id()));
create policy groups_update_admin on public.groups
  for update to authenticated
  using (public.is_group_admin(id))
  with check (public.is_group_admin(id));

create policy group_members_select_member on public.group_members
  for select to authenticated
  using (user_id = (select public.current_user_internal_id()) or public.is_group_member(group_id)
         or public.is_group_admin(group_id));
create policy group_members_insert_self_or_admin on public.group_members
  for insert to authenticated
  with check ((user_id = (select public.current_user_internal_id()) and public.is_public_group(group_id))
              or public.is_group_admin(group_id));
create policy group_members_update_own_or_admin on public.group_members
  for update to authenticated
  using (user_id = (select public.current_user_internal_id()) or public.is_group_admin(group_id))
  with check (user_id = (select public.current_user_internal_id()) or public.is_group_admin(group_id));
create policy group_members_delete_own_or_admin on public.group_members
  for delete to authenticated
  using (user_id = (select public.current_user_internal_id()) or public.is_group_admin(group_id));
