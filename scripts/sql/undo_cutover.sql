-- undo_cutover.sql — going back to the original Node server after the cutover migrations.
--
-- Restores what 20261201090000_cutover_users_private_columns.sql took away: signed-in users read the whole users
-- table again (anon still reads nothing), so the original server's `select *` queries work. Run it with psql as
-- the database owner, then mark the migration reverted so that a later `supabase db push` applies it again:
--   supabase migration repair --status reverted 20261201090000 --db-url "$DATABASE_URL"
-- Idempotent.
revoke select on public.users from authenticated;
grant select on public.users to authenticated;
