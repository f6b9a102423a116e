-- 20261201000000_baseline.sql — the structure of QryptChat's production database, exactly.
--
-- What the app's 105 production migrations left in `public`, object by object: the 27 tables with their columns in
-- production's order (types, defaults, nullability), every constraint under its production name (keys, checks,
-- foreign keys with their ON DELETE actions), production's 72 indexes, row-level security enabled on every table,
-- and the two Storage buckets with production's settings. On an empty database (its `auth` and `storage` schemas
-- made by Supabase Auth and Storage) it creates exactly that; on a production database every statement finds its
-- object already there and changes nothing.
--
-- Not here, on purpose: functions, triggers and policies. Production's are replaced as a whole by the migrations
-- that follow (functions, triggers, policies …), on every database alike — that is what makes an upgraded
-- database end up identical to a fresh one without this file repeating the original's code.
--
-- The file names of our migrations sort after production's last one (20260330000000), so that `supabase db push`
-- applies them to a production database in order.
--
-- No psql meta-commands: the supabase CLI (and internal/dbsetup) apply this file as one transaction.

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

-- Untouched by the API (schema.md §4.2), as production has them.
create table if not exists public.user_presence (user_id uuid not null);
alter table public.user_presence
  add column if not exists status text not null default 'offline',
  add column if not exists last_seen timestamptz default now(),
  add column if not exists updated_at timestamptz default now();

create table if not exists public.call_sessions (id text not null);
alter table public.call_sessions
  add column if not exists call_id text not null,
  add column if not exists ml_kem_parameter_set text not null,
  add column if not exists initiator_id uuid not null,
  add column if not exists recipient_id uuid not null,
  add column if not exists initiator_public_key text not null,
  add column if not exists recipient_public_key text,
  add column if not exists ciphertext text,
  add column if not exists status text not null default 'pending',
  add column if not exists srtp_key_derived boolean default false,
  add column if not exists sframe_key_derived boolean default false,
  add column if not exists created_at timestamptz not null default now(),
  add column if not exists established_at timestamptz,
  add column if not exists ended_at timestamptz,
  add column if not exists updated_at timestamptz not null default now(),
  add column if not exists metadata jsonb default '{}'::jsonb;

create table if not exists public.call_key_rotations (id uuid not null default gen_random_uuid());
alter table public.call_key_rotations
  add column if not exists call_session_id text not null,
  add column if not exists rotation_sequence integer not null,
  add column if not exists initiator_public_key text not null,
  add column if not exists recipient_public_key text,
  add column if not exists ciphertext text,
  add column if not exists status text not null default 'pending',
  add column if not exists created_at timestamptz not null default now(),
  add column if not exists established_at timestamptz;

create table if not exists public.group_call_sessions (id text not null);
alter table public.group_call_sessions
  add column if not exists call_id text not null,
  add column if not exists creator_id uuid not null,
  add column if not exists ml_kem_parameter_set text not null,
  add column if not exists group_call_key_encrypted jsonb not null default '{}'::jsonb,
  add column if not exists status text not null default 'active',
  add column if not exists created_at timestamptz not null default now(),
  add column if not exists ended_at timestamptz,
  add column if not exists updated_at timestamptz not null default now(),
  add column if not exists metadata jsonb default '{}'::jsonb;

create table if not exists public.group_call_participants (id uuid not null default gen_random_uuid());
alter table public.group_call_participants
  add column if not exists group_call_session_id text not null,
  add column if not exists user_id uuid not null,
  add column if not exists public_key text not null,
  add column if not exists status text not null default 'invited',
  add column if not exists joined_at timestamptz,
  add column if not exists left_at timestamptz,
  add column if not exists created_at timestamptz not null default now();

create table if not exists public.sms_audit_log (id uuid not null default extensions.uuid_generate_v4());
alter table public.sms_audit_log
  add column if not exists phone_number text not null,
  add column if not exists action text not null,
  add column if not exists status text not null,
  add column if not exists error_code text,
  add column if not exists error_message text,
  add column if not exists user_agent text,
  add column if not exists ip_address inet,
  add column if not exists environment text default 'production',
  add column if not exists metadata jsonb default '{}'::jsonb,
  add column if not exists created_at timestamptz default now();

create table if not exists public.sms_rate_limits (id uuid not null default extensions.uuid_generate_v4());
alter table public.sms_rate_limits
  add column if not exists phone_number text not null,
  add column if not exists attempts integer default 1,
  add column if not exists last_attempt timestamptz default now(),
  add column if not exists blocked_until timestamptz,
  add column if not exists created_at timestamptz default now();

create table if not exists public.sms_templates (id uuid not null default extensions.uuid_generate_v4());
alter table public.sms_templates
  add column if not exists template_type text not null,
  add column if not exists template_content text not null,
  add column if not exists is_active boolean default true,
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
      ('public.user_presence', 'user_presence_pkey', 'primary key (user_id)', false),
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
      ('public.group_call_participants', 'group_call_participants_group_call_session_id_user_id_key',
        'unique (group_call_session_id, user_id)', false),
      ('public.call_key_rotations', 'call_key_rotations_call_session_id_rotation_sequence_key',
        'unique (call_session_id, rotation_sequence)', false),
      ('public.sms_rate_limits', 'sms_rate_limits_phone_number_key', 'unique (phone_number)', false),
      ('public.sms_templates', 'sms_templates_template_type_key', 'unique (template_type)', false),
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
      ('public.voice_calls', 'voice_calls_call_type_check', $c$check (call_type in ('voice', 'video'))$c$, false),
      ('public.voice_calls', 'voice_calls_status_check',
        $c$check (status in ('ringing', 'connected', 'ended', 'declined', 'missed'))$c$, false),
      ('public.call_sessions', 'call_sessions_ml_kem_parameter_set_check',
        $c$check (ml_kem_parameter_set in ('ML_KEM_1024', 'ML_KEM_768'))$c$, false),
      ('public.call_sessions', 'call_sessions_status_check',
        $c$check (status in ('pending', 'established', 'failed', 'ended'))$c$, false),
      ('public.call_key_rotations', 'call_key_rotations_status_check',
        $c$check (status in ('pending', 'established', 'failed'))$c$, false),
      ('public.group_call_sessions', 'group_call_sessions_ml_kem_parameter_set_check',
        $c$check (ml_kem_parameter_set in ('ML_KEM_1024', 'ML_KEM_768'))$c$, false),
      ('public.group_call_sessions', 'group_call_sessions_status_check', $c$check (status in ('active', 'ended'))$c$, false),
      ('public.group_call_participants', 'group_call_participants_status_check',
        $c$check (status in ('invited', 'joined', 'left'))$c$, false),
      ('public.sms_audit_log', 'sms_audit_log_action_check',
        $c$check (action in ('send_sms', 'verify_sms', 'send_failed', 'verify_failed'))$c$, false),
      ('public.sms_audit_log', 'sms_audit_log_status_check', $c$check (status in ('success', 'error', 'warning'))$c$, false),
      ('public.sms_templates', 'sms_templates_template_type_check',
        $c$check (template_type in ('phone_verification', 'phone_change'))$c$, false),
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
      ('public.call_sessions', 'call_sessions_call_id_fkey', 'foreign key (call_id) references public.voice_calls (id) on delete cascade', false),
      ('public.call_sessions', 'call_sessions_initiator_id_fkey', 'foreign key (initiator_id) references public.users (id) on delete cascade', false),
      ('public.call_sessions', 'call_sessions_recipient_id_fkey', 'foreign key (recipient_id) references public.users (id) on delete cascade', false),
      ('public.call_key_rotations', 'call_key_rotations_call_session_id_fkey',
        'foreign key (call_session_id) references public.call_sessions (id) on delete cascade', false),
      ('public.group_call_sessions', 'group_call_sessions_call_id_fkey',
        'foreign key (call_id) references public.voice_calls (id) on delete cascade', false),
      ('public.group_call_sessions', 'group_call_sessions_creator_id_fkey',
        'foreign key (creator_id) references public.users (id) on delete cascade', false),
      ('public.group_call_participants', 'group_call_participants_group_call_session_id_fkey',
        'foreign key (group_call_session_id) references public.group_call_sessions (id) on delete cascade', false),
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
-- Exactly production's indexes (names, columns, predicates). Indexes suparelay's queries need beyond these are
-- added by its own later migrations, on every database alike.
create index if not exists idx_call_key_rotations_session_id on public.call_key_rotations (call_session_id);
create index if not exists idx_call_key_rotations_sequence on public.call_key_rotations (call_session_id, rotation_sequence);
create index if not exists idx_call_sessions_call_id on public.call_sessions (call_id);
create index if not exists idx_call_sessions_created_at on public.call_sessions (created_at);
create index if not exists idx_call_sessions_initiator_id on public.call_sessions (initiator_id);
create index if not exists idx_call_sessions_recipient_id on public.call_sessions (recipient_id);
create index if not exists idx_call_sessions_status on public.call_sessions (status);
create index if not exists idx_conversation_participants_archived_at on public.conversation_participants (archived_at) where (archived_at is not null);
create index if not exists idx_conversation_participants_conversation_id on public.conversation_participants (conversation_id);
create index if not exists idx_conversation_participants_user_id on public.conversation_participants (user_id);
create index if not exists idx_conversations_position on public.conversations ("position");
create index if not exists idx_conversations_created_by on public.conversations (created_by);
create index if not exists idx_conversations_group_id on public.conversations (group_id);
create index if not exists deliveries_expires_idx on public.deliveries (expires_at) where (deleted_ts IS NULL);
create index if not exists deliveries_message_idx on public.deliveries (message_id);
create index if not exists deliveries_recipient_idx on public.deliveries (recipient_user_id);
create index if not exists encrypted_files_created_at_idx on public.encrypted_files (created_at);
create index if not exists encrypted_files_created_by_idx on public.encrypted_files (created_by);
create index if not exists idx_encrypted_key_backups_phone on public.encrypted_key_backups (phone_number);
create index if not exists idx_encrypted_key_backups_user_id on public.encrypted_key_backups (user_id);
create index if not exists idx_group_call_participants_session_id on public.group_call_participants (group_call_session_id);
create index if not exists idx_group_call_participants_user_id on public.group_call_participants (user_id);
create index if not exists idx_group_call_sessions_call_id on public.group_call_sessions (call_id);
create index if not exists idx_group_call_sessions_creator_id on public.group_call_sessions (creator_id);
create index if not exists idx_group_call_sessions_status on public.group_call_sessions (status);
create index if not exists idx_group_members_group_id on public.group_members (group_id);
create index if not exists idx_group_members_user_id on public.group_members (user_id);
create index if not exists idx_groups_created_by on public.groups (created_by);
create index if not exists idx_groups_invite_code on public.groups (invite_code);
create index if not exists idx_key_access_log_created_at on public.key_access_log (created_at);
create index if not exists idx_key_access_log_user_id on public.key_access_log (user_id);
create index if not exists idx_key_backups_user_id on public.key_backups (user_id);
create index if not exists idx_message_recipients_expires_at on public.message_recipients (expires_at) where (expires_at is not null);
create index if not exists idx_message_recipients_message_id on public.message_recipients (message_id);
create index if not exists idx_message_recipients_lookup on public.message_recipients (message_id, recipient_user_id);
create index if not exists idx_message_recipients_read_at on public.message_recipients (read_at) where (read_at is not null);
create index if not exists idx_message_recipients_recipient_user_id on public.message_recipients (recipient_user_id);
create index if not exists idx_message_status_message_id on public.message_status (message_id);
create index if not exists idx_message_status_user_id on public.message_status (user_id);
create index if not exists idx_messages_conversation_id on public.messages (conversation_id);
create index if not exists idx_messages_created_at on public.messages (created_at desc);
create index if not exists idx_messages_expires_at on public.messages (expires_at) where (expires_at is not null);
create index if not exists messages_has_attachments_idx on public.messages (has_attachments) where (has_attachments = true);
create index if not exists idx_messages_sender_id on public.messages (sender_id);
create index if not exists idx_sms_audit_log_action on public.sms_audit_log (action);
create index if not exists idx_sms_audit_log_created_at on public.sms_audit_log (created_at desc);
create index if not exists idx_sms_audit_log_phone_number on public.sms_audit_log (phone_number);
create index if not exists idx_sms_audit_log_status on public.sms_audit_log (status);
create index if not exists idx_sms_notifications_conversation_id on public.sms_notifications (conversation_id);
create index if not exists idx_sms_notifications_sent_at on public.sms_notifications (sent_at);
create index if not exists idx_sms_notifications_status on public.sms_notifications (status);
create index if not exists idx_sms_notifications_user_id on public.sms_notifications (user_id);
create index if not exists idx_sms_rate_limits_blocked_until on public.sms_rate_limits (blocked_until);
create index if not exists idx_sms_rate_limits_phone_number on public.sms_rate_limits (phone_number);
create index if not exists idx_sms_templates_type_active on public.sms_templates (template_type, is_active);
create index if not exists idx_typing_indicators_conversation_id on public.typing_indicators (conversation_id);
create index if not exists idx_user_public_keys_key_type on public.user_public_keys (key_type);
create index if not exists idx_user_public_keys_user_id on public.user_public_keys (user_id);
create index if not exists idx_users_auth_user_id_lookup on public.users (auth_user_id) where (auth_user_id is not null);
create index if not exists idx_users_auth_user_id on public.users (auth_user_id);
create index if not exists idx_users_is_online on public.users (is_online);
create index if not exists idx_users_last_active_at on public.users (last_active_at);
create index if not exists idx_users_phone_number on public.users (phone_number);
create index if not exists idx_users_unique_identifier on public.users (unique_identifier);
create index if not exists idx_users_username on public.users (username);
create index if not exists idx_voice_calls_caller_id on public.voice_calls (caller_id);
create index if not exists idx_voice_calls_user_history on public.voice_calls (caller_id, recipient_id, started_at desc);
create index if not exists idx_voice_calls_recipient_id on public.voice_calls (recipient_id);
create index if not exists idx_voice_calls_started_at on public.voice_calls (started_at);
create index if not exists idx_voice_calls_status on public.voice_calls (status);
create index if not exists idx_webhooks_user_id on public.webhooks (user_id);
create unique index if not exists users_username_lower_unique on public.users (lower(username));

-- ===============================================================================================================
-- 4. Row-level security: enabled on every table (the policies come with the later migrations)
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

-- ===============================================================================================================
-- 5. Storage buckets (schema.md §8)
-- ===============================================================================================================
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('avatars', 'avatars', true, 104857600, array['image/jpeg', 'image/png', 'image/webp', 'image/gif'])
on conflict (id) do nothing;

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('encrypted-files', 'encrypted-files', false, 2147483648, null)
on conflict (id) do nothing;
