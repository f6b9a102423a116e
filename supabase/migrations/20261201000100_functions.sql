-- 20261201000100_functions.sql — every function of `public`, as suparelay's own code.
--
-- Production's 71 functions are replaced as a whole: this file first drops every function of `public` (on a
-- production database those of the original migrations; on a re-run, ours), together with what depends on them —
-- triggers and policies, which the next migrations create again — and then creates the set below. That way an
-- upgraded database and a fresh one end up with the same functions, and none of production's code lives on
-- unexamined (several of its SECURITY DEFINER functions were executable by anyone holding the anon key).
--
-- What is here:
--   * the helpers that translate the caller between the two id spaces (current_user_internal_id,
--     request_is_privileged);
--   * the trigger functions, under production's names;
--   * every RPC the original app calls, with production's signature (name, argument names and types, defaults,
--     result), so that the original server keeps working on this database until the cutover; bodies written from
--     the behaviour they are meant to have. The function-hardening migration later binds the definer ones to the
--     caller and settles who may execute what.
-- Not recreated: production functions nothing calls — not the original app, not its edge function, not a trigger,
-- not suparelay (one-off repairs such as fix_canonical_auth_user_ids, the SMS bookkeeping helpers of an abandoned
-- OTP flow, the group-invite and call-history helpers, and the dangerous sync_user_with_auth,
-- cleanup_expired_messages and nuclear_delete_user_data). README lists them.

do $do$
declare
  f record;
begin
  for f in
    select p.oid::regprocedure as sig
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = 'public' and p.prokind = 'f'
       and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
  loop
    execute format('drop function %s cascade', f.sig);
  end loop;
end
$do$;

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


create or replace function public.update_updated_at_column() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- 'qryptchat' + 8 characters of [0-9A-Z].
create or replace function public.generate_unique_identifier() returns text
language plpgsql volatile
set search_path = ''
as $$
declare
  alphabet constant text := '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  result text := 'qryptchat';
begin
  for i in 1..8 loop
    result := result || substr(alphabet, 1 + floor(random() * 36)::int, 1);
  end loop;
  return result;
end
$$;

create or replace function public.auto_generate_unique_identifier() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  candidate text;
begin
  if new.unique_identifier is null then
    loop
      candidate := public.generate_unique_identifier();
      exit when not exists (select 1 from public.users u where u.unique_identifier = candidate);
    end loop;
    new.unique_identifier := candidate;
  end if;
  return new;
end
$$;

-- Every registered user gets a "Note to self" conversation with themselves as admin.
create or replace function public.auto_create_note_to_self_conversation() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  conv_id uuid;
begin
  if new.auth_user_id is null then
    return new;
  end if;
  insert into public.conversations (type, name, created_by)
  values ('note_to_self', 'Note to self', new.id)
  returning id into conv_id;
  insert into public.conversation_participants (conversation_id, user_id, role)
  values (conv_id, new.id, 'admin')
  on conflict (conversation_id, user_id) do nothing;
  return new;
end
$$;

-- The creator of a conversation becomes its admin participant. It runs as owner: under the caller's rights its
-- ON CONFLICT ... SET role would fail on the column grants of conversation_participants (the insert policy already
-- guarantees created_by is the caller, so this grants nothing new). Any error is swallowed so that the
-- conversation insert itself never fails because of it.
create or replace function public.auto_add_conversation_creator() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.created_by is not null then
    begin
      insert into public.conversation_participants (conversation_id, user_id, role)
      values (new.id, new.created_by, 'admin')
      on conflict (conversation_id, user_id) do update set role = 'admin', left_at = null;
    exception when others then
      null;
    end;
  end if;
  return new;
end
$$;

-- Once guarded note-to-self conversations against deletion; production reduced it to a no-op that lets every
-- delete through (conversation wipes and account deletion rely on that).
create or replace function public.allow_note_to_self_deletion_during_cleanup() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  return old;
end
$$;

create or replace function public.prevent_note_to_self_archival() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if old.archived_at is null and new.archived_at is not null
     and exists (select 1 from public.conversations c where c.id = new.conversation_id and c.type = 'note_to_self') then
    raise exception 'Cannot archive note-to-self conversations';
  end if;
  return new;
end
$$;

-- expires_at = now + N days: N from the conversation's disappearing setting when enabled, else the sender's
-- default retention (30 days by default); no expiry when N is 0 or unknown. Always overwrites the given value.
create or replace function public.set_message_expiration() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  conv_enabled boolean;
  conv_days integer;
  days integer;
begin
  select c.disappearing_messages_enabled, c.disappearing_messages_duration_days
    into conv_enabled, conv_days
    from public.conversations c where c.id = new.conversation_id;
  if coalesce(conv_enabled, false) then
    days := conv_days;
  else
    select u.default_message_retention_days into days from public.users u where u.id = new.sender_id;
  end if;
  if days is null or days <= 0 then
    new.expires_at := null;
  else
    new.expires_at := now() + make_interval(days => days);
  end if;
  return new;
end
$$;

-- Legacy receipts: one 'delivered' message_status row per active participant other than the sender.
create or replace function public.trigger_create_message_status() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.message_status (message_id, user_id, status)
  select new.id, cp.user_id, 'delivered'
    from public.conversation_participants cp
   where cp.conversation_id = new.conversation_id and cp.left_at is null and cp.user_id <> new.sender_id
  on conflict (message_id, user_id) do nothing;
  return new;
end
$$;

-- Keeps messages.has_attachments in step with encrypted_files.
create or replace function public.update_message_has_files() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    update public.messages set has_attachments = true where id = new.message_id;
    return new;
  end if;
  update public.messages m
     set has_attachments = exists (select 1 from public.encrypted_files f where f.message_id = old.message_id)
   where m.id = old.message_id;
  return old;
end
$$;










-- target_user_id is an AUTH uid (user_public_keys is keyed by auth uid).
create or replace function public.get_user_public_key(target_user_id uuid, key_type_param varchar default 'ECDH-P256')
returns text
language sql stable
security definer
set search_path = public, extensions
as $$
  select k.public_key from public.user_public_keys k
   where k.user_id = target_user_id and k.key_type = key_type_param
   limit 1
$$;


-- Exact, case-sensitive match on users.unique_identifier; public profile columns only.
create or replace function public.find_user_by_unique_identifier(identifier text)
returns table (id uuid, username text, display_name text, avatar_url text, bio text, website text)
language sql stable
security definer
set search_path = public, extensions
as $$
  select u.id, u.username, u.display_name, u.avatar_url, u.bio, u.website
    from public.users u
   where u.unique_identifier = identifier
$$;



-- Deletes expired per-recipient copies (one recipient or all), then marks deliveries whose copy is gone as deleted.
-- Returns the number of copies deleted. The server's background job calls it every 60 s with the service role.
create or replace function public.fn_cleanup_expired_messages(p_user_id uuid default null) returns integer
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  removed integer;
begin
  delete from public.message_recipients mr
   where mr.expires_at is not null and mr.expires_at <= now()
     and (p_user_id is null or mr.recipient_user_id = p_user_id);
  get diagnostics removed = row_count;

  update public.deliveries d
     set deleted_ts = now(), deletion_reason = coalesce(d.deletion_reason, 'expired')
   where d.deleted_ts is null
     and (p_user_id is null or d.recipient_user_id = p_user_id)
     and not exists (select 1 from public.message_recipients mr
                      where mr.message_id = d.message_id and mr.recipient_user_id = d.recipient_user_id);
  return removed;
end
$$;



create or replace function public.is_user_inactive(user_uuid uuid) returns boolean
language sql stable
security definer
set search_path = public, extensions
as $$
  select coalesce((
    select u.sms_notifications_enabled is not false
           and (u.is_online is not true or u.last_active_at is null or u.last_active_at < now() - interval '5 minutes')
      from public.users u where u.id = user_uuid), false)
$$;

create or replace function public.get_inactive_participants(conversation_uuid uuid)
returns table (user_id uuid, phone_number text, display_name text, username text)
language sql stable
security definer
set search_path = public, extensions
as $$
  select u.id, u.phone_number, u.display_name, u.username
    from public.conversation_participants cp
    join public.users u on u.id = cp.user_id
   where cp.conversation_id = conversation_uuid and cp.left_at is null
     and u.phone_number is not null and u.phone_number <> ''
     and public.is_user_inactive(u.id)
$$;

create or replace function public.log_sms_notification(
  user_uuid uuid, conversation_uuid uuid, message_uuid uuid, phone text, content text,
  notification_status text default 'pending', error_msg text default null)
returns uuid
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  new_id uuid;
begin
  insert into public.sms_notifications (user_id, conversation_id, message_id, phone_number, message_content, status, error_message)
  values (user_uuid, conversation_uuid, message_uuid, phone, content, notification_status, error_msg)
  returning id into new_id;
  return new_id;
end
$$;

-- Messages without any live (undeleted) delivery.
create or replace function public.fn_messages_ready_for_gc() returns setof uuid
language sql stable
security definer
set search_path = public, extensions
as $$
  select m.id from public.messages m
   where not exists (select 1 from public.deliveries d where d.message_id = m.id and d.deleted_ts is null)
$$;


-- The RPCs suparelay and the original app call under user tokens, each bound to its caller (a refusal raises
-- SQLSTATE 42501, which PostgREST answers with 403); request_is_privileged() lets the service role and direct
-- database sessions through.

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


-- The original app's remaining RPCs, with production's signatures, so that the original server keeps working on
-- this database until the cutover. Written from what they are meant to do; where production's version could
-- never succeed (get_user_conversations), the intended behaviour.

-- A 1:1 call's key exchange, opened by the caller: the session row with the caller's KEM public key.
create or replace function public.create_call_session(
  p_call_id text, p_recipient_id uuid, p_ml_kem_parameter_set text default 'ML_KEM_1024',
  p_initiator_public_key text default null)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  me uuid := public.current_user_internal_id();
  session_id text;
begin
  if me is null then
    raise exception 'User not found';
  end if;
  session_id := 'cs-' || extract(epoch from now())::text || '-' || substr(md5(random()::text), 1, 8);
  insert into public.call_sessions (id, call_id, ml_kem_parameter_set, initiator_id, recipient_id,
                                    initiator_public_key, status)
  values (session_id, p_call_id, p_ml_kem_parameter_set, me, p_recipient_id, p_initiator_public_key, 'pending');
  return session_id;
end
$$;

-- The callee completes the exchange: its public key and the ciphertext; only the session's recipient may.
create or replace function public.establish_call_session(
  p_session_id text, p_recipient_public_key text, p_ciphertext text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  me uuid := public.current_user_internal_id();
begin
  if me is null then
    raise exception 'User not found';
  end if;
  update public.call_sessions s
     set recipient_public_key = p_recipient_public_key, ciphertext = p_ciphertext,
         status = 'established', established_at = now()
   where s.id = p_session_id and s.recipient_id = me;
  if not found then
    raise exception 'Call session not found or access denied';
  end if;
  return true;
end
$$;

-- The direct conversation of two users (internal ids): the existing one where both are still in, else a new one
-- created by user1 with both as participants. Runs with the caller's rights (RLS applies).
create or replace function public.create_direct_conversation(user1_id uuid, user2_id uuid) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  found_id uuid;
begin
  select c.id into found_id
    from public.conversations c
    join public.conversation_participants a on a.conversation_id = c.id and a.user_id = user1_id and a.left_at is null
    join public.conversation_participants b on b.conversation_id = c.id and b.user_id = user2_id and b.left_at is null
   where c.type = 'direct'
   limit 1;
  if found_id is not null then
    return found_id;
  end if;
  insert into public.conversations (type, created_by) values ('direct', user1_id) returning id into found_id;
  insert into public.conversation_participants (conversation_id, user_id)
  values (found_id, user1_id), (found_id, user2_id)
  on conflict (conversation_id, user_id) do nothing;
  return found_id;
end
$$;

-- The caller's live deliveries (p_user_id: internal id, which must be the caller's unless the request is
-- privileged).
create or replace function public.fn_get_user_active_deliveries(p_user_id uuid)
returns table (message_id uuid, delivered_ts timestamptz, read_ts timestamptz, expires_at timestamptz)
language plpgsql stable
security definer
set search_path = ''
as $$
begin
  if not public.request_is_privileged() and p_user_id is distinct from public.current_user_internal_id() then
    raise exception 'Access denied: can only list own deliveries' using errcode = '42501';
  end if;
  return query
    select d.message_id, d.delivered_ts, d.read_ts, d.expires_at
      from public.deliveries d
     where d.recipient_user_id = p_user_id and d.deleted_ts is null;
end
$$;

-- Marks one message read for the caller; a read-based disappearing timer starts now (an existing expiry is kept
-- otherwise). Production compared the delivery's internal id with auth.uid() and so never matched.
create or replace function public.fn_mark_read(p_message_id uuid) returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  me uuid := public.current_user_internal_id();
  secs integer;
  starts text;
begin
  if me is null then
    return;
  end if;
  select cp.disappear_seconds, cp.start_on into secs, starts
    from public.messages m
    join public.conversation_participants cp on cp.conversation_id = m.conversation_id and cp.user_id = me
   where m.id = p_message_id and cp.left_at is null;
  update public.deliveries d
     set read_ts = now(),
         expires_at = case when starts = 'read' and secs > 0 then now() + make_interval(secs => secs) else d.expires_at end
   where d.message_id = p_message_id and d.recipient_user_id = me;
end
$$;

-- The conversations of user_uuid (internal id) that it has not left, with group, participant count, the latest
-- message and the unread deliveries — the 13 columns production declares (its body called a function of another
-- shape and always failed).
create or replace function public.get_user_conversations(user_uuid uuid)
returns table (conversation_id uuid, conversation_type text, conversation_name text, conversation_avatar_url text,
               group_id uuid, group_name text, participant_count bigint, latest_message_id uuid,
               latest_message_content bytea, latest_message_sender_id uuid, latest_message_sender_username text,
               latest_message_created_at timestamptz, unread_count bigint)
language plpgsql stable
set search_path = ''
as $$
begin
  if not public.request_is_privileged() and user_uuid is distinct from public.current_user_internal_id() then
    raise exception 'Access denied: can only list own conversations' using errcode = '42501';
  end if;
  return query
    select c.id, c.type, c.name, c.avatar_url, c.group_id, g.name,
           (select count(*) from public.conversation_participants p where p.conversation_id = c.id and p.left_at is null),
           lm.id, lm.encrypted_content, lm.sender_id, lu.username, lm.created_at,
           (select count(*) from public.deliveries d join public.messages m on m.id = d.message_id
             where m.conversation_id = c.id and d.recipient_user_id = user_uuid and d.read_ts is null
               and d.deleted_ts is null)
      from public.conversation_participants me
      join public.conversations c on c.id = me.conversation_id
      left join public.groups g on g.id = c.group_id
      left join lateral (select m.id, m.encrypted_content, m.sender_id, m.created_at
                           from public.messages m where m.conversation_id = c.id
                          order by m.created_at desc limit 1) lm on true
      left join public.users lu on lu.id = lm.sender_id
     where me.user_id = user_uuid and me.left_at is null
     order by lm.created_at desc nulls last, c.created_at desc;
end
$$;
