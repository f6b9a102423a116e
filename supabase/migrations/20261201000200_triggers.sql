-- 20261201000200_triggers.sql — the triggers of `public`, under production's names, on suparelay's functions.
--
-- Every user trigger on a table of `public` is dropped first (production's, or ours on a re-run; the functions
-- migration already dropped those whose function it replaced) and the set below is created: the same triggers,
-- names, timings and events as production, so nothing changes for the original server (the key tables' three
-- copies of the updated_at function are one).
do $do$
declare
  t record;
begin
  for t in
    select tg.tgname, c.oid::regclass as tbl
      from pg_trigger tg
      join pg_class c on c.oid = tg.tgrelid
      join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'public' and not tg.tgisinternal
  loop
    execute format('drop trigger %I on %s', t.tgname, t.tbl);
  end loop;
end
$do$;

-- updated_at stamps
create trigger update_users_updated_at before update on public.users
  for each row execute function public.update_updated_at_column();
create trigger update_conversations_updated_at before update on public.conversations
  for each row execute function public.update_updated_at_column();
create trigger update_groups_updated_at before update on public.groups
  for each row execute function public.update_updated_at_column();
create trigger update_typing_indicators_updated_at before update on public.typing_indicators
  for each row execute function public.update_updated_at_column();
create trigger update_user_presence_updated_at before update on public.user_presence
  for each row execute function public.update_updated_at_column();
create trigger update_voice_calls_updated_at before update on public.voice_calls
  for each row execute function public.update_updated_at_column();
create trigger update_call_sessions_updated_at before update on public.call_sessions
  for each row execute function public.update_updated_at_column();
create trigger update_group_call_sessions_updated_at before update on public.group_call_sessions
  for each row execute function public.update_updated_at_column();
create trigger update_sms_templates_updated_at before update on public.sms_templates
  for each row execute function public.update_updated_at_column();
create trigger update_user_public_keys_updated_at before update on public.user_public_keys
  for each row execute function public.update_updated_at_column();
create trigger key_backups_updated_at before update on public.key_backups
  for each row execute function public.update_updated_at_column();
create trigger update_encrypted_key_backups_updated_at before update on public.encrypted_key_backups
  for each row execute function public.update_updated_at_column();

-- users: the unique identifier before insert, the note-to-self conversation after
create trigger trigger_auto_generate_unique_identifier before insert on public.users
  for each row execute function public.auto_generate_unique_identifier();
create trigger trigger_auto_create_note_to_self after insert on public.users
  for each row execute function public.auto_create_note_to_self_conversation();

-- conversations: the creator becomes its admin; deletes are let through
create trigger trigger_auto_add_conversation_creator after insert on public.conversations
  for each row execute function public.auto_add_conversation_creator();
create trigger trigger_allow_note_to_self_deletion_cleanup before delete on public.conversations
  for each row execute function public.allow_note_to_self_deletion_during_cleanup();

-- conversation_participants: a note-to-self conversation cannot be archived
create trigger trigger_prevent_note_to_self_archival before update on public.conversation_participants
  for each row execute function public.prevent_note_to_self_archival();

-- messages: the expiry before insert, the legacy receipts after
create trigger trigger_set_message_expiration before insert on public.messages
  for each row execute function public.set_message_expiration();
create trigger trigger_messages_create_status after insert on public.messages
  for each row execute function public.trigger_create_message_status();

-- encrypted_files: messages.has_attachments follows the files
create trigger update_message_has_files_trigger after insert or delete on public.encrypted_files
  for each row execute function public.update_message_has_files();
