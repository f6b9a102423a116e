-- 20261201000850_api_indexes.sql — indexes suparelay's queries and policies need beyond production's.
--
--   idx_encrypted_files_storage_path        the encrypted-files read policy on storage.objects looks the file row up
--                                           by path for every object Storage considers (listings included)
--   idx_deliveries_unread                   unread counts per recipient
--   idx_messages_conversation_id_created_at a conversation's newest messages
--   idx_attachments_message_id              attachments of a message (its read policy)
create index if not exists idx_encrypted_files_storage_path on public.encrypted_files (storage_path);
create index if not exists idx_deliveries_unread on public.deliveries (recipient_user_id)
  where read_ts is null and deleted_ts is null;
create index if not exists idx_messages_conversation_id_created_at on public.messages (conversation_id, created_at desc);
create index if not exists idx_attachments_message_id on public.attachments (message_id);
