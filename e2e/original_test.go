package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// The "original" stack (scripts/test.sh starts it: STACK_PRODUCTION=1 STACK_CUTOVER=0 STACK_FRONTEND=original) is an
// upgraded production database — the original app's 105 migrations, then ours without the cutover — with the
// ORIGINAL Node server built from the vendored archive serving the app and its own /api.
const (
	envOrigApp      = "SUPARELAY_ORIG_APP_URL"
	envOrigSupabase = "SUPARELAY_ORIG_SUPABASE_URL"
	envOrigDatabase = "SUPARELAY_ORIG_DATABASE_URL"
	envOrigRedis    = "SUPARELAY_ORIG_REDIS_URL"
)

// TestRollbackSafeUntilCutover proves both halves of the upgrade procedure on one upgraded production database:
//  1. before the cutover, the original server still serves sign-in, the conversation list, sending, receiving
//     over its event stream and user search — and suparelay serves the same flows;
//  2. after the cutover migrations, suparelay still does, the users' secrets are out of the API's reach, and the
//     original server's user search breaks (which is why the cutover waits for the switch);
//  3. scripts/sql/undo_cutover.sql (the way back) makes the original server whole again.
func TestRollbackSafeUntilCutover(t *testing.T) {
	orig := strings.TrimRight(testenv.Get(t, envOrigApp), "/")
	gateway := strings.TrimRight(testenv.Get(t, envOrigSupabase), "/")
	dbURL := testenv.Get(t, envOrigDatabase)
	redisURL := testenv.Get(t, envOrigRedis)
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())

	// A re-run on a long-lived stack may find the cutover applied by an earlier run: go back first.
	execFile(t, ctx, db, filepath.Join(root, "scripts", "sql", "undo_cutover.sql"))
	if !phoneReadable(t, ctx, db) {
		t.Fatal("before the cutover, signed-in users must still read users.phone_number (the original server needs it)")
	}

	dir := t.TempDir()
	addr := freeLoopbackAddr(t)
	stop := startSuparelay(t, dir, filepath.Join(dir, "suparelay.log"), map[string]string{
		"LISTEN_ADDR": addr, "SUPABASE_URL": gateway, "SUPABASE_ANON_KEY": devkeys.AnonKey(),
		"SUPABASE_SERVICE_ROLE_KEY": devkeys.ServiceRoleKey(), "SUPABASE_JWT_SECRET": devkeys.JWTSecret,
		"REDIS_URL": redisURL, "EXPIRY_JOB_INTERVAL": "0", "RATE_LIMITS": "false", "FRONTEND_URL": "", "PROXY_SUPABASE": "false",
	})
	defer stop()
	defer func() { // registered before waitReady, so that a server that never came up shows why
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "suparelay.log")); err == nil {
				t.Logf("suparelay log:\n%s", tail(b, 4000))
			}
		}
	}()
	relay := "http://" + addr
	waitReady(t, relay+"/readyz")

	t.Run("before cutover: original server", func(t *testing.T) { coreFlows(t, ctx, db, orig, true) })
	t.Run("before cutover: suparelay", func(t *testing.T) { coreFlows(t, ctx, db, relay, true) })

	for _, f := range cutoverFiles(t, root) {
		execFile(t, ctx, db, f)
	}
	if phoneReadable(t, ctx, db) {
		t.Fatal("after the cutover, users.phone_number must not be readable by signed-in users")
	}
	t.Run("after cutover: suparelay", func(t *testing.T) { coreFlows(t, ctx, db, relay, true) })
	t.Run("after cutover: original server's search breaks", func(t *testing.T) { coreFlows(t, ctx, db, orig, false) })

	execFile(t, ctx, db, filepath.Join(root, "scripts", "sql", "undo_cutover.sql"))
	t.Run("after undo: original server", func(t *testing.T) { coreFlows(t, ctx, db, orig, true) })
}

// coreFlows runs two new users through one server: sign-up by phone OTP, search, a direct conversation, a message
// sent by one and received live by the other over /api/events, and the conversation list. searchWorks says whether
// user search is expected to succeed.
func coreFlows(t *testing.T, ctx context.Context, db *pgx.Conn, base string, searchWorks bool) {
	a := newPhoneUser(t, ctx, db, base, "a")
	b := newPhoneUser(t, ctx, db, base, "b")

	var found struct {
		Users []struct {
			ID string `json:"id"`
		} `json:"users"`
	}
	status, body := a.call(t, ctx, "GET", "/api/users/search?q="+b.username, nil, &found)
	switch {
	case searchWorks && (status != http.StatusOK || len(found.Users) != 1 || found.Users[0].ID != b.id):
		t.Fatalf("search for %s: %d %s", b.username, status, body)
	case !searchWorks && status == http.StatusOK:
		t.Fatalf("search for %s answered 200 although the cutover hides phone_number: %s", b.username, body)
	}

	var conv struct {
		ID string `json:"conversation_id"`
	}
	if status, body := a.call(t, ctx, "POST", "/api/chat/conversations",
		map[string]any{"type": "direct", "participant_ids": []string{b.id}}, &conv); status != http.StatusOK || conv.ID == "" {
		t.Fatalf("create direct conversation: %d %s", status, body)
	}

	events := b.stream(t, ctx)
	if status, body := b.call(t, ctx, "POST", "/api/conversations/join", map[string]any{"conversationId": conv.ID}, nil); status != http.StatusOK {
		t.Fatalf("join: %d %s", status, body)
	}
	var sent struct {
		Message struct {
			ID string `json:"id"`
		} `json:"message"`
	}
	if status, body := a.call(t, ctx, "POST", "/api/messages/send", map[string]any{
		"conversationId": conv.ID, "messageType": "text",
		"encryptedContents": map[string]string{a.id: "eyJhIjoxfQ==", b.id: "eyJiIjoxfQ=="},
	}, &sent); status != http.StatusOK || sent.Message.ID == "" {
		t.Fatalf("send: %d %s", status, body)
	}
	deadline := time.After(15 * time.Second)
	for got := false; !got; {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("event stream ended before NEW_MESSAGE")
			}
			got = ev.name == "NEW_MESSAGE" && strings.Contains(ev.data, sent.Message.ID)
		case <-deadline:
			t.Fatal("no NEW_MESSAGE for the sent message within 15 s")
		}
	}

	var list struct {
		Conversations []map[string]any `json:"conversations"`
	}
	if status, body := a.call(t, ctx, "GET", "/api/chat/conversations", nil, &list); status != http.StatusOK {
		t.Fatalf("conversation list: %d %s", status, body)
	}
	var ids []string
	for _, c := range list.Conversations {
		if id, _ := c["id"].(string); id != "" {
			ids = append(ids, id)
		} else if id, _ := c["conversation_id"].(string); id != "" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if i := sort.SearchStrings(ids, conv.ID); i >= len(ids) || ids[i] != conv.ID {
		t.Fatalf("conversation %s missing from the list %v", conv.ID, ids)
	}
}

// phoneUser is a user signed up through a server's own /api/auth routes, with its cookie jar.
type phoneUser struct {
	base, phone, username, id, token string
	addr                             string // its client address (X-Forwarded-For): rate limits are per address
	client                           *http.Client
}

func newPhoneUser(t *testing.T, ctx context.Context, db *pgx.Conn, base, tag string) *phoneUser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u := &phoneUser{base: base, phone: testPhoneIn(t, ctx, db), client: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		Transport: &http.Transport{}}}
	u.username = "o" + tag + "_" + testenv.RandomHex(5)
	r := testenv.RandomHex(2)
	u.addr = fmt.Sprintf("10.88.%d.%d", int(r[0])%200+1, int(r[1]+r[2])%200+1)
	if status, body := u.call(t, ctx, "POST", "/api/auth/send-sms", map[string]any{"phoneNumber": u.phone}, nil); status != http.StatusOK {
		t.Fatalf("send-sms %s: %d %s", u.phone, status, body)
	}
	var first struct {
		RequiresUsername bool            `json:"requiresUsername"`
		Session          json.RawMessage `json:"session"`
	}
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	if status, body := u.call(t, ctx, "POST", "/api/auth/verify-sms",
		map[string]any{"phoneNumber": u.phone, "verificationCode": devkeys.TestOTP}, &first); status != http.StatusOK ||
		!first.RequiresUsername || json.Unmarshal(first.Session, &sess) != nil || sess.AccessToken == "" {
		t.Fatalf("verify-sms %s: %d %s", u.phone, status, body)
	}
	u.token = sess.AccessToken
	var done struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if status, body := u.call(t, ctx, "POST", "/api/auth/verify-sms", map[string]any{"phoneNumber": u.phone,
		"username": u.username, "displayName": u.username, "useSession": true}, &done); status != http.StatusOK || done.User.ID == "" {
		t.Fatalf("profile of %s: %d %s", u.phone, status, body)
	}
	u.id = done.User.ID
	// The browser's Supabase client stores the verified session in the @supabase/ssr cookie after sign-up
	// (setSession); a plain HTTP client writes the same cookie itself.
	cookieURL, _ := http.NewRequest("GET", base+"/", nil)
	jar.SetCookies(cookieURL.URL, []*http.Cookie{{Name: "sb-127-auth-token", Value: cookieValue(first.Session), Path: "/"}})
	return u
}

// call sends a JSON request (with the bearer token once known, and the session cookie) and decodes the answer.
func (u *phoneUser) call(t *testing.T, ctx context.Context, method, path string, body any, out any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", u.base)
	req.Header.Set("X-Forwarded-For", u.addr)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	res, err := u.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if out != nil && res.StatusCode == http.StatusOK {
		_ = json.Unmarshal(b, out)
	}
	return res.StatusCode, b
}

type sseEvent struct{ name, data string }

// stream opens /api/events with the session cookie (as EventSource does: no Authorization header) and returns its
// events once CONNECTED arrived.
func (u *phoneUser) stream(t *testing.T, ctx context.Context) <-chan sseEvent {
	t.Helper()
	sctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(sctx, "GET", u.base+"/api/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-Forwarded-For", u.addr)
	client := &http.Client{Jar: u.client.Jar, Transport: &http.Transport{}}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("events: %d %s", res.StatusCode, b)
	}
	out := make(chan sseEvent, 64)
	go func() {
		defer res.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					select {
					case out <- ev:
					case <-sctx.Done():
						return
					}
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data += line[len("data: "):]
			}
		}
	}()
	select {
	case ev, ok := <-out:
		if !ok || ev.name != "CONNECTED" {
			t.Fatalf("first event %q, want CONNECTED", ev.name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no CONNECTED within 10 s")
	}
	return out
}

// testPhoneIn allocates a number of the test phone block from a sequence in db (the stack's own database, so that
// two tests of one stack never share a number).
func testPhoneIn(t *testing.T, ctx context.Context, db *pgx.Conn) string {
	t.Helper()
	if _, err := db.Exec(ctx, `create schema if not exists suparelay_test;
	                           create sequence if not exists suparelay_test.test_phone`); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := db.QueryRow(ctx, `select nextval('suparelay_test.test_phone')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	phone := devkeys.TestPhone(int(n - 1))
	if n > devkeys.TestPhoneCount { // a long-lived stack wrapped around: free the number
		_, _ = db.Exec(ctx, `update auth.users set phone = null where phone = $1`, phone)
		_, _ = db.Exec(ctx, `update public.users set phone_number = '+0' || replace(id::text, '-', '') where phone_number = $1`, "+"+phone)
	}
	return "+" + phone
}

func phoneReadable(t *testing.T, ctx context.Context, db *pgx.Conn) bool {
	t.Helper()
	var ok bool
	if err := db.QueryRow(ctx, `select has_column_privilege('authenticated', 'public.users', 'phone_number', 'select')`).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// cutoverFiles are our *_cutover_* migrations, in order.
func cutoverFiles(t *testing.T, root string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "supabase", "migrations", "*_cutover_*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cutover migrations (%v)", err)
	}
	sort.Strings(files)
	return files
}

// execFile runs one SQL file as one transaction, as the migration runner does.
func execFile(t *testing.T, ctx context.Context, db *pgx.Conn, path string) {
	t.Helper()
	sql, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, string(sql)); err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// cookieValue encodes a session as @supabase/ssr does: "base64-" + unpadded base64url of the JSON.
func cookieValue(session []byte) string {
	return "base64-" + base64.RawURLEncoding.EncodeToString(session)
}
