package frontdoor

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// seen records what an upstream received.
type seen struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (s *seen) add(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, r.Clone(r.Context()))
}

func (s *seen) last(t *testing.T) *http.Request {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatal("upstream received nothing")
	}
	return s.reqs[len(s.reqs)-1]
}

func (s *seen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// apiHandler answers /api/implemented, /api/events (SSE, waits for release) and the health paths; anything else
// gets the API's 404.
func apiHandler(release <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/implemented", "/healthz":
			_, _ = io.WriteString(w, "api:"+r.URL.Path)
		case "/api/events":
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "event: ready\ndata: {}\n\n")
			_ = http.NewResponseController(w).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Second):
			}
			_, _ = io.WriteString(w, "event: later\ndata: {}\n\n")
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"Not found"}`)
		}
	})
}

func newDoor(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	if cfg.API == nil {
		cfg.API = apiHandler(nil)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, h)
}

func get(t *testing.T, rawURL string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	// Its own transport: httptest servers closing in parallel tests close the idle connections of
	// http.DefaultTransport, and with them this request's.
	resp, err := isolatedClient.Transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestPagesAndCookies: a page request reaches the frontend with path, query, Cookie and Authorization unchanged,
// the upstream's own Host and the X-Forwarded-* headers; status, headers, every Set-Cookie and the body come back.
func TestPagesAndCookies(t *testing.T) {
	t.Parallel()
	var fe seen
	frontend := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fe.add(r)
		http.SetCookie(w, &http.Cookie{Name: "sb-127-auth-token", Value: "base64-abc", Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		http.SetCookie(w, &http.Cookie{Name: "theme", Value: "dark", Path: "/"})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("X-Sveltekit-Page", "true")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "<!doctype html><h1>chat</h1>")
	}))
	door := newDoor(t, Config{FrontendURL: mustURL(t, frontend.URL)})

	resp, body := get(t, door.URL+"/chat/d0000000?tab=1&x=%2F", map[string]string{
		"Cookie": "sb-127-auth-token=base64-old; theme=light", "Authorization": "Bearer tok",
		"X-Forwarded-For": "6.6.6.6", // from an untrusted peer: replaced
	})
	if resp.StatusCode != http.StatusCreated || body != "<!doctype html><h1>chat</h1>" {
		t.Errorf("answer = %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 2 || !strings.HasPrefix(got[0], "sb-127-auth-token=base64-abc; Path=/; HttpOnly; SameSite=Lax") || got[1] != "theme=dark; Path=/" {
		t.Errorf("Set-Cookie = %q", got)
	}
	if resp.Header.Get("X-Sveltekit-Page") != "true" || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("headers = %v", resp.Header)
	}
	r := fe.last(t)
	doorHost := mustURL(t, door.URL).Host
	checks := map[string][2]string{
		"path":              {r.URL.Path, "/chat/d0000000"},
		"query":             {r.URL.RawQuery, "tab=1&x=%2F"},
		"Host":              {r.Host, mustURL(t, frontend.URL).Host},
		"Cookie":            {r.Header.Get("Cookie"), "sb-127-auth-token=base64-old; theme=light"},
		"Authorization":     {r.Header.Get("Authorization"), "Bearer tok"},
		"X-Forwarded-For":   {r.Header.Get("X-Forwarded-For"), "127.0.0.1"},
		"X-Forwarded-Host":  {r.Header.Get("X-Forwarded-Host"), doorHost},
		"X-Forwarded-Proto": {r.Header.Get("X-Forwarded-Proto"), "http"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("upstream %s = %q, want %q", name, c[0], c[1])
		}
	}
}

// TestHostAndTrustedProxy: PreserveHost sends the client's Host; a trusted peer's X-Forwarded-* chain is kept and
// extended.
func TestHostAndTrustedProxy(t *testing.T) {
	t.Parallel()
	var fe seen
	frontend := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fe.add(r) }))
	door := newDoor(t, Config{FrontendURL: mustURL(t, frontend.URL), PreserveHost: true,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	get(t, door.URL+"/", map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "qrypt.chat"})
	r := fe.last(t)
	if r.Host != mustURL(t, door.URL).Host {
		t.Errorf("Host = %q, want the client's %q", r.Host, mustURL(t, door.URL).Host)
	}
	if got := r.Header.Get("X-Forwarded-For"); got != "203.0.113.9, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if r.Header.Get("X-Forwarded-Proto") != "https" || r.Header.Get("X-Forwarded-Host") != "qrypt.chat" {
		t.Errorf("X-Forwarded-Proto/Host = %q/%q", r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"))
	}
}

// readWithin runs read in a goroutine and fails the test if it has not returned within 10 s (a bound, not a
// timing assertion): used to prove that a piece arrives while the upstream is still holding the response open.
func readWithin(t *testing.T, what string, read func() (string, error)) string {
	t.Helper()
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() { s, err := read(); ch <- result{s, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r.s
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing arrived (buffered?)", what)
		return ""
	}
}

// streamCheck GETs path through the door and checks that the first piece arrives before release is closed (the
// upstream is still mid-response), then the rest after.
func streamCheck(t *testing.T, doorURL, path, first, rest string, release chan struct{}) {
	t.Helper()
	resp, err := isolatedClient.Get(doorURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	got := readWithin(t, "first piece", func() (string, error) {
		b := make([]byte, len(first))
		_, err := io.ReadFull(br, b)
		return string(b), err
	})
	if got != first {
		t.Fatalf("first piece = %q, want %q", got, first)
	}
	close(release)
	tail := readWithin(t, "rest", func() (string, error) { b, err := io.ReadAll(br); return string(b), err })
	if tail != rest {
		t.Errorf("rest = %q, want %q", tail, rest)
	}
}

// TestStreamingFromFrontend: a streamed page (no Content-Length) arrives in pieces before the upstream finishes.
func TestStreamingFromFrontend(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	frontend := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html><body>shell")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Second):
		}
		_, _ = io.WriteString(w, "<p>streamed</p></body></html>")
	}))
	door := newDoor(t, Config{FrontendURL: mustURL(t, frontend.URL)})
	streamCheck(t, door.URL, "/", "<html><body>shell", "<p>streamed</p></body></html>", release)
}

// TestEventsNotBuffered: /api/events served by the API handler streams through the door; in migration mode an
// unimplemented /api/events proxied to the frontend (text/event-stream) streams too.
func TestEventsNotBuffered(t *testing.T) {
	t.Parallel()
	t.Run("api", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		door := newDoor(t, Config{API: apiHandler(release)})
		streamCheck(t, door.URL, "/api/events", "event: ready\ndata: {}\n\n", "event: later\ndata: {}\n\n", release)
	})
	t.Run("migration to frontend", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		frontend := serve(t, apiHandler(release)) // plays the old Node /api/events
		door := newDoor(t, Config{FrontendURL: mustURL(t, frontend.URL), MigrationMode: true,
			Implemented: func(r *http.Request) bool { return false }})
		streamCheck(t, door.URL, "/api/events", "event: ready\ndata: {}\n\n", "event: later\ndata: {}\n\n", release)
	})
}

// TestWebSocketPassThrough: an RFC 6455 upgrade through the door gets the upstream's 101 with the right accept
// key, then frames flow both ways (upstream greeting → client; client frame → upstream → echo back).
func TestWebSocketPassThrough(t *testing.T) {
	t.Parallel()
	frontend := serve(t, wsEchoUpstream(t))
	door := newDoor(t, Config{FrontendURL: mustURL(t, frontend.URL)})

	conn, err := net.Dial("tcp", mustURL(t, door.URL).Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	keyBytes := make([]byte, 16)
	_, _ = rand.Read(keyBytes)
	key := base64.StdEncoding.EncodeToString(keyBytes)
	req := "GET /ws HTTP/1.1\r\nHost: " + mustURL(t, door.URL).Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		t.Fatalf("handshake = %d accept %q", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	op, msg, err := wsReadFrame(br, false)
	if err != nil || op != wsText || string(msg) != "hello from upstream" {
		t.Fatalf("greeting = %d %q %v", op, msg, err)
	}
	for _, m := range []string{"ping", strings.Repeat("x", 300)} {
		if err := wsWriteFrame(conn, wsText, []byte(m), true); err != nil {
			t.Fatal(err)
		}
		op, msg, err = wsReadFrame(br, false)
		if err != nil || op != wsText || string(msg) != "echo: "+m {
			t.Fatalf("echo = %d %q %v", op, msg, err)
		}
	}
	_ = wsWriteFrame(conn, wsClose, []byte{0x03, 0xe8}, true)
	if op, _, err = wsReadFrame(br, false); err != nil || op != wsClose {
		t.Errorf("close = %d %v", op, err)
	}
}

// TestRouting: migration-mode fallthrough for unimplemented /api paths, never outside it; health paths always
// go to the API; without a frontend non-API paths are a JSON 404; traversal into /api never reaches the frontend.
func TestRouting(t *testing.T) {
	t.Parallel()
	var fe seen
	frontend := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fe.add(r)
		_, _ = io.WriteString(w, "node:"+r.URL.Path)
	}))
	implemented := func(r *http.Request) bool { return r.URL.Path == "/api/implemented" || r.URL.Path == "/api/events" }
	migrating := newDoor(t, Config{FrontendURL: mustURL(t, frontend.URL), MigrationMode: true, Implemented: implemented})
	strict := newDoor(t, Config{FrontendURL: mustURL(t, frontend.URL)})
	noFrontend := newDoor(t, Config{})

	tests := []struct {
		door       string
		path       string
		wantStatus int
		wantBody   string
	}{
		{migrating.URL, "/api/implemented", 200, "api:/api/implemented"},
		{migrating.URL, "/api/legacy/route", 200, "node:/api/legacy/route"},
		{migrating.URL, "/healthz", 200, "api:/healthz"},
		{migrating.URL, "/x/../api/implemented", 404, `{"error":"Not found"}`},
		{strict.URL, "/api/legacy/route", 404, `{"error":"Not found"}`},
		{strict.URL, "/api", 404, `{"error":"Not found"}`},
		{strict.URL, "/healthz", 200, "api:/healthz"},
		{strict.URL, "/apiary", 200, "node:/apiary"},
		{strict.URL, "/rest/v1/users", 200, "node:/rest/v1/users"}, // ProxySupabase off: the frontend's business
		{strict.URL, "/x/../api/users/search", 404, `{"error":"Not found"}`},
		{strict.URL, "//api/users/search", 404, `{"error":"Not found"}`},
		{strict.URL, `/\api/users/search`, 404, `{"error":"Not found"}`},
		{strict.URL, "/API/users/search", 404, `{"error":"Not found"}`},
		{noFrontend.URL, "/", 404, `{"error":"Not found"}`},
		{noFrontend.URL, "/api/implemented", 200, "api:/api/implemented"},
	}
	for _, tt := range tests {
		before := fe.count()
		resp, body := get(t, tt.door+tt.path, nil)
		if resp.StatusCode != tt.wantStatus || body != tt.wantBody {
			t.Errorf("%s: %d %q, want %d %q", tt.path, resp.StatusCode, body, tt.wantStatus, tt.wantBody)
		}
		if !strings.HasPrefix(tt.wantBody, "node:") && fe.count() != before {
			t.Errorf("%s reached the frontend", tt.path)
		}
	}
}

// TestSupabasePassThrough asserts that the fake Supabase receives the exact method, path, query, listed headers
// and a streamed 8 MiB body of unknown length (no size cap), never the app's Cookie, and that its status, headers
// and body come back unchanged — for a signed upload PUT and a ranged GET.
func TestSupabasePassThrough(t *testing.T) {
	t.Parallel()
	var sb seen
	supabase := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		sb.add(r)
		w.Header().Set("ETag", `"abc"`)
		w.Header().Set("Content-Profile", "public")
		if r.Header.Get("Range") != "" {
			w.Header().Set("Content-Range", "bytes 0-3/10")
			w.WriteHeader(http.StatusPartialContent)
			_, _ = io.WriteString(w, "0123")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"Key":"encrypted-files/a/b","sha":"`+hex.EncodeToString(h.Sum(nil))+`","n":`+itoa(n)+`}`)
	}))
	door := newDoor(t, Config{ProxySupabase: true, SupabaseURL: mustURL(t, supabase.URL)})

	const size = 8 << 20
	pr, pw := io.Pipe()
	want := sha256.New()
	go func() {
		buf := make([]byte, 64<<10)
		for written := 0; written < size; written += len(buf) {
			_, _ = rand.Read(buf)
			want.Write(buf)
			if _, err := pw.Write(buf); err != nil {
				return
			}
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPut, door.URL+"/storage/v1/object/upload/sign/encrypted-files/a/b?token=t.o.k", pr)
	hdr := map[string]string{
		"apikey": "anon-key", "Authorization": "Bearer user-jwt", "Content-Type": "application/octet-stream",
		"x-upsert": "false", "cache-control": "max-age=3600", "x-client-info": "supabase-js-web/2.74.0",
		"Prefer": "return=representation", "Cookie": "sb-127-auth-token=secret",
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := isolatedClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantBody := `{"Key":"encrypted-files/a/b","sha":"` + hex.EncodeToString(want.Sum(nil)) + `","n":` + itoa(size) + `}`
	if resp.StatusCode != 200 || string(body) != wantBody || resp.Header.Get("ETag") != `"abc"` || resp.Header.Get("Content-Profile") != "public" {
		t.Errorf("answer = %d %s %v", resp.StatusCode, body, resp.Header)
	}
	r := sb.last(t)
	if r.Method != http.MethodPut || r.URL.Path != "/storage/v1/object/upload/sign/encrypted-files/a/b" || r.URL.RawQuery != "token=t.o.k" {
		t.Errorf("upstream request = %s %s?%s", r.Method, r.URL.Path, r.URL.RawQuery)
	}
	if r.Host != mustURL(t, supabase.URL).Host {
		t.Errorf("Host = %q", r.Host)
	}
	for k, v := range hdr {
		got := r.Header.Get(k)
		if k == "Cookie" {
			v = ""
		}
		if got != v {
			t.Errorf("upstream %s = %q, want %q", k, got, v)
		}
	}

	resp, body2 := get(t, door.URL+"/rest/v1/messages?select=*&conversation_id=eq.1", map[string]string{"Range": "0-3", "apikey": "anon-key"})
	if resp.StatusCode != http.StatusPartialContent || body2 != "0123" || resp.Header.Get("Content-Range") != "bytes 0-3/10" {
		t.Errorf("ranged answer = %d %q %v", resp.StatusCode, body2, resp.Header)
	}
	if r := sb.last(t); r.URL.Path != "/rest/v1/messages" || r.URL.RawQuery != "select=*&conversation_id=eq.1" || r.Header.Get("Range") != "0-3" {
		t.Errorf("upstream = %s?%s Range %q", r.URL.Path, r.URL.RawQuery, r.Header.Get("Range"))
	}
	if resp, _ := get(t, door.URL+"/auth/v1/token?grant_type=refresh_token", nil); resp.StatusCode != 200 || sb.last(t).URL.Path != "/auth/v1/token" {
		t.Errorf("auth pass-through = %d %s", resp.StatusCode, sb.last(t).URL.Path)
	}
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}

// TestBadGateway: a frontend or Supabase that is down gives 502 {"error":"Bad gateway"}.
func TestBadGateway(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := mustURL(t, dead.URL)
	dead.Close()
	door := newDoor(t, Config{FrontendURL: deadURL, ProxySupabase: true, SupabaseURL: deadURL})
	for _, p := range []string{"/", "/rest/v1/users"} {
		resp, body := get(t, door.URL+p, nil)
		if resp.StatusCode != http.StatusBadGateway || body != `{"error":"Bad gateway"}` || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
}

// TestRedirectWWW: www.<host> gets a 301 to the bare host with path and query.
func TestRedirectWWW(t *testing.T) {
	t.Parallel()
	door := newDoor(t, Config{RedirectWWW: true})
	req, _ := http.NewRequest(http.MethodGet, door.URL+"/chat?x=1", nil)
	req.Host = "www.qrypt.chat"
	// Its own transport: httptest servers closing in parallel tests close the idle connections of
	// http.DefaultTransport, and with them this request's.
	resp, err := isolatedClient.Transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "http://qrypt.chat/chat?x=1" {
		t.Errorf("redirect = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	api := http.NotFoundHandler()
	fe := &url.URL{Scheme: "http", Host: "127.0.0.1:3000"}
	for i, cfg := range []Config{
		{},
		{API: api, MigrationMode: true, FrontendURL: fe},
		{API: api, MigrationMode: true, Implemented: func(*http.Request) bool { return true }},
		{API: api, ProxySupabase: true},
		{API: api, FrontendURL: &url.URL{Path: "relative"}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
}
