package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/api"
	"github.com/qryptchat/suparelay/internal/testenv"
	"github.com/qryptchat/suparelay/webhooks"
)

// TestWebhookDeliveredOnNewMessage: a participant's stored webhook for message.created receives a signed POST when
// the other participant sends a message, with identifiers only (no content). The receiver is a local test server,
// so loopback is allowed for this deliverer only; the route itself refuses such URLs (see the next test).
func TestWebhookDeliveredOnNewMessage(t *testing.T) {
	type got struct {
		event, sig, ts string
		body           []byte
	}
	recv := make(chan got, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		recv <- got{r.Header.Get("X-Qrypt-Event"), r.Header.Get("X-Qrypt-Signature"), r.Header.Get("X-Qrypt-Timestamp"), b}
	}))
	defer receiver.Close()
	const secret = "test-webhook-secret"
	d, err := webhooks.New(webhooks.Config{SigningSecret: secret, AllowNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = d.Run(ctx) }()
	defer d.Close()
	h := newHarnessWith(t, func(c *api.Config) { c.Webhooks = d })

	alice, bob := testenv.NewUser(t), testenv.NewUser(t)
	db := testenv.DB(t)
	if _, err := db.Exec(ctx, `insert into webhooks (user_id, url, events) values ($1, $2, '{message.created}')`,
		bob.AuthID, receiver.URL+"/hook"); err != nil {
		t.Fatal(err)
	}
	at := alice.Token(t, time.Hour)
	r := h.do("POST", "/api/chat/conversations", at, map[string]any{"type": "direct", "participant_ids": []string{bob.ID}})
	mustStatus(t, r, 200)
	conv := r.JSON(t)["conversation_id"].(string)
	r = h.do("POST", "/api/messages/send", at, map[string]any{"conversationId": conv,
		"encryptedContents": map[string]string{alice.ID: "secret-a", bob.ID: "secret-b"}})
	mustStatus(t, r, 200)
	msgID := r.JSON(t)["message"].(map[string]any)["id"]

	select {
	case g := <-recv:
		if g.event != "message.created" {
			t.Fatalf("event header %q", g.event)
		}
		if err := webhooks.Verify([]byte(secret), g.sig, g.ts, g.body, time.Now()); err != nil {
			t.Fatalf("signature does not verify: %v", err)
		}
		var payload struct {
			Event string         `json:"event"`
			Data  map[string]any `json:"data"`
		}
		if err := json.Unmarshal(g.body, &payload); err != nil || payload.Event != "message.created" ||
			payload.Data["id"] != msgID || payload.Data["conversation_id"] != conv {
			t.Fatalf("payload %s", g.body)
		}
		for _, leak := range []string{"secret-a", "secret-b", "encrypted"} {
			if strings.Contains(string(g.body), leak) {
				t.Fatalf("payload carries %q: %s", leak, g.body)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook delivery within 10 s")
	}
}

// TestWebhookRouteRefusesPrivateTargets: the route refuses URLs pointing into loopback or private networks.
func TestWebhookRouteRefusesPrivateTargets(t *testing.T) {
	h := newHarness(t)
	tok := testenv.NewUser(t).Token(t, time.Hour)
	for _, u := range []string{"http://127.0.0.1:8080/x", "http://10.0.0.5/x", "http://[::1]/x", "http://169.254.169.254/latest", "ftp://example.com/x"} {
		r := h.do("POST", "/api/webhooks", tok, map[string]any{"url": u, "events": []string{"message.created"}})
		if r.Status != http.StatusBadRequest || r.Err(t) != "Invalid URL" {
			t.Errorf("%s: %d %s, want 400 Invalid URL", u, r.Status, r.Body)
		}
	}
	r := h.do("POST", "/api/webhooks", tok, map[string]any{"url": "https://hooks.example.com/x", "events": []string{"message.created"}})
	mustStatus(t, r, http.StatusCreated)
}
