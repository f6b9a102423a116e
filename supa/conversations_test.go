package supa_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
	"github.com/qryptchat/suparelay/supa"
)

// TestCreateConversation: api_create_conversation against the real stack — the creator is admin and the others
// members, a second direct create finds the first, and every refusal is its sentinel with nothing stored.
func TestCreateConversation(t *testing.T) {
	t.Parallel()
	c := client(t, testenv.SupabaseURL(t), 10*time.Second)
	a, b, d, outsider := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
	ctx := context.Background()
	rest := c.As(a.Token(t, time.Hour))
	db := testenv.DB(t)
	roles := func(conv string) map[string]string {
		t.Helper()
		rows, err := db.Query(ctx, `select user_id::text, role from conversation_participants where conversation_id = $1`, conv)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var id, role string
			if err := rows.Scan(&id, &role); err != nil {
				t.Fatal(err)
			}
			out[id] = role
		}
		return out
	}
	count := func() int {
		t.Helper()
		var n int
		if err := db.QueryRow(ctx, `select count(*) from conversations where created_by = $1 and type <> 'note_to_self'`, a.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	name := "Team"
	g, err := rest.CreateConversation(ctx, supa.NewConversation{Type: "group", Name: &name, ParticipantIDs: []string{b.ID, d.ID, a.ID}})
	if err != nil || g.Existed || g.Conversation.Type != "group" || g.Conversation.Name == nil || *g.Conversation.Name != "Team" ||
		len(g.Conversation.Raw) == 0 {
		t.Fatalf("group: %+v, %v", g, err)
	}
	if r := roles(g.Conversation.ID); len(r) != 3 || r[a.ID] != "admin" || r[b.ID] != "member" || r[d.ID] != "member" {
		t.Fatalf("group roles: %v", r)
	}

	first, err := rest.CreateConversation(ctx, supa.NewConversation{Type: "direct", ParticipantIDs: []string{b.ID}})
	if err != nil || first.Existed {
		t.Fatalf("direct: %+v, %v", first, err)
	}
	again, err := c.As(b.Token(t, time.Hour)).CreateConversation(ctx, supa.NewConversation{Type: "direct", ParticipantIDs: []string{a.ID}})
	if err != nil || !again.Existed || again.Conversation.ID != first.Conversation.ID {
		t.Fatalf("second direct from the other side: %+v, %v (first %s)", again, err, first.Conversation.ID)
	}
	// A direct "chat" with oneself is not the existing chat with b.
	self, err := rest.CreateConversation(ctx, supa.NewConversation{Type: "direct", ParticipantIDs: []string{a.ID}})
	if err != nil || self.Existed || self.Conversation.ID == first.Conversation.ID {
		t.Fatalf("direct with oneself: %+v, %v", self, err)
	}

	before := count()
	_, err = rest.CreateConversation(ctx, supa.NewConversation{Type: "group",
		ParticipantIDs: []string{b.ID, "00000000-0000-4000-8000-000000000000"}})
	if !errors.Is(err, supa.ErrInvalidUserIDs) {
		t.Errorf("unknown participant: %v", err)
	}
	group := ""
	if err := db.QueryRow(ctx, `insert into groups (name, created_by) values ('g', $1) returning id::text`, b.ID).Scan(&group); err != nil {
		t.Fatal(err)
	}
	_, err = c.As(outsider.Token(t, time.Hour)).CreateConversation(ctx, supa.NewConversation{Type: "room", GroupID: &group,
		ParticipantIDs: []string{b.ID}})
	if !errors.Is(err, supa.ErrNotGroupMember) {
		t.Errorf("room of a group the caller is not in: %v", err)
	}
	if n := count(); n != before {
		t.Errorf("refused creates stored %d conversations", n-before)
	}
}

// TestCreateConversationParticipantsFailure: a failed participant insert (the RPC's participants_not_added, with
// the insert's own SQLSTATE) is ErrParticipantsNotAdded and keeps the kind its status calls for.
func TestCreateConversationParticipantsFailure(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"code":"23503","message":"participants_not_added","details":"insert violates fk","hint":null}`))
	}))
	defer srv.Close()
	c := client(t, srv.URL, 5*time.Second)
	_, err := c.As("token").CreateConversation(context.Background(), supa.NewConversation{Type: "group", ParticipantIDs: []string{"x"}})
	if !errors.Is(err, supa.ErrParticipantsNotAdded) || supa.KindOf(err) != supa.KindConflict || errors.Is(err, supa.ErrInvalidUserIDs) {
		t.Fatalf("err = %v (kind %v)", err, supa.KindOf(err))
	}
}
