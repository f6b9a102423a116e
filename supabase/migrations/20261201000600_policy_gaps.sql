-- 20261201000600_policy_gaps.sql — tables with RLS and no policies; recursive group-call policies; anon inserts.
--
-- Fixes (schema.md §6.2):
--   3. message_status, typing_indicators and user_presence had RLS enabled and no policy, so only definer code or
--      the service role could use them. Now:
--        message_status    — read/update/delete my own receipts (user_id = my internal id); rows are still created
--                            only by the messages trigger (no insert policy).
--        typing_indicators — read the rows of conversations I actively participate in; insert/update/delete my own
--                            row, insert only while an active participant.
--        user_presence     — my own row only, all commands.
--   7. group_call_sessions <-> group_call_participants read policies queried each other ("infinite recursion
--      detected in policy"). Replaced by policies that consult SECURITY DEFINER helpers instead of each other:
--        sessions     — read as creator or call participant; create and update as the creator.
--        participants — read my rows and the rows of calls I can see; join (insert) myself into a call I can see;
--                       update/delete my own row.
--   5. key_access_log and sms_notifications accepted inserts from callers without a user (`auth.uid() is null`,
--      i.e. anyone with the anon key). Those insert policies are dropped; the service role (which bypasses RLS)
--      remains the only writer, as every server path already is.
--
-- Idempotent: the policies migration before this one drops every policy of these tables, whatever its name.

-- A group call (production: text ids, a creator, invited participants) is visible to its creator and to its
-- participants. A SECURITY DEFINER helper, so that neither table's policy queries the other's.
create or replace function public.can_see_group_call(session text) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1 from public.group_call_sessions s
     where s.id = session
       and (s.creator_id = public.current_user_internal_id()
            or exists (select 1 from public.group_call_participants p
                        where p.group_call_session_id = s.id and p.user_id = public.current_user_internal_id())))
$$;

-- (Every earlier policy of these tables is gone: 20261201000300_policies.sql starts them from nothing.)

-- message_status
create policy message_status_select_own on public.message_status
  for select to authenticated using (user_id = (select public.current_user_internal_id()));
create policy message_status_update_own on public.message_status
  for update to authenticated
  using (user_id = (select public.current_user_internal_id()))
  with check (user_id = (select public.current_user_internal_id()));
create policy message_status_delete_own on public.message_status
  for delete to authenticated using (user_id = (select public.current_user_internal_id()));

-- typing_indicators
create policy typing_select_participant on public.typing_indicators
  for select to authenticated
  using (user_id = (select public.current_user_internal_id()) or public.is_active_participant(conversation_id));
create policy typing_insert_own on public.typing_indicators
  for insert to authenticated
  with check (user_id = (select public.current_user_internal_id()) and public.is_active_participant(conversation_id));
create policy typing_update_own on public.typing_indicators
  for update to authenticated
  using (user_id = (select public.current_user_internal_id()))
  with check (user_id = (select public.current_user_internal_id()));
create policy typing_delete_own on public.typing_indicators
  for delete to authenticated using (user_id = (select public.current_user_internal_id()));

-- user_presence
create policy presence_select_own on public.user_presence
  for select to authenticated using (user_id = (select public.current_user_internal_id()));
create policy presence_insert_own on public.user_presence
  for insert to authenticated with check (user_id = (select public.current_user_internal_id()));
create policy presence_update_own on public.user_presence
  for update to authenticated
  using (user_id = (select public.current_user_internal_id()))
  with check (user_id = (select public.current_user_internal_id()));
create policy presence_delete_own on public.user_presence
  for delete to authenticated using (user_id = (select public.current_user_internal_id()));

-- group calls, without mutual recursion
create policy group_call_sessions_select_visible on public.group_call_sessions
  for select to authenticated using (public.can_see_group_call(id));
create policy group_call_sessions_insert_creator on public.group_call_sessions
  for insert to authenticated with check (creator_id = (select public.current_user_internal_id()));
create policy group_call_sessions_update_creator on public.group_call_sessions
  for update to authenticated
  using (creator_id = (select public.current_user_internal_id()))
  with check (creator_id = (select public.current_user_internal_id()));

create policy group_call_participants_select_visible on public.group_call_participants
  for select to authenticated
  using (user_id = (select public.current_user_internal_id()) or public.can_see_group_call(group_call_session_id));
create policy group_call_participants_insert_self on public.group_call_participants
  for insert to authenticated
  with check (user_id = (select public.current_user_internal_id()) and public.can_see_group_call(group_call_session_id));
create policy group_call_participants_update_own on public.group_call_participants
  for update to authenticated
  using (user_id = (select public.current_user_internal_id()))
  with check (user_id = (select public.current_user_internal_id()));
create policy group_call_participants_delete_own on public.group_call_participants
  for delete to authenticated using (user_id = (select public.current_user_internal_id()));
