-- 20261201090000_cutover_users_private_columns.sql — CUTOVER: users' secrets leave the API.
--
-- Apply this only once /api is served by suparelay (README, "Switching an existing deployment"): the original Node
-- server reads users with `select *` (user search, profiles, sign-in) and fails once these privileges are in force.
--
-- phone_number, salt and backup_pin_hash become unreadable to the anon and authenticated API roles — not even one's
-- own, because column privileges cannot depend on the row. Signed-in users read every other column of every row
-- (the users read policy is `true` for authenticated). suparelay reads the hidden columns only through
-- get_my_profile(), search_users() (masked phone) and the service role, and never filters on them under a user
-- token.
--
-- Going back to the original server: scripts/sql/undo_cutover.sql restores the table-wide read, then the record of
-- this migration is removed (`supabase migration repair --status reverted 20261201090000`).
revoke select on public.users from anon, authenticated;
grant select (id, username, display_name, avatar_url, bio, status, last_seen, created_at, updated_at, auth_user_id,
              website, default_message_retention_days, last_active_at, is_online, sms_notifications_enabled,
              unique_identifier)
  on public.users to authenticated;
