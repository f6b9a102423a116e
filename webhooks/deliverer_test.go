package webhooks

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func counterValue(t *testing.T, c prometheus.Counter) int {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return int(m.GetCounter().GetValue())
}

// waitFor polls cond for at most 10 s (a bounded wait, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func startDeliverer(t *testing.T, cfg Config) *Deliverer {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = d.Close()
	})
	return d
}

type received struct {
	header http.Header
	body   []byte
}

// TestDeliverySigned delivers to a local receiver that checks the method, headers and body shape and verifies the
// signature the documented way with the server-wide secret (and, for a second delivery, a per-webhook secret).
func TestDeliverySigned(t *testing.T) {
	t.Parallel()
	got := make(chan received, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/hook" || r.URL.RawQuery != "k=v" {
			t.Errorf("request = %s %s?%s", r.Method, r.URL.Path, r.URL.RawQuery)
		}
		got <- received{r.Header.Clone(), body}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	now := time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
	d := startDeliverer(t, Config{SigningSecret: "server-secret", AllowNets: loopback, Now: func() time.Time { return now }})

	if !d.Enqueue(t.Context(), Delivery{URL: srv.URL + "/hook?k=v", Event: "message.created", Data: json.RawMessage(`{"id":"m1"}`)}) {
		t.Fatal("Enqueue = false")
	}
	r := <-got
	for name, want := range map[string]string{
		"Content-Type": "application/json", "User-Agent": DefaultUserAgent,
		"X-Qrypt-Event": "message.created", "X-Qrypt-Timestamp": "1714979289",
	} {
		if g := r.header.Get(name); g != want {
			t.Errorf("%s = %q, want %q", name, g, want)
		}
	}
	if len(r.header.Get("X-Qrypt-Delivery")) != 24 {
		t.Errorf("X-Qrypt-Delivery = %q", r.header.Get("X-Qrypt-Delivery"))
	}
	if want := `{"event":"message.created","timestamp":"2024-05-06T07:08:09.123Z","data":{"id":"m1"}}`; string(r.body) != want {
		t.Errorf("body = %s, want %s", r.body, want)
	}
	if err := Verify([]byte("server-secret"), r.header.Get("X-Qrypt-Signature"), r.header.Get("X-Qrypt-Timestamp"), r.body, now); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	if err := Verify([]byte("other"), r.header.Get("X-Qrypt-Signature"), r.header.Get("X-Qrypt-Timestamp"), r.body, now); err == nil {
		t.Error("signature verifies with the wrong secret")
	}
	if err := Verify([]byte("server-secret"), r.header.Get("X-Qrypt-Signature"), r.header.Get("X-Qrypt-Timestamp"), r.body, now.Add(6*time.Minute)); err == nil {
		t.Error("stale signature accepted")
	}

	d.Enqueue(t.Context(), Delivery{URL: srv.URL + "/hook?k=v", Event: "conversation.created", Secret: "per-hook"})
	r = <-got
	if string(r.body) != `{"event":"conversation.created","timestamp":"2024-05-06T07:08:09.123Z","data":null}` {
		t.Errorf("body = %s", r.body)
	}
	if err := Verify([]byte("per-hook"), r.header.Get("X-Qrypt-Signature"), r.header.Get("X-Qrypt-Timestamp"), r.body, now); err != nil {
		t.Errorf("per-webhook secret: %v", err)
	}
	waitFor(t, "delivered=2", func() bool { return counterValue(t, d.m.delivered) == 2 })
}

// TestPrivateTargetRefused: with no allowance, a receiver on 127.0.0.1 — reached by IP literal and by a name that
// resolves to it (the dial-time check, not a URL check) — is never contacted, and the refusal is not retried.
func TestPrivateTargetRefused(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	d := startDeliverer(t, Config{SigningSecret: "s", BaseBackoff: time.Millisecond})
	for _, u := range []string{srv.URL + "/x", "http://localhost:" + port + "/x"} {
		if !d.Enqueue(t.Context(), Delivery{URL: u, Event: "message.created"}) {
			t.Fatalf("Enqueue(%s) = false", u)
		}
	}
	waitFor(t, "failed=2", func() bool { return counterValue(t, d.m.failed) == 2 })
	if n := hits.Load(); n != 0 {
		t.Errorf("receiver hits = %d, want 0", n)
	}
	if n := counterValue(t, d.m.retried); n != 0 {
		t.Errorf("retried = %d, want 0 (refusal is permanent)", n)
	}
}

// TestReceiverErrorsBoundedRetries: a receiver answering 503 gets exactly MaxAttempts attempts; one that is down
// (connection refused) is retried the same bounded number of times; Enqueue returns at once meanwhile.
func TestReceiverErrorsBoundedRetries(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	d := startDeliverer(t, Config{SigningSecret: "s", AllowNets: loopback, MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if !d.Enqueue(t.Context(), Delivery{URL: srv.URL, Event: "message.created"}) {
		t.Fatal("Enqueue = false")
	}
	waitFor(t, "failed=1", func() bool { return counterValue(t, d.m.failed) == 1 })
	if n := hits.Load(); n != 3 {
		t.Errorf("attempts = %d, want 3", n)
	}
	if n := counterValue(t, d.m.retried); n != 2 {
		t.Errorf("retried = %d, want 2", n)
	}

	for range 50 { // never blocks, whether accepted or dropped
		d.Enqueue(t.Context(), Delivery{URL: downURL, Event: "message.deleted"})
	}
	waitFor(t, "all down deliveries settled", func() bool {
		return counterValue(t, d.m.failed)+counterValue(t, d.m.dropped) == 51
	})
	if n := counterValue(t, d.m.retried); n != 2+2*(51-1-counterValue(t, d.m.dropped)) {
		t.Errorf("retried = %d, want 2 per accepted delivery", n)
	}
}

// TestNoRedirects: a 302 is a permanent failure; the redirect target is never contacted.
func TestNoRedirects(t *testing.T) {
	t.Parallel()
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) }))
	t.Cleanup(target.Close)
	redirector := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	t.Cleanup(redirector.Close)

	d := startDeliverer(t, Config{SigningSecret: "s", AllowNets: loopback, BaseBackoff: time.Millisecond})
	d.Enqueue(t.Context(), Delivery{URL: redirector.URL, Event: "message.created"})
	waitFor(t, "failed=1", func() bool { return counterValue(t, d.m.failed) == 1 })
	if targetHits.Load() != 0 || counterValue(t, d.m.retried) != 0 {
		t.Errorf("target hits = %d, retried = %d; want 0, 0", targetHits.Load(), counterValue(t, d.m.retried))
	}
}

// TestQueueFull: with no workers running, QueueSize deliveries are accepted, the next is refused at once, and
// after Close everything is refused.
func TestQueueFull(t *testing.T) {
	t.Parallel()
	d, err := New(Config{SigningSecret: "s", QueueSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 3 {
			got = append(got, d.Enqueue(t.Context(), Delivery{URL: "https://example.org/h", Event: "message.created"}))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Enqueue blocked")
	}
	if want := []bool{true, true, false}; !equalBools(got, want) {
		t.Errorf("Enqueue results = %v, want %v", got, want)
	}
	if n := counterValue(t, d.m.dropped); n != 1 {
		t.Errorf("dropped = %d, want 1", n)
	}
	_ = d.Close()
	if d.Enqueue(t.Context(), Delivery{URL: "https://example.org/h", Event: "x"}) {
		t.Error("Enqueue after Close = true")
	}
	if d.Enqueue(t.Context(), Delivery{URL: "ftp://example.org/h", Event: "x"}) {
		t.Error("Enqueue of ftp URL = true")
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestMetricsRegistered: the counters and the queue gauge appear in the registry.
func TestMetricsRegistered(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	d, err := New(Config{SigningSecret: "s", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"suparelay_webhooks_delivered_total", "suparelay_webhooks_failed_total",
		"suparelay_webhooks_retried_total", "suparelay_webhooks_dropped_total", "suparelay_webhooks_queue_length",
		"suparelay_webhooks_lease_lost_total", "suparelay_webhooks_store_errors_total"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
	if _, err := New(Config{SigningSecret: "s", Registerer: reg}); err == nil {
		t.Error("second registration on one registry did not fail")
	}
	if _, err := New(Config{}); err == nil {
		t.Error("missing SigningSecret accepted")
	}
}

// TestCloseCancelsRetries: a delivery waiting for a long backoff does not keep Close waiting.
func TestCloseCancelsRetries(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	first := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		select {
		case <-first:
		default:
			close(first)
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	d, err := New(Config{SigningSecret: "s", AllowNets: loopback, BaseBackoff: time.Hour, MaxBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = d.Run(context.Background()) }()
	d.Enqueue(t.Context(), Delivery{URL: srv.URL, Event: "message.created"})
	<-first
	waitFor(t, "retry scheduled", func() bool { return counterValue(t, d.m.retried) == 1 })
	_ = d.Close()
	<-runDone
}
