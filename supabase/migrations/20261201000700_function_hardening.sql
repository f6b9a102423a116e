-- 20261201000700_function_hardening.sql — who may execute what.
--
-- Fixes schema.md §6.2 defect 6 (unchecked SECURITY DEFINER functions executable by anon) and the RPC defects of
-- §5.1:
--   * EXECUTE on every function in `public` is revoked from PUBLIC, anon and authenticated, granted to
--     service_role, and granted back to authenticated only for the functions called under user tokens (list below).
--     Default privileges are changed the same way, so a function added by a LATER migration is executable by
--     service_role only until that migration grants it explicitly.
--   * Every definer function a user may call is bound to the caller — the bodies are in the functions migration
--     (public.request_is_privileged() lets the service role and direct database sessions through unchanged);
--     refusals raise SQLSTATE 42501, which
--     PostgREST answers with 403:
--       archive_conversation / unarchive_conversation  user_uuid must be auth.uid()
--       fn_mark_message_read                           p_user_id must be current_user_internal_id()
--       fn_create_message_recipients                   the caller must be the message's sender
--       fn_create_deliveries_for_message               the caller must be the message's sender; now idempotent
--                                                      (ON CONFLICT DO NOTHING) instead of failing on a re-call
--       update_user_activity                           user_uuid must be the caller's internal id
--       delete_encrypted_data_only                     target must map to auth.uid() ("Users can only delete
--                                                      their own data"; no JWT: "User must be authenticated");
--                                                      the three key tables are now deleted by AUTH uid
--                                                      (routes.md §4.6), they never matched before
--       upsert_user_public_key                         the guard also fires when auth.uid() is null (the anon
--                                                      role or a token without sub), except for privileged callers
--       get_user_conversations_enhanced, get_user_groups (invoker)  user_uuid must be the caller's internal id
--   * get_user_conversations_enhanced now omits conversations the caller LEFT (left_at not null), as
--     routes.md §7.1 requires; archived ones are still listed (the route reports is_archived).
--   * fn_get_user_active_deliveries           p_user_id must be current_user_internal_id()
--       get_user_conversations (invoker)         user_uuid must be the caller's internal id
--   * fn_cleanup_expired_messages, fn_messages_ready_for_gc,
--     get_inactive_participants, is_user_inactive, log_sms_notification and every trigger function: service_role
--     only (trigger functions need no EXECUTE grant to fire).
--
-- Granted to authenticated:
--   get_user_conversations_enhanced, archive_conversation, unarchive_conversation, fn_create_message_recipients,
--   fn_create_deliveries_for_message, fn_mark_message_read, update_user_activity, get_user_public_key,
--   upsert_user_public_key, find_user_by_unique_identifier, get_user_groups, delete_encrypted_data_only,
--   search_users, get_my_profile; and the helpers policies evaluate with the caller's rights:
--   current_user_internal_id, request_is_privileged, is_conversation_participant, is_active_participant,
--   is_conversation_admin, is_conversation_creator, is_message_sender, can_read_message, is_group_member,
--   is_group_admin, is_public_group, can_see_group_call; and, for the original server until the cutover,
--   create_call_session, establish_call_session, create_direct_conversation, fn_mark_read,
--   fn_get_user_active_deliveries, get_user_conversations.
--
-- Idempotent: REVOKE/GRANT are repeatable.

-- ---------------------------------------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------------------------------------
revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;

grant execute on function
  public.get_user_conversations_enhanced(uuid),
  public.archive_conversation(uuid, uuid),
  public.unarchive_conversation(uuid, uuid),
  public.fn_create_message_recipients(uuid, jsonb),
  public.fn_create_deliveries_for_message(uuid),
  public.fn_mark_message_read(uuid, uuid),
  public.update_user_activity(uuid),
  public.get_user_public_key(uuid, varchar),
  public.upsert_user_public_key(uuid, text, varchar),
  public.find_user_by_unique_identifier(text),
  public.get_user_groups(uuid),
  public.delete_encrypted_data_only(uuid, uuid),
  public.search_users(text),
  public.get_my_profile(),
  public.current_user_internal_id(),
  public.request_is_privileged(),
  public.is_conversation_participant(uuid),
  public.is_active_participant(uuid),
  public.is_conversation_admin(uuid),
  public.is_conversation_creator(uuid),
  public.is_message_sender(uuid),
  public.can_read_message(uuid),
  public.is_group_member(uuid),
  public.is_group_admin(uuid),
  public.is_public_group(uuid),
  public.can_see_group_call(text),
  public.create_call_session(text, uuid, text, text),
  public.establish_call_session(text, text, text),
  public.create_direct_conversation(uuid, uuid),
  public.fn_mark_read(uuid),
  public.fn_get_user_active_deliveries(uuid),
  public.get_user_conversations(uuid)
to authenticated;

-- Functions created later by this role: executable by service_role only until granted explicitly.
alter default privileges revoke execute on functions from public;
alter default privileges in schema public revoke execute on functions from anon, authenticated;
alter default privileges in schema public grant execute on functions to service_role;
