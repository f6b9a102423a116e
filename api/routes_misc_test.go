package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestCrossCutting covers routes.md §2: unknown paths, wrong methods, HEAD, malformed and oversized bodies, ids that
// are not UUIDs, headers, and the cross-site form guard.
func TestCrossCutting(t *testing.T) {
	h := newHarness(t)

	t.Run("unknown path", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		tok := testenv.NewUser(t).Token(t, time.Hour)
		for _, p := range []string{"/api/nope", "/api/chat/nope", "/api/files/a/b/c/d", "/api/", "/api/auth"} {
			wantErr(t, h.do("GET", p, tok, nil), 404, "Not found")
			wantErr(t, h.do("POST", p, "", map[string]any{}), 404, "Not found")
		}
	})

	t.Run("wrong method", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		tok := testenv.NewUser(t).Token(t, time.Hour)
		cases := []struct{ method, path, allow string }{
			{"DELETE", "/api/messages/send", "POST"},
			{"GET", "/api/messages/load", "POST"},
			{"PUT", "/api/chat/conversations", "GET, HEAD, POST, PATCH"},
			{"DELETE", "/api/crypto/public-keys", "GET, HEAD, POST, PUT"},
			{"POST", "/api/auth/session", "GET, HEAD"},
			{"PATCH", "/api/auth/key-backup", "GET, HEAD, PUT"},
			{"GET", "/api/typing/start", "POST"},
			{"DELETE", "/api/plugins", "GET, HEAD"},
			{"GET", "/api/keys/delete", "POST"},
			{"GET", "/api/user/nuclear-delete", "DELETE"},
			{"PUT", "/api/user/nuclear-delete", "DELETE"},
			{"GET", "/api/cleanup/legacy-keys", "DELETE"},
			{"PATCH", "/api/files/00000000-0000-4000-8000-000000000000", "GET, HEAD, POST"},
			{"DELETE", "/api/chat/conversations/00000000-0000-4000-8000-000000000000/participants", "GET, HEAD, POST"},
		}
		for _, c := range cases {
			for _, token := range []string{tok, ""} {
				r := h.do(c.method, c.path, token, nil)
				wantErr(t, r, http.StatusMethodNotAllowed, "Method not allowed")
				if got := r.Header.Get("Allow"); got != c.allow {
					t.Errorf("%s %s: Allow = %q, want %q", c.method, c.path, got, c.allow)
				}
			}
		}
	})

	t.Run("HEAD on GET routes", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		tok := testenv.NewUser(t).Token(t, time.Hour)
		for _, p := range []string{"/api/plugins", "/api/chat/conversations", "/api/user/profile", "/api/chat/groups"} {
			r := h.do("HEAD", p, tok, nil)
			mustStatus(t, r, 200)
			if len(r.Body) != 0 {
				t.Fatalf("HEAD %s has a body: %q", p, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("HEAD %s: Content-Type %q", p, ct)
			}
		}
		// HEAD runs the GET route's authentication too.
		r := h.do("HEAD", "/api/chat/conversations", "", nil)
		mustStatus(t, r, 401)
		if len(r.Body) != 0 {
			t.Fatalf("HEAD 401 has a body: %q", r.Body)
		}
	})

	t.Run("malformed JSON", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		tok := testenv.NewUser(t).Token(t, time.Hour)
		routes := []struct{ method, path, text string }{
			{"POST", "/api/messages/send", "Invalid JSON"},
			{"POST", "/api/messages/load", "Invalid JSON"},
			{"POST", "/api/conversations/join", "Invalid JSON"},
			{"POST", "/api/conversations/load", "Invalid JSON"},
			{"POST", "/api/conversations/create", "Invalid JSON"},
			{"POST", "/api/conversations/archive", "Invalid JSON"},
			{"POST", "/api/conversations/unarchive", "Invalid JSON"},
			{"POST", "/api/conversations/delete", "Invalid JSON"},
			{"POST", "/api/chat/conversations", "Invalid JSON"},
			{"PATCH", "/api/chat/conversations", "Invalid JSON"},
			{"POST", "/api/chat/conversations/00000000-0000-4000-8000-000000000000/participants", "Invalid JSON"},
			{"POST", "/api/chat/messages", "Invalid JSON"},
			{"PATCH", "/api/chat/messages", "Invalid JSON"},
			{"POST", "/api/typing/start", "Invalid JSON"},
			{"POST", "/api/typing/stop", "Invalid JSON"},
			{"POST", "/api/crypto/public-keys", "Invalid JSON"},
			{"PUT", "/api/crypto/public-keys", "Invalid JSON"},
			{"POST", "/api/keys/reset", "Invalid JSON"},
			{"POST", "/api/auth/backup-pin", "Invalid JSON"},
			{"POST", "/api/auth/salt", "Invalid JSON"},
			{"PUT", "/api/auth/key-backup", "Invalid JSON"},
			{"POST", "/api/profile/update", "Invalid JSON"},
			{"PUT", "/api/settings/disappearing-messages", "Invalid JSON"},
			{"PUT", "/api/conversations/00000000-0000-4000-8000-000000000000/disappearing-messages", "Invalid JSON"},
			{"POST", "/api/plugins/execute", "Invalid JSON"},
			{"POST", "/api/files/upload-url", "Invalid JSON"},
			{"POST", "/api/files/upload-complete", "Invalid JSON"},
			{"POST", "/api/auth/verify-sms", "Invalid request format"},
		}
		for _, rt := range routes {
			for _, body := range []string{`{"conversationId":`, `[1,2]`, `"x"`, `{"a":1}{`, "\x00"} {
				r := h.rawReq(rt.method, rt.path, tok, "application/json", []byte(body))
				if r.Status != 400 || r.Err(t) != rt.text {
					t.Errorf("%s %s with %q: %d %s, want 400 %q", rt.method, rt.path, body, r.Status, r.Body, rt.text)
				}
				checkClean(t, r)
			}
		}
	})

	t.Run("body over 1 MiB", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		tok := testenv.NewUser(t).Token(t, time.Hour)
		for _, rt := range []struct{ method, path string }{
			{"POST", "/api/messages/send"}, {"POST", "/api/chat/conversations"}, {"PUT", "/api/auth/key-backup"},
			{"PUT", "/api/crypto/public-keys"}, {"POST", "/api/auth/verify-sms"}, {"POST", "/api/profile/update"},
			{"POST", "/api/files/upload-url"}, {"DELETE", "/api/user/nuclear-delete"}, {"POST", "/api/chat/messages"},
		} {
			r := h.rawReq(rt.method, rt.path, tok, "application/json", oversized())
			wantErr(t, r, http.StatusRequestEntityTooLarge, "Request body too large")
		}
		// Exactly at the limit is fine (the route then judges the content).
		body := `{"conversationId":"` + strings.Repeat("a", 1<<20-len(`{"conversationId":""}`)) + `"}`
		r := h.rawReq("POST", "/api/messages/load", tok, "application/json", []byte(body))
		wantErr(t, r, 400, "Invalid conversationId")
	})

	t.Run("ids that are not UUIDs", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		u := testenv.NewUser(t)
		tok := u.Token(t, time.Hour)
		bad := []string{"x", "1", "'%3B--", "00000000-0000-0000-0000-00000000000g", "%2e%2e", "null", strings.Repeat("f", 300)}
		for _, id := range bad {
			for _, c := range []struct {
				method, path string
				body         any
			}{
				{"POST", "/api/chat/conversations/" + id + "/mark-read", nil},
				{"GET", "/api/chat/conversations/" + id + "/participants", nil},
				{"POST", "/api/chat/conversations/" + id + "/participants", map[string]any{"user_ids": []string{u.ID}}},
				{"GET", "/api/files/message/" + id, nil},
				{"GET", "/api/files/" + id + "/encrypted", nil},
				{"POST", "/api/files/" + id, nil},
				{"HEAD", "/api/files/" + id, nil},
				{"GET", "/api/conversations/" + id + "/disappearing-messages", nil},
				{"PUT", "/api/conversations/" + id + "/disappearing-messages", map[string]any{"disappear_seconds": 5}},
				{"GET", "/api/chat/messages/" + id, nil},
				{"GET", "/api/users/by-id/" + id, nil},
				{"GET", "/api/crypto/public-keys?user_id=" + id, nil},
				{"GET", "/api/chat/messages?conversation_id=" + id, nil},
				{"PATCH", "/api/chat/messages", map[string]any{"message_id": id}},
				{"POST", "/api/messages/send", map[string]any{"conversationId": id, "encryptedContents": map[string]string{u.ID: "x"}}},
				{"POST", "/api/messages/send", map[string]any{"conversationId": noteToSelf(t, h, tok), "encryptedContents": map[string]string{id: "x"}}},
				{"POST", "/api/messages/load", map[string]any{"conversationId": id}},
				{"POST", "/api/conversations/join", map[string]any{"conversationId": id}},
				{"POST", "/api/conversations/archive", map[string]any{"conversationId": id}},
				{"POST", "/api/conversations/delete", map[string]any{"conversationId": id}},
				{"POST", "/api/typing/start", map[string]any{"conversationId": id}},
				{"PATCH", "/api/chat/conversations", map[string]any{"conversation_id": id, "action": "archive"}},
				{"POST", "/api/chat/conversations", map[string]any{"type": "direct", "participant_ids": []string{id}}},
				{"POST", "/api/conversations/create", map[string]any{"participantIds": []string{id}}},
				{"POST", "/api/crypto/public-keys", map[string]any{"user_ids": []string{id}}},
				{"POST", "/api/files/upload-url", map[string]any{"conversationId": id, "messageId": id, "encryptedMetadata": map[string]string{"a": "b"}}},
			} {
				r := h.do(c.method, c.path, tok, c.body)
				if r.Status >= 500 {
					t.Errorf("%s %s: status %d: %s", c.method, c.path, r.Status, r.Body)
				}
				checkClean(t, r)
			}
		}
	})

	t.Run("NUL characters", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		conv := newConv(t, h, "direct", a, b)
		for _, c := range []struct{ method, path, body string }{
			{"PUT", "/api/crypto/public-keys", `{"public_key":"a\u0000b"}`},
			{"POST", "/api/keys/reset", `{"publicKey":"\u0000"}`},
			{"POST", "/api/profile/update", `{"bio":"x\u0000"}`},
			{"POST", "/api/messages/send", `{"conversationId":"` + conv + `","encryptedContents":{"` + a.ID + `":"x"},"metadata":{"k":"\u0000"}}`},
			{"POST", "/api/chat/conversations", `{"type":"group","participant_ids":["` + b.ID + `"],"name":"n\u0000"}`},
		} {
			wantErr(t, h.rawReq(c.method, c.path, tok, "application/json", []byte(c.body)), 400, "Invalid JSON")
		}
		// An escaped backslash followed by "u0000" is ordinary text.
		r := h.rawReq("PUT", "/api/crypto/public-keys", tok, "application/json", []byte(`{"public_key":"a\\u0000b"}`))
		mustStatus(t, r, 200)
		wantBody(t, h.do("GET", "/api/users/search?q=a%00b", tok, nil), 200, `{"users":[]}`)
	})

	t.Run("headers", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		for _, r := range []resp{h.do("GET", "/api/plugins", "", nil), h.do("GET", "/api/chat/conversations", "", nil),
			h.do("GET", "/api/nope", "", nil)} {
			if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("headers %v", r.Header)
			}
			if r.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatalf("CORS header set: %v", r.Header)
			}
		}
	})

	t.Run("cross-site form", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		tok := testenv.NewUser(t).Token(t, time.Hour)
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
			r := h.rawReq("POST", "/api/messages/send", tok, ct, []byte(`{}`), "Origin", "https://evil.example")
			wantErr(t, r, 403, "Cross-site POST form submissions are forbidden")
		}
		// Same origin passes the guard (and then fails validation as usual).
		r := h.rawReq("POST", "/api/messages/load", tok, "text/plain", []byte(`{}`), "Origin", h.srv.URL)
		wantErr(t, r, 400, "Missing conversationId")
	})

	t.Run("health", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		wantBody(t, h.do("GET", "/healthz", "", nil), 200, `{"status":"ok"}`)
		wantBody(t, h.do("GET", "/readyz", "", nil), 200, `{"status":"ready"}`)
		mustStatus(t, h.do("GET", "/metrics", "", nil), 200)
	})
}

// TestMiscRoutes covers plugins, plugins/execute and the routes that answer 404 on purpose (routes.md §9.6–9.8,
// §3.2, §3.3, §8.7).
func TestMiscRoutes(t *testing.T) {
	h := newHarness(t)

	t.Run("plugins", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		want := `[{"name":"echo","version":"1.0.0","description":"Simple echo plugin that repeats your message",
			"author":"QryptChat Community","commands":[{"command":"/echo","description":"Echo back the provided message"},
			{"command":"/help","description":"Show echo plugin help"}],"directory":"echo","active":true},
			{"name":"time","version":"1.0.0","description":"Look up the current time in any timezone or city",
			"author":"QryptChat Community","commands":[{"command":"/time","description":"Get the current time for a timezone or city"}],
			"directory":"time","active":true}]`
		wantBody(t, h.do("GET", "/api/plugins", "", nil), 200, want) // public
		wantBody(t, h.do("GET", "/api/plugins", testenv.NewUser(t).Token(t, time.Hour), nil), 200, want)
		wantBody(t, h.do("GET", "/api/plugins", "garbage.token.x", nil), 200, want) // a dead token does not matter
	})

	t.Run("plugins/execute", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		tok := testenv.NewUser(t).Token(t, time.Hour)
		wantErr(t, h.do("GET", "/api/plugins/execute", "", nil), 401, "Unauthorized")
		wantErr(t, h.do("POST", "/api/plugins/execute", "", map[string]any{"message": "/echo hi"}), 401, "Unauthorized")
		wantBody(t, h.do("GET", "/api/plugins/execute", tok, nil), 200,
			`{"commands":[],"helpText":"No plugins are currently loaded.","pluginCount":0}`)
		for _, body := range []any{map[string]any{}, map[string]any{"message": ""}, map[string]any{"message": 5}, nil} {
			wantErr(t, h.do("POST", "/api/plugins/execute", tok, body), 400, "Message is required")
		}
		wantBody(t, h.do("POST", "/api/plugins/execute", tok, map[string]any{"message": "/echo hello there", "context": map[string]any{}}),
			200, `{"response":"hello there","isPluginCommand":true}`)
		wantBody(t, h.do("POST", "/api/plugins/execute", tok, map[string]any{"message": "/nope x"}),
			404, `{"error":"Command not recognized","isPluginCommand":false}`)
		wantBody(t, h.do("POST", "/api/plugins/execute", tok, map[string]any{"message": "plain text"}),
			404, `{"error":"Command not recognized","isPluginCommand":false}`)
		r := h.do("POST", "/api/plugins/execute", tok, map[string]any{"message": "/time UTC"})
		mustStatus(t, r, 200)
		if resp, _ := r.JSON(t)["response"].(string); !strings.Contains(resp, "UTC") || r.JSON(t)["isPluginCommand"] != true {
			t.Fatalf("/time: %s", r.Body)
		}
	})

	t.Run("debug and websocket routes are gone", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		tok := testenv.NewUser(t).Token(t, time.Hour)
		for _, p := range []string{"/api/auth/debug-sms", "/api/auth/debug-sms-config", "/api/websocket", "/api/files/debug-upload"} {
			for _, m := range []string{"GET", "POST"} {
				if p == "/api/files/debug-upload" && m == "GET" {
					continue // POST only in the original; GET is a 405 like any unserved method
				}
				for _, token := range []string{tok, ""} {
					wantErr(t, h.do(m, p, token, map[string]any{}), 404, "Not found")
				}
			}
		}
	})
}

// TestWrongTypesNeverFail500 sends every JSON route bodies whose fields all have the same wrong type (objects,
// arrays, numbers, booleans, huge or NUL-laden strings): the answer must be a 4xx (or the route's success), never a
// 5xx, and never carry library text.
func TestWrongTypesNeverFail500(t *testing.T) {
	h := newHarness(t)
	owner, member := testenv.NewUser(t), testenv.NewUser(t)
	tok := owner.Token(t, time.Hour)
	conv := newConv(t, h, "group", owner, member)
	routes := []struct {
		method, path string
		fields       []string
	}{
		{"POST", "/api/messages/send", []string{"conversationId", "encryptedContents", "messageType", "metadata", "replyToId"}},
		{"POST", "/api/messages/load", []string{"conversationId", "limit", "before"}},
		{"POST", "/api/conversations/join", []string{"conversationId"}},
		{"POST", "/api/conversations/archive", []string{"conversationId"}},
		{"POST", "/api/conversations/unarchive", []string{"conversationId"}},
		{"POST", "/api/conversations/delete", []string{"conversationId"}},
		{"POST", "/api/typing/start", []string{"conversationId"}},
		{"POST", "/api/typing/stop", []string{"conversationId"}},
		{"POST", "/api/conversations/create", []string{"participantIds", "name", "isGroup"}},
		{"POST", "/api/conversations/load", []string{"anything"}},
		{"POST", "/api/chat/conversations", []string{"type", "participant_ids", "name", "group_id"}},
		{"PATCH", "/api/chat/conversations", []string{"conversation_id", "action"}},
		{"POST", "/api/chat/conversations/" + conv + "/participants", []string{"user_ids"}},
		{"POST", "/api/chat/messages", []string{"conversation_id", "encrypted_contents", "content_type", "has_attachments", "reply_to_id"}},
		{"PATCH", "/api/chat/messages", []string{"message_id"}},
		{"POST", "/api/crypto/public-keys", []string{"user_ids"}},
		{"PUT", "/api/crypto/public-keys", []string{"public_key", "key_type"}},
		{"POST", "/api/keys/reset", []string{"publicKey"}},
		{"POST", "/api/auth/backup-pin", []string{"pin"}},
		{"POST", "/api/auth/salt", []string{"phone", "salt"}},
		{"PUT", "/api/auth/key-backup", []string{"encrypted_keys"}},
		{"POST", "/api/profile/update", []string{"bio", "website"}},
		{"PUT", "/api/settings/disappearing-messages", []string{"default_message_retention_days"}},
		{"PUT", "/api/conversations/" + conv + "/disappearing-messages", []string{"disappear_seconds", "start_on"}},
		{"POST", "/api/plugins/execute", []string{"message", "context"}},
		{"POST", "/api/files/upload-url", []string{"conversationId", "messageId", "encryptedMetadata"}},
		{"POST", "/api/files/upload-complete", []string{"storagePath", "fileId", "metadata"}},
		{"POST", "/api/auth/verify-sms", []string{"phoneNumber", "verificationCode", "username", "displayName", "useSession"}},
		{"POST", "/api/webhooks", []string{"url", "events"}},
		{"DELETE", "/api/user/nuclear-delete", []string{"confirmation"}},
	}
	values := []any{map[string]any{"a": map[string]any{}}, []any{[]any{1}, nil}, 1e308, -1, 0, true, false,
		strings.Repeat("x", 100_000), "a\x00b", "\u202e\ufeff", []any{}, map[string]any{}}
	for _, rt := range routes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			t.Parallel()
			h := h.as(t)
			for _, v := range values {
				body := map[string]any{}
				for _, f := range rt.fields {
					body[f] = v
				}
				r := h.do(rt.method, rt.path, tok, body)
				if r.Status >= 500 {
					t.Errorf("%v: status %d: %.300s", v, r.Status, r.Body)
				}
				checkClean(t, r)
			}
		})
	}
}

// TestEventsHead: HEAD /api/events answers the stream's headers without opening a stream.
func TestEventsHead(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest(http.MethodHead, h.srv.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+testenv.NewUser(t).Token(t, time.Hour))
	r := h.send(req)
	if r.Status != 200 || r.Header.Get("Content-Type") != "text/event-stream" || len(r.Body) != 0 {
		t.Fatalf("HEAD events: %d %v %q", r.Status, r.Header, r.Body)
	}
	req, _ = http.NewRequest(http.MethodHead, h.srv.URL+"/api/events", nil)
	if r := h.send(req); r.Status != 401 {
		t.Fatalf("anonymous HEAD events: %d", r.Status)
	}
}

// TestMetricsByRoute: /metrics exposes request latency by route pattern (ids never become labels).
func TestMetricsByRoute(t *testing.T) {
	h := newHarness(t)
	tok := testenv.NewUser(t).Token(t, time.Hour)
	mustStatus(t, h.do("POST", "/api/chat/conversations/00000000-0000-4000-8000-000000000000/mark-read", tok, nil), 403)
	r := h.do("GET", "/metrics", "", nil)
	mustStatus(t, r, 200)
	want := `suparelay_http_request_duration_seconds_count{method="POST",route="/api/chat/conversations/{id}/mark-read",status="403"} 1`
	if !strings.Contains(string(r.Body), want) {
		t.Fatalf("metrics lack %s", want)
	}
	if strings.Contains(string(r.Body), "00000000-0000-4000-8000-000000000000") {
		t.Fatal("an id leaked into a metric label")
	}
}

// TestPostOnlyFilePaths: GET on the POST-only files paths is a 405, not a lookup of a file called "upload-url".
func TestPostOnlyFilePaths(t *testing.T) {
	h := newHarness(t)
	tok := testenv.NewUser(t).Token(t, time.Hour)
	for _, p := range []string{"/api/files/upload-url", "/api/files/upload-complete", "/api/files/upload"} {
		r := h.do("GET", p, tok, nil)
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "POST" {
			t.Errorf("GET %s: %d Allow=%q", p, r.Status, r.Header.Get("Allow"))
		}
	}
}
