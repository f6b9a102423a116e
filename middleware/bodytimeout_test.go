package middleware

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// btServer serves h behind BodyTimeout on a real loopback listener, configured as cmd/suparelay configures its
// server (ReadHeaderTimeout, no ReadTimeout), and reports when each connection is closed by the server side.
type btServer struct {
	addr   string
	closed chan struct{} // one value per closed connection
}

func newBTServer(t *testing.T, cfg BodyTimeoutConfig, h http.Handler) *btServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bs := &btServer{addr: ln.Addr().String(), closed: make(chan struct{}, 64)}
	if cfg.Logger == nil {
		cfg.Logger = quietLog
	}
	srv := &http.Server{Handler: BodyTimeout(cfg)(h), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				bs.closed <- struct{}{}
			}
		}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return bs
}

// dial opens a connection and sends a request head announcing a body of length bytes; the caller sends the body.
func (bs *btServer) dial(t *testing.T, method, path string, length int) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", bs.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		method, path, length); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// trickle writes one byte every gap until stop is closed or the write fails.
func trickle(c net.Conn, gap time.Duration, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(gap):
		}
		if _, err := c.Write([]byte{' '}); err != nil {
			return
		}
	}
}

// readAllHandler answers as an API handler does when its JSON body cannot be read: 400. done gets the time the
// handler returned.
func readAllHandler(done chan<- time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- time.Now() }()
		if _, err := io.ReadAll(r.Body); err != nil {
			writeJSONBytes(w, http.StatusBadRequest, []byte(`{"error":"Invalid JSON"}`))
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
}

func readResponse(t *testing.T, br *bufio.Reader, c net.Conn, within time.Duration) (*http.Response, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response within %v: %v", within, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

func want408(t *testing.T, res *http.Response, body string) {
	t.Helper()
	if res.StatusCode != http.StatusRequestTimeout || body != `{"error":"Request body timed out"}` ||
		res.Header.Get("Content-Type") != "application/json" || !res.Close {
		t.Fatalf("got %d %q %v (close %v), want 408 JSON with Connection: close", res.StatusCode, body, res.Header, res.Close)
	}
}

// waitClosed waits for the server to close (or hand over) one connection.
func (bs *btServer) waitClosed(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-bs.closed:
	case <-time.After(within):
		t.Fatalf("the server still holds the connection after %v", within)
	}
}

// TestBodyTimeoutSlowClient is the finding of issue 11: Content-Length: 1000, then one byte a second. Scaled down
// (a byte every 50 ms, Timeout 400 ms, MinRate 100 B/s): the handler gets its error, the client gets 408 JSON and
// the server closes the connection, all soon after the allowance.
func TestBodyTimeoutSlowClient(t *testing.T) {
	t.Parallel()
	done := make(chan time.Time, 1)
	reg := prometheus.NewRegistry()
	bs := newBTServer(t, BodyTimeoutConfig{Timeout: 400 * time.Millisecond, MinRate: 100, Registerer: reg}, readAllHandler(done))
	c, br := bs.dial(t, http.MethodPost, "/api/messages/send", 1000)
	stop := make(chan struct{})
	defer close(stop)
	go trickle(c, 50*time.Millisecond, stop)
	start := time.Now()
	res, body := readResponse(t, br, c, 5*time.Second)
	want408(t, res, body)
	// ~8 bytes in 400 ms earn 80 ms more: the deadline is about 480 ms after the head.
	if el := time.Since(start); el < 400*time.Millisecond || el > 2*time.Second {
		t.Errorf("408 after %v, want just after the 400 ms allowance plus what the rate earns", el)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("the handler is still blocked reading the body")
	}
	bs.waitClosed(t, 2*time.Second)
	if n := rlGauge(t, reg, "suparelay_http_body_timeouts_total"); n != 1 {
		t.Errorf("body_timeouts_total = %v, want 1", n)
	}
}

// TestBodyTimeoutRateKeepsFastBodies: a body taking much longer than Timeout is fine while it keeps MinRate (the
// uploads the front door streams to Storage), but a pause longer than Timeout is not, whatever was sent before.
func TestBodyTimeoutRateKeepsFastBodies(t *testing.T) {
	t.Parallel()
	// Generous margins: the machine running the tests may be busy, and a late sleep must not look like a pause.
	cfg := BodyTimeoutConfig{Timeout: time.Second, MinRate: 1000}
	t.Run("steady", func(t *testing.T) {
		t.Parallel()
		done := make(chan time.Time, 1)
		bs := newBTServer(t, cfg, readAllHandler(done))
		const n = 3000 // 200 bytes every 100 ms: 2000 B/s, 1.5 s in all, 1.5 × Timeout
		c, br := bs.dial(t, http.MethodPost, "/upload", n)
		for range n / 200 {
			time.Sleep(100 * time.Millisecond)
			if _, err := c.Write([]byte(strings.Repeat("x", 200))); err != nil {
				t.Fatal(err)
			}
		}
		res, body := readResponse(t, br, c, 5*time.Second)
		if res.StatusCode != 200 || body != "ok" {
			t.Fatalf("steady body: %d %q", res.StatusCode, body)
		}
	})
	t.Run("pause", func(t *testing.T) {
		t.Parallel()
		done := make(chan time.Time, 1)
		bs := newBTServer(t, cfg, readAllHandler(done))
		c, br := bs.dial(t, http.MethodPost, "/upload", 2000)
		if _, err := c.Write([]byte(strings.Repeat("x", 1800))); err != nil { // earns 1.8 s by the rate
			t.Fatal(err)
		}
		start := time.Now()
		res, body := readResponse(t, br, c, 5*time.Second)
		want408(t, res, body)
		if el := time.Since(start); el > 2300*time.Millisecond {
			t.Errorf("a pause was allowed for %v: the idle limit is Timeout (1 s), not the 2.8 s the rate earned", el)
		}
	})
}

// TestBodyTimeoutClearedAfterBody: once the body is in, no deadline is left on the connection: a handler that then
// works longer than Timeout keeps its context (net/http's background read would otherwise cancel it), answers
// 200, and the connection stays usable for the next request, which gets its own deadline. (net/http clears the
// deadline too when it starts its background read; this pins the behaviour whichever side does it.)
func TestBodyTimeoutClearedAfterBody(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	var mu sync.Mutex
	var ctxErrs []error
	bs := newBTServer(t, BodyTimeoutConfig{Timeout: timeout}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			writeJSONBytes(w, http.StatusBadRequest, []byte(`{"error":"Invalid JSON"}`))
			return
		}
		time.Sleep(3 * timeout)
		mu.Lock()
		ctxErrs = append(ctxErrs, r.Context().Err())
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	c, br := bs.dial(t, http.MethodPost, "/x", 2)
	if _, err := c.Write([]byte("{}")); err != nil {
		t.Fatal(err)
	}
	res, body := readResponse(t, br, c, 5*time.Second)
	if res.StatusCode != 200 || body != "ok" || res.Close {
		t.Fatalf("first request: %d %q close=%v", res.StatusCode, body, res.Close)
	}
	// Same connection, after an idle time longer than Timeout: a second, slow request times out on its own.
	time.Sleep(2 * timeout)
	if _, err := fmt.Fprintf(c, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab"); err != nil {
		t.Fatal(err)
	}
	res, body = readResponse(t, br, c, 5*time.Second)
	want408(t, res, body)
	mu.Lock()
	defer mu.Unlock()
	if len(ctxErrs) != 1 || ctxErrs[0] != nil {
		t.Fatalf("handler contexts after the body was read: %v, want one nil", ctxErrs)
	}
}

// TestBodyTimeoutNoBodyUntouched: requests without a body (GET, the event stream) get no deadline at all: a
// handler running well past Timeout keeps its context.
func TestBodyTimeoutNoBodyUntouched(t *testing.T) {
	t.Parallel()
	errc := make(chan error, 1)
	bs := newBTServer(t, BodyTimeoutConfig{Timeout: 100 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(400 * time.Millisecond)
		errc <- r.Context().Err()
		_, _ = io.WriteString(w, "ok")
	}))
	c, br := bs.dial(t, http.MethodGet, "/api/events", 0)
	res, body := readResponse(t, br, c, 5*time.Second)
	if res.StatusCode != 200 || body != "ok" || <-errc != nil {
		t.Fatalf("GET without body: %d %q", res.StatusCode, body)
	}
}

// TestBodyTimeoutHandlerAnswerStands: a handler that answers before the timeout (without reading the slow body)
// keeps its answer, and the server still lets go of the connection once the unread body's deadline passes.
func TestBodyTimeoutHandlerAnswerStands(t *testing.T) {
	t.Parallel()
	bs := newBTServer(t, BodyTimeoutConfig{Timeout: 300 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONBytes(w, http.StatusUnauthorized, []byte(`{"error":"Authentication required"}`))
	}))
	c, br := bs.dial(t, http.MethodPost, "/x", 1000)
	stop := make(chan struct{})
	defer close(stop)
	go trickle(c, 50*time.Millisecond, stop)
	res, body := readResponse(t, br, c, 5*time.Second)
	if res.StatusCode != http.StatusUnauthorized || body != `{"error":"Authentication required"}` {
		t.Fatalf("got %d %q, want the handler's 401", res.StatusCode, body)
	}
	bs.waitClosed(t, 3*time.Second)
}

// TestBodyTimeoutAccessLog: the access log (inside) records what the client got, 408, not the handler's 400.
func TestBodyTimeoutAccessLog(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	done := make(chan time.Time, 1)
	h := AccessLog(slog.New(slog.NewJSONHandler(&logs, nil)))(readAllHandler(done))
	bs := newBTServer(t, BodyTimeoutConfig{Timeout: 200 * time.Millisecond}, h)
	c, br := bs.dial(t, http.MethodPost, "/api/x", 100)
	res, body := readResponse(t, br, c, 5*time.Second)
	want408(t, res, body)
	<-done
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line); err != nil {
		t.Fatalf("log %q: %v", logs.String(), err)
	}
	if line["status"] != float64(http.StatusRequestTimeout) || line["client"] != "127.0.0.1" ||
		line["bytes"] != float64(len(bodyTimeoutJSON)) {
		t.Fatalf("access log %v, want status 408, the 408's size and client 127.0.0.1", line)
	}
}

// TestBodyTimeoutHijackClears: a handler that takes the connection over (the relay's detached streams) owns its
// reads: no deadline of ours fires on it later (net/http clears deadlines on Hijack; this keeps it so).
func TestBodyTimeoutHijackClears(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	bs := newBTServer(t, BodyTimeoutConfig{Timeout: 100 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			got <- "hijack: " + err.Error()
			return
		}
		defer conn.Close()
		time.Sleep(300 * time.Millisecond)
		b := make([]byte, 3)
		_, err = io.ReadFull(brw, b)
		got <- fmt.Sprintf("%s %v", b, err)
	}))
	c, _ := bs.dial(t, http.MethodPost, "/api/events", 3)
	bs.waitClosed(t, 2*time.Second) // hijacked
	time.Sleep(250 * time.Millisecond)
	if _, err := c.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "abc <nil>" {
		t.Fatalf("hijacked connection read %q, want abc without a timeout", s)
	}
}
