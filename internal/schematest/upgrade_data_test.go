package schematest

// productionData is a realistic data set for a production database (the schema the 105 production migrations
// leave), written as the original app wrote its rows: auth users the way Supabase Auth stores a confirmed phone
// user (as internal/testenv creates them), profiles linked to them (the production triggers then add each one's
// note-to-self conversation and a unique identifier), conversations of every type with participants who left
// and who archived, messages with a ciphertext per recipient, deliveries in the id space production wrote
// (internal ids), files with their Storage objects, keys, backups, calls and the SMS tables. Inserted as the
// superuser, so row-level security does not interfere.
//
// Fixed ids: a0…/b0…/c0…/d0…/e0… are the auth users (e0… has no profile: a registration left unfinished),
// 1a…/1b…/1c…/1d… their profiles, 2…: conversations, 3…: messages, 4…: a group.
const productionData = `
insert into auth.users (instance_id, id, aud, role, phone, phone_confirmed_at, raw_app_meta_data, raw_user_meta_data,
                        confirmation_token, recovery_token, email_change_token_new, email_change, created_at, updated_at)
select '00000000-0000-0000-0000-000000000000', v.id::uuid, 'authenticated', 'authenticated', v.phone, now(),
       '{"provider":"phone","providers":["phone"]}', '{}', '', '', '', '', now() - interval '30 days', now()
  from (values ('a0000000-0000-4000-8000-00000000000a', '15550100001'),
               ('b0000000-0000-4000-8000-00000000000b', '15550100002'),
               ('c0000000-0000-4000-8000-00000000000c', '15550100003'),
               ('d0000000-0000-4000-8000-00000000000d', '15550100004'),
               ('e0000000-0000-4000-8000-00000000000e', '15550100005')) v(id, phone);

insert into public.users (id, auth_user_id, phone_number, username, display_name, avatar_url, bio, website, status,
                          default_message_retention_days, sms_notifications_enabled, is_online, salt, backup_pin_hash)
values
  ('1a000000-0000-4000-8000-00000000001a', 'a0000000-0000-4000-8000-00000000000a', '+15550100001', 'upg_alice', 'Alice',
   'a0000000-0000-4000-8000-00000000000a/avatar.png', 'Hi, I am Alice', 'https://alice.example', 'online', 7, true, true,
   'c2FsdC1hbGljZQ==', '$argon2id$v=19$m=65536,t=3,p=4$YWxpY2U$aGFzaA'),
  ('1b000000-0000-4000-8000-00000000001b', 'b0000000-0000-4000-8000-00000000000b', '+15550100002', 'upg_bob', 'Bob',
   null, null, null, 'away', 30, false, false, 'c2FsdC1ib2I=', null),
  ('1c000000-0000-4000-8000-00000000001c', 'c0000000-0000-4000-8000-00000000000c', '+15550100003', 'upg_carol', 'Carol',
   null, 'Carol here', null, 'busy', 0, true, false, null, null),
  ('1d000000-0000-4000-8000-00000000001d', 'd0000000-0000-4000-8000-00000000000d', '+15550100004', 'upg_dave', 'Dave',
   null, null, null, 'offline', 30, true, false, null, null);

insert into public.groups (id, name, description, is_public, invite_code, created_by)
values ('4a000000-0000-4000-8000-00000000004a', 'Upgrade club', 'a group with a room', false, 'UPGCLUB1',
        '1a000000-0000-4000-8000-00000000001a');
insert into public.group_members (group_id, user_id, role, left_at)
values ('4a000000-0000-4000-8000-00000000004a', '1a000000-0000-4000-8000-00000000001a', 'owner', null),
       ('4a000000-0000-4000-8000-00000000004a', '1b000000-0000-4000-8000-00000000001b', 'member', null),
       ('4a000000-0000-4000-8000-00000000004a', '1c000000-0000-4000-8000-00000000001c', 'member', now() - interval '1 day');

-- The creator becomes an admin participant through the production trigger.
insert into public.conversations (id, type, name, created_by, group_id, disappearing_messages_enabled,
                                  disappearing_messages_duration_days, position)
values ('2a000000-0000-4000-8000-00000000002a', 'direct', null, '1a000000-0000-4000-8000-00000000001a', null, false, null, 0),
       ('2b000000-0000-4000-8000-00000000002b', 'group', 'Team', '1a000000-0000-4000-8000-00000000001a', null, true, 7, 0),
       ('2c000000-0000-4000-8000-00000000002c', 'room', 'general', '1a000000-0000-4000-8000-00000000001a',
        '4a000000-0000-4000-8000-00000000004a', false, null, 1);

insert into public.conversation_participants (conversation_id, user_id, role, joined_at, left_at, disappear_seconds,
                                              start_on, archived_at)
values ('2a000000-0000-4000-8000-00000000002a', '1b000000-0000-4000-8000-00000000001b', 'member', now() - interval '20 days', null, 0, 'delivered', null),
       ('2b000000-0000-4000-8000-00000000002b', '1b000000-0000-4000-8000-00000000001b', 'moderator', now() - interval '20 days', null, 3600, 'read', null),
       ('2b000000-0000-4000-8000-00000000002b', '1c000000-0000-4000-8000-00000000001c', 'member', now() - interval '20 days', null, 0, 'delivered', now() - interval '2 days'),
       ('2b000000-0000-4000-8000-00000000002b', '1d000000-0000-4000-8000-00000000001d', 'member', now() - interval '20 days', now() - interval '5 days', 0, 'delivered', null),
       ('2c000000-0000-4000-8000-00000000002c', '1b000000-0000-4000-8000-00000000001b', 'member', now() - interval '10 days', null, 0, 'delivered', null);

insert into public.messages (id, conversation_id, sender_id, reply_to_id, message_type, encrypted_content, content_hash,
                             metadata, edited_at, deleted_at, content_type, created_at)
values
  ('3a000000-0000-4000-8000-00000000003a', '2a000000-0000-4000-8000-00000000002a', '1a000000-0000-4000-8000-00000000001a', null,
   'text', '\x0102030405', 'h1', '{}', null, null, 'text', now() - interval '3 days'),
  ('3b000000-0000-4000-8000-00000000003b', '2a000000-0000-4000-8000-00000000002a', '1b000000-0000-4000-8000-00000000001b',
   '3a000000-0000-4000-8000-00000000003a', 'text', '\x0a0b0c', 'h2', '{"v":2}', now() - interval '1 day', null, 'text', now() - interval '2 days'),
  ('3c000000-0000-4000-8000-00000000003c', '2b000000-0000-4000-8000-00000000002b', '1a000000-0000-4000-8000-00000000001a', null,
   'file', '\xdeadbeef', 'h3', '{"files":1}', null, null, 'file', now() - interval '2 days'),
  ('3d000000-0000-4000-8000-00000000003d', '2b000000-0000-4000-8000-00000000002b', '1d000000-0000-4000-8000-00000000001d', null,
   'text', '\x00', null, '{}', null, now() - interval '6 days', 'text', now() - interval '7 days'),
  ('3e000000-0000-4000-8000-00000000003e', '2c000000-0000-4000-8000-00000000002c', '1b000000-0000-4000-8000-00000000001b', null,
   'system', '\x73797374656d', null, '{}', null, null, 'text', now() - interval '1 day');
-- A note to self, in the conversation the production trigger created for Alice.
insert into public.messages (id, conversation_id, sender_id, message_type, encrypted_content, content_type)
select '3f000000-0000-4000-8000-00000000003f', c.id, '1a000000-0000-4000-8000-00000000001a', 'text', '\x6e6f7465', 'text'
  from public.conversations c where c.type = 'note_to_self' and c.created_by = '1a000000-0000-4000-8000-00000000001a';

-- One ciphertext per recipient (the sender included: it reads its own messages too), for those in the
-- conversation when the message was sent.
insert into public.message_recipients (message_id, recipient_user_id, encrypted_content, expires_at, start_on, read_at)
select m.id, cp.user_id, 'ct:' || m.id || ':' || cp.user_id, m.expires_at, cp.start_on,
       case when cp.user_id = m.sender_id then m.created_at end
  from public.messages m
  join public.conversation_participants cp
    on cp.conversation_id = m.conversation_id and (cp.left_at is null or cp.left_at > m.created_at)
 where m.id::text like '3_000000-%';

-- Deliveries for everyone but the sender, in production's id space (internal ids); some read, one deleted.
insert into public.deliveries (message_id, recipient_user_id, delivered_ts, read_ts, expires_at, deleted_ts, deletion_reason)
select r.message_id, r.recipient_user_id, m.created_at + interval '1 minute',
       case when r.recipient_user_id = '1b000000-0000-4000-8000-00000000001b' then m.created_at + interval '1 hour' end,
       m.expires_at,
       case when m.deleted_at is not null then m.deleted_at end,
       case when m.deleted_at is not null then 'sender_deleted' end
  from public.message_recipients r join public.messages m on m.id = r.message_id
 where r.recipient_user_id <> m.sender_id;

insert into public.encrypted_files (id, message_id, storage_path, encrypted_metadata, created_by)
values ('5a000000-0000-4000-8000-00000000005a', '3c000000-0000-4000-8000-00000000003c',
        'a0000000-0000-4000-8000-00000000000a/2b000000-0000-4000-8000-00000000002b/file_1700000000000_abc123',
        '{"1a000000-0000-4000-8000-00000000001a":"k1","1b000000-0000-4000-8000-00000000001b":"k2"}',
        'a0000000-0000-4000-8000-00000000000a');
insert into storage.objects (bucket_id, name, owner, metadata)
values ('encrypted-files', 'a0000000-0000-4000-8000-00000000000a/2b000000-0000-4000-8000-00000000002b/file_1700000000000_abc123',
        'a0000000-0000-4000-8000-00000000000a', '{"size": 1234, "mimetype": "application/octet-stream"}'),
       ('avatars', 'a0000000-0000-4000-8000-00000000000a/avatar.png', 'a0000000-0000-4000-8000-00000000000a',
        '{"size": 99, "mimetype": "image/png"}');
insert into public.attachments (message_id, storage_path, enc_metadata, size)
values ('3c000000-0000-4000-8000-00000000003c', 'legacy/3c/attachment.bin', '{"iv":"x"}', 1234);

insert into public.user_public_keys (user_id, public_key, key_type)
values ('a0000000-0000-4000-8000-00000000000a', 'pk-alice-ecdh', 'ECDH-P256'),
       ('a0000000-0000-4000-8000-00000000000a', 'pk-alice-kem', 'ML-KEM-1024'),
       ('b0000000-0000-4000-8000-00000000000b', 'pk-bob-ecdh', 'ECDH-P256');
insert into public.key_backups (user_id, encrypted_keys) values ('a0000000-0000-4000-8000-00000000000a', 'backup-blob-alice');
insert into public.encrypted_key_backups (user_id, phone_number, encrypted_identity_keys, encrypted_master_key, salt,
                                          iterations, key_version, device_fingerprint)
values ('b0000000-0000-4000-8000-00000000000b', '+15550100002', '\x01', '\x02', '\x03', 310000, 2, 'fp-bob');
insert into public.key_access_log (user_id, device_fingerprint, access_type, ip_address, user_agent, success)
values ('b0000000-0000-4000-8000-00000000000b', 'fp-bob', 'backup_created', '192.0.2.7', 'test-agent', true);
insert into public.webhooks (user_id, url, events)
values ('a0000000-0000-4000-8000-00000000000a', 'https://hooks.example/alice', '{message.created}');

insert into public.typing_indicators (conversation_id, user_id, is_typing)
values ('2a000000-0000-4000-8000-00000000002a', '1b000000-0000-4000-8000-00000000001b', true);
insert into public.user_presence (user_id, status) values ('1a000000-0000-4000-8000-00000000001a', 'online');
insert into public.message_status (message_id, user_id, status)
values ('3a000000-0000-4000-8000-00000000003a', '1a000000-0000-4000-8000-00000000001a', 'read')
on conflict (message_id, user_id) do nothing;

insert into public.voice_calls (id, caller_id, recipient_id, call_type, status, connected_at, ended_at, duration_seconds)
values ('call-upg-1', '1a000000-0000-4000-8000-00000000001a', '1b000000-0000-4000-8000-00000000001b', 'voice', 'ended',
        now() - interval '1 hour', now() - interval '50 minutes', 600);
insert into public.call_sessions (id, call_id, ml_kem_parameter_set, initiator_id, recipient_id, initiator_public_key, status)
values ('sess-upg-1', 'call-upg-1', 'ML_KEM_1024', '1a000000-0000-4000-8000-00000000001a',
        '1b000000-0000-4000-8000-00000000001b', 'ipk', 'ended');
insert into public.call_key_rotations (call_session_id, rotation_sequence, initiator_public_key, status)
values ('sess-upg-1', 1, 'ipk-2', 'established');
insert into public.group_call_sessions (id, call_id, creator_id, ml_kem_parameter_set, status)
values ('gcs-upg-1', 'call-upg-1', '1a000000-0000-4000-8000-00000000001a', 'ML_KEM_768', 'ended');
insert into public.group_call_participants (group_call_session_id, user_id, public_key, status)
values ('gcs-upg-1', '1b000000-0000-4000-8000-00000000001b', 'gpk', 'left');

insert into public.sms_notifications (user_id, conversation_id, message_id, phone_number, message_content, status)
values ('1b000000-0000-4000-8000-00000000001b', '2a000000-0000-4000-8000-00000000002a', '3a000000-0000-4000-8000-00000000003a',
        '+15550100002', 'You have a new message', 'sent');
insert into public.sms_audit_log (phone_number, action, status, metadata)
values ('+15550100002', 'send_sms', 'success', '{"provider":"test"}');
insert into public.sms_rate_limits (phone_number, attempts) values ('+15550100002', 2);
`
