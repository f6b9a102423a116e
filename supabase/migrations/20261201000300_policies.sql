-- 20261201000300_policies.sql — every policy starts from nothing; the tables no later migration covers get theirs.
--
-- First all policies of `public` are dropped, and on storage.objects those that concern the app's buckets
-- ('avatars', 'encrypted-files'): production's (69 + 14, among them loose `true` reads, policies comparing internal
-- ids with auth.uid() and duplicated sets) or ours on a re-run. The membership, id-space and policy-gap migrations
-- that follow create the policies of the chat, profile, group, typing, presence and group-call tables. Created here,
-- with production's meaning where it was sound and the evident intent where it was not:
--   * user_public_keys (keyed by auth uid): every signed-in user reads public keys; writes only one's own.
--   * key_backups, encrypted_key_backups, webhooks, key_access_log reads (auth uid): one's own rows. No inserts into
--     key_access_log from users: production let callers WITHOUT a user (anon) insert; the server writes it with the
--     service role.
--   * sms_notifications: reads of one's own (internal id); the service role writes (the anon insert policy goes).
--   * encrypted_files: participants of the message's conversation read; the uploader (created_by = auth uid) adds a
--     file to a message of a conversation they are in, and deletes their own files.
--   * voice_calls, call_sessions, call_key_rotations: the two parties (internal ids); production also compared
--     internal ids with auth.uid(), which never matched.
--   * sms_audit_log, sms_rate_limits, sms_templates: nobody but the service role (which bypasses RLS anyway).
--   * storage.objects: avatars are public to read and written only into one's own folder; encrypted files are
--     uploaded and deleted only in one's own folder (reads: membership migration).
do $do$
declare
  p record;
begin
  for p in
    select schemaname, tablename, policyname
      from pg_policies
     where schemaname = 'public'
        or (schemaname = 'storage' and tablename = 'objects'
            and (coalesce(qual, '') || ' ' || coalesce(with_check, '')) ~ '''(avatars|encrypted-files)''')
  loop
    execute format('drop policy %I on %I.%I', p.policyname, p.schemaname, p.tablename);
  end loop;
end
$do$;

-- user_public_keys
create policy user_public_keys_select_authenticated on public.user_public_keys
  for select to authenticated using (true);
create policy user_public_keys_insert_own on public.user_public_keys
  for insert to authenticated with check (user_id = auth.uid());
create policy user_public_keys_update_own on public.user_public_keys
  for update to authenticated using (user_id = auth.uid()) with check (user_id = auth.uid());
create policy user_public_keys_delete_own on public.user_public_keys
  for delete to authenticated using (user_id = auth.uid());

-- key_backups
create policy key_backups_select_own on public.key_backups
  for select to authenticated using (user_id = auth.uid());
create policy key_backups_insert_own on public.key_backups
  for insert to authenticated with check (user_id = auth.uid());
create policy key_backups_update_own on public.key_backups
  for update to authenticated using (user_id = auth.uid()) with check (user_id = auth.uid());
create policy key_backups_delete_own on public.key_backups
  for delete to authenticated using (user_id = auth.uid());

-- encrypted_key_backups
create policy encrypted_key_backups_all_own on public.encrypted_key_backups
  for all to authenticated using (user_id = auth.uid()) with check (user_id = auth.uid());

-- key_access_log
create policy key_access_log_select_own on public.key_access_log
  for select to authenticated using (user_id = auth.uid());

-- webhooks
create policy webhooks_select_own on public.webhooks
  for select to authenticated using (user_id = auth.uid());
create policy webhooks_insert_own on public.webhooks
  for insert to authenticated with check (user_id = auth.uid());
create policy webhooks_update_own on public.webhooks
  for update to authenticated using (user_id = auth.uid()) with check (user_id = auth.uid());
create policy webhooks_delete_own on public.webhooks
  for delete to authenticated using (user_id = auth.uid());

-- sms_notifications
create policy sms_notifications_select_own on public.sms_notifications
  for select to authenticated using (user_id = (select public.current_user_internal_id()));

-- encrypted_files
create policy encrypted_files_select_participant on public.encrypted_files
  for select to authenticated
  using (exists (select 1 from public.messages m
                   join public.conversation_participants cp on cp.conversation_id = m.conversation_id
                  where m.id = encrypted_files.message_id
                    and cp.user_id = (select public.current_user_internal_id())));
create policy encrypted_files_insert_uploader on public.encrypted_files
  for insert to authenticated
  with check (created_by = auth.uid()
              and exists (select 1 from public.messages m
                            join public.conversation_participants cp on cp.conversation_id = m.conversation_id
                           where m.id = encrypted_files.message_id
                             and cp.user_id = (select public.current_user_internal_id()) and cp.left_at is null));
create policy encrypted_files_delete_uploader on public.encrypted_files
  for delete to authenticated using (created_by = auth.uid());

-- voice_calls
create policy voice_calls_select_party on public.voice_calls
  for select to authenticated
  using ((select public.current_user_internal_id()) in (caller_id, recipient_id));
create policy voice_calls_insert_caller on public.voice_calls
  for insert to authenticated with check (caller_id = (select public.current_user_internal_id()));
create policy voice_calls_update_party on public.voice_calls
  for update to authenticated
  using ((select public.current_user_internal_id()) in (caller_id, recipient_id))
  with check ((select public.current_user_internal_id()) in (caller_id, recipient_id));

-- call_sessions
create policy call_sessions_select_party on public.call_sessions
  for select to authenticated
  using ((select public.current_user_internal_id()) in (initiator_id, recipient_id));
create policy call_sessions_insert_initiator on public.call_sessions
  for insert to authenticated with check (initiator_id = (select public.current_user_internal_id()));
create policy call_sessions_update_party on public.call_sessions
  for update to authenticated
  using ((select public.current_user_internal_id()) in (initiator_id, recipient_id))
  with check ((select public.current_user_internal_id()) in (initiator_id, recipient_id));

-- call_key_rotations: through the session, which the caller must be a party of
create policy call_key_rotations_select_party on public.call_key_rotations
  for select to authenticated
  using (exists (select 1 from public.call_sessions s where s.id = call_key_rotations.call_session_id));
create policy call_key_rotations_insert_party on public.call_key_rotations
  for insert to authenticated
  with check (exists (select 1 from public.call_sessions s where s.id = call_key_rotations.call_session_id));
create policy call_key_rotations_update_party on public.call_key_rotations
  for update to authenticated
  using (exists (select 1 from public.call_sessions s where s.id = call_key_rotations.call_session_id))
  with check (exists (select 1 from public.call_sessions s where s.id = call_key_rotations.call_session_id));

-- sms_audit_log, sms_rate_limits, sms_templates: no policy (RLS on, so only the service role).

-- storage.objects
create policy avatars_select_public on storage.objects
  for select using (bucket_id = 'avatars');
create policy avatars_insert_own_folder on storage.objects
  for insert to authenticated
  with check (bucket_id = 'avatars' and (storage.foldername(name))[1] = auth.uid()::text);
create policy avatars_update_own_folder on storage.objects
  for update to authenticated
  using (bucket_id = 'avatars' and (storage.foldername(name))[1] = auth.uid()::text)
  with check (bucket_id = 'avatars' and (storage.foldername(name))[1] = auth.uid()::text);
create policy avatars_delete_own_folder on storage.objects
  for delete to authenticated
  using (bucket_id = 'avatars' and (storage.foldername(name))[1] = auth.uid()::text);
create policy encrypted_files_objects_insert_own_folder on storage.objects
  for insert to authenticated
  with check (bucket_id = 'encrypted-files' and (storage.foldername(name))[1] = auth.uid()::text);
create policy encrypted_files_objects_delete_own_folder on storage.objects
  for delete to authenticated
  using (bucket_id = 'encrypted-files' and (storage.foldername(name))[1] = auth.uid()::text);
