package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// Helpers shared by the per-route tests (routes_*_test.go). They sit on top of the harness (harness_test.go).

// cookieName is the session cookie name the harness configures.
const cookieName = "sb-127-auth-token"

// as returns a view of h whose failures (and stream cleanups) belong to t: parallel subtests must not fail the
// parent test from their own goroutines.
func (h *harness) as(t testing.TB) *harness {
	c := *h
	c.t = t
	return &c
}

// leakMarkers are fragments of library, database and runtime error texts that must never reach a client.
var leakMarkers = []string{"PGRST", "supa:", "pq:", "sql", "SQLSTATE", "pgx", "postgrest", "goroutine", "panic",
	"runtime error", "violates", "duplicate key", "relation \"", "syntax error", "json: ", "unexpected EOF",
	"context deadline", "connection refused", "dial tcp"}

// checkClean fails when an error answer leaks a Go, PostgREST or database error text.
func checkClean(t testing.TB, r resp) {
	t.Helper()
	if r.Status < 400 {
		return
	}
	low := strings.ToLower(string(r.Body))
	for _, m := range leakMarkers {
		if strings.Contains(low, strings.ToLower(m)) {
			t.Fatalf("error body (status %d) leaks %q: %s", r.Status, m, r.Body)
		}
	}
}

// wantErr checks status and the exact {"error": text} body (extra fields allowed) and that nothing leaks.
func wantErr(t testing.TB, r resp, status int, text string) {
	t.Helper()
	mustStatus(t, r, status)
	checkClean(t, r)
	if got := r.Err(t); got != text {
		t.Fatalf("error = %q, want %q (status %d; body %s)", got, text, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type = %q, want application/json", ct)
	}
}

// wantFileErr checks the files routes' {"error": t, "message": t} body.
func wantFileErr(t testing.TB, r resp, status int, text string) {
	t.Helper()
	wantErr(t, r, status, text)
	if got, _ := r.JSON(t)["message"].(string); got != text {
		t.Fatalf("message = %q, want %q; body %s", got, text, r.Body)
	}
}

// wantBody checks status and that the body equals want as JSON (order-insensitive).
func wantBody(t testing.TB, r resp, status int, want string) {
	t.Helper()
	mustStatus(t, r, status)
	checkClean(t, r)
	var got, exp any
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, r.Body)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	g, _ := json.Marshal(got)
	e, _ := json.Marshal(exp)
	if !bytes.Equal(g, e) {
		t.Fatalf("body = %s, want %s", g, e)
	}
}

// keysOf returns the sorted keys of a JSON object as a comma-separated string.
func keysOf(m map[string]any) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// rawReq sends a request with an exact body and headers (hdr: name, value pairs).
func (h *harness) rawReq(method, path, token, contentType string, body []byte, hdr ...string) resp {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return h.send(req)
}

// withCookie sends method path with the session cookie (value as given) and no Authorization header.
func (h *harness) withCookie(method, path, cookieValue string, body any) resp {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Cookie", cookieName+"="+cookieValue)
	return h.send(req)
}

// sessionJSON is a Supabase session for u whose access token lives for ttl.
func sessionJSON(t testing.TB, u testenv.User, ttl time.Duration) []byte {
	t.Helper()
	now := time.Now()
	b, _ := json.Marshal(map[string]any{
		"access_token": u.Token(t, ttl), "token_type": "bearer", "expires_in": int(ttl.Seconds()),
		"expires_at": now.Add(ttl).Unix(), "refresh_token": "rt-" + testenv.RandomHex(6),
		"user": map[string]any{"id": u.AuthID, "aud": "authenticated", "phone": strings.TrimPrefix(u.Phone, "+")},
	})
	return b
}

// cookieValue encodes a session the way @supabase/ssr writes it ("base64-" + base64url).
func cookieValue(session []byte) string {
	return "base64-" + base64.RawURLEncoding.EncodeToString(session)
}

// noteToSelf returns the caller's note-to-self conversation (created by a trigger with the users row).
func noteToSelf(t testing.TB, h *harness, tok string) string {
	t.Helper()
	r := h.do("GET", "/api/chat/conversations", tok, nil)
	mustStatus(t, r, 200)
	for _, c := range r.JSON(t)["conversations"].([]any) {
		if m := c.(map[string]any); m["type"] == "note_to_self" {
			return m["id"].(string)
		}
	}
	t.Fatalf("no note-to-self conversation: %s", r.Body)
	return ""
}

// newConv creates a conversation of typ (direct, group) by owner with members and returns its id.
func newConv(t testing.TB, h *harness, typ string, owner testenv.User, members ...testenv.User) string {
	t.Helper()
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	body := map[string]any{"type": typ, "participant_ids": ids}
	if typ == "group" {
		body["name"] = "group " + testenv.RandomHex(3)
	}
	r := h.do("POST", "/api/chat/conversations", owner.Token(t, time.Hour), body)
	mustStatus(t, r, 200)
	id, _ := r.JSON(t)["conversation_id"].(string)
	if id == "" {
		t.Fatalf("create: %s", r.Body)
	}
	return id
}

// sendText sends text from sender to every user in to (their copies) and returns the message row.
func sendText(t testing.TB, h *harness, sender testenv.User, conv, text string, to ...testenv.User) map[string]any {
	t.Helper()
	copies := map[string]string{sender.ID: "for-" + sender.Username + ":" + text}
	for _, u := range to {
		copies[u.ID] = "for-" + u.Username + ":" + text
	}
	r := h.do("POST", "/api/messages/send", sender.Token(t, time.Hour), map[string]any{"conversationId": conv,
		"messageType": "text", "encryptedContents": copies})
	mustStatus(t, r, 200)
	m, _ := r.JSON(t)["message"].(map[string]any)
	if m == nil {
		t.Fatalf("send: %s", r.Body)
	}
	return m
}

// dbExec runs SQL as the stack's superuser (test set-up only: groups, which no route creates).
func dbExec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := testenv.DB(t).Exec(ctx, sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// dbScalar reads one value as the stack's superuser (assertions on state no route exposes).
func dbScalar[T any](t testing.TB, sql string, args ...any) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var v T
	if err := testenv.DB(t).QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return v
}

// oversized is a JSON body just over the 1 MiB limit.
func oversized() []byte {
	pad := strings.Repeat("a", 1<<20)
	return []byte(`{"pad":"` + pad + `"}`)
}

// mustMarshal returns v as JSON text.
func mustMarshal(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
