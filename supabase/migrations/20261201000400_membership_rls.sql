-- 20261201000400_membership_rls.sql — membership-based RLS for the chat tables; no anonymous access; users rows
-- readable by signed-in users without their secrets.
--
-- Fixes (schema.md §6.2):
--   1. Loose reads: the `true` read policies on users, conversations, conversation_participants and messages let
--      anyone holding the public anon key read every profile (phone_number, salt, backup_pin_hash included), the whole
--      social graph and all message metadata. All policies of these tables are replaced.
--   2. Id-space mistakes on conversations (second insert/update pair) and deliveries (recipient compared with
--      auth.uid()): everything now compares internal ids through public.current_user_internal_id().
--   4. Missing update/delete policies on conversations, conversation_participants, messages, message_recipients and
--      deliveries (leaving a group and undoing a failed send silently did nothing).
--   5. Over-broad participant inserts (any signed-in user could add anyone to any conversation).
--
-- Decisions (the API engineer relies on them):
--   * anon: no privileges on any table of `public` at all (PostgREST answers 401 for anon table requests).
--   * conversations: read if I have a participant row (any left_at) or created it; insert only with
--     created_by = my internal id; update/delete by the creator or an active admin participant.
--   * conversation_participants: read the rows of conversations I participate in (any left_at) or created; insert
--     only by the conversation's creator (self included) or an active admin; update ONLY my own row and only the
--     columns archived_at, disappear_seconds, start_on, left_at (column grants: no self-promotion to admin, no
--     moving a row to another conversation); delete my own row, or any row as creator / active admin.
--     Re-activating someone else's left row or changing a conversation's type as a plain member needs the service
--     role.
--   * messages: read by participants (any left_at); insert only as sender = me AND active participant; update and
--     delete only my own messages.
--   * message_recipients: read if I am the recipient or sent the message; insert if I sent the message; update my
--     own copy (read_at); delete if I sent the message or I am the recipient.
--   * deliveries: read/update/delete my own (recipient = my internal id); no inserts (fn_create_deliveries_for_message).
--   * users: any signed-in user reads every row; after the CUTOVER migration only the non-secret columns (column
--     grants; before it the original server, which reads users with `select *`, still runs):
--     phone_number, salt and backup_pin_hash are NOT selectable by anon or authenticated — not even one's own, because
--     column privileges cannot depend on the row. Consequences: `select=*` on users fails under a user token (select
--     explicit columns); filters on phone_number fail too. The two user-token paths that need them use SECURITY
--     DEFINER functions bound to auth.uid():
--       public.search_users(q text)  — users/search: safe columns + masked phone (***-***-1234) + the phone part of
--                                       the route's score, caller excluded by internal id, 50 rows max;
--       public.get_my_profile()      — the caller's own row with phone_number and salt, without backup_pin_hash
--                                       (has_backup_pin instead).
--     Otherwise the server uses the service role for those columns (verify-sms, nuclear-delete's user_info).
--   * The creator trigger on conversations (auto_add_conversation_creator) becomes SECURITY DEFINER: under the caller's
--     rights its ON CONFLICT ... SET role would now always fail on the column grants (and was swallowed). The insert
--     policy already guarantees created_by is the caller, so running it as owner grants nothing new.
--   * storage.objects: the encrypted-files read policy is re-created for `authenticated` only (anon evaluating it
--     would now fail on public.encrypted_files) with the same meaning: own folder, or a file row of a conversation
--     I have a participant row in.
--
-- Idempotent: every policy of these tables was dropped by the policies migration before this one; grants are
-- re-applied; functions are CREATE OR REPLACE.

-- ---------------------------------------------------------------------------------------------------------------
-- Membership helpers: SECURITY DEFINER so that policies on one table can consult another without recursion.
-- Each answers a question about the CALLER only.
-- ---------------------------------------------------------------------------------------------------------------
create or replace function public.is_conversation_participant(conv_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.conversation_participants cp
                  where cp.conversation_id = conv_id and cp.user_id = public.current_user_internal_id())
$$;

create or replace function public.is_active_participant(conv_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.conversation_participants cp
                  where cp.conversation_id = conv_id and cp.user_id = public.current_user_internal_id()
                    and cp.left_at is null)
$$;

create or replace function public.is_conversation_admin(conv_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.conversation_participants cp
                  where cp.conversation_id = conv_id and cp.user_id = public.current_user_internal_id()
                    and cp.left_at is null and cp.role = 'admin')
$$;

create or replace function public.is_conversation_creator(conv_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.conversations c
                  where c.id = conv_id and c.created_by = public.current_user_internal_id())
$$;

create or replace function public.is_message_sender(msg_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.messages m
                  where m.id = msg_id and m.sender_id = public.current_user_internal_id())
$$;

-- Participant (any left_at) of the conversation the message belongs to.
create or replace function public.can_read_message(msg_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.messages m
                   join public.conversation_participants cp on cp.conversation_id = m.conversation_id
                  where m.id = msg_id and cp.user_id = public.current_user_internal_id())
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- Users: safe search and own-profile access.
-- ---------------------------------------------------------------------------------------------------------------

-- Case-insensitive substring search over username, display_name, phone_number and unique_identifier. `q` is used
-- as given apart from trim + lower (no LIKE: `%` and `_` are literal). The caller (by internal id) is excluded.
-- phone_partial is '***-***-' + the last 4 digits; phone_score is the phone part of users/search's scoring
-- (equal 80 + prefix 50 + contains 20, each rule that matches adds), so the route never needs the number itself.
create or replace function public.search_users(q text)
returns table (
  id uuid,
  username text,
  display_name text,
  avatar_url text,
  unique_identifier text,
  phone_partial text,
  phone_score integer
)
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  needle text := lower(btrim(coalesce(q, '')));
  me uuid := public.current_user_internal_id();
begin
  if needle = '' or (auth.uid() is null and not public.request_is_privileged()) then
    return;
  end if;
  return query
    select u.id, u.username, u.display_name, u.avatar_url, u.unique_identifier,
           case when length(regexp_replace(u.phone_number, '\D', '', 'g')) >= 4
                then '***-***-' || right(regexp_replace(u.phone_number, '\D', '', 'g'), 4) end,
           (case when lower(u.phone_number) = needle then 80 else 0 end
            + case when starts_with(lower(u.phone_number), needle) then 50 else 0 end
            + case when strpos(lower(u.phone_number), needle) > 0 then 20 else 0 end)::integer
      from public.users u
     where (me is null or u.id <> me)
       and (strpos(lower(u.username), needle) > 0
            or strpos(lower(u.display_name), needle) > 0
            or strpos(lower(coalesce(u.phone_number, '')), needle) > 0
            or strpos(lower(coalesce(u.unique_identifier, '')), needle) > 0)
     order by u.username
     limit 50;
end
$$;

-- The caller's own users row, including phone_number and salt, without backup_pin_hash.
create or replace function public.get_my_profile()
returns table (
  id uuid,
  phone_number text,
  username text,
  display_name text,
  avatar_url text,
  bio text,
  status text,
  last_seen timestamptz,
  created_at timestamptz,
  updated_at timestamptz,
  auth_user_id uuid,
  website text,
  default_message_retention_days integer,
  last_active_at timestamptz,
  is_online boolean,
  sms_notifications_enabled boolean,
  unique_identifier text,
  salt text,
  has_backup_pin boolean
)
language sql stable
security definer
set search_path = ''
as $$
  select u.id, u.phone_number, u.username, u.display_name, u.avatar_url, u.bio, u.status, u.last_seen,
         u.created_at, u.updated_at, u.auth_user_id, u.website, u.default_message_retention_days,
         u.last_active_at, u.is_online, u.sms_notifications_enabled, u.unique_identifier, u.salt,
         coalesce(u.backup_pin_hash, '') <> ''
    from public.users u
   where u.id = public.current_user_internal_id()
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- Table privileges.
-- ---------------------------------------------------------------------------------------------------------------
-- anon: nothing in public. TRUNCATE/REFERENCES/TRIGGER bypass or sidestep RLS: nobody on the API needs them.
revoke all on all tables in schema public from anon;
revoke truncate, references, trigger on all tables in schema public from authenticated;

-- users: column-level read for signed-in users, without the secrets.
-- users: which columns signed-in users may read is settled by the cutover migration
-- (20261201090000_cutover_users_private_columns.sql): until then the original server's `select *` reads go on working.

-- conversation_participants: a member may change only their own settings columns.
revoke update on public.conversation_participants from authenticated;
grant update (archived_at, disappear_seconds, start_on, left_at) on public.conversation_participants to authenticated;

-- message_recipients: a recipient may only mark their copy read.
revoke update on public.message_recipients from authenticated;
grant update (read_at) on public.message_recipients to authenticated;

-- ---------------------------------------------------------------------------------------------------------------
-- Policies: drop every existing policy of the tables (and commands) this migration owns, then create ours.
-- ---------------------------------------------------------------------------------------------------------------
-- (Every earlier policy of these tables is gone: 20261201000300_policies.sql starts them from nothing.)

-- users
create policy users_select_authenticated on public.users
  for select to authenticated using (true);

-- conversations
create policy conversations_select_member on public.conversations
  for select to authenticated
  using (created_by = (select public.current_user_internal_id()) or public.is_conversation_participant(id));
create policy conversations_insert_own on public.conversations
  for insert to authenticated
  with check (created_by = (select public.current_user_internal_id()));
create policy conversations_update_creator_or_admin on public.conversations
  for update to authenticated
  using (created_by = (select public.current_user_internal_id()) or public.is_conversation_admin(id))
  with check (created_by = (select public.current_user_internal_id()) or public.is_conversation_admin(id));
create policy conversations_delete_creator_or_admin on public.conversations
  for delete to authenticated
  using (created_by = (select public.current_user_internal_id()) or public.is_conversation_admin(id));

-- conversation_participants
create policy participants_select_member on public.conversation_participants
  for select to authenticated
  using (user_id = (select public.current_user_internal_id())
         or public.is_conversation_participant(conversation_id)
         or public.is_conversation_creator(conversation_id));
create policy participants_insert_creator_or_admin on public.conversation_participants
  for insert to authenticated
  with check (public.is_conversation_creator(conversation_id) or public.is_conversation_admin(conversation_id));
create policy participants_update_own on public.conversation_participants
  for update to authenticated
  using (user_id = (select public.current_user_internal_id()))
  with check (user_id = (select public.current_user_internal_id()));
create policy participants_delete_own_or_admin on public.conversation_participants
  for delete to authenticated
  using (user_id = (select public.current_user_internal_id())
         or public.is_conversation_admin(conversation_id)
         or public.is_conversation_creator(conversation_id));

-- messages
create policy messages_select_participant on public.messages
  for select to authenticated
  using (public.is_conversation_participant(conversation_id));
create policy messages_insert_active_sender on public.messages
  for insert to authenticated
  with check (sender_id = (select public.current_user_internal_id()) and public.is_active_participant(conversation_id));
create policy messages_update_own on public.messages
  for update to authenticated
  using (sender_id = (select public.current_user_internal_id()))
  with check (sender_id = (select public.current_user_internal_id()) and public.is_conversation_participant(conversation_id));
create policy messages_delete_own on public.messages
  for delete to authenticated
  using (sender_id = (select public.current_user_internal_id()));

-- message_recipients
create policy recipients_select_recipient_or_sender on public.message_recipients
  for select to authenticated
  using (recipient_user_id = (select public.current_user_internal_id()) or public.is_message_sender(message_id));
create policy recipients_insert_sender on public.message_recipients
  for insert to authenticated
  with check (public.is_message_sender(message_id));
create policy recipients_update_recipient on public.message_recipients
  for update to authenticated
  using (recipient_user_id = (select public.current_user_internal_id()))
  with check (recipient_user_id = (select public.current_user_internal_id()));
create policy recipients_delete_recipient_or_sender on public.message_recipients
  for delete to authenticated
  using (recipient_user_id = (select public.current_user_internal_id()) or public.is_message_sender(message_id));

-- deliveries
create policy deliveries_select_own on public.deliveries
  for select to authenticated
  using (recipient_user_id = (select public.current_user_internal_id()));
create policy deliveries_update_own on public.deliveries
  for update to authenticated
  using (recipient_user_id = (select public.current_user_internal_id()))
  with check (recipient_user_id = (select public.current_user_internal_id()));
create policy deliveries_delete_own on public.deliveries
  for delete to authenticated
  using (recipient_user_id = (select public.current_user_internal_id()));

-- storage.objects: encrypted-files reads, for signed-in users only
create policy encrypted_files_objects_select_participant on storage.objects
  for select to authenticated
  using (bucket_id = 'encrypted-files'
         and ((storage.foldername(name))[1] = auth.uid()::text
              or exists (select 1 from public.encrypted_files ef
                          where ef.storage_path = objects.name and public.can_read_message(ef.message_id))));
