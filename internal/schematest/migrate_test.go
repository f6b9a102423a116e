package schematest

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/qryptchat/suparelay/internal/dbsetup"
)

// The 27 tables of schema.md §1.
var allTables = []string{
	"users", "conversations", "conversation_participants", "messages", "message_recipients", "deliveries",
	"message_status", "typing_indicators", "encrypted_files", "user_public_keys", "key_backups", "webhooks",
	"sms_notifications", "groups", "group_members", "attachments", "encrypted_key_backups", "key_access_log",
	"voice_calls", "user_presence", "call_sessions", "call_key_rotations", "group_call_sessions",
	"group_call_participants", "sms_audit_log", "sms_rate_limits", "sms_templates",
}

// rpcs are the functions of schema.md §5 (plus the fix migrations' additions) with the exact signature PostgREST
// matches on, and whether a user token may call them.
var rpcs = []struct {
	name, args, result    string
	definer, userCallable bool
}{
	{"get_user_conversations_enhanced", "user_uuid uuid", "TABLE(conversation_id uuid, conversation_name text, conversation_type text, last_message_encrypted_content bytea, last_message_sender_username text, last_message_at timestamp with time zone, unread_count bigint)", false, true},
	{"archive_conversation", "conversation_uuid uuid, user_uuid uuid", "boolean", true, true},
	{"unarchive_conversation", "conversation_uuid uuid, user_uuid uuid", "boolean", true, true},
	{"fn_create_message_recipients", "p_message_id uuid, p_encrypted_contents jsonb", "void", true, true},
	{"fn_create_deliveries_for_message", "p_message_id uuid", "void", true, true},
	{"fn_mark_message_read", "p_message_id uuid, p_user_id uuid", "void", true, true},
	{"update_user_activity", "user_uuid uuid", "void", true, true},
	{"get_user_public_key", "target_user_id uuid, key_type_param character varying DEFAULT 'ECDH-P256'::character varying", "text", true, true},
	{"upsert_user_public_key", "target_user_id uuid, public_key_param text, key_type_param character varying DEFAULT 'ECDH-P256'::character varying", "uuid", true, true},
	{"find_user_by_unique_identifier", "identifier text", "TABLE(id uuid, username text, display_name text, avatar_url text, bio text, website text)", true, true},
	{"get_user_groups", "user_uuid uuid", "TABLE(group_id uuid, group_name text, group_description text, group_avatar_url text, user_role text, room_count bigint, member_count bigint, latest_activity timestamp with time zone)", false, true},
	{"delete_encrypted_data_only", "authenticated_user_id uuid, target_user_id uuid", "json", true, true},
	{"fn_cleanup_expired_messages", "p_user_id uuid DEFAULT NULL::uuid", "integer", true, false},
	{"get_inactive_participants", "conversation_uuid uuid", "TABLE(user_id uuid, phone_number text, display_name text, username text)", true, false},
	{"is_user_inactive", "user_uuid uuid", "boolean", true, false},
	{"log_sms_notification", "user_uuid uuid, conversation_uuid uuid, message_uuid uuid, phone text, content text, notification_status text DEFAULT 'pending'::text, error_msg text DEFAULT NULL::text", "uuid", true, false},
	{"fn_messages_ready_for_gc", "", "SETOF uuid", true, false},
	// the original server's remaining RPCs, kept for it until the cutover
	{"create_call_session", "p_call_id text, p_recipient_id uuid, p_ml_kem_parameter_set text DEFAULT 'ML_KEM_1024'::text, p_initiator_public_key text DEFAULT NULL::text", "text", true, true},
	{"establish_call_session", "p_session_id text, p_recipient_public_key text, p_ciphertext text", "boolean", true, true},
	{"create_direct_conversation", "user1_id uuid, user2_id uuid", "uuid", false, true},
	{"fn_mark_read", "p_message_id uuid", "void", true, true},
	{"fn_get_user_active_deliveries", "p_user_id uuid", "TABLE(message_id uuid, delivered_ts timestamp with time zone, read_ts timestamp with time zone, expires_at timestamp with time zone)", true, true},
	{"get_user_conversations", "user_uuid uuid", "TABLE(conversation_id uuid, conversation_type text, conversation_name text, conversation_avatar_url text, group_id uuid, group_name text, participant_count bigint, latest_message_id uuid, latest_message_content bytea, latest_message_sender_id uuid, latest_message_sender_username text, latest_message_created_at timestamp with time zone, unread_count bigint)", false, true},
	{"current_user_internal_id", "", "uuid", true, true},
	{"search_users", "q text", "TABLE(id uuid, username text, display_name text, avatar_url text, unique_identifier text, phone_partial text, phone_score integer)", true, true},
}

// Constraint names the contract relies on (PostgREST embed hints, upsert keys) and what their definitions contain.
var namedConstraints = []struct{ table, name, defContains string }{
	{"users", "users_pkey", "PRIMARY KEY (id)"},
	{"users", "users_phone_number_key", "UNIQUE (phone_number)"},
	{"users", "users_phone_number_unique", "UNIQUE (phone_number)"},
	{"users", "users_username_key", "UNIQUE (username)"},
	{"users", "users_unique_identifier_key", "UNIQUE (unique_identifier)"},
	{"conversations", "conversations_created_by_fkey", "REFERENCES users(id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED"},
	{"conversations", "conversations_group_id_fkey", "REFERENCES groups(id) ON DELETE CASCADE"},
	{"conversation_participants", "conversation_participants_user_id_fkey", "REFERENCES users(id) ON DELETE CASCADE"},
	{"conversation_participants", "conversation_participants_conversation_id_user_id_key", "UNIQUE (conversation_id, user_id)"},
	{"messages", "messages_sender_id_fkey", "REFERENCES users(id) ON DELETE CASCADE"},
	{"messages", "messages_reply_to_id_fkey", "REFERENCES messages(id) ON DELETE SET NULL"},
	{"message_recipients", "message_recipients_message_id_recipient_user_id_key", "UNIQUE (message_id, recipient_user_id)"},
	{"deliveries", "deliveries_pkey", "PRIMARY KEY (message_id, recipient_user_id)"},
	{"encrypted_files", "encrypted_files_message_id_idx", "UNIQUE (message_id, id)"},
	{"encrypted_files", "encrypted_files_created_by_fkey", "REFERENCES auth.users(id)"},
	{"user_public_keys", "user_public_keys_user_id_key_type_key", "UNIQUE (user_id, key_type)"},
	{"key_backups", "key_backups_user_id_unique", "UNIQUE (user_id)"},
	{"message_status", "message_status_message_id_user_id_key", "UNIQUE (message_id, user_id)"},
	{"typing_indicators", "typing_indicators_conversation_id_user_id_key", "UNIQUE (conversation_id, user_id)"},
	{"user_presence", "user_presence_pkey", "PRIMARY KEY (user_id)"},
	{"voice_calls", "voice_calls_caller_id_fkey", "REFERENCES users(id) ON DELETE CASCADE"},
	{"voice_calls", "voice_calls_recipient_id_fkey", "REFERENCES users(id) ON DELETE CASCADE"},
	{"call_sessions", "call_sessions_call_id_fkey", "REFERENCES voice_calls(id)"},
	{"call_key_rotations", "call_key_rotations_call_session_id_fkey", "REFERENCES call_sessions(id)"},
}

func TestMigrationsApplyTwiceToFreshDatabase(t *testing.T) {
	t.Parallel()
	conn := throwawayDB(t)
	ctx, root := ctxT(t), repoRoot(t)
	steps := []struct {
		name string
		run  func() error
	}{
		{"bootstrap", func() error { return dbsetup.Bootstrap(ctx, conn, root) }},
		{"migrate", func() error { return dbsetup.Migrate(ctx, conn, root) }},
		{"migrate again", func() error { return dbsetup.Migrate(ctx, conn, root) }},
		{"seed", func() error { return dbsetup.Seed(ctx, conn, root) }},
		{"seed again", func() error { return dbsetup.Seed(ctx, conn, root) }},
		{"bootstrap again", func() error { return dbsetup.Bootstrap(ctx, conn, root) }},
	}
	for _, s := range steps {
		must(t, s.name, s.run())
	}
	assertFinalSchema(t, conn)
	assertSeed(t, conn)
}

// productionDB is a throwaway database built the way every production database was: the original app's 105
// migrations on the real Auth and Storage schemas (from the vendored archive; skipped outside CI without it).
func productionDB(t *testing.T) *pgx.Conn {
	t.Helper()
	conn := throwawayDB(t)
	ctx, root := ctxT(t), repoRoot(t)
	must(t, "bootstrap", dbsetup.Bootstrap(ctx, conn, root))
	// The database's search_path (extensions included) applies to new sessions; this one is already open.
	_, err := conn.Exec(ctx, `set search_path to "$user", public, extensions`)
	must(t, "search_path", err)
	err = dbsetup.ApplyProduction(ctx, conn, root)
	if errors.Is(err, dbsetup.ErrNoVendor) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("production migrations: %v", err)
		}
		t.Skipf("production migrations: %v (set SUPARELAY_VENDOR)", err)
	}
	must(t, "production migrations", err)
	// Back to the session's default, so that catalog renderings (pg_get_expr) name schemas as for any session.
	_, err = conn.Exec(ctx, `reset search_path`)
	must(t, "reset search_path", err)
	return conn
}

// A production database shows the defects of schema.md §6.2; our migrations on top of it (and again) end in
// exactly the catalog a fresh run produces.
func TestProductionThenOurs(t *testing.T) {
	t.Parallel()
	prod := productionDB(t)
	ctx, root := ctxT(t), repoRoot(t)
	must(t, "seed on production", dbsetup.Seed(ctx, prod, root))

	const alice = "11111111-1111-4111-8111-111111111111"
	// Defect 1: anon reads every users row, secrets included.
	if n, err := countAs(t, prod, "anon", "", "select count(*) from public.users where backup_pin_hash is null and salt is null"); err != nil || n < 3 {
		t.Errorf("production: anon reads %d users rows (err %v), want the loose production read of >= 3", n, err)
	}
	// Defect 2: deliveries compare internal ids with auth.uid(): alice sees none of her deliveries.
	if n, err := countAs(t, prod, "authenticated", alice, "select count(*) from public.deliveries"); err != nil || n != 0 {
		t.Errorf("production: alice sees %d deliveries (err %v), want 0 (wrong id space)", n, err)
	}
	// Defect 6: anon may execute the nuclear delete.
	if n := queryInt(t, prod, `select count(*) from pg_proc where proname = 'delete_encrypted_data_only'
	                          and has_function_privilege('anon', oid, 'execute')`); n != 1 {
		t.Errorf("production: anon can execute delete_encrypted_data_only: %d, want 1", n)
	}

	must(t, "ours", dbsetup.Migrate(ctx, prod, root))
	must(t, "ours again", dbsetup.Migrate(ctx, prod, root))
	assertFinalSchema(t, prod)

	if _, err := countAs(t, prod, "anon", "", "select count(*) from public.users"); !isInsufficientPrivilege(err) {
		t.Errorf("fixed: anon users read err = %v, want permission denied", err)
	}
	if n, err := countAs(t, prod, "authenticated", alice, "select count(*) from public.deliveries"); err != nil || n != 2 {
		t.Errorf("fixed: alice sees %d deliveries (err %v), want 2", n, err)
	}
	if _, err := countAs(t, prod, "authenticated", alice, "select count(*) from public.group_call_participants"); err != nil {
		t.Errorf("fixed: group_call_participants read: %v", err)
	}

	fresh := throwawayDB(t)
	must(t, "fresh bootstrap", dbsetup.Bootstrap(ctx, fresh, root))
	must(t, "fresh migrate", dbsetup.Migrate(ctx, fresh, root))
	a, b := snapshot(t, prod), snapshot(t, fresh)
	for part := range a {
		if len(a[part]) == 0 {
			t.Errorf("snapshot %s is empty", part)
		}
		if onlyProd, onlyFresh := diffLines(a[part], b[part]); len(onlyProd)+len(onlyFresh) > 0 {
			t.Errorf("%s differ between production+ours and a fresh run:\n  only production+ours:%s\n  only fresh:%s",
				part, fmtLines(onlyProd), fmtLines(onlyFresh))
		}
	}
}

func isInsufficientPrivilege(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

func assertFinalSchema(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	for _, tbl := range allTables {
		if n := queryInt(t, conn, `select count(*) from pg_class where oid = to_regclass('public.' || $1) and relrowsecurity`, tbl); n != 1 {
			t.Errorf("table public.%s missing or without RLS", tbl)
		}
	}
	if got := queryInt(t, conn, `select count(*) from pg_tables where schemaname = 'public'`); got != len(allTables) {
		t.Errorf("public has %d tables, want %d", got, len(allTables))
	}
	for _, c := range namedConstraints {
		var def string
		err := conn.QueryRow(ctxT(t), `select pg_get_constraintdef(oid) from pg_constraint
		                               where conrelid = to_regclass('public.' || $1) and conname = $2`, c.table, c.name).Scan(&def)
		if err != nil {
			t.Errorf("constraint %s.%s: %v", c.table, c.name, err)
			continue
		}
		if !strings.Contains(def, c.defContains) {
			t.Errorf("constraint %s = %q, want it to contain %q", c.name, def, c.defContains)
		}
	}
	// Unnamed PostgREST embeds need exactly one foreign-key path between these tables (schema.md §9).
	for _, pair := range [][2]string{
		{"conversation_participants", "users"}, {"message_recipients", "messages"}, {"deliveries", "messages"},
		{"encrypted_files", "messages"}, {"messages", "conversations"}, {"conversation_participants", "conversations"},
	} {
		if n := queryInt(t, conn, `select count(*) from pg_constraint where contype = 'f'
		                           and conrelid = to_regclass('public.' || $1) and confrelid = to_regclass('public.' || $2)`,
			pair[0], pair[1]); n != 1 {
			t.Errorf("%d foreign keys %s -> %s, want exactly 1", n, pair[0], pair[1])
		}
	}
	for _, idx := range []string{"users_username_lower_unique", "users_auth_user_id_unique"} {
		if n := queryInt(t, conn, `select count(*) from pg_indexes where schemaname = 'public' and indexname = $1`, idx); n != 1 {
			t.Errorf("index %s missing", idx)
		}
	}
	for _, r := range rpcs {
		var args, result string
		var definer, anonExec, userExec, srExec bool
		err := conn.QueryRow(ctxT(t), `
			select pg_get_function_arguments(oid), pg_get_function_result(oid), prosecdef,
			       has_function_privilege('anon', oid, 'execute'), has_function_privilege('authenticated', oid, 'execute'),
			       has_function_privilege('service_role', oid, 'execute')
			  from pg_proc where pronamespace = 'public'::regnamespace and proname = $1`, r.name).
			Scan(&args, &result, &definer, &anonExec, &userExec, &srExec)
		if err != nil {
			t.Errorf("function %s: %v", r.name, err)
			continue
		}
		if args != r.args || result != r.result || definer != r.definer {
			t.Errorf("%s(%s) -> %s definer=%v; want (%s) -> %s definer=%v", r.name, args, result, definer, r.args, r.result, r.definer)
		}
		if anonExec || userExec != r.userCallable || !srExec {
			t.Errorf("%s executable: anon=%v authenticated=%v service_role=%v; want false/%v/true", r.name, anonExec, userExec, srExec, r.userCallable)
		}
	}
	// No function in public is executable by anon; every SECURITY DEFINER function pins its search_path.
	if bad := queryStrings(t, conn, `select proname::text from pg_proc where pronamespace = 'public'::regnamespace
	                                 and has_function_privilege('anon', oid, 'execute') order by 1`); len(bad) > 0 {
		t.Errorf("anon can execute: %v", bad)
	}
	if bad := queryStrings(t, conn, `select proname::text from pg_proc where pronamespace = 'public'::regnamespace
	                                 and prosecdef and not exists (select 1 from unnest(proconfig) c where c like 'search_path=%')
	                                 order by 1`); len(bad) > 0 {
		t.Errorf("definer functions without a pinned search_path: %v", bad)
	}
	// The loose policies are gone: nothing on the chat tables applies to anon/public or reads `true` outside users.
	if bad := queryStrings(t, conn, `select tablename || ' ' || policyname from pg_policies where schemaname = 'public'
	                                 and tablename in ('users', 'conversations', 'conversation_participants', 'messages',
	                                                   'message_recipients', 'deliveries')
	                                 and (roles && array['public', 'anon']::name[] or (qual = 'true' and tablename <> 'users'))
	                                 order by 1`); len(bad) > 0 {
		t.Errorf("loose policies left: %v", bad)
	}
	for _, col := range []string{"phone_number", "salt", "backup_pin_hash"} {
		if n := queryInt(t, conn, `select count(*) from (values ('anon'), ('authenticated')) r(role)
		                           where has_column_privilege(r.role, 'public.users', $1, 'select')`, col); n != 0 {
			t.Errorf("users.%s is selectable by an API role", col)
		}
	}
	if n := queryInt(t, conn, `select count(*) from storage.buckets where (id, public) in (('avatars', true), ('encrypted-files', false))`); n != 2 {
		t.Errorf("storage buckets: %d of 2 present", n)
	}
}

func assertSeed(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	checks := []struct {
		query string
		want  int
	}{
		{`select count(*) from public.users where username in ('alice', 'bob', 'carol') and auth_user_id is not null
		    and phone_number like '+1555555010_'`, 3},
		{`select count(*) from auth.users where phone in ('15555550101', '15555550102', '15555550103')`, 3},
		{`select count(*) from public.conversations where type = 'note_to_self'
		    and created_by in ('a1111111-1111-4111-8111-111111111111', 'b2222222-2222-4222-8222-222222222222',
		                       'c3333333-3333-4333-8333-333333333333')`, 3},
		{`select count(*) from public.conversation_participants where conversation_id = 'd0000000-0000-4000-8000-000000000001'`, 2},
		{`select count(*) from public.conversation_participants where conversation_id = 'd0000000-0000-4000-8000-000000000002'`, 3},
		{`select count(*) from public.conversation_participants where conversation_id = 'd0000000-0000-4000-8000-000000000002'
		    and user_id = 'a1111111-1111-4111-8111-111111111111' and role = 'admin'`, 1},
		{`select count(*) from public.messages where id::text like 'e0000000-%'`, 4},
		{`select count(*) from public.message_recipients r join public.messages m on m.id = r.message_id where m.id::text like 'e0000000-%'`, 10},
		{`select count(*) from public.deliveries d join public.messages m on m.id = d.message_id where m.id::text like 'e0000000-%'`, 6},
	}
	for _, c := range checks {
		if got := queryInt(t, conn, c.query); got != c.want {
			t.Errorf("seed: %s = %d, want %d", strings.Join(strings.Fields(c.query), " "), got, c.want)
		}
	}
}
