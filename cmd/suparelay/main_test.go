package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	_, err := LoadConfig(env(map[string]string{"PORT": "x", "SUPABASE_URL": "ftp://nope", "LOG_LEVEL": "loud",
		"SSE_HEARTBEAT": "soon", "SUPABASE_JWT_SECRET": "short", "REDIS_URL": "http://x", "TRUSTED_PROXIES": "nope",
		"SMS_PROVIDER": "pigeon", "MIGRATION_MODE": "true"}))
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"PORT", "SUPABASE_URL", "SUPABASE_ANON_KEY is required", "LOG_LEVEL", "SSE_HEARTBEAT",
		"SUPABASE_JWT_SECRET", "REDIS_URL", "TRUSTED_PROXIES", "SMS_PROVIDER", "MIGRATION_MODE needs FRONTEND_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(env(map[string]string{"SUPABASE_URL": "http://127.0.0.1:54321/", "SUPABASE_ANON_KEY": "k"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 3000 || c.SupabaseURL != "http://127.0.0.1:54321" || c.PublicSupabaseURL != c.SupabaseURL ||
		c.JWKSURL != "http://127.0.0.1:54321/auth/v1/.well-known/jwks.json" || c.SSEHeartbeat != 25*time.Second ||
		c.SSERoomGrace != 120*time.Second || c.SecureCookies || !c.RateLimits || c.SMSProvider != "log" {
		t.Fatalf("defaults: %+v", c)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startMain runs the real server binary's Main on a free port and returns its base URL.
func startMain(t *testing.T, vars map[string]string) string {
	t.Helper()
	base, _ := startMainStoppable(t, vars)
	return base
}

// startMainStoppable is startMain that also returns a function stopping the server (as SIGTERM does) and waiting
// for Run to return; it is called at cleanup too (a second call does nothing).
func startMainStoppable(t *testing.T, vars map[string]string) (string, func()) {
	t.Helper()
	return startMainLogging(t, vars, io.Discard)
}

// startMainLogging is startMainStoppable with the server's JSON log written to logs.
func startMainLogging(t *testing.T, vars map[string]string, logs io.Writer) (string, func()) {
	t.Helper()
	if _, set := vars["EXPIRY_JOB_INTERVAL"]; !set {
		vars["EXPIRY_JOB_INTERVAL"] = "0" // the global cleanup would race the jobs package's expiry test
	}
	cfg, err := LoadConfig(env(vars))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewJSONHandler(logs, nil))
	m, err := NewMain(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	// Bind before running, on a port the kernel picks: nothing can take it in between.
	if m.listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("shutdown took too long")
			}
		})
	}
	t.Cleanup(stop)
	return "http://" + m.listener.Addr().String(), stop
}

func readyz(t *testing.T, base string) (int, map[string]any) {
	t.Helper()
	res, err := isolatedClient.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body
}

// TestStartsWithoutSupabase: with Supabase unreachable the server starts, /healthz is 200 and /readyz 503 with the
// reasons (PostgREST unreachable, no signing keys).
func TestStartsWithoutSupabase(t *testing.T) {
	base := startMain(t, map[string]string{"SUPABASE_URL": "http://" + freeAddr(t), "SUPABASE_ANON_KEY": devkeys.AnonKey()})
	res, err := isolatedClient.Get(base + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", res, err)
	}
	res.Body.Close()
	code, body := readyz(t, base)
	reasons, _ := body["reasons"].(map[string]any)
	if code != http.StatusServiceUnavailable || reasons["postgrest"] == nil || reasons["signing_keys"] == nil {
		t.Fatalf("readyz = %d %v, want 503 naming postgrest and signing_keys", code, body)
	}
}

// TestReadyAgainstTheStack: against the real local stack /readyz is 200 once the JWKS has loaded.
func TestReadyAgainstTheStack(t *testing.T) {
	base := startMain(t, map[string]string{"SUPABASE_URL": testenv.SupabaseURL(t), "SUPABASE_ANON_KEY": devkeys.AnonKey(),
		"SUPABASE_SERVICE_ROLE_KEY": devkeys.ServiceRoleKey(), "SUPABASE_JWT_SECRET": devkeys.JWTSecret})
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := readyz(t, base)
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz = %d %v after 10 s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReadyzFollowsPostgREST: /readyz turns 503 while the PostgREST behind the gateway is down and 200 again when
// it is back. The gateway in front of the real stack answers 502 for /rest/v1 while "down", as Kong does when
// PostgREST is gone. The same for Storage at /storage/v1.
func TestReadyzFollowsPostgREST(t *testing.T) {
	for _, c := range []struct{ prefix, reason string }{{"/rest/v1", "postgrest"}, {"/storage/v1", "storage"}} {
		t.Run(c.reason, func(t *testing.T) { readyzFollows(t, c.prefix, c.reason) })
	}
}

func readyzFollows(t *testing.T, prefix, reason string) {
	upstream, err := url.Parse(testenv.SupabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() && strings.HasPrefix(r.URL.Path, prefix) {
			http.Error(w, `{"message":"An invalid response was received from the upstream server"}`, http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer gw.Close()
	base := startMain(t, map[string]string{"SUPABASE_URL": gw.URL, "SUPABASE_ANON_KEY": devkeys.AnonKey()})
	waitReady := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body := readyz(t, base)
			if code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("readyz = %d %v, want %d", code, body, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitReady(http.StatusOK)
	down.Store(true)
	code, body := readyz(t, base)
	if reasons, _ := body["reasons"].(map[string]any); code != http.StatusServiceUnavailable || reasons[reason] != "unreachable" ||
		len(reasons) != 1 {
		t.Fatalf("readyz with %s down = %d %v, want 503 naming only %s", prefix, code, body, reason)
	}
	down.Store(false)
	waitReady(http.StatusOK)
}

// TestServerEndToEnd runs the real server (detached SSE streams, presence on, memory broker) against the stack:
// a stream opens with CONNECTED, a message sent through the API arrives on it, and shutting the server down ends
// the stream promptly.
func TestServerEndToEnd(t *testing.T) {
	base, stop := startMainStoppable(t, map[string]string{"SUPABASE_URL": testenv.SupabaseURL(t),
		"SUPABASE_ANON_KEY": devkeys.AnonKey(), "SUPABASE_SERVICE_ROLE_KEY": devkeys.ServiceRoleKey(), "RATE_LIMITS": "false"})
	alice, bob := testenv.NewUser(t), testenv.NewUser(t)
	at, bt := alice.Token(t, time.Hour), bob.Token(t, time.Hour)
	call := func(path, tok string, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := isolatedClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d %v", path, res.StatusCode, out)
		}
		return out
	}
	conv := call("/api/chat/conversations", at, `{"type":"direct","participant_ids":["`+bob.ID+`"]}`)["conversation_id"].(string)

	req, _ := http.NewRequest("GET", base+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+bt)
	res, err := isolatedClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("events: %d %v", res.StatusCode, res.Header)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	waitFor := func(prefix string) string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended waiting for %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %q within 10 s", prefix)
			}
		}
	}
	waitFor("event: CONNECTED")
	call("/api/messages/send", at, `{"conversationId":"`+conv+`","encryptedContents":{"`+alice.ID+`":"a","`+bob.ID+`":"b"}}`)
	waitFor("event: NEW_MESSAGE")
	if l := waitFor("data: "); !strings.Contains(l, `"conversation_id":"`+conv+`"`) {
		t.Fatalf("NEW_MESSAGE data %s", l)
	}
	// Shutdown with the stream still open: it ends (with a retry hint) and Run returns.
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	for l := range lines {
		_ = l // drain until the server closes the stream
	}
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop with a stream open")
	}
}
