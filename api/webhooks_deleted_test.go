package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/api"
	"github.com/qryptchat/suparelay/internal/testenv"
	"github.com/qryptchat/suparelay/webhooks"
)

// TestWebhookMessageDeleted: message.deleted reaches the webhooks of the people in the conversation when a direct
// chat is deleted (every message, both people told, although neither can see the conversation any more), when a
// group member leaves (their messages), and when legacy messages are cleaned up (the listed ids).
func TestWebhookMessageDeleted(t *testing.T) {
	type delivery struct {
		event string
		data  map[string]any
	}
	got := map[string]chan delivery{}
	for _, p := range []string{"/a", "/b", "/c", "/d"} {
		got[p] = make(chan delivery, 4)
	}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p struct {
			Event string         `json:"event"`
			Data  map[string]any `json:"data"`
		}
		_ = json.Unmarshal(b, &p)
		if ch, ok := got[r.URL.Path]; ok {
			ch <- delivery{p.Event, p.Data}
		}
	}))
	defer receiver.Close()
	d, err := webhooks.New(webhooks.Config{SigningSecret: "s", AllowNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = d.Run(ctx) }()
	defer d.Close()
	h := newHarnessWith(t, func(c *api.Config) { c.Webhooks = d })

	alice, bob, carol, dave := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
	db := testenv.DB(t)
	for u, path := range map[testenv.User]string{alice: "/a", bob: "/b", carol: "/c", dave: "/d"} {
		if _, err := db.Exec(ctx, `insert into webhooks (user_id, url, events) values ($1, $2, '{message.deleted}')`,
			u.AuthID, receiver.URL+path); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(path string, want map[string]any) {
		t.Helper()
		select {
		case g := <-got[path]:
			if g.event != "message.deleted" {
				t.Fatalf("%s: event %q", path, g.event)
			}
			for k, v := range want {
				if gv, _ := json.Marshal(g.data[k]); string(gv) != mustMarshal(t, v) {
					t.Errorf("%s: %s = %s, want %s (payload %v)", path, k, gv, mustMarshal(t, v), g.data)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no message.deleted within 10 s", path)
		}
	}

	direct := newConv(t, h, "direct", alice, bob)
	sendText(t, h, alice, direct, "one", bob)
	sendText(t, h, bob, direct, "two", alice)
	mustStatus(t, h.do("POST", "/api/conversations/delete", alice.Token(t, time.Hour), map[string]any{"conversationId": direct}), 200)
	want := map[string]any{"conversation_id": direct, "deleted_by": alice.ID, "scope": "conversation", "count": 2}
	expect("/a", want)
	expect("/b", want)

	group := newConv(t, h, "group", alice, bob, carol)
	sendText(t, h, bob, group, "from bob", alice, carol)
	mustStatus(t, h.do("POST", "/api/conversations/delete", bob.Token(t, time.Hour), map[string]any{"conversationId": group}), 200)
	expect("/c", map[string]any{"conversation_id": group, "deleted_by": bob.ID, "scope": "sender", "count": 1})

	legacyConv := newConv(t, h, "direct", carol, dave)
	legacy := sendText(t, h, carol, legacyConv, "FALLBACK-encrypted", dave)
	sendText(t, h, carol, legacyConv, "ML-KEM-1024 payload", dave)
	mustStatus(t, h.do("DELETE", "/api/cleanup/legacy-messages", carol.Token(t, time.Hour), nil), 200)
	expect("/d", map[string]any{"conversation_id": legacyConv, "deleted_by": carol.ID, "scope": "messages",
		"message_ids": []any{legacy["id"]}, "count": 1})
}
