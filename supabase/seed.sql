-- seed.sql — demo data for the local stacks (scripts/stack.sh and `supabase db reset`). Idempotent.
--
-- Three demo users (auth.users + public.users; the phone is stored without '+' in auth.users and with '+' in
-- public.users), the direct conversation alice–bob, the group "Demo group" (alice admin, bob, carol), a few
-- messages with per-recipient copies (base64 placeholder ciphertext: these are NOT decryptable by the app) and
-- deliveries. Triggers add each user's note-to-self conversation, the creator's admin participant row and the
-- legacy message_status rows. The local Supabase Auth accepts the test OTP 123456 for the demo phones (config.toml has the same for the CLI).
--
-- Every insert is ON CONFLICT DO NOTHING, so re-seeding changes nothing (and fires no trigger a second time).

insert into auth.users (instance_id, id, aud, role, phone, phone_confirmed_at, raw_app_meta_data, raw_user_meta_data,
                        created_at, updated_at, confirmation_token, recovery_token, email_change_token_new,
                        email_change)
values
  ('00000000-0000-0000-0000-000000000000', '11111111-1111-4111-8111-111111111111', 'authenticated', 'authenticated',
   '15555550101', now(), '{"provider":"phone","providers":["phone"]}', '{}', now(), now(), '', '', '', ''),
  ('00000000-0000-0000-0000-000000000000', '22222222-2222-4222-8222-222222222222', 'authenticated', 'authenticated',
   '15555550102', now(), '{"provider":"phone","providers":["phone"]}', '{}', now(), now(), '', '', '', ''),
  ('00000000-0000-0000-0000-000000000000', '33333333-3333-4333-8333-333333333333', 'authenticated', 'authenticated',
   '15555550103', now(), '{"provider":"phone","providers":["phone"]}', '{}', now(), now(), '', '', '', '')
on conflict do nothing;

-- Supabase Auth (GoTrue) also keeps one identity per sign-in method; the local bootstrap has no such table.
do $do$
begin
  if exists (select 1 from information_schema.columns
              where table_schema = 'auth' and table_name = 'identities' and column_name = 'provider_id') then
    execute $sql$
      insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
      select u.id::text, u.id,
             jsonb_build_object('sub', u.id::text, 'phone', u.phone, 'phone_verified', true, 'email_verified', false),
             'phone', now(), now(), now()
        from auth.users u
       where u.id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222',
                      '33333333-3333-4333-8333-333333333333')
      on conflict do nothing
    $sql$;
  end if;
end
$do$;

insert into public.users (id, auth_user_id, phone_number, username, display_name, bio)
values
  ('a1111111-1111-4111-8111-111111111111', '11111111-1111-4111-8111-111111111111', '+15555550101', 'alice',
   'Alice Demo', 'Demo user'),
  ('b2222222-2222-4222-8222-222222222222', '22222222-2222-4222-8222-222222222222', '+15555550102', 'bob',
   'Bob Demo', 'Demo user'),
  ('c3333333-3333-4333-8333-333333333333', '33333333-3333-4333-8333-333333333333', '+15555550103', 'carol',
   'Carol Demo', 'Demo user')
on conflict do nothing;

insert into public.conversations (id, type, name, created_by)
values
  ('d0000000-0000-4000-8000-000000000001', 'direct', null, 'a1111111-1111-4111-8111-111111111111'),
  ('d0000000-0000-4000-8000-000000000002', 'group', 'Demo group', 'a1111111-1111-4111-8111-111111111111')
on conflict do nothing;

insert into public.conversation_participants (conversation_id, user_id, role)
values
  ('d0000000-0000-4000-8000-000000000001', 'a1111111-1111-4111-8111-111111111111', 'admin'),
  ('d0000000-0000-4000-8000-000000000001', 'b2222222-2222-4222-8222-222222222222', 'member'),
  ('d0000000-0000-4000-8000-000000000002', 'a1111111-1111-4111-8111-111111111111', 'admin'),
  ('d0000000-0000-4000-8000-000000000002', 'b2222222-2222-4222-8222-222222222222', 'member'),
  ('d0000000-0000-4000-8000-000000000002', 'c3333333-3333-4333-8333-333333333333', 'member')
on conflict do nothing;

-- messages.encrypted_content holds only a placeholder (the bytes of "{}"); the ciphertext lives per recipient.
insert into public.messages (id, conversation_id, sender_id, message_type, encrypted_content, created_at)
values
  ('e0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8000-000000000001',
   'a1111111-1111-4111-8111-111111111111', 'text', '\x7b7d', now() - interval '10 minutes'),
  ('e0000000-0000-4000-8000-000000000002', 'd0000000-0000-4000-8000-000000000001',
   'b2222222-2222-4222-8222-222222222222', 'text', '\x7b7d', now() - interval '9 minutes'),
  ('e0000000-0000-4000-8000-000000000003', 'd0000000-0000-4000-8000-000000000002',
   'a1111111-1111-4111-8111-111111111111', 'text', '\x7b7d', now() - interval '8 minutes'),
  ('e0000000-0000-4000-8000-000000000004', 'd0000000-0000-4000-8000-000000000002',
   'c3333333-3333-4333-8333-333333333333', 'text', '\x7b7d', now() - interval '7 minutes')
on conflict do nothing;

-- One copy per participant (sender included: the app encrypts a copy for itself too).
insert into public.message_recipients (message_id, recipient_user_id, encrypted_content)
select m.id, cp.user_id,
       encode(convert_to('{"demo":true,"note":"placeholder ciphertext","message":"' || m.id || '"}', 'UTF8'), 'base64')
  from public.messages m
  join public.conversation_participants cp on cp.conversation_id = m.conversation_id
 where m.id in ('e0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000002',
                'e0000000-0000-4000-8000-000000000003', 'e0000000-0000-4000-8000-000000000004')
on conflict do nothing;

-- Deliveries for everyone but the sender; bob has read alice's first direct message.
insert into public.deliveries (message_id, recipient_user_id, delivered_ts, read_ts)
select m.id, cp.user_id, m.created_at + interval '1 second',
       case when m.id = 'e0000000-0000-4000-8000-000000000001' then m.created_at + interval '1 minute' end
  from public.messages m
  join public.conversation_participants cp on cp.conversation_id = m.conversation_id and cp.user_id <> m.sender_id
 where m.id in ('e0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000002',
                'e0000000-0000-4000-8000-000000000003', 'e0000000-0000-4000-8000-000000000004')
on conflict do nothing;
