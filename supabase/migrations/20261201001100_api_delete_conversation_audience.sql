-- 20261201001100_api_delete_conversation_audience.sql — conversations/delete also tells who was in the conversation
-- and how many messages went, so that the server can send message.deleted webhooks (routes.md §9.4) to the right
-- people: after the wipe, nobody (or no longer the caller) can read the participant list, and a second query
-- before the call would be neither atomic nor free.
--
-- Same function, same checks, same deletions and the same "scope" and "storage_paths" as
-- 20261201000900_api_rpcs.sql; the answer gains "participants" (the internal ids of the active participants at the
-- moment of the call, the caller included) and "deleted_messages" (the number of messages removed). CREATE OR
-- REPLACE keeps the grants. Idempotent.
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
  v_members jsonb;
  v_deleted bigint;
  v_rest bigint;
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
  select coalesce(jsonb_agg(user_id), '[]'::jsonb) into v_members
    from public.conversation_participants where conversation_id = p_conversation_id and left_at is null;
  if v_type = 'direct' then
    select coalesce(jsonb_agg(f.storage_path), '[]'::jsonb) into v_paths
      from public.encrypted_files f join public.messages m on m.id = f.message_id
     where m.conversation_id = p_conversation_id;
    delete from public.sms_notifications where conversation_id = p_conversation_id;
    delete from public.messages where conversation_id = p_conversation_id; -- cascades to copies, deliveries, files
    get diagnostics v_deleted = row_count;
    delete from public.typing_indicators where conversation_id = p_conversation_id;
    delete from public.conversation_participants where conversation_id = p_conversation_id;
    delete from public.conversations where id = p_conversation_id;
    return jsonb_build_object('scope', 'all', 'storage_paths', v_paths, 'participants', v_members,
                              'deleted_messages', v_deleted);
  end if;
  select coalesce(jsonb_agg(f.storage_path), '[]'::jsonb) into v_paths
    from public.encrypted_files f join public.messages m on m.id = f.message_id
   where m.conversation_id = p_conversation_id and m.sender_id = v_me;
  delete from public.messages where conversation_id = p_conversation_id and sender_id = v_me;
  get diagnostics v_deleted = row_count;
  delete from public.typing_indicators where conversation_id = p_conversation_id and user_id = v_me;
  delete from public.conversation_participants where conversation_id = p_conversation_id and user_id = v_me;
  -- The last one out removes the conversation, and with it what earlier leavers left behind.
  if not exists (select 1 from public.conversation_participants where conversation_id = p_conversation_id) then
    select v_paths || coalesce(jsonb_agg(f.storage_path), '[]'::jsonb) into v_paths
      from public.encrypted_files f join public.messages m on m.id = f.message_id
     where m.conversation_id = p_conversation_id;
    select count(*) into v_rest from public.messages where conversation_id = p_conversation_id;
    delete from public.sms_notifications where conversation_id = p_conversation_id;
    delete from public.conversations where id = p_conversation_id;
    return jsonb_build_object('scope', 'all', 'storage_paths', v_paths, 'participants', v_members,
                              'deleted_messages', v_deleted + v_rest);
  end if;
  return jsonb_build_object('scope', 'self', 'storage_paths', v_paths, 'participants', v_members,
                            'deleted_messages', v_deleted);
end;
$$;
