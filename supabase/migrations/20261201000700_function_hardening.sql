-- 20261201000700_function_hardening.sql — who may execute what, and definer functions bound to the caller.
--
-- Fixes schema.md §6.2 defect 6 (unchecked SECURITY DEFINER functions executable by anon) and the RPC defects of
-- §5.1:
--   * EXECUTE on every function in `public` is revoked from PUBLIC, anon and authenticated, granted to
--     service_role, and granted back to authenticated only for the functions called under user tokens (list below).
--     Default privileges are changed the same way, so a function added by a LATER migration is executable by
--     service_role only until that migration grants it explicitly.
--   * Every definer function a user may call is bound to the caller (public.request_is_privileged() lets the
--     service role and direct database sessions through unchanged); refusals raise SQLSTATE 42501, which
--     PostgREST answers with 403:
--       archive_conversation / unarchive_conversation  user_uuid must be auth.uid()
--       fn_mark_message_read                           p_user_id must be current_user_internal_id()
--       fn_create_message_recipients                   the caller must be the message's sender
--       fn_create_deliveries_for_message               the caller must be the message's sender; now idempotent
--                                                      (ON CONFLICT DO NOTHING) instead of failing on a re-call
--       update_user_activity                           user_uuid must be the caller's internal id
--       delete_encrypted_data_only                     target must map to auth.uid() ("Users can only delete
--                                                      their own data"; no JWT: "User must be authenticated");
--                                                      the three key tables are now deleted by AUTH uid
--                                                      (routes.md §4.6), they never matched before
--       upsert_user_public_key                         the guard also fires when auth.uid() is null (the anon
--                                                      role or a token without sub), except for privileged callers
--       get_user_conversations_enhanced, get_user_groups (invoker)  user_uuid must be the caller's internal id
--   * get_user_conversations_enhanced now omits conversations the caller LEFT (left_at not null), as
--     routes.md §7.1 requires; archived ones are still listed (the route reports is_archived).
--   * fn_get_user_active_deliveries           p_user_id must be current_user_internal_id()
--       get_user_conversations (invoker)         user_uuid must be the caller's internal id
--   * fn_cleanup_expired_messages, fn_messages_ready_for_gc,
--     get_inactive_participants, is_user_inactive, log_sms_notification and every trigger function: service_role
--     only (trigger functions need no EXECUTE grant to fire).
--
-- Granted to authenticated:
--   get_user_conversations_enhanced, archive_conversation, unarchive_conversation, fn_create_message_recipients,
--   fn_create_deliveries_for_message, fn_mark_message_read, update_user_activity, get_user_public_key,
--   upsert_user_public_key, find_user_by_unique_identifier, get_user_groups, delete_encrypted_data_only,
--   search_users, get_my_profile; and the helpers policies evaluate with the caller's rights:
--   current_user_internal_id, request_is_privileged, is_conversation_participant, is_active_participant,
--   is_conversation_admin, is_conversation_creator, is_message_sender, can_read_message, is_group_member,
--   is_group_admin, is_public_group, can_see_group_call; and, for the original server until the cutover,
--   create_call_session, establish_call_session, create_direct_conversation, fn_mark_read,
--   fn_get_user_active_deliveries, get_user_conversations.
--
-- Idempotent: CREATE OR REPLACE with unchanged signatures; REVOKE/GRANT are repeatable.

-- ---------------------------------------------------------------------------------------------------------------
-- Hardened bodies
-- ---------------------------------------------------------------------------------------------------------------

create or replace function public.get_user_conversations_enhanced(user_uuid uuid)
returns table (
  conversation_id uuid,
  conversation_name text,
  conversation_type text,
  last_message_encrypted_content bytea,
  last_message_sender_username text,
  last_message_at timestamptz,
  unread_count bigint
)
language plpgsql stable
security invoker
set search_path = public, extensions
as $$
begin
  if not public.request_is_privileged() and user_uuid is distinct from public.current_user_internal_id() then
    raise exception 'Access denied: can only list own conversations' using errcode = '42501';
  end if;
  return query
    select c.id, c.name, c.type, lm.encrypted_content, lm.username, lm.created_at,
           (select count(*)
              from public.deliveries d
              join public.messages dm on dm.id = d.message_id
             where dm.conversation_id = c.id and d.recipient_user_id = user_uuid
               and d.read_ts is null and d.deleted_ts is null)
      from public.conversations c
      join public.conversation_participants cp
        on cp.conversation_id = c.id and cp.user_id = user_uuid and cp.left_at is null
      left join lateral (
        select m.encrypted_content, u.username, m.created_at
          from public.messages m
          left join public.users u on u.id = m.sender_id
         where m.conversation_id = c.id
         order by m.created_at desc
         limit 1
      ) lm on true
     order by lm.created_at desc nulls last;
end
$$;

create or replace function public.archive_conversation(conversation_uuid uuid, user_uuid uuid) returns boolean
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  internal_id uuid;
  changed integer;
begin
  if not public.request_is_privileged() and (auth.uid() is null or user_uuid is distinct from auth.uid()) then
    raise exception 'Access denied: can only archive own conversations' using errcode = '42501';
  end if;
  select u.id into internal_id from public.users u where u.auth_user_id = user_uuid limit 1;
  if internal_id is null then
    return false;
  end if;
  update public.conversation_participants cp
     set archived_at = now()
   where cp.conversation_id = conversation_uuid and cp.user_id = internal_id
     and cp.left_at is null and cp.archived_at is null;
  get diagnostics changed = row_count;
  return changed > 0;
end
$$;

create or replace function public.unarchive_conversation(conversation_uuid uuid, user_uuid uuid) returns boolean
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  internal_id uuid;
  changed integer;
begin
  if not public.request_is_privileged() and (auth.uid() is null or user_uuid is distinct from auth.uid()) then
    raise exception 'Access denied: can only unarchive own conversations' using errcode = '42501';
  end if;
  select u.id into internal_id from public.users u where u.auth_user_id = user_uuid limit 1;
  if internal_id is null then
    return false;
  end if;
  update public.conversation_participants cp
     set archived_at = null
   where cp.conversation_id = conversation_uuid and cp.user_id = internal_id and cp.archived_at is not null;
  get diagnostics changed = row_count;
  return changed > 0;
end
$$;

create or replace function public.fn_create_message_recipients(p_message_id uuid, p_encrypted_contents jsonb)
returns void
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  entry record;
  conv_id uuid;
  sender uuid;
  secs integer;
  starts text;
begin
  select m.conversation_id, m.sender_id into conv_id, sender from public.messages m where m.id = p_message_id;
  if not public.request_is_privileged() and (sender is null or sender is distinct from public.current_user_internal_id()) then
    raise exception 'Access denied: only the sender can create recipient copies' using errcode = '42501';
  end if;
  for entry in select key, value from jsonb_each_text(p_encrypted_contents) loop
    secs := null;
    starts := null;
    select cp.disappear_seconds, cp.start_on into secs, starts
      from public.conversation_participants cp
     where cp.conversation_id = conv_id and cp.user_id = entry.key::uuid and cp.left_at is null;
    insert into public.message_recipients (message_id, recipient_user_id, encrypted_content, expires_at, start_on)
    values (p_message_id, entry.key::uuid, entry.value,
            case when secs > 0 and starts = 'delivered' then now() + make_interval(secs => secs) end,
            starts)
    on conflict (message_id, recipient_user_id) do update
      set encrypted_content = excluded.encrypted_content,
          expires_at = excluded.expires_at,
          start_on = excluded.start_on;
  end loop;
end
$$;

create or replace function public.fn_create_deliveries_for_message(p_message_id uuid) returns void
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  sender uuid;
begin
  select m.sender_id into sender from public.messages m where m.id = p_message_id;
  if not public.request_is_privileged() and (sender is null or sender is distinct from public.current_user_internal_id()) then
    raise exception 'Access denied: only the sender can create deliveries' using errcode = '42501';
  end if;
  insert into public.deliveries (message_id, recipient_user_id, delivered_ts, expires_at)
  select m.id, cp.user_id, now(),
         case when cp.disappear_seconds > 0 and cp.start_on = 'delivered'
              then now() + make_interval(secs => cp.disappear_seconds) end
    from public.messages m
    join public.conversation_participants cp
      on cp.conversation_id = m.conversation_id and cp.left_at is null and cp.user_id <> m.sender_id
   where m.id = p_message_id
  on conflict (message_id, recipient_user_id) do nothing;
end
$$;

create or replace function public.fn_mark_message_read(p_message_id uuid, p_user_id uuid) returns void
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  secs integer;
  starts text;
begin
  if not public.request_is_privileged() and p_user_id is distinct from public.current_user_internal_id() then
    raise exception 'Access denied: can only mark own messages read' using errcode = '42501';
  end if;
  select cp.disappear_seconds, cp.start_on into secs, starts
    from public.messages m
    join public.conversation_participants cp on cp.conversation_id = m.conversation_id and cp.user_id = p_user_id
   where m.id = p_message_id;
  update public.message_recipients mr
     set read_at = now(),
         expires_at = coalesce(mr.expires_at,
                               case when starts = 'read' and secs > 0 then now() + make_interval(secs => secs) end)
   where mr.message_id = p_message_id and mr.recipient_user_id = p_user_id;
  update public.deliveries d
     set read_ts = now()
   where d.message_id = p_message_id and d.recipient_user_id = p_user_id;
end
$$;

create or replace function public.update_user_activity(user_uuid uuid) returns void
language plpgsql
security definer
set search_path = public, extensions
as $$
begin
  if not public.request_is_privileged() and user_uuid is distinct from public.current_user_internal_id() then
    raise exception 'Access denied: can only update own activity' using errcode = '42501';
  end if;
  update public.users set last_active_at = now(), is_online = true where id = user_uuid;
end
$$;

create or replace function public.upsert_user_public_key(
  target_user_id uuid, public_key_param text, key_type_param varchar default 'ECDH-P256')
returns uuid
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  key_id uuid;
begin
  if not public.request_is_privileged() and (auth.uid() is null or auth.uid() is distinct from target_user_id) then
    raise exception 'Access denied: can only update own public key' using errcode = '42501';
  end if;
  insert into public.user_public_keys (user_id, public_key, key_type)
  values (target_user_id, public_key_param, key_type_param)
  on conflict (user_id, key_type) do update set public_key = excluded.public_key, updated_at = now()
  returning id into key_id;
  return key_id;
end
$$;

create or replace function public.get_user_groups(user_uuid uuid)
returns table (
  group_id uuid,
  group_name text,
  group_description text,
  group_avatar_url text,
  user_role text,
  room_count bigint,
  member_count bigint,
  latest_activity timestamptz
)
language plpgsql stable
security invoker
set search_path = public, extensions
as $$
begin
  if not public.request_is_privileged() and user_uuid is distinct from public.current_user_internal_id() then
    raise exception 'Access denied: can only list own groups' using errcode = '42501';
  end if;
  return query
    select g.id, g.name, g.description, g.avatar_url, gm.role,
           (select count(*) from public.conversations c where c.group_id = g.id),
           (select count(*) from public.group_members m where m.group_id = g.id and m.left_at is null),
           coalesce((select max(msg.created_at)
                       from public.messages msg
                       join public.conversations c on c.id = msg.conversation_id
                      where c.group_id = g.id), g.created_at) as latest
      from public.groups g
      join public.group_members gm on gm.group_id = g.id and gm.user_id = user_uuid and gm.left_at is null
     order by latest desc;
end
$$;

create or replace function public.delete_encrypted_data_only(authenticated_user_id uuid, target_user_id uuid)
returns json
language plpgsql
security definer
set search_path = public
as $$
declare
  n_recipients integer := 0;
  n_attachments integer := 0;
  n_files integer := 0;
  n_messages integer := 0;
  n_enc_backups integer := 0;
  n_public_keys integer := 0;
  n_key_log integer := 0;
  n_deliveries integer := 0;
  n_status integer := 0;
  n_participants integer := 0;
  n_conversations integer := 0;
  n_calls integer := 0;
  target_auth uuid;
begin
  if authenticated_user_id is null or target_user_id is null then
    raise exception 'User must be authenticated';
  end if;
  if authenticated_user_id <> target_user_id then
    raise exception 'Users can only delete their own data' using errcode = '42501';
  end if;
  if not public.request_is_privileged() then
    if auth.uid() is null then
      raise exception 'User must be authenticated' using errcode = '42501';
    end if;
    if target_user_id is distinct from public.current_user_internal_id() then
      raise exception 'Users can only delete their own data' using errcode = '42501';
    end if;
  end if;
  select u.auth_user_id into target_auth from public.users u where u.id = target_user_id;
  if not found then
    raise exception 'User not found';
  end if;

  begin
    delete from public.message_recipients where recipient_user_id = target_user_id;
    get diagnostics n_recipients = row_count;

    delete from public.attachments a
     using public.messages m
     where a.message_id = m.id and m.sender_id = target_user_id;
    get diagnostics n_attachments = row_count;

    delete from public.encrypted_files where created_by = target_auth;
    get diagnostics n_files = row_count;

    delete from public.messages where sender_id = target_user_id;
    get diagnostics n_messages = row_count;

    -- Keyed by AUTH uid (contract routes.md §4.6); production compared them with the internal id.
    delete from public.encrypted_key_backups where user_id = target_auth;
    get diagnostics n_enc_backups = row_count;

    delete from public.user_public_keys where user_id = target_auth;
    get diagnostics n_public_keys = row_count;

    delete from public.key_access_log where user_id = target_auth;
    get diagnostics n_key_log = row_count;

    delete from public.deliveries where recipient_user_id = target_user_id;
    get diagnostics n_deliveries = row_count;

    delete from public.message_status where user_id = target_user_id;
    get diagnostics n_status = row_count;

    delete from public.conversation_participants where user_id = target_user_id;
    get diagnostics n_participants = row_count;

    delete from public.conversations c
     where c.created_by = target_user_id
       and not exists (select 1 from public.conversation_participants cp where cp.conversation_id = c.id);
    get diagnostics n_conversations = row_count;

    delete from public.voice_calls where caller_id = target_user_id or recipient_id = target_user_id;
    get diagnostics n_calls = row_count;
  exception when others then
    raise exception 'Encrypted data delete failed: %', sqlerrm;
  end;

  return json_build_object(
    'success', true,
    'authenticated_user_id', authenticated_user_id,
    'target_user_id', target_user_id,
    'deleted_at', now(),
    'scope', 'encrypted_data_only',
    'preserved', 'User account and profile remain intact',
    'deleted_counts', json_build_object(
      'message_recipients', n_recipients,
      'messages', n_messages,
      'encrypted_files', n_files,
      'attachments', n_attachments,
      'encrypted_key_backups', n_enc_backups,
      'user_public_keys', n_public_keys,
      'key_access_log', n_key_log,
      'deliveries', n_deliveries,
      'message_status', n_status,
      'conversation_participants', n_participants,
      'conversations', n_conversations,
      'voice_calls', n_calls
    )
  );
end
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------------------------------------
revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;

grant execute on function
  public.get_user_conversations_enhanced(uuid),
  public.archive_conversation(uuid, uuid),
  public.unarchive_conversation(uuid, uuid),
  public.fn_create_message_recipients(uuid, jsonb),
  public.fn_create_deliveries_for_message(uuid),
  public.fn_mark_message_read(uuid, uuid),
  public.update_user_activity(uuid),
  public.get_user_public_key(uuid, varchar),
  public.upsert_user_public_key(uuid, text, varchar),
  public.find_user_by_unique_identifier(text),
  public.get_user_groups(uuid),
  public.delete_encrypted_data_only(uuid, uuid),
  public.search_users(text),
  public.get_my_profile(),
  public.current_user_internal_id(),
  public.request_is_privileged(),
  public.is_conversation_participant(uuid),
  public.is_active_participant(uuid),
  public.is_conversation_admin(uuid),
  public.is_conversation_creator(uuid),
  public.is_message_sender(uuid),
  public.can_read_message(uuid),
  public.is_group_member(uuid),
  public.is_group_admin(uuid),
  public.is_public_group(uuid),
  public.can_see_group_call(text),
  public.create_call_session(text, uuid, text, text),
  public.establish_call_session(text, text, text),
  public.create_direct_conversation(uuid, uuid),
  public.fn_mark_read(uuid),
  public.fn_get_user_active_deliveries(uuid),
  public.get_user_conversations(uuid)
to authenticated;

-- Functions created later by this role: executable by service_role only until granted explicitly.
alter default privileges revoke execute on functions from public;
alter default privileges in schema public revoke execute on functions from anon, authenticated;
alter default privileges in schema public grant execute on functions to service_role;
