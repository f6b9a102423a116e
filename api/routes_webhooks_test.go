package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestWebhookRoutes covers GET, POST /api/webhooks and DELETE /api/webhooks/{id} (routes.md §9.4). The harness has
// no deliverer, so nothing is ever sent to the example URLs.
func TestWebhookRoutes(t *testing.T) {
	h := newHarness(t)

	t.Run("validation", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		me := testenv.NewUser(t)
		tok := me.Token(t, time.Hour)
		wantErr(t, h.do("GET", "/api/webhooks", "", nil), 401, "Unauthorized")
		wantErr(t, h.do("POST", "/api/webhooks", "", map[string]any{"url": "https://example.com/h", "events": []string{"message.created"}}), 401, "Unauthorized")
		wantErr(t, h.do("DELETE", "/api/webhooks/00000000-0000-4000-8000-000000000000", "", nil), 401, "Unauthorized")
		wantErr(t, h.rawReq("POST", "/api/webhooks", tok, "application/json", []byte(`{"url":`)), 400, "Invalid JSON")
		for _, u := range []any{nil, "", 5, []string{"https://example.com"}} {
			wantErr(t, h.do("POST", "/api/webhooks", tok, map[string]any{"url": u, "events": []string{"message.created"}}), 400, "url is required")
		}
		for _, u := range []string{"not a url", "ftp://example.com/x", "javascript:alert(1)", "http://127.0.0.1/x", "http://localhost:8080/",
			"http://10.0.0.1/", "http://[::1]/", "http://169.254.169.254/latest", "https://user:pw@example.com/", "http://2130706433/"} {
			wantErr(t, h.do("POST", "/api/webhooks", tok, map[string]any{"url": u, "events": []string{"message.created"}}), 400, "Invalid URL")
		}
		for _, ev := range []any{nil, []string{}, "message.created", []string{"message.created", "user.deleted"}, []any{5}} {
			wantErr(t, h.do("POST", "/api/webhooks", tok, map[string]any{"url": "https://example.com/h", "events": ev}), 400,
				"events must be a non-empty array")
		}
		wantErr(t, h.do("DELETE", "/api/webhooks/not-a-uuid", tok, nil), 400, "Invalid webhook id")
		wantBody(t, h.do("GET", "/api/webhooks", tok, nil), 200, `{"webhooks":[]}`)
	})

	t.Run("create, list, delete", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		me, other := testenv.NewUser(t), testenv.NewUser(t)
		tok := me.Token(t, time.Hour)
		var ids []string
		for i, events := range [][]string{{"message.created"}, {"conversation.created", "message.deleted", "conversation.created"}} {
			url := "https://hooks.example.com/" + string(rune('a'+i))
			r := h.do("POST", "/api/webhooks", tok, map[string]any{"url": url, "events": events})
			mustStatus(t, r, 201)
			wh := r.JSON(t)["webhook"].(map[string]any)
			if keysOf(r.JSON(t)) != "webhook" || keysOf(wh) != "created_at,events,id,url" || wh["url"] != url {
				t.Fatalf("create: %s", r.Body)
			}
			ids = append(ids, wh["id"].(string))
		}
		if n := dbScalar[int64](t, `select count(*) from webhooks where user_id = $1`, me.AuthID); n != 2 {
			t.Fatalf("%d webhook rows under the auth uid, want 2", n)
		}
		r := h.do("GET", "/api/webhooks", tok, nil)
		mustStatus(t, r, 200)
		list := r.JSON(t)["webhooks"].([]any)
		if len(list) != 2 || list[0].(map[string]any)["id"] != ids[1] {
			t.Fatalf("list (newest first): %s", r.Body)
		}
		if ev := list[0].(map[string]any)["events"].([]any); len(ev) != 2 {
			t.Fatalf("duplicate events kept: %v", ev)
		}
		wantBody(t, h.do("GET", "/api/webhooks", other.Token(t, time.Hour), nil), 200, `{"webhooks":[]}`)
		// Someone else's id: 200 and nothing happens.
		wantBody(t, h.do("DELETE", "/api/webhooks/"+ids[0], other.Token(t, time.Hour), nil), 200, `{"success":true}`)
		if n := dbScalar[int64](t, `select count(*) from webhooks where user_id = $1`, me.AuthID); n != 2 {
			t.Fatal("another user deleted a webhook")
		}
		wantBody(t, h.do("DELETE", "/api/webhooks/"+ids[0], tok, nil), 200, `{"success":true}`)
		wantBody(t, h.do("DELETE", "/api/webhooks/"+ids[0], tok, nil), 200, `{"success":true}`)
		r = h.do("GET", "/api/webhooks", tok, nil)
		if list := r.JSON(t)["webhooks"].([]any); len(list) != 1 || list[0].(map[string]any)["id"] != ids[1] {
			t.Fatalf("after delete: %s", r.Body)
		}
	})

	t.Run("per-user cap", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		tok := testenv.NewUser(t).Token(t, time.Hour)
		for i := 0; i < 20; i++ {
			mustStatus(t, h.do("POST", "/api/webhooks", tok, map[string]any{"url": "https://example.com/" + strings.Repeat("x", i+1),
				"events": []string{"message.created"}}), 201)
		}
		r := h.do("POST", "/api/webhooks", tok, map[string]any{"url": "https://example.com/last", "events": []string{"message.created"}})
		mustStatus(t, r, 400)
		checkClean(t, r)
	})
}
