-- suparelay: functions the Go API calls so that multi-step route operations are atomic and bound to the caller.
--
-- PostgREST runs each RPC in one transaction, so an operation that the original did in several requests (insert a
-- message, then its per-recipient copies, then its deliveries; wipe a direct conversation table by table) either
-- happens whole or not at all. Every function here identifies the caller ONLY through auth.uid() (via
-- public.current_user_internal_id()), never through an argument, and refuses anyone who is not an active
-- participant. Errors use PostgREST's PTxxx SQLSTATEs so the HTTP status says what went wrong (PT403 → 403,
-- PT404 → 404, PT400 → 400, PT409 → 409); the message is a fixed slug the Go side maps to the contract's texts.
--
-- Idempotent: CREATE OR REPLACE only. Depends on public.current_user_internal_id() (fix migrations).

-- api_send_message: messages/send and chat/messages POST (routes.md §6.2, §7.5), in ONE round trip. SECURITY
-- INVOKER: the message insert runs under the caller's row-level security (sender must be the caller and an active
-- participant); the recipient copies and deliveries go through the definer functions, which check that the caller
-- sent the message. p_encrypted_contents maps recipient internal ids to base64 text; keys that are not active
-- participants are dropped (none left: PT400 no_recipients). Returns {"message": <the inserted row with its sender,
-- in column order, as the original's insert … select=*,sender:… answered>, "participants": [<active ids>]} — the
-- participant list is the audience of the NEW_MESSAGE event, so the server needs no second query.
drop function if exists public.api_send_message(uuid, jsonb, text, jsonb, uuid, text, boolean);
create or replace function public.api_send_message(
  p_conversation_id uuid,
  p_encrypted_contents jsonb,
  p_message_type text default 'text',
  p_metadata jsonb default '{}'::jsonb,
  p_reply_to_id uuid default null,
  p_content_type text default 'text',
  p_has_attachments boolean default false
) returns json
language plpgsql
security invoker
set search_path = public, extensions
as $$
declare
  v_me uuid := public.current_user_internal_id();
  v_members uuid[];
  v_copies jsonb;
  v_msg public.messages;
begin
  if v_me is null then
    raise sqlstate 'PT401' using message = 'no_profile';
  end if;
  select array_agg(user_id) into v_members from public.conversation_participants
   where conversation_id = p_conversation_id and left_at is null;
  if v_members is null or not (v_me = any(v_members)) then
    raise sqlstate 'PT403' using message = 'not_participant';
  end if;
  select jsonb_object_agg(key, value) into v_copies
    from jsonb_each(coalesce(p_encrypted_contents, '{}'::jsonb))
   where key::uuid = any(v_members);
  if v_copies is null then
    raise sqlstate 'PT400' using message = 'no_recipients';
  end if;
  if p_reply_to_id is not null and not exists (
       select 1 from public.messages where id = p_reply_to_id and conversation_id = p_conversation_id) then
    raise sqlstate 'PT400' using message = 'reply_not_in_conversation';
  end if;
  insert into public.messages (conversation_id, sender_id, message_type, encrypted_content, metadata, reply_to_id,
                               content_type, has_attachments)
  values (p_conversation_id, v_me, coalesce(p_message_type, 'text'), ''::bytea, coalesce(p_metadata, '{}'::jsonb),
          p_reply_to_id, coalesce(p_content_type, 'text'), coalesce(p_has_attachments, false))
  returning * into v_msg;
  perform public.fn_create_message_recipients(v_msg.id, v_copies);
  perform public.fn_create_deliveries_for_message(v_msg.id);
  -- json (not jsonb) keeps the table's column order.
  return json_build_object(
    'message', (select row_to_json(t) from (
      select v_msg.*, (select row_to_json(s) from (
                select u.id, u.username, u.display_name, u.avatar_url from public.users u where u.id = v_msg.sender_id) s
             ) as sender) t),
    'participants', to_json(v_members));
end;
$$;

-- api_mark_conversation_read: chat/conversations/[id]/mark-read (routes.md §7.2). Marks the caller's unread,
-- undeleted deliveries of the conversation read, sets read_at on the caller's copies and starts read-based expiry
-- as fn_mark_message_read does. SECURITY DEFINER because it touches only the caller's own rows, identified by
-- auth.uid(); returns the id of the newest message whose delivery it marked read (null when nothing changed), for
-- the read receipt.
create or replace function public.api_mark_conversation_read(p_conversation_id uuid)
returns uuid
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  v_me uuid := public.current_user_internal_id();
  v_part public.conversation_participants;
  v_newest uuid;
begin
  if v_me is null then
    raise sqlstate 'PT401' using message = 'no_profile';
  end if;
  select * into v_part from public.conversation_participants
   where conversation_id = p_conversation_id and user_id = v_me and left_at is null;
  if not found then
    raise sqlstate 'PT403' using message = 'not_participant';
  end if;
  with marked as (
    update public.deliveries d set read_ts = now()
      from public.messages m
     where d.message_id = m.id and m.conversation_id = p_conversation_id
       and d.recipient_user_id = v_me and d.read_ts is null and d.deleted_ts is null
    returning m.id, m.created_at)
  select id into v_newest from marked order by created_at desc limit 1;
  update public.message_recipients r
     set read_at = now(),
         expires_at = case
           when r.expires_at is null and v_part.start_on = 'read' and v_part.disappear_seconds > 0
             then now() + make_interval(secs => v_part.disappear_seconds)
           else r.expires_at end
    from public.messages m
   where r.message_id = m.id and m.conversation_id = p_conversation_id
     and r.recipient_user_id = v_me and r.read_at is null;
  return v_newest;
end;
$$;

-- api_delete_conversation: conversations/delete (routes.md §6.8). A direct chat is wiped for both people; from a
-- group or room the caller leaves, taking their own messages (and file rows) along, and the last one to leave
-- removes the conversation. Note-to-self is refused.
-- SECURITY DEFINER because the wipe removes the other participant's rows too, which no user policy allows; it is
-- bound to the caller (auth.uid()) being an active participant. Returns the scope and the Storage paths of the
-- removed file rows so that the server can delete the objects.
create or replace function public.api_delete_conversation(p_conversation_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  v_me uuid := public.current_user_internal_id();
  v_type text;
  v_paths jsonb;
begin
  if v_me is null then
    raise sqlstate 'PT401' using message = 'no_profile';
  end if;
  if not exists (select 1 from public.conversation_participants
                 where conversation_id = p_conversation_id and user_id = v_me and left_at is null) then
    raise sqlstate 'PT404' using message = 'not_participant';
  end if;
  select type into v_type from public.conversations where id = p_conversation_id;
  if v_type = 'note_to_self' then
    raise sqlstate 'PT403' using message = 'note_to_self';
  end if;
  if v_type = 'direct' then
    select coalesce(jsonb_agg(f.storage_path), '[]'::jsonb) into v_paths
      from public.encrypted_files f join public.messages m on m.id = f.message_id
     where m.conversation_id = p_conversation_id;
    delete from public.sms_notifications where conversation_id = p_conversation_id;
    delete from public.messages where conversation_id = p_conversation_id; -- cascades to copies, deliveries, files
    delete from public.typing_indicators where conversation_id = p_conversation_id;
    delete from public.conversation_participants where conversation_id = p_conversation_id;
    delete from public.conversations where id = p_conversation_id;
    return jsonb_build_object('scope', 'all', 'storage_paths', v_paths);
  end if;
  select coalesce(jsonb_agg(f.storage_path), '[]'::jsonb) into v_paths
    from public.encrypted_files f join public.messages m on m.id = f.message_id
   where m.conversation_id = p_conversation_id and m.sender_id = v_me;
  delete from public.messages where conversation_id = p_conversation_id and sender_id = v_me;
  delete from public.typing_indicators where conversation_id = p_conversation_id and user_id = v_me;
  delete from public.conversation_participants where conversation_id = p_conversation_id and user_id = v_me;
  -- The last one out removes the conversation, and with it what earlier leavers left behind.
  if not exists (select 1 from public.conversation_participants where conversation_id = p_conversation_id) then
    select v_paths || coalesce(jsonb_agg(f.storage_path), '[]'::jsonb) into v_paths
      from public.encrypted_files f join public.messages m on m.id = f.message_id
     where m.conversation_id = p_conversation_id;
    delete from public.sms_notifications where conversation_id = p_conversation_id;
    delete from public.conversations where id = p_conversation_id;
    return jsonb_build_object('scope', 'all', 'storage_paths', v_paths);
  end if;
  return jsonb_build_object('scope', 'self', 'storage_paths', v_paths);
end;
$$;

-- api_add_participants: chat/conversations/[id]/participants POST (routes.md §7.3). Any active participant may add
-- people (as the app's add-participants dialog allows); a direct chat becomes a group named "Group Chat" unless it
-- has a name; users who left are re-activated. SECURITY DEFINER because the type change and other users' rows are
-- beyond user policies; bound to the caller being an active participant. Returns the added ids and the row.
create or replace function public.api_add_participants(p_conversation_id uuid, p_user_ids uuid[])
returns jsonb
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  v_me uuid := public.current_user_internal_id();
  v_conv public.conversations;
  v_added uuid[];
begin
  if v_me is null then
    raise sqlstate 'PT401' using message = 'no_profile';
  end if;
  select * into v_conv from public.conversations where id = p_conversation_id;
  if not found then
    raise sqlstate 'PT404' using message = 'conversation_not_found';
  end if;
  if not exists (select 1 from public.conversation_participants
                 where conversation_id = p_conversation_id and user_id = v_me and left_at is null) then
    raise sqlstate 'PT403' using message = 'not_participant';
  end if;
  if v_conv.type = 'note_to_self' then
    raise sqlstate 'PT403' using message = 'note_to_self';
  end if;
  if exists (select 1 from unnest(p_user_ids) as t(id) where not exists (select 1 from public.users u where u.id = t.id)) then
    raise sqlstate 'PT400' using message = 'invalid_user_ids';
  end if;
  select coalesce(array_agg(distinct t.id), '{}') into v_added
    from unnest(p_user_ids) as t(id)
   where not exists (select 1 from public.conversation_participants p
                      where p.conversation_id = p_conversation_id and p.user_id = t.id and p.left_at is null);
  if coalesce(array_length(v_added, 1), 0) = 0 then
    return jsonb_build_object('added', '[]'::jsonb, 'conversation', to_jsonb(v_conv));
  end if;
  insert into public.conversation_participants (conversation_id, user_id, role)
  select p_conversation_id, t.id, 'member' from unnest(v_added) as t(id)
  on conflict (conversation_id, user_id) do update set left_at = null, joined_at = now(), role = 'member';
  if v_conv.type = 'direct' then
    update public.conversations set type = 'group', name = coalesce(nullif(name, ''), 'Group Chat')
     where id = p_conversation_id returning * into v_conv;
  end if;
  return jsonb_build_object('added', to_jsonb(v_added), 'conversation', to_jsonb(v_conv));
end;
$$;

revoke execute on function public.api_send_message(uuid, jsonb, text, jsonb, uuid, text, boolean) from public, anon;
revoke execute on function public.api_mark_conversation_read(uuid) from public, anon;
revoke execute on function public.api_delete_conversation(uuid) from public, anon;
revoke execute on function public.api_add_participants(uuid, uuid[]) from public, anon;
grant execute on function public.api_send_message(uuid, jsonb, text, jsonb, uuid, text, boolean) to authenticated, service_role;
grant execute on function public.api_mark_conversation_read(uuid) to authenticated, service_role;
grant execute on function public.api_delete_conversation(uuid) to authenticated, service_role;
grant execute on function public.api_add_participants(uuid, uuid[]) to authenticated, service_role;
