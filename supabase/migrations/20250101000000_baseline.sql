-- 20250101000000_baseline.sql — the production schema of QryptChat as the contract (schema.md §1–§8) describes it.
--
-- This reproduces the database left by the original app's 105 migrations: the 27 tables of `public` with their
-- columns, defaults, nullability, constraint names, foreign keys (names and ON DELETE actions), indexes and
-- triggers; the RPCs with their parameter names, return shapes and definer/invoker mode; the row-level-security
-- policies in force INCLUDING THE BROKEN ONES (schema.md §6.1 — the later *_fix migrations repair them); the two
-- Storage buckets and the storage.objects policies of §8. Function bodies are written from the behaviour the
-- contract describes in words.
--
-- Idempotent in both directions:
--   * on an empty database (after scripts/sql/bootstrap.sql, or on the supabase CLI stack) it creates everything;
--   * on a database that already has the production schema it changes nothing that exists: tables and columns are
--     added only when missing; constraints only when no constraint of that name exists, and a freshly added UNIQUE or
--     FOREIGN KEY is dropped again when an equivalent one exists under another name (so PostgREST embeds never
--     become ambiguous); triggers are dropped again when the table already has a trigger of the same kind under
--     another name; a table's baseline policies are created only when the table carries no policies other than the
--     ones named here (so re-running this file after the fix migrations does not resurrect the loose policies).
-- Functions use CREATE OR REPLACE; the fix migrations run after this file and replace some of them again.
--
-- Deliberately NOT reproduced: the one-off data repairs and the test-data insert of the original migrations, and
-- the functions schema.md §5.2 lists as broken (get_user_conversations, create_direct_conversation,
-- create_group_with_default_room, join_group_by_invite, fn_mark_read, nuclear_delete_user_data,
-- fix_canonical_auth_user_ids, update_canonical_auth_user_ids). On production they remain; the function-hardening
-- migration revokes them from every API role.
--
-- No psql meta-commands: internal/dbsetup applies this file with one simple-protocol Exec (one transaction).

-- ===============================================================================================================
-- 1. Tables (columns only; constraints follow in §2 so that they can be guarded by name)
-- ===============================================================================================================

create table if not exists public.users (id uuid not null default extensions.uuid_generate_v4());
alter table public.users
  add column if not exists phone_number text not null,
  add column if not exists username text not null,
  add column if not exists display_name text not null,
  add column if not exists avatar_url text,
  add column if not exists bio text,
  add column if not exists status text default 'offline',
  add column if not exists last_seen timestamptz default now(),
  add column if not exists created_at timestamptz default now(),
  add column if not exists updated_at timestamptz default now(),
  add column if not exists auth_user_id uuid,
  add column if not exists website text,
  add column if not exists default_message_retention_days integer not null default 30,
  add column if not exists last_active_at timestamptz default now(),
  add column if not exists is_online boolean default false,
  add column if not exists sms_notifications_enabled boolean default true,
  add column if not exists unique_identifier text,
  add column if not exists salt text,
  add column if not exists backup_pin_hash text;

create table if not exists public.groups (id uuid not null default extensions.uuid_generate_v4());
alter table public.groups
  add column if not exists name text not null,
  add column if not exists description text,
  add column if not exists avatar_url text,
  add column if not exists is_public boolean default false,
  add column if not exists invite_code text,
  add column if not exists created_by uuid,
  add column if not exists created_at timestamptz default now(),
  add column if not exists updated_at timestamptz default now();

create table if not exists public.group_members (id uuid not null default extensions.uuid_generate_v4());
alter table public.group_members
  add column if not exists group_id uuid not null,
  add column if not exists user_id uuid not null,
  add column if not exists role text default 'member',
  add column if not exists joined_at timestamptz default now(),
  add column if not exists left_at timestamptz;

create table if not exists public.conversations (id uuid not null default extensions.uuid_generate_v4());
alter table public.conversations
  add column if not exists type text not null default 'direct',
  add column if not exists name text,
  add column if not exists description text,
  add column if not exists avatar_url text,
  add column if not exists created_by uuid,
  add column if not exists created_at timestamptz default now(),
  add column if not exists updated_at timestamptz default now(),
  add column if not exists group_id uuid,
  add column if not exists is_private boolean default false,
  add column if not exists position integer default 0,
  add column if not exists disappearing_messages_enabled boolean not null default false,
  add column if not exists disappearing_messages_duration_days integer;

create table if not exists public.conversation_participants (id uuid not null default extensions.uuid_generate_v4());
alter table public.conversation_participants
  add column if not exists conversation_id uuid not null,
  add column if not exists user_id uuid not null,
  add column if not exists role text default 'member',
  add column if not exists joined_at timestamptz default now(),
  add column if not exists left_at timestamptz,
  add column if not exists disappear_seconds integer not null default 0,
  add column if not exists start_on text not null default 'delivered',
  add column if not exists archived_at timestamptz;

create table if not exists public.messages (id uuid not null default extensions.uuid_generate_v4());
alter table public.messages
  add column if not exists conversation_id uuid not null,
  add column if not exists sender_id uuid not null,
  add column if not exists reply_to_id uuid,
  add column if not exists message_type text default 'text',
  add column if not exists encrypted_content bytea not null,
  add column if not exists content_hash text,
  add column if not exists metadata jsonb default '{}'::jsonb,
  add column if not exists edited_at timestamptz,
  add column if not exists deleted_at timestamptz,
  add column if not exists created_at timestamptz default now(),
  add column if not exists expires_at timestamptz,
  add column if not exists content_type text not null default 'text',
  add column if not exists has_attachments boolean not null default false;

create table if not exists public.message_recipients (id uuid not null default gen_random_uuid());
alter table public.message_recipients
  add column if not exists message_id uuid not null,
  add column if not exists recipient_user_id uuid not null,
  add column if not exists encrypted_content text not null,
  add column if not exists created_at timestamptz default now(),
  add column if not exists expires_at timestamptz,
  add column if not exists start_on text default 'delivered',
  add column if not exists read_at timestamptz;

create table if not exists public.deliveries (message_id uuid not null);
alter table public.deliveries
  add column if not exists recipient_user_id uuid not null,
  add column if not exists delivered_ts timestamptz,
  add column if not exists read_ts timestamptz,
  add column if not exists expires_at timestamptz,
  add column if not exists deleted_ts timestamptz,
  add column if not exists deletion_reason text;

create table if not exists public.message_status (id uuid not null default extensions.uuid_generate_v4());
alter table public.message_status
  add column if not exists message_id uuid not null,
  add column if not exists user_id uuid not null,
  add column if not exists status text not null,
  add column if not exists "timestamp" timestamptz default now();

create table if not exists public.typing_indicators (id uuid not null default extensions.uuid_generate_v4());
alter table public.typing_indicators
  add column if not exists conversation_id uuid not null,
  add column if not exists user_id uuid not null,
  add column if not exists is_typing boolean default false,
  add column if not exists updated_at timestamptz default now();

create table if not exists public.encrypted_files (id uuid not null default gen_random_uuid());
alter table public.encrypted_files
  add column if not exists message_id uuid not null,
  add column if not exists storage_path text not null,
  add column if not exists encrypted_metadata jsonb not null,
  add column if not exists created_at timestamptz default now(),
  add column if not exists created_by uuid not null;

create table if not exists public.user_public_keys (id uuid not null default gen_random_uuid());
alter table public.user_public_keys
  add column if not exists user_id uuid not null,
  add column if not exists public_key text not null,
  add column if not exists key_type varchar(50) not null default 'ECDH-P256',
  add column if not exists created_at timestamptz default now(),
  add column if not exists updated_at timestamptz default now();

create table if not exists public.key_backups (id uuid not null default gen_random_uuid());
alter table public.key_backups
  add column if not exists user_id uuid not null,
  add column if not exists encrypted_keys text not null,
  add column if not exists created_at timestamptz not null default now(),
  add column if not exists updated_at timestamptz not null default now();

create table if not exists public.webhooks (id uuid not null default gen_random_uuid());
alter table public.webhooks
  add column if not exists user_id uuid not null,
  add column if not exists url text not null,
  add column if not exists events text[] not null default '{}',
  add column if not exists created_at timestamptz not null default now();

create table if not exists public.sms_notifications (id uuid not null default gen_random_uuid());
alter table public.sms_notifications
  add column if not exists user_id uuid not null,
  add column if not exists conversation_id uuid not null,
  add column if not exists message_id uuid,
  add column if not exists phone_number text not null,
  add column if not exists message_content text not null,
  add column if not exists sent_at timestamptz default now(),
  add column if not exists status text default 'pending',
  add column if not exists error_message text,
  add column if not exists created_at timestamptz default now();

create table if not exists public.attachments (id uuid not null default gen_random_uuid());
alter table public.attachments
  add column if not exists message_id uuid not null,
  add column if not exists storage_path text not null,
  add column if not exists enc_metadata jsonb not null,
  add column if not exists size integer not null,
  add column if not exists server_ts timestamptz not null default now();

create table if not exists public.encrypted_key_backups (id uuid not null default gen_random_uuid());
alter table public.encrypted_key_backups
  add column if not exists user_id uuid not null,
  add column if not exists phone_number text not null,
  add column if not exists encrypted_identity_keys bytea not null,
  add column if not exists encrypted_master_key bytea not null,
  add column if not exists salt bytea not null,
  add column if not exists iterations integer not null default 100000,
  add column if not exists key_version integer not null default 1,
  add column if not exists device_fingerprint text,
  add column if not exists created_at timestamptz default now(),
  add column if not exists updated_at timestamptz default now();

create table if not exists public.key_access_log (id uuid not null default gen_random_uuid());
alter table public.key_access_log
  add column if not exists user_id uuid not null,
  add column if not exists device_fingerprint text,
  add column if not exists access_type text not null,
  add column if not exists ip_address inet,
  add column if not exists user_agent text,
  add column if not exists success boolean not null default true,
  add column if not exists error_message text,
  add column if not exists created_at timestamptz default now();

create table if not exists public.voice_calls (id text not null);
alter table public.voice_calls
  add column if not exists caller_id uuid not null,
  add column if not exists recipient_id uuid not null,
  add column if not exists call_type text not null,
  add column if not exists status text not null,
  add column if not exists started_at timestamptz not null default now(),
  add column if not exists connected_at timestamptz,
  add column if not exists ended_at timestamptz,
  add column if not exists duration_seconds integer,
  add column if not exists metadata jsonb default '{}'::jsonb,
  add column if not exists created_at timestamptz not null default now(),
  add column if not exists updated_at timestamptz not null default now();

-- Untouched by the API (schema.md §4.2): plausible columns.
create table if not exists public.user_presence (id uuid not null default extensions.uuid_generate_v4());
alter table public.user_presence
  add column if not exists user_id uuid not null,
  add column if not exists status text default 'offline',
  add column if not exists last_seen timestamptz default now(),
  add column if not exists current_conversation_id uuid,
  add column if not exists created_at timestamptz default now(),
  add column if not exists updated_at timestamptz default now();

create table if not exists public.call_sessions (id uuid not null default gen_random_uuid());
alter table public.call_sessions
  add column if not exists call_id text not null,
  add column if not exists initiator_id uuid not null,
  add column if not exists recipient_id uuid not null,
  add column if not exists session_state text not null default 'initiating',
  add column if not exists kem_public_key text,
  add column if not exists kem_ciphertext text,
  add column if not exists created_at timestamptz default now(),
  add column if not exists updated_at timestamptz default now(),
  add column if not exists ended_at timestamptz;

create table if not exists public.call_key_rotations (id uuid not null default gen_random_uuid());
alter table public.call_key_rotations
  add column if not exists call_session_id uuid not null,
  add column if not exists rotation_number integer not null default 1,
  add column if not exists initiated_by uuid not null,
  add column if not exists kem_public_key text,
  add column if not exists kem_ciphertext text,
  add column if not exists created_at timestamptz default now();

create table if not exists public.group_call_sessions (id uuid not null default gen_random_uuid());
alter table public.group_call_sessions
  add column if not exists conversation_id uuid not null,
  add column if not exists initiator_id uuid not null,
  add column if not exists call_type text not null default 'audio',
  add column if not exists status text not null default 'active',
  add column if not exists started_at timestamptz default now(),
  add column if not exists ended_at timestamptz,
  add column if not exists created_at timestamptz default now(),
  add column if not exists updated_at timestamptz default now();

create table if not exists public.group_call_participants (id uuid not null default gen_random_uuid());
alter table public.group_call_participants
  add column if not exists session_id uuid not null,
  add column if not exists user_id uuid not null,
  add column if not exists status text not null default 'joined',
  add column if not exists joined_at timestamptz default now(),
  add column if not exists left_at timestamptz;

create table if not exists public.sms_audit_log (id uuid not null default gen_random_uuid());
alter table public.sms_audit_log
  add column if not exists phone_number text not null,
  add column if not exists action text not null,
  add column if not exists status text,
  add column if not exists provider text,
  add column if not exists error_message text,
  add column if not exists metadata jsonb default '{}'::jsonb,
  add column if not exists created_at timestamptz default now();

create table if not exists public.sms_rate_limits (id uuid not null default gen_random_uuid());
alter table public.sms_rate_limits
  add column if not exists phone_number text not null,
  add column if not exists attempt_count integer not null default 0,
  add column if not exists window_start timestamptz not null default now(),
  add column if not exists blocked_until timestamptz,
  add column if not exists created_at timestamptz default now(),
  add column if not exists updated_at timestamptz default now();

create table if not exists public.sms_templates (id uuid not null default gen_random_uuid());
alter table public.sms_templates
  add column if not exists name text not null,
  add column if not exists template text not null,
  add column if not exists language text not null default 'en',
  add column if not exists is_active boolean not null default true,
  add column if not exists created_at timestamptz default now(),
  add column if not exists updated_at timestamptz default now();

-- ===============================================================================================================
-- 2. Constraints, by name (keys first, then checks, then foreign keys)
-- ===============================================================================================================
do $do$
declare
  c record;
begin
  for c in
    select * from (values
      -- primary keys
      ('public.users', 'users_pkey', 'primary key (id)', false),
      ('public.groups', 'groups_pkey', 'primary key (id)', false),
      ('public.group_members', 'group_members_pkey', 'primary key (id)', false),
      ('public.conversations', 'conversations_pkey', 'primary key (id)', false),
      ('public.conversation_participants', 'conversation_participants_pkey', 'primary key (id)', false),
      ('public.messages', 'messages_pkey', 'primary key (id)', false),
      ('public.message_recipients', 'message_recipients_pkey', 'primary key (id)', false),
      ('public.deliveries', 'deliveries_pkey', 'primary key (message_id, recipient_user_id)', false),
      ('public.message_status', 'message_status_pkey', 'primary key (id)', false),
      ('public.typing_indicators', 'typing_indicators_pkey', 'primary key (id)', false),
      ('public.encrypted_files', 'encrypted_files_pkey', 'primary key (id)', false),
      ('public.user_public_keys', 'user_public_keys_pkey', 'primary key (id)', false),
      ('public.key_backups', 'key_backups_pkey', 'primary key (id)', false),
      ('public.webhooks', 'webhooks_pkey', 'primary key (id)', false),
      ('public.sms_notifications', 'sms_notifications_pkey', 'primary key (id)', false),
      ('public.attachments', 'attachments_pkey', 'primary key (id)', false),
      ('public.encrypted_key_backups', 'encrypted_key_backups_pkey', 'primary key (id)', false),
      ('public.key_access_log', 'key_access_log_pkey', 'primary key (id)', false),
      ('public.voice_calls', 'voice_calls_pkey', 'primary key (id)', false),
      ('public.user_presence', 'user_presence_pkey', 'primary key (id)', false),
      ('public.call_sessions', 'call_sessions_pkey', 'primary key (id)', false),
      ('public.call_key_rotations', 'call_key_rotations_pkey', 'primary key (id)', false),
      ('public.group_call_sessions', 'group_call_sessions_pkey', 'primary key (id)', false),
      ('public.group_call_participants', 'group_call_participants_pkey', 'primary key (id)', false),
      ('public.sms_audit_log', 'sms_audit_log_pkey', 'primary key (id)', false),
      ('public.sms_rate_limits', 'sms_rate_limits_pkey', 'primary key (id)', false),
      ('public.sms_templates', 'sms_templates_pkey', 'primary key (id)', false),
      -- unique keys (users_phone_number_unique duplicates users_phone_number_key on purpose: production has both)
      ('public.users', 'users_phone_number_key', 'unique (phone_number)', false),
      ('public.users', 'users_phone_number_unique', 'unique (phone_number)', true),
      ('public.users', 'users_username_key', 'unique (username)', false),
      ('public.users', 'users_unique_identifier_key', 'unique (unique_identifier)', false),
      ('public.groups', 'groups_invite_code_key', 'unique (invite_code)', false),
      ('public.group_members', 'group_members_group_id_user_id_key', 'unique (group_id, user_id)', false),
      ('public.conversation_participants', 'conversation_participants_conversation_id_user_id_key',
        'unique (conversation_id, user_id)', false),
      ('public.message_recipients', 'message_recipients_message_id_recipient_user_id_key',
        'unique (message_id, recipient_user_id)', false),
      ('public.message_status', 'message_status_message_id_user_id_key', 'unique (message_id, user_id)', false),
      ('public.typing_indicators', 'typing_indicators_conversation_id_user_id_key',
        'unique (conversation_id, user_id)', false),
      ('public.encrypted_files', 'encrypted_files_message_id_idx', 'unique (message_id, id)', false),
      ('public.user_public_keys', 'user_public_keys_user_id_key_type_key', 'unique (user_id, key_type)', false),
      ('public.key_backups', 'key_backups_user_id_unique', 'unique (user_id)', false),
      ('public.encrypted_key_backups', 'encrypted_key_backups_user_id_key', 'unique (user_id)', false),
      ('public.user_presence', 'user_presence_user_id_key', 'unique (user_id)', false),
      ('public.group_call_participants', 'group_call_participants_session_id_user_id_key',
        'unique (session_id, user_id)', false),
      ('public.sms_rate_limits', 'sms_rate_limits_phone_number_key', 'unique (phone_number)', false),
      ('public.sms_templates', 'sms_templates_name_key', 'unique (name)', false),
      -- checks
      ('public.users', 'users_status_check', $c$check (status in ('online', 'away', 'busy', 'offline'))$c$, false),
      ('public.group_members', 'group_members_role_check',
        $c$check (role in ('owner', 'admin', 'moderator', 'member'))$c$, false),
      ('public.conversations', 'conversations_type_check',
        $c$check (type in ('direct', 'group', 'room', 'note_to_self'))$c$, false),
      ('public.conversation_participants', 'conversation_participants_role_check',
        $c$check (role in ('admin', 'moderator', 'member'))$c$, false),
      ('public.conversation_participants', 'conversation_participants_start_on_check',
        $c$check (start_on in ('delivered', 'read'))$c$, false),
      ('public.messages', 'messages_message_type_check',
        $c$check (message_type in ('text', 'image', 'file', 'system'))$c$, false),
      ('public.message_recipients', 'message_recipients_start_on_check',
        $c$check (start_on in ('delivered', 'read'))$c$, false),
      ('public.message_status', 'message_status_status_check',
        $c$check (status in ('sent', 'delivered', 'read'))$c$, false),
      ('public.sms_notifications', 'sms_notifications_status_check',
        $c$check (status in ('pending', 'sent', 'failed'))$c$, false),
      ('public.key_access_log', 'key_access_log_access_type_check',
        $c$check (access_type in ('backup_created', 'backup_updated', 'keys_restored', 'keys_accessed'))$c$, false),
      ('public.user_presence', 'user_presence_status_check',
        $c$check (status in ('online', 'away', 'busy', 'offline'))$c$, false),
      ('public.group_call_sessions', 'group_call_sessions_call_type_check',
        $c$check (call_type in ('audio', 'video'))$c$, false),
      -- foreign keys
      ('public.groups', 'groups_created_by_fkey', 'foreign key (created_by) references public.users (id) on delete set null', false),
      ('public.group_members', 'group_members_group_id_fkey', 'foreign key (group_id) references public.groups (id) on delete cascade', false),
      ('public.group_members', 'group_members_user_id_fkey', 'foreign key (user_id) references public.users (id) on delete cascade', false),
      ('public.conversations', 'conversations_created_by_fkey',
        'foreign key (created_by) references public.users (id) on delete set null deferrable initially deferred', false),
      ('public.conversations', 'conversations_group_id_fkey', 'foreign key (group_id) references public.groups (id) on delete cascade', false),
      ('public.conversation_participants', 'conversation_participants_conversation_id_fkey',
        'foreign key (conversation_id) references public.conversations (id) on delete cascade', false),
      ('public.conversation_participants', 'conversation_participants_user_id_fkey',
        'foreign key (user_id) references public.users (id) on delete cascade', false),
      ('public.messages', 'messages_conversation_id_fkey',
        'foreign key (conversation_id) references public.conversations (id) on delete cascade', false),
      ('public.messages', 'messages_sender_id_fkey', 'foreign key (sender_id) references public.users (id) on delete cascade', false),
      ('public.messages', 'messages_reply_to_id_fkey', 'foreign key (reply_to_id) references public.messages (id) on delete set null', false),
      ('public.message_recipients', 'message_recipients_message_id_fkey',
        'foreign key (message_id) references public.messages (id) on delete cascade', false),
      ('public.message_recipients', 'message_recipients_recipient_user_id_fkey',
        'foreign key (recipient_user_id) references public.users (id) on delete cascade', false),
      ('public.deliveries', 'deliveries_message_id_fkey', 'foreign key (message_id) references public.messages (id) on delete cascade', false),
      ('public.message_status', 'message_status_message_id_fkey',
        'foreign key (message_id) references public.messages (id) on delete cascade', false),
      ('public.message_status', 'message_status_user_id_fkey', 'foreign key (user_id) references public.users (id) on delete cascade', false),
      ('public.typing_indicators', 'typing_indicators_conversation_id_fkey',
        'foreign key (conversation_id) references public.conversations (id) on delete cascade', false),
      ('public.typing_indicators', 'typing_indicators_user_id_fkey', 'foreign key (user_id) references public.users (id) on delete cascade', false),
      ('public.encrypted_files', 'encrypted_files_message_id_fkey',
        'foreign key (message_id) references public.messages (id) on delete cascade', false),
      ('public.encrypted_files', 'encrypted_files_created_by_fkey', 'foreign key (created_by) references auth.users (id)', false),
      ('public.user_public_keys', 'user_public_keys_user_id_fkey', 'foreign key (user_id) references auth.users (id) on delete cascade', false),
      ('public.key_backups', 'key_backups_user_id_fkey', 'foreign key (user_id) references auth.users (id) on delete cascade', false),
      ('public.webhooks', 'webhooks_user_id_fkey', 'foreign key (user_id) references auth.users (id) on delete cascade', false),
      ('public.sms_notifications', 'sms_notifications_user_id_fkey',
        'foreign key (user_id) references public.users (id) on delete cascade', false),
      ('public.sms_notifications', 'sms_notifications_conversation_id_fkey',
        'foreign key (conversation_id) references public.conversations (id) on delete cascade', false),
      ('public.sms_notifications', 'sms_notifications_message_id_fkey',
        'foreign key (message_id) references public.messages (id) on delete set null', false),
      ('public.attachments', 'attachments_message_id_fkey', 'foreign key (message_id) references public.messages (id) on delete cascade', false),
      ('public.encrypted_key_backups', 'encrypted_key_backups_user_id_fkey',
        'foreign key (user_id) references auth.users (id) on delete cascade', false),
      ('public.key_access_log', 'key_access_log_user_id_fkey', 'foreign key (user_id) references auth.users (id) on delete cascade', false),
      ('public.voice_calls', 'voice_calls_caller_id_fkey', 'foreign key (caller_id) references public.users (id) on delete cascade', false),
      ('public.voice_calls', 'voice_calls_recipient_id_fkey', 'foreign key (recipient_id) references public.users (id) on delete cascade', false),
      ('public.user_presence', 'user_presence_user_id_fkey', 'foreign key (user_id) references public.users (id) on delete cascade', false),
      ('public.user_presence', 'user_presence_current_conversation_id_fkey',
        'foreign key (current_conversation_id) references public.conversations (id) on delete set null', false),
      ('public.call_sessions', 'call_sessions_call_id_fkey', 'foreign key (call_id) references public.voice_calls (id) on delete cascade', false),
      ('public.call_sessions', 'call_sessions_initiator_id_fkey', 'foreign key (initiator_id) references public.users (id) on delete cascade', false),
      ('public.call_sessions', 'call_sessions_recipient_id_fkey', 'foreign key (recipient_id) references public.users (id) on delete cascade', false),
      ('public.call_key_rotations', 'call_key_rotations_call_session_id_fkey',
        'foreign key (call_session_id) references public.call_sessions (id) on delete cascade', false),
      ('public.call_key_rotations', 'call_key_rotations_initiated_by_fkey',
        'foreign key (initiated_by) references public.users (id) on delete cascade', false),
      ('public.group_call_sessions', 'group_call_sessions_conversation_id_fkey',
        'foreign key (conversation_id) references public.conversations (id) on delete cascade', false),
      ('public.group_call_sessions', 'group_call_sessions_initiator_id_fkey',
        'foreign key (initiator_id) references public.users (id) on delete cascade', false),
      ('public.group_call_participants', 'group_call_participants_session_id_fkey',
        'foreign key (session_id) references public.group_call_sessions (id) on delete cascade', false),
      ('public.group_call_participants', 'group_call_participants_user_id_fkey',
        'foreign key (user_id) references public.users (id) on delete cascade', false)
    ) as v(tbl, name, def, allow_equivalent)
  loop
    if exists (select 1 from pg_constraint where conrelid = c.tbl::regclass and conname = c.name) then
      continue;
    end if;
    if c.def like 'primary key%'
       and exists (select 1 from pg_constraint where conrelid = c.tbl::regclass and contype = 'p') then
      continue;
    end if;
    execute format('alter table %s add constraint %I %s', c.tbl, c.name, c.def);
    -- An equivalent UNIQUE / FOREIGN KEY under another (production) name: keep that one, drop ours. Two foreign
    -- keys on one path would make PostgREST's unnamed embeds ambiguous.
    if not c.allow_equivalent and exists (
      select 1
        from pg_constraint mine
        join pg_constraint other
          on other.conrelid = mine.conrelid and other.conname <> mine.conname and other.contype = mine.contype
         and other.conkey = mine.conkey and other.confrelid = mine.confrelid
       where mine.conrelid = c.tbl::regclass and mine.conname = c.name and mine.contype in ('u', 'f')
    ) then
      execute format('alter table %s drop constraint %I', c.tbl, c.name);
    end if;
  end loop;
end
$do$;

-- ===============================================================================================================
-- 3. Indexes
-- ===============================================================================================================
create unique index if not exists users_username_lower_unique on public.users (lower(username));
create index if not exists idx_users_auth_user_id on public.users (auth_user_id);
create index if not exists idx_users_unique_identifier on public.users (unique_identifier);
create index if not exists idx_conversations_created_by on public.conversations (created_by);
create index if not exists idx_conversations_group_id on public.conversations (group_id);
create index if not exists idx_conversation_participants_user_id on public.conversation_participants (user_id);
create index if not exists idx_conversation_participants_conversation_id on public.conversation_participants (conversation_id);
create index if not exists idx_messages_conversation_id_created_at on public.messages (conversation_id, created_at desc);
create index if not exists idx_messages_sender_id on public.messages (sender_id);
create index if not exists idx_messages_expires_at on public.messages (expires_at) where expires_at is not null;
create index if not exists idx_message_recipients_recipient_user_id on public.message_recipients (recipient_user_id);
create index if not exists idx_message_recipients_expires_at on public.message_recipients (expires_at) where expires_at is not null;
create index if not exists idx_deliveries_recipient_user_id on public.deliveries (recipient_user_id);
create index if not exists idx_deliveries_unread on public.deliveries (recipient_user_id)
  where read_ts is null and deleted_ts is null;
create index if not exists idx_message_status_user_id on public.message_status (user_id);
create index if not exists idx_encrypted_files_storage_path on public.encrypted_files (storage_path);
create index if not exists idx_encrypted_files_created_by on public.encrypted_files (created_by);
create index if not exists idx_user_public_keys_user_id on public.user_public_keys (user_id);
create index if not exists idx_webhooks_user_id on public.webhooks (user_id);
create index if not exists idx_group_members_user_id on public.group_members (user_id);
create index if not exists idx_sms_notifications_user_id on public.sms_notifications (user_id);
create index if not exists idx_attachments_message_id on public.attachments (message_id);
create index if not exists idx_key_access_log_user_id on public.key_access_log (user_id);
create index if not exists idx_voice_calls_caller_id on public.voice_calls (caller_id);
create index if not exists idx_voice_calls_recipient_id on public.voice_calls (recipient_id);

-- ===============================================================================================================
-- 4. Trigger functions
-- ===============================================================================================================

create or replace function public.update_updated_at_column() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- key_backups' own updated_at function: the one function production left without a pinned search path.
create or replace function public.update_key_backups_updated_at() returns trigger
language plpgsql
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

create or replace function public.set_user_unique_identifier() returns trigger
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
create or replace function public.create_note_to_self_conversation() returns trigger
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

-- The creator of a conversation becomes its admin participant. Runs as the caller (RLS applies); any error is
-- swallowed so that the conversation insert itself never fails because of it.
create or replace function public.add_creator_as_participant() returns trigger
language plpgsql
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

-- Once guarded note-to-self conversations against deletion; a "temporary" migration reduced it to a no-op.
create or replace function public.prevent_note_to_self_deletion() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  return old;
end
$$;

create or replace function public.prevent_note_to_self_archive() returns trigger
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
create or replace function public.create_message_status_entries() returns trigger
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
create or replace function public.update_message_has_attachments() returns trigger
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

-- ===============================================================================================================
-- 5. Triggers (dropped again when the table already has a trigger of the same kind under another name)
-- ===============================================================================================================
do $do$
declare
  t record;
  my_type int2;
begin
  for t in
    select * from (values
      ('public.users', 'update_users_updated_at', 'before update', 'public.update_updated_at_column()'),
      ('public.users', 'set_users_unique_identifier', 'before insert', 'public.set_user_unique_identifier()'),
      ('public.users', 'create_note_to_self_on_user_insert', 'after insert', 'public.create_note_to_self_conversation()'),
      ('public.conversations', 'update_conversations_updated_at', 'before update', 'public.update_updated_at_column()'),
      ('public.conversations', 'add_creator_as_participant_trigger', 'after insert', 'public.add_creator_as_participant()'),
      ('public.conversations', 'prevent_note_to_self_deletion_trigger', 'before delete', 'public.prevent_note_to_self_deletion()'),
      ('public.conversation_participants', 'prevent_note_to_self_archive_trigger', 'before update',
        'public.prevent_note_to_self_archive()'),
      ('public.messages', 'set_message_expiration_trigger', 'before insert', 'public.set_message_expiration()'),
      ('public.messages', 'create_message_status_trigger', 'after insert', 'public.create_message_status_entries()'),
      ('public.encrypted_files', 'encrypted_files_set_has_attachments', 'after insert', 'public.update_message_has_attachments()'),
      ('public.encrypted_files', 'encrypted_files_clear_has_attachments', 'after delete', 'public.update_message_has_attachments()'),
      ('public.user_public_keys', 'update_user_public_keys_updated_at', 'before update', 'public.update_updated_at_column()'),
      ('public.key_backups', 'update_key_backups_updated_at', 'before update', 'public.update_key_backups_updated_at()'),
      ('public.encrypted_key_backups', 'update_encrypted_key_backups_updated_at', 'before update', 'public.update_updated_at_column()'),
      ('public.typing_indicators', 'update_typing_indicators_updated_at', 'before update', 'public.update_updated_at_column()'),
      ('public.user_presence', 'update_user_presence_updated_at', 'before update', 'public.update_updated_at_column()'),
      ('public.groups', 'update_groups_updated_at', 'before update', 'public.update_updated_at_column()'),
      ('public.voice_calls', 'update_voice_calls_updated_at', 'before update', 'public.update_updated_at_column()'),
      ('public.call_sessions', 'update_call_sessions_updated_at', 'before update', 'public.update_updated_at_column()'),
      ('public.group_call_sessions', 'update_group_call_sessions_updated_at', 'before update', 'public.update_updated_at_column()'),
      ('public.sms_templates', 'update_sms_templates_updated_at', 'before update', 'public.update_updated_at_column()')
    ) as v(tbl, name, timing, fn)
  loop
    execute format('drop trigger if exists %I on %s', t.name, t.tbl);
    execute format('create trigger %I %s on %s for each row execute function %s', t.name, t.timing, t.tbl, t.fn);
    select tgtype into my_type from pg_trigger where tgrelid = t.tbl::regclass and tgname = t.name;
    if exists (select 1 from pg_trigger o
                where o.tgrelid = t.tbl::regclass and not o.tgisinternal and o.tgname <> t.name and o.tgtype = my_type) then
      execute format('drop trigger %I on %s', t.name, t.tbl);
    end if;
  end loop;
end
$do$;

-- ===============================================================================================================
-- 6. RPCs (schema.md §5.1) — behaviour as in production, defects included; the fix migrations harden them.
-- ===============================================================================================================

-- Every conversation in which user_uuid (internal id) has a participant row, ignoring left_at and archived_at:
-- raw name and type, the latest message of any kind with its sender's username, and the number of the user's
-- unread, undeleted deliveries; newest last message first, conversations without messages last.
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
language sql stable
security invoker
set search_path = public, extensions
as $$
  select c.id, c.name, c.type, lm.encrypted_content, lm.username, lm.created_at,
         (select count(*)
            from public.deliveries d
            join public.messages dm on dm.id = d.message_id
           where dm.conversation_id = c.id and d.recipient_user_id = user_uuid
             and d.read_ts is null and d.deleted_ts is null)
    from public.conversations c
    join public.conversation_participants cp on cp.conversation_id = c.id and cp.user_id = user_uuid
    left join lateral (
      select m.encrypted_content, u.username, m.created_at
        from public.messages m
        left join public.users u on u.id = m.sender_id
       where m.conversation_id = c.id
       order by m.created_at desc
       limit 1
    ) lm on true
   order by lm.created_at desc nulls last
$$;

-- user_uuid is an AUTH uid, mapped here to the internal id. No check that it is the caller's (defect §6.2.6).
create or replace function public.archive_conversation(conversation_uuid uuid, user_uuid uuid) returns boolean
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  internal_id uuid;
  changed integer;
begin
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

-- One message_recipients row per key of p_encrypted_contents (key = recipient internal id, value = base64 text),
-- upserted on (message, recipient). A delivered-based disappearing timer starts now.
create or replace function public.fn_create_message_recipients(p_message_id uuid, p_encrypted_contents jsonb)
returns void
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  entry record;
  conv_id uuid;
  secs integer;
  starts text;
begin
  select m.conversation_id into conv_id from public.messages m where m.id = p_message_id;
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

-- One delivery per active participant except the sender. Production has no conflict handling: a second call fails
-- on the primary key (fixed later).
create or replace function public.fn_create_deliveries_for_message(p_message_id uuid) returns void
language plpgsql
security definer
set search_path = public, extensions
as $$
begin
  insert into public.deliveries (message_id, recipient_user_id, delivered_ts, expires_at)
  select m.id, cp.user_id, now(),
         case when cp.disappear_seconds > 0 and cp.start_on = 'delivered'
              then now() + make_interval(secs => cp.disappear_seconds) end
    from public.messages m
    join public.conversation_participants cp
      on cp.conversation_id = m.conversation_id and cp.left_at is null and cp.user_id <> m.sender_id
   where m.id = p_message_id;
end
$$;

-- Marks one message read for internal user p_user_id; starts a read-based timer (an existing expiry is kept).
create or replace function public.fn_mark_message_read(p_message_id uuid, p_user_id uuid) returns void
language plpgsql
security definer
set search_path = public, extensions
as $$
declare
  secs integer;
  starts text;
begin
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
  update public.users set last_active_at = now(), is_online = true where id = user_uuid;
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

-- Production guard: raises when auth.uid() differs from target_user_id. With the service-role key auth.uid() is
-- null, the comparison is null and the guard never fires (tightened later).
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
  if auth.uid() <> target_user_id then
    raise exception 'Access denied: can only update own public key';
  end if;
  insert into public.user_public_keys (user_id, public_key, key_type)
  values (target_user_id, public_key_param, key_type_param)
  on conflict (user_id, key_type) do update set public_key = excluded.public_key, updated_at = now()
  returning id into key_id;
  return key_id;
end
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

-- Groups in which user_uuid (internal id) is an active member, with room and active-member counts and the latest
-- message time in the group's rooms (else the group's creation time), newest first.
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
language sql stable
security invoker
set search_path = public, extensions
as $$
  select g.id, g.name, g.description, g.avatar_url, gm.role,
         (select count(*) from public.conversations c where c.group_id = g.id),
         (select count(*) from public.group_members m where m.group_id = g.id and m.left_at is null),
         coalesce((select max(msg.created_at)
                     from public.messages msg
                     join public.conversations c on c.id = msg.conversation_id
                    where c.group_id = g.id), g.created_at) as latest
    from public.groups g
    join public.group_members gm on gm.group_id = g.id and gm.user_id = user_uuid and gm.left_at is null
   order by latest desc
$$;

-- The "nuclear delete" of a user's encrypted data. Production behaviour: never consults auth.uid(), and deletes the
-- three key tables by INTERNAL id although they are keyed by auth uid (so those deletes never match).
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
    raise exception 'Users can only delete their own data';
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

    delete from public.encrypted_key_backups where user_id = target_user_id;
    get diagnostics n_enc_backups = row_count;

    delete from public.user_public_keys where user_id = target_user_id;
    get diagnostics n_public_keys = row_count;

    delete from public.key_access_log where user_id = target_user_id;
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

-- ===============================================================================================================
-- 7. Other functions (schema.md §5.2)
-- ===============================================================================================================

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

-- DANGEROUS and unscheduled: hard-deletes every message whose expires_at has passed (with the 30-day default, every
-- message after 30 days). The server must never schedule it. Created only when missing (its production return type
-- is not part of the contract, and CREATE OR REPLACE could not change it).
do $do$
begin
  if to_regprocedure('public.cleanup_expired_messages()') is null then
    execute $f$
      create function public.cleanup_expired_messages() returns integer
      language plpgsql
      security definer
      set search_path = public, extensions
      as $$
      declare
        removed integer;
      begin
        delete from public.messages where expires_at is not null and expires_at <= now();
        get diagnostics removed = row_count;
        return removed;
      end
      $$
    $f$;
  end if;
end
$do$;

-- DANGEROUS if executable by users: creates or re-links a users row for any phone number. Created only when
-- missing, for the same reason as above.
do $do$
begin
  if not exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                  where n.nspname = 'public' and p.proname = 'sync_user_with_auth') then
    execute $f$
      create function public.sync_user_with_auth(
        p_phone_number text, p_auth_user_id uuid, p_username text default null, p_display_name text default null)
      returns uuid
      language plpgsql
      security definer
      set search_path = public, extensions
      as $$
      declare
        found_id uuid;
      begin
        select u.id into found_id from public.users u where u.phone_number = p_phone_number limit 1;
        if found_id is not null then
          update public.users set auth_user_id = p_auth_user_id where id = found_id;
          return found_id;
        end if;
        insert into public.users (phone_number, username, display_name, auth_user_id)
        values (p_phone_number,
                coalesce(p_username, 'user_' || substr(replace(p_auth_user_id::text, '-', ''), 1, 8)),
                coalesce(p_display_name, p_username, 'User'),
                p_auth_user_id)
        returning id into found_id;
        return found_id;
      end
      $$
    $f$;
  end if;
end
$do$;

-- ===============================================================================================================
-- 8. Row-level security: enabled on every table; the policies of schema.md §6.1, defects included
-- ===============================================================================================================
do $do$
declare
  t text;
begin
  foreach t in array array[
    'users', 'conversations', 'conversation_participants', 'messages', 'message_recipients', 'deliveries',
    'message_status', 'typing_indicators', 'encrypted_files', 'user_public_keys', 'key_backups', 'webhooks',
    'sms_notifications', 'groups', 'group_members', 'attachments', 'encrypted_key_backups', 'key_access_log',
    'voice_calls', 'user_presence', 'call_sessions', 'call_key_rotations', 'group_call_sessions',
    'group_call_participants', 'sms_audit_log', 'sms_rate_limits', 'sms_templates']
  loop
    execute format('alter table public.%I enable row level security', t);
  end loop;
end
$do$;

-- A table's policies are (re)created only when it has no policies besides the ones named here; otherwise the table
-- already carries production's policies or the fix migrations' replacements, and this block leaves it alone.
-- "mine" below = the row's internal id belongs to the users row whose auth_user_id is auth.uid().
do $do$
declare
  p record;
begin
  for p in
    with defs(sch, tbl, name, cmd, roles, using_expr, check_expr) as (values
      -- users: four world-readable policies, own-row reads, own-row update; three dead id = auth.uid() updates
      ('public', 'users', 'Users can view all profiles', 'select', 'public', 'true', null),
      ('public', 'users', 'Public profiles are viewable by everyone', 'select', 'public', 'true', null),
      ('public', 'users', 'Users can search other users', 'select', 'public', 'true', null),
      ('public', 'users', 'Allow reading user profiles for messaging', 'select', 'public', 'true', null),
      ('public', 'users', 'Users can view own profile', 'select', 'public', 'auth.uid() = auth_user_id', null),
      ('public', 'users', 'Users can read own data', 'select', 'public', 'auth.uid() = id', null),
      ('public', 'users', 'Users can update own profile', 'update', 'public', 'auth.uid() = auth_user_id', null),
      ('public', 'users', 'Users can update own data', 'update', 'public', 'auth.uid() = id', null),
      ('public', 'users', 'Users can update their own profile', 'update', 'public', 'id = auth.uid()', null),
      ('public', 'users', 'Enable update for users based on id', 'update', 'public', 'auth.uid() = id', 'auth.uid() = id'),
      -- conversations
      ('public', 'conversations', 'Conversations are viewable by everyone', 'select', 'public', 'true', null),
      ('public', 'conversations', 'Authenticated users can view conversations', 'select', 'public',
        $q$auth.role() = 'authenticated'$q$, null),
      ('public', 'conversations', 'Users can view conversations they created', 'select', 'public',
        'created_by is null or created_by in (select u.id from public.users u where u.auth_user_id = auth.uid())', null),
      ('public', 'conversations', 'Authenticated users can create conversations', 'insert', 'public', null,
        $q$auth.role() = 'authenticated' and (created_by is null or created_by in (select u.id from public.users u where u.auth_user_id = auth.uid()))$q$),
      ('public', 'conversations', 'Users can create conversations', 'insert', 'public', null, 'created_by = auth.uid()'),
      ('public', 'conversations', 'Users can update conversations they created', 'update', 'public',
        $q$created_by in (select u.id from public.users u where u.auth_user_id = auth.uid()) or (created_by is null and auth.role() = 'authenticated')$q$, null),
      ('public', 'conversations', 'Conversation creators can update', 'update', 'public', 'created_by = auth.uid()', null),
      -- conversation_participants
      ('public', 'conversation_participants', 'Participants are viewable by everyone', 'select', 'public', 'true', null),
      ('public', 'conversation_participants', 'Users can view their own participations', 'select', 'public',
        'user_id in (select u.id from public.users u where u.auth_user_id = auth.uid())', null),
      ('public', 'conversation_participants', 'Authenticated users can add participants', 'insert', 'public', null,
        $q$auth.role() = 'authenticated'$q$),
      -- messages
      ('public', 'messages', 'Messages are viewable by everyone', 'select', 'public', 'true', null),
      ('public', 'messages', 'Users can send messages', 'insert', 'public', null,
        'sender_id in (select u.id from public.users u where u.auth_user_id = auth.uid())'),
      -- message_recipients
      ('public', 'message_recipients', 'Recipients can view their copies', 'select', 'public',
        'recipient_user_id in (select u.id from public.users u where u.auth_user_id = auth.uid())', null),
      ('public', 'message_recipients', 'Senders can create recipient copies', 'insert', 'public', null,
        'exists (select 1 from public.messages m where m.id = message_id and m.sender_id in (select u.id from public.users u where u.auth_user_id = auth.uid()))'),
      -- deliveries: wrong id space (internal id compared with auth uid)
      ('public', 'deliveries', 'Users can view their deliveries', 'select', 'public', 'recipient_user_id = auth.uid()', null),
      ('public', 'deliveries', 'Users can update their deliveries', 'update', 'public', 'recipient_user_id = auth.uid()', null),
      -- encrypted_files
      ('public', 'encrypted_files', 'Participants can view conversation files', 'select', 'public',
        'exists (select 1 from public.messages m join public.conversation_participants cp on cp.conversation_id = m.conversation_id where m.id = encrypted_files.message_id and cp.user_id in (select u.id from public.users u where u.auth_user_id = auth.uid()))', null),
      ('public', 'encrypted_files', 'Participants can upload files', 'insert', 'public', null,
        '(created_by = auth.uid() or created_by in (select u.id from public.users u where u.auth_user_id = auth.uid())) and exists (select 1 from public.messages m join public.conversation_participants cp on cp.conversation_id = m.conversation_id where m.id = encrypted_files.message_id and cp.user_id in (select u.id from public.users u where u.auth_user_id = auth.uid()))'),
      ('public', 'encrypted_files', 'Users can delete their own files', 'delete', 'public',
        'created_by = auth.uid() or created_by in (select u.id from public.users u where u.auth_user_id = auth.uid())', null),
      -- attachments: wrong id space
      ('public', 'attachments', 'Participants can view attachments', 'select', 'public',
        'exists (select 1 from public.messages m join public.conversation_participants cp on cp.conversation_id = m.conversation_id where m.id = attachments.message_id and cp.user_id = auth.uid())', null),
      -- user_public_keys (role authenticated): everyone reads, own writes
      ('public', 'user_public_keys', 'Authenticated users can read public keys', 'select', 'authenticated', 'true', null),
      ('public', 'user_public_keys', 'Users can insert own public key', 'insert', 'authenticated', null, 'user_id = auth.uid()'),
      ('public', 'user_public_keys', 'Users can update own public key', 'update', 'authenticated', 'user_id = auth.uid()', null),
      ('public', 'user_public_keys', 'Users can delete own public key', 'delete', 'authenticated', 'user_id = auth.uid()', null),
      -- key_backups
      ('public', 'key_backups', 'Users can view own key backup', 'select', 'public', 'auth.uid() = user_id', null),
      ('public', 'key_backups', 'Users can insert own key backup', 'insert', 'public', null, 'auth.uid() = user_id'),
      ('public', 'key_backups', 'Users can update own key backup', 'update', 'public', 'auth.uid() = user_id', null),
      ('public', 'key_backups', 'Users can delete own key backup', 'delete', 'public', 'auth.uid() = user_id', null),
      -- encrypted_key_backups
      ('public', 'encrypted_key_backups', 'Users manage own encrypted key backups', 'all', 'public', 'auth.uid() = user_id', null),
      ('public', 'encrypted_key_backups', 'Users can view own encrypted key backup', 'select', 'public', 'auth.uid() = user_id', null),
      ('public', 'encrypted_key_backups', 'Users can insert own encrypted key backup', 'insert', 'public', null, 'auth.uid() = user_id'),
      ('public', 'encrypted_key_backups', 'Users can update own encrypted key backup', 'update', 'public', 'auth.uid() = user_id', null),
      ('public', 'encrypted_key_backups', 'Users can delete own encrypted key backup', 'delete', 'public', 'auth.uid() = user_id', null),
      -- key_access_log: inserts open to callers without a user (anon)
      ('public', 'key_access_log', 'Users can view own key access log', 'select', 'public', 'auth.uid() = user_id', null),
      ('public', 'key_access_log', 'System can insert key access log', 'insert', 'public', null, 'auth.uid() is null'),
      -- webhooks (auth uid)
      ('public', 'webhooks', 'Users can view own webhooks', 'select', 'public', 'auth.uid() = user_id', null),
      ('public', 'webhooks', 'Users can create own webhooks', 'insert', 'public', null, 'auth.uid() = user_id'),
      ('public', 'webhooks', 'Users can delete own webhooks', 'delete', 'public', 'auth.uid() = user_id', null),
      -- groups and group_members: wrong id space on writes
      ('public', 'groups', 'Users can view public groups or own groups', 'select', 'public',
        $q$auth.role() = 'authenticated' and (is_public or created_by = auth.uid())$q$, null),
      ('public', 'groups', 'Users can create groups', 'insert', 'public', null, 'created_by = auth.uid()'),
      ('public', 'groups', 'Group creators can update groups', 'update', 'public', 'created_by = auth.uid()', null),
      ('public', 'group_members', 'Authenticated users can view group members', 'select', 'public',
        $q$auth.role() = 'authenticated'$q$, null),
      ('public', 'group_members', 'Users can join groups', 'insert', 'public', null, 'user_id = auth.uid()'),
      ('public', 'group_members', 'Users can update own membership', 'update', 'public', 'user_id = auth.uid()', null),
      -- sms_notifications: inserts open to anon
      ('public', 'sms_notifications', 'Users can view own sms notifications', 'select', 'public',
        'user_id in (select u.id from public.users u where u.auth_user_id = auth.uid())', null),
      ('public', 'sms_notifications', 'System can insert sms notifications', 'insert', 'public', null, 'auth.uid() is null'),
      -- calls
      ('public', 'voice_calls', 'Users can view own calls', 'select', 'public',
        'caller_id in (select u.id from public.users u where u.auth_user_id = auth.uid()) or recipient_id in (select u.id from public.users u where u.auth_user_id = auth.uid())', null),
      ('public', 'voice_calls', 'Users can create calls', 'insert', 'public', null,
        'caller_id in (select u.id from public.users u where u.auth_user_id = auth.uid())'),
      ('public', 'voice_calls', 'Call participants can update calls', 'update', 'public',
        'caller_id in (select u.id from public.users u where u.auth_user_id = auth.uid()) or recipient_id in (select u.id from public.users u where u.auth_user_id = auth.uid())', null),
      ('public', 'call_sessions', 'Users can view own call sessions', 'select', 'public',
        'initiator_id in (select u.id from public.users u where u.auth_user_id = auth.uid()) or recipient_id in (select u.id from public.users u where u.auth_user_id = auth.uid())', null),
      ('public', 'call_sessions', 'Users can create call sessions', 'insert', 'public', null,
        'initiator_id in (select u.id from public.users u where u.auth_user_id = auth.uid())'),
      ('public', 'call_sessions', 'Call session participants can update', 'update', 'public',
        'initiator_id in (select u.id from public.users u where u.auth_user_id = auth.uid()) or recipient_id in (select u.id from public.users u where u.auth_user_id = auth.uid())', null),
      ('public', 'call_key_rotations', 'Users can view own key rotations', 'select', 'public',
        'exists (select 1 from public.call_sessions s where s.id = call_session_id and (s.initiator_id in (select u.id from public.users u where u.auth_user_id = auth.uid()) or s.recipient_id in (select u.id from public.users u where u.auth_user_id = auth.uid())))', null),
      ('public', 'call_key_rotations', 'Users can create key rotations', 'insert', 'public', null,
        'initiated_by in (select u.id from public.users u where u.auth_user_id = auth.uid())'),
      ('public', 'call_key_rotations', 'Call participants can update key rotations', 'update', 'public',
        'exists (select 1 from public.call_sessions s where s.id = call_session_id and (s.initiator_id in (select u.id from public.users u where u.auth_user_id = auth.uid()) or s.recipient_id in (select u.id from public.users u where u.auth_user_id = auth.uid())))', null),
      -- group calls: each table's read policy queries the other -> "infinite recursion detected in policy"
      ('public', 'group_call_sessions', 'Participants can view group call sessions', 'select', 'public',
        'initiator_id in (select u.id from public.users u where u.auth_user_id = auth.uid()) or exists (select 1 from public.group_call_participants p where p.session_id = group_call_sessions.id and p.user_id in (select u.id from public.users u where u.auth_user_id = auth.uid()))', null),
      ('public', 'group_call_sessions', 'Users can create group call sessions', 'insert', 'public', null,
        'initiator_id in (select u.id from public.users u where u.auth_user_id = auth.uid())'),
      ('public', 'group_call_participants', 'Participants can view session members', 'select', 'public',
        'exists (select 1 from public.group_call_sessions s where s.id = group_call_participants.session_id)', null),
      ('public', 'group_call_participants', 'Users can join group calls', 'insert', 'public', null,
        'user_id in (select u.id from public.users u where u.auth_user_id = auth.uid())'),
      -- legacy SMS tables: service role only
      ('public', 'sms_audit_log', 'Service role manages sms audit log', 'all', 'public', $q$auth.role() = 'service_role'$q$, null),
      ('public', 'sms_rate_limits', 'Service role manages sms rate limits', 'all', 'public', $q$auth.role() = 'service_role'$q$, null),
      ('public', 'sms_templates', 'Service role manages sms templates', 'all', 'public', $q$auth.role() = 'service_role'$q$, null),
      -- storage.objects (§8): two near-identical avatar sets survive from a duplicated migration
      ('storage', 'objects', 'Avatar images are publicly accessible', 'select', 'public', $q$bucket_id = 'avatars'$q$, null),
      ('storage', 'objects', 'Users can upload their own avatar', 'insert', 'public', null,
        $q$bucket_id = 'avatars' and auth.uid()::text = (storage.foldername(name))[1]$q$),
      ('storage', 'objects', 'Users can update their own avatar', 'update', 'public',
        $q$bucket_id = 'avatars' and auth.uid()::text = (storage.foldername(name))[1]$q$, null),
      ('storage', 'objects', 'Users can delete their own avatar', 'delete', 'public',
        $q$bucket_id = 'avatars' and auth.uid()::text = (storage.foldername(name))[1]$q$, null),
      ('storage', 'objects', 'Anyone can view avatars', 'select', 'public', $q$bucket_id = 'avatars'$q$, null),
      ('storage', 'objects', 'Authenticated users can upload avatars', 'insert', 'public', null,
        $q$bucket_id = 'avatars' and (storage.foldername(name))[1] = auth.uid()::text$q$),
      ('storage', 'objects', 'Users can update own avatars', 'update', 'public',
        $q$bucket_id = 'avatars' and (storage.foldername(name))[1] = auth.uid()::text$q$, null),
      ('storage', 'objects', 'Users can delete own avatars', 'delete', 'public',
        $q$bucket_id = 'avatars' and (storage.foldername(name))[1] = auth.uid()::text$q$, null),
      ('storage', 'objects', 'Users can upload encrypted files', 'insert', 'public', null,
        $q$bucket_id = 'encrypted-files' and (storage.foldername(name))[1] = auth.uid()::text$q$),
      ('storage', 'objects', 'Users can delete own encrypted files', 'delete', 'public',
        $q$bucket_id = 'encrypted-files' and (storage.foldername(name))[1] = auth.uid()::text$q$, null),
      ('storage', 'objects', 'Participants can read encrypted files', 'select', 'public',
        $q$bucket_id = 'encrypted-files' and ((storage.foldername(name))[1] = auth.uid()::text or exists (select 1 from public.encrypted_files ef join public.messages m on m.id = ef.message_id join public.conversation_participants cp on cp.conversation_id = m.conversation_id where ef.storage_path = objects.name and cp.user_id in (select u.id from public.users u where u.auth_user_id = auth.uid())))$q$, null)
    )
    select d.*,
           exists (select 1 from pg_policies x
                    where x.schemaname = d.sch and x.tablename = d.tbl
                      and not exists (select 1 from defs d2
                                       where d2.sch = x.schemaname and d2.tbl = x.tablename and d2.name = x.policyname))
             as foreign_present
      from defs d
  loop
    continue when p.foreign_present;
    execute format('drop policy if exists %I on %I.%I', p.name, p.sch, p.tbl);
    execute format('create policy %I on %I.%I for %s to %s%s%s', p.name, p.sch, p.tbl, p.cmd, p.roles,
                   case when p.using_expr is not null then ' using (' || p.using_expr || ')' else '' end,
                   case when p.check_expr is not null then ' with check (' || p.check_expr || ')' else '' end);
  end loop;
end
$do$;

-- ===============================================================================================================
-- 9. Storage buckets (schema.md §8)
-- ===============================================================================================================
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('avatars', 'avatars', true, 104857600, array['image/jpeg', 'image/png', 'image/webp', 'image/gif'])
on conflict (id) do nothing;

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('encrypted-files', 'encrypted-files', false, 2147483648, null)
on conflict (id) do nothing;
