-- suparelay: the send path's database cost, and sends whose outcome the server did not hear (issue 13).
--
-- Measured (bench/sendcost, 201-member room): the old api_send_message spent its time on work per member that
-- nothing needed —
--   * reading the member list under the caller's row-level security, which calls is_conversation_participant()
--     (and with it current_user_internal_id()) once per participant row;
--   * fn_create_message_recipients, a loop with one SELECT and one INSERT per copy;
--   * the legacy message_status trigger, one 'delivered' row per member beside the deliveries row that already
--     says the same (message_status has no policy: nothing but definer code can read it, and nothing does).
-- The new api_send_message is SECURITY DEFINER, bound to the caller through auth.uid() exactly as the old one's
-- row-level security was (the caller must be an active participant; the sender is always the caller), and writes
-- the copies and the deliveries with one set-based INSERT each. It tells the message_status trigger (through a
-- transaction-local setting) that this send keeps its per-member state in deliveries; every other insert into
-- messages — the original Node server's until cutover — still gets production's message_status rows.
--
-- Unknown outcomes: the server picks the message id (p_message_id) and a deadline (p_not_after, compared with the
-- database's clock). The send holds a transaction advisory lock on the id until it commits and refuses to commit
-- past the deadline (PT504 send_deadline_passed). api_resolve_send(id, deadline) waits until the deadline has
-- passed and the lock is free, so when it answers, the send has either committed (the answer is the send's) or can
-- never commit (null). Old callers (no id, no deadline) behave as before.
--
-- Every copy and delivery row also paid for indexes that duplicate the unique keys: production's
-- idx_message_recipients_lookup is message_recipients' unique (message_id, recipient_user_id) key again,
-- idx_message_recipients_message_id and deliveries_message_idx are its first column (and deliveries' primary key's).
-- Every lookup they served the unique keys serve, so they go.
--
-- Idempotent: DROP IF EXISTS of the old signature and the indexes, CREATE OR REPLACE of the rest.

drop index if exists public.idx_message_recipients_lookup;
drop index if exists public.idx_message_recipients_message_id;
drop index if exists public.deliveries_message_idx;

-- Legacy receipts: one 'delivered' message_status row per active participant other than the sender, as production
-- wrote them, unless the insert comes from api_send_message (suparelay.send_keeps_deliveries = 'on').
create or replace function public.trigger_create_message_status() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if current_setting('suparelay.send_keeps_deliveries', true) = 'on' then
    return new;
  end if;
  insert into public.message_status (message_id, user_id, status)
  select new.id, cp.user_id, 'delivered'
    from public.conversation_participants cp
   where cp.conversation_id = new.conversation_id and cp.left_at is null and cp.user_id <> new.sender_id
  on conflict (message_id, user_id) do nothing;
  return new;
end
$$;

-- The answer of a send: the message row with its sender (column order kept: json, not jsonb) and the active
-- participants, the audience of NEW_MESSAGE. Internal: only the two functions below call it.
create or replace function public.api_send_answer(p_message public.messages, p_members uuid[])
returns json
language sql stable
security definer
set search_path = public, extensions
as $$
  select json_build_object(
    'message', (select row_to_json(t) from (
      select (p_message).*, (select row_to_json(s) from (
                select u.id, u.username, u.display_name, u.avatar_url from public.users u where u.id = (p_message).sender_id) s
             ) as sender) t),
    'participants', to_json(p_members))
$$;

-- The advisory-lock key of a message id, shared by the send and its resolution.
create or replace function public.api_send_lock_key(p_message_id uuid) returns bigint
language sql immutable
set search_path = ''
as $$
  select hashtextextended('suparelay.send:' || p_message_id::text, 0)
$$;

drop function if exists public.api_send_message(uuid, jsonb, text, jsonb, uuid, text, boolean);
create or replace function public.api_send_message(
  p_conversation_id uuid,
  p_encrypted_contents jsonb,
  p_message_type text default 'text',
  p_metadata jsonb default '{}'::jsonb,
  p_reply_to_id uuid default null,
  p_content_type text default 'text',
  p_has_attachments boolean default false,
  p_message_id uuid default null,
  p_not_after timestamptz default null
) returns json
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  v_me uuid := public.current_user_internal_id();
  v_id uuid := coalesce(p_message_id, gen_random_uuid());
  v_members uuid[];
  v_msg public.messages;
begin
  if v_me is null then
    raise sqlstate 'PT401' using message = 'no_profile';
  end if;
  if p_message_id is not null then
    perform pg_advisory_xact_lock(public.api_send_lock_key(v_id));
  end if;
  select array_agg(user_id) into v_members from public.conversation_participants
   where conversation_id = p_conversation_id and left_at is null;
  if v_members is null or not (v_me = any(v_members)) then
    raise sqlstate 'PT403' using message = 'not_participant';
  end if;
  if not exists (select 1 from jsonb_object_keys(coalesce(p_encrypted_contents, '{}'::jsonb)) k
                  where k::uuid = any(v_members)) then
    raise sqlstate 'PT400' using message = 'no_recipients';
  end if;
  if p_reply_to_id is not null and not exists (
       select 1 from public.messages where id = p_reply_to_id and conversation_id = p_conversation_id) then
    raise sqlstate 'PT400' using message = 'reply_not_in_conversation';
  end if;
  perform set_config('suparelay.send_keeps_deliveries', 'on', true);
  insert into public.messages (id, conversation_id, sender_id, message_type, encrypted_content, metadata, reply_to_id,
                               content_type, has_attachments)
  values (v_id, p_conversation_id, v_me, coalesce(p_message_type, 'text'), ''::bytea,
          coalesce(p_metadata, '{}'::jsonb), p_reply_to_id, coalesce(p_content_type, 'text'),
          coalesce(p_has_attachments, false))
  returning * into v_msg;
  perform set_config('suparelay.send_keeps_deliveries', '', true);
  -- One copy per key that is an active participant, with the participant's delivered-based timer.
  insert into public.message_recipients (message_id, recipient_user_id, encrypted_content, expires_at, start_on)
  select v_id, cp.user_id, c.value,
         case when cp.disappear_seconds > 0 and cp.start_on = 'delivered'
              then now() + make_interval(secs => cp.disappear_seconds) end,
         cp.start_on
    from jsonb_each_text(p_encrypted_contents) c
    join public.conversation_participants cp
      on cp.conversation_id = p_conversation_id and cp.left_at is null and cp.user_id = c.key::uuid;
  -- One delivery per active participant but the sender.
  insert into public.deliveries (message_id, recipient_user_id, delivered_ts, expires_at)
  select v_id, cp.user_id, now(),
         case when cp.disappear_seconds > 0 and cp.start_on = 'delivered'
              then now() + make_interval(secs => cp.disappear_seconds) end
    from public.conversation_participants cp
   where cp.conversation_id = p_conversation_id and cp.left_at is null and cp.user_id <> v_me;
  if p_not_after is not null and clock_timestamp() > p_not_after then
    raise sqlstate 'PT504' using message = 'send_deadline_passed';
  end if;
  return public.api_send_answer(v_msg, v_members);
end;
$$;

-- api_resolve_send: what became of the caller's send of p_message_id with deadline p_not_after. A committed send
-- is answered at once; otherwise it waits (at most 15 s) until the deadline has passed on the database's clock and
-- no transaction holds the send's lock, and then the send has committed (the answer is what api_send_message
-- answered, with the current participants) or it never will (null).
create or replace function public.api_resolve_send(p_message_id uuid, p_not_after timestamptz)
returns json
language plpgsql
security definer
set search_path = public, extensions
set lock_timeout = '5s'
as $$
declare
  v_me uuid := public.current_user_internal_id();
  v_wait double precision := extract(epoch from p_not_after - clock_timestamp());
  v_msg public.messages;
  v_members uuid[];
begin
  if v_me is null then
    raise sqlstate 'PT401' using message = 'no_profile';
  end if;
  if v_wait > 15 then
    raise sqlstate 'PT400' using message = 'deadline_too_far';
  end if;
  -- Committed already: no need to wait.
  select * into v_msg from public.messages where id = p_message_id and sender_id = v_me;
  if not found then
    -- The id is someone else's message: the caller's send with it can never commit.
    if exists (select 1 from public.messages where id = p_message_id) then
      return null;
    end if;
    if v_wait > 0 then
      perform pg_sleep(v_wait + 0.001);
    end if;
    perform pg_advisory_xact_lock(public.api_send_lock_key(p_message_id));
    select * into v_msg from public.messages where id = p_message_id and sender_id = v_me;
    if not found then
      return null;
    end if;
  end if;
  select array_agg(user_id) into v_members from public.conversation_participants
   where conversation_id = v_msg.conversation_id and left_at is null;
  return public.api_send_answer(v_msg, coalesce(v_members, '{}'));
end;
$$;

revoke execute on function public.api_send_answer(public.messages, uuid[]) from public, anon, authenticated;
revoke execute on function public.api_send_lock_key(uuid) from public, anon, authenticated;
revoke execute on function public.api_send_message(uuid, jsonb, text, jsonb, uuid, text, boolean, uuid, timestamptz) from public, anon;
revoke execute on function public.api_resolve_send(uuid, timestamptz) from public, anon;
grant execute on function public.api_send_answer(public.messages, uuid[]) to service_role;
grant execute on function public.api_send_lock_key(uuid) to service_role;
grant execute on function public.api_send_message(uuid, jsonb, text, jsonb, uuid, text, boolean, uuid, timestamptz) to authenticated, service_role;
grant execute on function public.api_resolve_send(uuid, timestamptz) to authenticated, service_role;

comment on function public.api_send_message(uuid, jsonb, text, jsonb, uuid, text, boolean, uuid, timestamptz) is
  'messages/send and chat/messages POST: message, copies and deliveries in one transaction, bound to auth.uid(); p_message_id/p_not_after make an unheard outcome resolvable by api_resolve_send.';
comment on function public.api_resolve_send(uuid, timestamptz) is
  'After p_not_after: the answer of the caller''s committed send of p_message_id, or null when it never committed and never will.';
