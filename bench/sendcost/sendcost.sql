-- sendcost.sql — what one api_send_message costs the database, in a room of :members members.
--
-- Run with psql as a superuser against a database carrying our migrations (bench/sendcost/run.sh does it):
--   psql "$DATABASE_URL" -v members=201 -v sends=200 -v bytes=300 -v plans=0 -f bench/sendcost/sendcost.sql
-- Everything happens inside one transaction that is rolled back: the database is left as it was.
-- Measures, as the authenticated role with the sender's JWT claims (as PostgREST runs the RPC):
--   * the mean wall time of :sends sends in a row (clock_timestamp around a loop; PostgREST's own work excluded);
--   * with plans=1, auto_explain's plans (ANALYZE, BUFFERS) of every statement inside one send, triggers included,
--     so that one sees where the per-member writes go.
-- pg_stat_statements is of no use here unless it is in shared_preload_libraries (the test stack does not preload it).
\set ON_ERROR_STOP on
\pset pager off
begin;
create temp table sc_users as
  select gen_random_uuid() as auth_id, g as n from generate_series(1, :members) g;
insert into public.users (phone_number, username, display_name, auth_user_id)
  select '+1555' || lpad(n::text, 7, '0') || substr(md5(auth_id::text), 1, 4), 'sc_' || substr(md5(auth_id::text), 1, 12),
         'Send cost ' || n, auth_id
    from sc_users;
create temp table sc_room as
  with c as (insert into public.conversations (type, name, created_by)
             select 'group', 'send cost', u.id from public.users u join sc_users s on s.auth_id = u.auth_user_id and s.n = 1
             returning id)
  select id from c;
insert into public.conversation_participants (conversation_id, user_id, role)
  select r.id, u.id, 'member' from sc_room r, public.users u join sc_users s on s.auth_id = u.auth_user_id and s.n > 1
  on conflict do nothing;
create temp table sc_body as
  select jsonb_object_agg(u.id::text, encode(convert_to(repeat('x', :bytes), 'UTF8'), 'base64')) as contents
    from public.users u join sc_users s on s.auth_id = u.auth_user_id;
grant select on sc_room, sc_body to authenticated;
select (select count(*) from public.conversation_participants p join sc_room r on r.id = p.conversation_id
         where p.left_at is null) as members,
       (select auth_id from sc_users where n = 1) as sender_auth \gset
select set_config('request.jwt.claims', json_build_object('sub', :'sender_auth', 'role', 'authenticated')::text, true) \gset
-- Where api_send_message takes the server's message id and commit deadline (as suparelay always passes them now),
-- the sends pass them too: the advisory lock and the deadline check are part of the cost.
select set_config('sc.sends', :'sends', true), set_config('sc.members', :'members', true),
       set_config('sc.withid', (select count(*) from pg_proc where proname = 'api_resolve_send')::text, true) \gset
set local role authenticated;
-- warm-up
select count(*) from (select public.api_send_message((select id from sc_room), (select contents from sc_body))
                        from generate_series(1, 5)) w;
do $$
declare
  t0 timestamptz := clock_timestamp();
  n int := current_setting('sc.sends')::int;
begin
  for i in 1..n loop
    if current_setting('sc.withid') = '1' then
      perform public.api_send_message((select id from sc_room), (select contents from sc_body),
                                      p_message_id => gen_random_uuid(), p_not_after => clock_timestamp() + interval '8 s');
    else
      perform public.api_send_message((select id from sc_room), (select contents from sc_body));
    end if;
  end loop;
  raise notice 'members=% sends=% mean_ms_per_send=%', current_setting('sc.members'), n,
    round((extract(epoch from clock_timestamp() - t0) * 1000 / n)::numeric, 3);
end
$$;
-- Buffer pages one send touches (deterministic, unlike times on a shared machine), nested statements included.
create temp table sc_plan (p json);
grant insert on sc_plan to authenticated;
do $$
declare
  plan json;
begin
  execute 'explain (analyze, buffers, format json) select public.api_send_message((select id from sc_room), (select contents from sc_body)'
          || case when current_setting('sc.withid') = '1'
                  then ', p_message_id => gen_random_uuid(), p_not_after => clock_timestamp() + interval ''8 s'')' else ')' end
    into plan;
  raise notice 'members=% shared_buffers_per_send=%', current_setting('sc.members'), plan -> 0 -> 'Plan' ->> 'Shared Hit Blocks';
end
$$;
reset role;
select 'rows per send' as what,
       (select count(*) from public.message_recipients mr join public.messages m on m.id = mr.message_id
         join sc_room r on r.id = m.conversation_id) / (select count(*) from public.messages m join sc_room r on r.id = m.conversation_id) as recipients,
       (select count(*) from public.deliveries d join public.messages m on m.id = d.message_id
         join sc_room r on r.id = m.conversation_id) / (select count(*) from public.messages m join sc_room r on r.id = m.conversation_id) as deliveries,
       (select count(*) from public.message_status ms join public.messages m on m.id = ms.message_id
         join sc_room r on r.id = m.conversation_id) / (select count(*) from public.messages m join sc_room r on r.id = m.conversation_id) as message_status;
\if :{?orig}
-- The original Node server's send path on the same database, for comparison (-v orig=1; run as the superuser so
-- that the loop can switch roles): the message insert under the sender's row-level security (its user-token
-- insert), then fn_create_message_recipients as a privileged caller (its service-role call); the message_status
-- trigger fires as in production. update_user_activity, which it also called, is left out.
set local role authenticated;
select count(*) from (select 1 from generate_series(1, 1)) w;
reset role;
do $$
declare
  t0 timestamptz := clock_timestamp();
  n int := current_setting('sc.sends')::int;
  v uuid;
begin
  for i in 1..n loop
    execute 'set local role authenticated';
    insert into public.messages (conversation_id, sender_id, message_type, encrypted_content, metadata)
    values ((select id from sc_room), public.current_user_internal_id(), 'text', ''::bytea, '{}'::jsonb)
    returning id into v;
    execute 'reset role';
    perform public.fn_create_message_recipients(v, (select contents from sc_body));
  end loop;
  raise notice 'members=% sends=% original_mean_ms_per_send=%', current_setting('sc.members'), n,
    round((extract(epoch from clock_timestamp() - t0) * 1000 / n)::numeric, 3);
end
$$;
\endif
\if :plans
load 'auto_explain';
set local auto_explain.log_min_duration = 0;
set local auto_explain.log_analyze = on;
set local auto_explain.log_buffers = on;
set local auto_explain.log_nested_statements = on;
set local auto_explain.log_timing = on;
set local client_min_messages = log;
set local role authenticated;
explain (analyze, buffers) select public.api_send_message((select id from sc_room), (select contents from sc_body));
reset role;
\endif
rollback;
