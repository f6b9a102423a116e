package supa_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
	"github.com/qryptchat/suparelay/supa"
)

// SendMessage with a server-picked id and commit deadline, and ResolveSend, against the real PostgREST: a stored
// send resolves to the same answer; an id never stored, or someone else's, resolves to "not stored"; a deadline
// that has passed makes the database refuse the commit.
func TestSendMessageIDDeadlineAndResolve(t *testing.T) {
	t.Parallel()
	c := client(t, testenv.SupabaseURL(t), 10*time.Second)
	a, b := testenv.NewUser(t), testenv.NewUser(t)
	ctx := context.Background()
	var conv string
	db := testenv.DB(t)
	if err := db.QueryRow(ctx, `insert into conversations (type, name, created_by) values ('group', 'resolve', $1)
		returning id::text`, a.ID).Scan(&conv); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `insert into conversation_participants (conversation_id, user_id) values ($1, $2)
		on conflict do nothing`, conv, b.ID); err != nil {
		t.Fatal(err)
	}
	ra, rb := c.As(a.Token(t, time.Hour)), c.As(b.Token(t, time.Hour))
	contents := map[string]string{a.ID: `{"c":"a"}`, b.ID: `{"c":"b"}`}
	id, notAfter := "6f1c1c2e-8d2b-4c57-9a43-"+testenv.RandomHex(6), time.Now().Add(5*time.Second)

	sent, err := ra.SendMessage(ctx, supa.NewMessage{ID: id, NotAfter: notAfter, ConversationID: conv, Contents: contents})
	if err != nil {
		t.Fatal(err)
	}
	var row map[string]any
	if err := json.Unmarshal(sent.Message, &row); err != nil || row["id"] != id || len(sent.Participants) != 2 {
		t.Fatalf("sent = %s %v (%v), want id %s and 2 participants", sent.Message, sent.Participants, err, id)
	}
	got, found, err := ra.ResolveSend(ctx, id, notAfter)
	if err != nil || !found || string(got.Message) != string(sent.Message) || len(got.Participants) != 2 {
		t.Fatalf("resolve stored: found=%v err=%v\n got  %s\n want %s", found, err, got.Message, sent.Message)
	}
	if _, found, err := rb.ResolveSend(ctx, id, notAfter); err != nil || found {
		t.Fatalf("resolve someone else's send: found=%v err=%v, want not found", found, err)
	}
	never := "6f1c1c2e-8d2b-4c57-9a43-" + testenv.RandomHex(6)
	if _, found, err := ra.ResolveSend(ctx, never, time.Now().Add(-time.Second)); err != nil || found {
		t.Fatalf("resolve a send never made: found=%v err=%v, want not found", found, err)
	}
	late := "6f1c1c2e-8d2b-4c57-9a43-" + testenv.RandomHex(6)
	_, err = ra.SendMessage(ctx, supa.NewMessage{ID: late, NotAfter: time.Now().Add(-time.Second), ConversationID: conv, Contents: contents})
	if !errors.Is(err, supa.ErrSendDeadlinePassed) {
		t.Fatalf("send past its deadline: %v, want ErrSendDeadlinePassed", err)
	}
	var n int
	if err := db.QueryRow(ctx, `select count(*) from messages where id = $1`, late).Scan(&n); err != nil || n != 0 {
		t.Fatalf("a send past its deadline stored %d rows (%v)", n, err)
	}
}
