package middleware

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	// A client of its own: httptest servers closing in parallel tests close http.DefaultTransport's idle
	// connections, which can fail a request of another test that shares it.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	var seen string
	srv := httptest.NewServer(RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = RequestIDFrom(r.Context())
	})))
	t.Cleanup(srv.Close)
	resp, _ := get(t, srv.URL, nil)
	if got := resp.Header.Get(RequestIDHeader); len(got) != 32 || got != seen {
		t.Errorf("generated id %q (handler saw %q)", got, seen)
	}
	resp, _ = get(t, srv.URL, map[string]string{RequestIDHeader: "edge-abc.123"})
	if got := resp.Header.Get(RequestIDHeader); got != "edge-abc.123" {
		t.Errorf("plain incoming id replaced: %q", got)
	}
	resp, _ = get(t, srv.URL, map[string]string{RequestIDHeader: "<script>" + strings.Repeat("x", 100)})
	if got := resp.Header.Get(RequestIDHeader); len(got) != 32 {
		t.Errorf("hostile incoming id kept: %q", got)
	}
}

func TestRecoverer(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	mux := http.NewServeMux()
	mux.HandleFunc("/boom", func(http.ResponseWriter, *http.Request) { panic("secret detail: db password") })
	mux.HandleFunc("/late", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		panic("after header")
	})
	srv := httptest.NewServer(RequestID(Recoverer(logger)(mux)))
	t.Cleanup(srv.Close)

	resp, body := get(t, srv.URL+"/boom", nil)
	if resp.StatusCode != 500 || body != `{"error":"Internal server error"}` || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("panic answer: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	if strings.Contains(body, "secret") {
		t.Error("panic value leaked to the client")
	}
	l := logs.String()
	if !strings.Contains(l, "secret detail") || !strings.Contains(l, "goroutine") || !strings.Contains(l, resp.Header.Get(RequestIDHeader)) {
		t.Errorf("log lacks panic value, stack or request id: %s", l)
	}
	resp, _ = get(t, srv.URL+"/late", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("status after late panic = %d, want the already-sent 202", resp.StatusCode)
	}
}

// TestPanicOrderAccessLogInside: with Recoverer outside AccessLog the request is still logged (as a 500) and the
// panic log still points at the handler that panicked.
func TestPanicOrderAccessLogInside(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	srv := httptest.NewServer(RequestID(Recoverer(logger)(AccessLog(logger)(http.HandlerFunc(panickingHandler)))))
	t.Cleanup(srv.Close)
	resp, _ := get(t, srv.URL+"/p", nil)
	if resp.StatusCode != 500 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var access, panicLine map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		switch m["msg"] {
		case "http request":
			access = m
		case "panic serving request":
			panicLine = m
		}
	}
	if access == nil || access["status"] != float64(500) {
		t.Errorf("access log = %v", access)
	}
	if panicLine == nil || !strings.Contains(panicLine["stack"].(string), "panickingHandler") {
		t.Errorf("panic log lacks the original frame: %v", panicLine)
	}
}

func panickingHandler(http.ResponseWriter, *http.Request) { panic("boom") }

func TestRecovererRepanicsAbort(t *testing.T) {
	t.Parallel()
	h := Recoverer(quietLog)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", v)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	t.Error("ErrAbortHandler swallowed")
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	ec := newECSigner(t, "k")
	v := newTestVerifier(t, newKeyServer(t, ec.jwk()))
	a, err := NewAuthenticator(AuthConfig{Verifier: v, CookieName: testCookie, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(RequestID(AccessLog(logger)(a.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "12345")
	})))))
	t.Cleanup(srv.Close)
	sub := newUUID()
	resp, _ := get(t, srv.URL+"/api/x?token=secret", map[string]string{"Authorization": "Bearer " + ec.sign(t, userClaims(sub, time.Hour))})
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line); err != nil {
		t.Fatalf("log line %q: %v", logs.String(), err)
	}
	want := map[string]any{"method": "GET", "path": "/api/x", "status": float64(418), "bytes": float64(5),
		"request_id": resp.Header.Get(RequestIDHeader), "user": sub}
	for k, w := range want {
		if line[k] != w {
			t.Errorf("log %s = %v, want %v", k, line[k], w)
		}
	}
	if _, ok := line["duration"]; !ok || strings.Contains(logs.String(), "secret") {
		t.Errorf("log line: %s", logs.String())
	}
}

// TestWrappersFlush: the wrapping writers must not break streaming (SSE): the first event reaches the client
// while the handler is still running.
func TestWrappersFlush(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through wrappers: %v", err)
		}
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("write deadline through wrappers: %v", err)
		}
		<-release
	})
	srv := httptest.NewServer(RequestID(AccessLog(quietLog)(Recoverer(quietLog)(BodyLimit(1 << 20)(SecurityHeaders(h))))))
	t.Cleanup(srv.Close)
	resp, err := isolatedClient.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	close(release)
	if err != nil || line != "data: one\n" {
		t.Errorf("first line %q, err %v", line, err)
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	h := BodyLimit(1024)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v any
		if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"Invalid JSON"}`)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	post := func(body io.Reader, chunked bool) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, body)
		if chunked {
			req.ContentLength = -1 // no Content-Length: the limit is hit while reading
		}
		resp, err := isolatedClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	big := `"` + strings.Repeat("x", 4096) + `"`
	for _, chunked := range []bool{false, true} {
		code, body := post(strings.NewReader(big), chunked)
		if code != http.StatusRequestEntityTooLarge || body != `{"error":"Request body too large"}` {
			t.Errorf("chunked=%v oversize: %d %s", chunked, code, body)
		}
		code, body = post(strings.NewReader(`{"a":1}`), chunked)
		if code != 200 || body != `{"ok":true}` {
			t.Errorf("chunked=%v small: %d %s", chunked, code, body)
		}
		code, body = post(strings.NewReader(`{"a":`), chunked)
		if code != 400 {
			t.Errorf("chunked=%v bad JSON under limit: %d %s", chunked, code, body)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/plain", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/cached", func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("Cache-Control", "private, max-age=60") })
	srv := httptest.NewServer(SecurityHeaders(mux))
	t.Cleanup(srv.Close)
	resp, _ := get(t, srv.URL+"/plain", nil)
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", resp.Header)
	}
	resp, _ = get(t, srv.URL+"/cached", nil)
	if got := resp.Header.Get("Cache-Control"); got != "private, max-age=60" {
		t.Errorf("handler's Cache-Control replaced: %q", got)
	}
}

func TestCrossSiteFormGuard(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(CrossSiteFormGuard("https://qrypt.chat")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})))
	t.Cleanup(srv.Close)
	self := srv.URL // http://127.0.0.1:port
	for _, tc := range []struct {
		method, ct, origin, fetchSite string
		want                          int
	}{
		{"POST", "application/x-www-form-urlencoded", "https://evil.example", "", 403},
		{"POST", "multipart/form-data; boundary=x", "https://evil.example", "", 403},
		{"PUT", "text/plain;charset=UTF-8", "https://evil.example", "", 403},
		{"DELETE", "TEXT/PLAIN", "null", "", 403},
		{"PATCH", "application/x-www-form-urlencoded", "https://evil.example", "", 403},
		{"POST", "application/x-www-form-urlencoded", "", "cross-site", 403},
		{"POST", "application/json", "https://evil.example", "", 200}, // needs a CORS preflight anyway
		{"POST", "application/x-www-form-urlencoded", self, "", 200},
		{"POST", "application/x-www-form-urlencoded", "https://qrypt.chat", "", 200},
		{"POST", "application/x-www-form-urlencoded", "", "", 200}, // curl, webhooks
		{"POST", "multipart/form-data; boundary=x", "https://app.behind-proxy.example", "same-origin", 200},
		{"POST", "multipart/form-data; boundary=x", "https://evil.example", "same-site", 403},
		{"GET", "application/x-www-form-urlencoded", "https://evil.example", "", 200},
		{"POST", "", "https://evil.example", "", 200},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL, strings.NewReader("a=b"))
		if tc.ct != "" {
			req.Header.Set("Content-Type", tc.ct)
		}
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		if tc.fetchSite != "" {
			req.Header.Set("Sec-Fetch-Site", tc.fetchSite)
		}
		resp, err := isolatedClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %q from %q: %d, want %d", tc.method, tc.ct, tc.origin, resp.StatusCode, tc.want)
		}
		if tc.want == 403 && string(b) != `{"error":"Cross-site POST form submissions are forbidden"}` {
			t.Errorf("403 body %s", b)
		}
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		remote, xff, realIP, want string
	}{
		{"203.0.113.5:4000", "", "", "203.0.113.5"},
		{"203.0.113.5:4000", "1.2.3.4", "", "203.0.113.5"}, // untrusted peer: headers ignored
		{"10.0.0.2:4000", "1.2.3.4", "", "1.2.3.4"},
		{"10.0.0.2:4000", "6.6.6.6, 1.2.3.4, 10.0.0.9", "", "1.2.3.4"}, // spoofed leftmost entry ignored
		{"10.0.0.2:4000", "10.0.0.7, 10.0.0.9", "", "10.0.0.7"},
		{"10.0.0.2:4000", "", "1.2.3.4", "1.2.3.4"},
		{"10.0.0.2:4000", "junk", "", "10.0.0.2"},
		{"[::1]:4000", "2001:db8::1", "", "2001:db8::1"},
		{"[::ffff:203.0.113.5]:1", "", "", "203.0.113.5"},
		{"garbage", "1.2.3.4", "", "invalid IP"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if tc.realIP != "" {
			r.Header.Set("X-Real-IP", tc.realIP)
		}
		if got := ClientIP(r, proxies).String(); got != tc.want {
			t.Errorf("ClientIP(%s, xff %q, real %q) = %s, want %s", tc.remote, tc.xff, tc.realIP, got, tc.want)
		}
	}
}
