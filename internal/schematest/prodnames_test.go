package schematest

import (
	"testing"

	"github.com/qryptchat/suparelay/internal/dbsetup"
)

// A database may carry objects under names our migrations do not use (an operator's own, or a variant of
// production's). Re-running the migrations over such a database must neither fail nor duplicate anything: an
// equivalent foreign key under another name wins, and triggers and policies are replaced whatever their names.
func TestMigrationsTolerateOtherNames(t *testing.T) {
	t.Parallel()
	conn := throwawayDB(t)
	ctx, root := ctxT(t), repoRoot(t)
	must(t, "bootstrap", dbsetup.Bootstrap(ctx, conn, root))
	must(t, "migrate", dbsetup.Migrate(ctx, conn, root))
	_, err := conn.Exec(ctx, `
		alter table public.message_recipients rename constraint message_recipients_message_id_fkey to mr_message_fk;
		alter trigger trigger_auto_create_note_to_self on public.users rename to on_public_user_created;
		alter policy users_select_authenticated on public.users rename to "Everyone sees everyone";
		create policy "messages_read_all" on public.messages for select using (true);`)
	must(t, "rename", err)
	must(t, "migrate again", dbsetup.Migrate(ctx, conn, root))
	must(t, "seed", dbsetup.Seed(ctx, conn, root))

	checks := []struct {
		name, query string
		want        int
	}{
		{"one FK message_recipients -> messages", `select count(*) from pg_constraint where contype = 'f'
		   and conrelid = 'public.message_recipients'::regclass and confrelid = 'public.messages'::regclass`, 1},
		{"one after-insert trigger on users", `select count(*) from pg_trigger where tgrelid = 'public.users'::regclass
		   and not tgisinternal and tgtype = (1 | 4)`, 1},
		{"one note-to-self conversation per demo user", `select count(*) from public.conversations where type = 'note_to_self'`, 3},
		{"renamed or foreign policies are gone", `select count(*) from pg_policies where policyname in ('Everyone sees everyone', 'messages_read_all')`, 0},
	}
	for _, c := range checks {
		if got := queryInt(t, conn, c.query); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	assertFinalSchema(t, conn)
}
