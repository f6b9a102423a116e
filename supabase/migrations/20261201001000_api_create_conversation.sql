-- 20261201001000_api_create_conversation.sql — creating a conversation is one transaction.
--
-- chat/conversations POST and conversations/create (routes.md §7.1, §6.6) took up to six requests: check that the
-- participants exist, check the group membership, look for an existing direct chat, insert the conversation, insert
-- the participants, and — when that last insert failed — delete the conversation again. A server dying between
-- the two inserts (or a failed compensating delete) left a conversation without its members behind. This function
-- does all of it in the one transaction PostgREST runs an RPC in: the conversation exists with all its members, or
-- not at all.
--
-- SECURITY INVOKER: every step is allowed to the caller by the row-level security policies already in force —
-- users are readable by every signed-in user, the caller's own group_members and conversation_participants rows
-- are readable, conversations_insert_own lets the caller create a conversation in their own name (the creator
-- trigger makes them its admin), and participants_insert_creator_or_admin lets the creator add the members. So the
-- function gets no rights beyond the caller's; it only makes the steps atomic. The caller is identified through
-- auth.uid() (public.current_user_internal_id()), never through an argument.
--
-- Refusals use PTxxx SQLSTATEs with fixed slugs, as the api RPCs do (20261201000900_api_rpcs.sql):
--   PT401 no_profile         the caller has no users row
--   PT400 invalid_user_ids   a participant id names no user
--   PT403 not_group_member   p_group_id is not a group the caller is an active member of
-- A failure of the participant insert keeps its own SQLSTATE (so its HTTP status is what the insert alone would have
-- got) with the message participants_not_added, because the routes answer it with their own text.
--
-- p_participant_ids are internal ids; duplicates and the caller's own id are ignored for the members. A direct chat
-- with exactly one other participant answers the existing active direct conversation of exactly those two people,
-- if there is one (existed = true), instead of creating another.
-- Returns {"conversation": <the conversations row, in column order as PostgREST's select=* answers it>,
-- "existed": <boolean>}.
--
-- Idempotent: CREATE OR REPLACE, REVOKE and GRANT only.
create or replace function public.api_create_conversation(
  p_type text,
  p_participant_ids uuid[],
  p_name text default null,
  p_group_id uuid default null
) returns json
language plpgsql
security invoker
set search_path = public, extensions
as $$
declare
  v_me uuid := public.current_user_internal_id();
  v_ids uuid[];
  v_existing uuid;
  v_conv public.conversations;
  v_state text;
  v_detail text;
begin
  if v_me is null then
    raise sqlstate 'PT401' using message = 'no_profile';
  end if;
  select coalesce(array_agg(distinct t.id), '{}') into v_ids from unnest(p_participant_ids) as t(id);
  if exists (select 1 from unnest(v_ids) as t(id)
              where not exists (select 1 from public.users u where u.id = t.id)) then
    raise sqlstate 'PT400' using message = 'invalid_user_ids';
  end if;
  if p_group_id is not null and not exists (
       select 1 from public.group_members gm
        where gm.group_id = p_group_id and gm.user_id = v_me and gm.left_at is null) then
    raise sqlstate 'PT403' using message = 'not_group_member';
  end if;
  if p_type = 'direct' and cardinality(v_ids) = 1 and v_ids[1] <> v_me then
    select cp.conversation_id into v_existing
      from public.conversation_participants cp
      join public.conversations c on c.id = cp.conversation_id and c.type = 'direct'
     where cp.user_id = v_me and cp.left_at is null
       and (select array_agg(o.user_id order by o.user_id) from public.conversation_participants o
             where o.conversation_id = cp.conversation_id and o.left_at is null)
           = (select array_agg(x order by x) from unnest(array[v_me, v_ids[1]]) as t(x))
     order by c.created_at, c.id
     limit 1;
    if v_existing is not null then
      select * into v_conv from public.conversations where id = v_existing;
      return json_build_object('conversation', row_to_json(v_conv), 'existed', true);
    end if;
  end if;
  insert into public.conversations (type, created_by, name, group_id)
  values (p_type, v_me, p_name, p_group_id)
  returning * into v_conv;
  begin
    insert into public.conversation_participants (conversation_id, user_id, role)
    select v_conv.id, v_me, 'admin'
    union all
    select v_conv.id, t.id, 'member' from unnest(v_ids) as t(id) where t.id <> v_me
    on conflict (conversation_id, user_id) do nothing;
  exception when others then
    get stacked diagnostics v_state = returned_sqlstate, v_detail = message_text;
    raise exception using errcode = v_state, message = 'participants_not_added', detail = v_detail;
  end;
  return json_build_object('conversation', row_to_json(v_conv), 'existed', false);
end;
$$;

revoke execute on function public.api_create_conversation(text, uuid[], text, uuid) from public, anon;
grant execute on function public.api_create_conversation(text, uuid[], text, uuid) to authenticated, service_role;
