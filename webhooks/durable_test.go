package webhooks

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// These tests run against the stack's real Redis, each under a prefix of its own.

func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testPrefix is a fresh key prefix whose keys are removed when the test ends.
func testPrefix(t *testing.T) string {
	t.Helper()
	prefix := "test:webhooks:" + testenv.RandomHex(6) + ":"
	c := testRedis(t)
	t.Cleanup(func() {
		_ = c.Del(context.Background(), NewRedisStore(c, prefix).keys...).Err()
	})
	return prefix
}

// pendingIn counts what the store under prefix still holds (waiting, claimed, stored bodies).
func pendingIn(t *testing.T, c *redis.Client, prefix string) (due, leased, jobs int64) {
	t.Helper()
	k := NewRedisStore(c, prefix).keys
	ctx := t.Context()
	return c.ZCard(ctx, k[0]).Val(), c.ZCard(ctx, k[1]).Val(), c.HLen(ctx, k[2]).Val()
}

// hit is one request a receiver saw.
type hit struct {
	at       time.Time
	delivery string
	attempt  string
	body     string
}

// recorder is a local receiver answering with answer(n) for its n-th request (0-based).
type recorder struct {
	mu     sync.Mutex
	hits   []hit
	answer func(n int, r *http.Request) int
}

func newRecorder(t *testing.T, answer func(n int, r *http.Request) int) (*recorder, string) {
	rec := &recorder{answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		n := len(rec.hits)
		rec.hits = append(rec.hits, hit{time.Now(), r.Header.Get("X-Qrypt-Delivery"), r.Header.Get("X-Qrypt-Attempt"), string(body)})
		rec.mu.Unlock()
		w.WriteHeader(rec.answer(n, r))
	}))
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

func (r *recorder) snapshot() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hit(nil), r.hits...)
}

// runDeliverer starts d.Run and returns a function that shuts it down and waits for Run.
func runDeliverer(t *testing.T, d *Deliverer) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(context.Background()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = d.Shutdown(ctx)
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

func newOrFail(t *testing.T, cfg Config) *Deliverer {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestWebhookDurableRestart: a delivery whose first attempt failed is retried by another Deliverer started on the
// same Redis after the first one stopped — with the same idempotency key and the same body — and then leaves
// nothing behind in Redis.
func TestWebhookDurableRestart(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	rec, url := newRecorder(t, func(n int, _ *http.Request) int {
		if n == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	cfg := Config{SigningSecret: "s", AllowNets: loopback, BaseBackoff: 400 * time.Millisecond,
		MaxBackoff: 400 * time.Millisecond, PollInterval: 20 * time.Millisecond}

	cfg.Store = NewRedisStore(testRedis(t), prefix)
	a := newOrFail(t, cfg)
	stopA := runDeliverer(t, a)
	if !a.Enqueue(t.Context(), Delivery{URL: url + "/h", Event: "message.deleted", Data: []byte(`{"id":"m1"}`)}) {
		t.Fatal("Enqueue = false")
	}
	waitFor(t, "first attempt and its retry scheduled", func() bool { return counterValue(t, a.m.retried) == 1 })
	stopA()
	if n := len(rec.snapshot()); n != 1 {
		t.Fatalf("hits before restart = %d, want 1", n)
	}

	cfg.Store = NewRedisStore(testRedis(t), prefix) // a new process: its own connection
	b := newOrFail(t, cfg)
	runDeliverer(t, b)
	waitFor(t, "delivered by the second deliverer", func() bool { return counterValue(t, b.m.delivered) == 1 })

	hits := rec.snapshot()
	if len(hits) != 2 {
		t.Fatalf("hits = %d, want 2", len(hits))
	}
	if hits[0].delivery == "" || hits[0].delivery != hits[1].delivery || hits[0].body != hits[1].body {
		t.Errorf("attempts differ: %+v", hits)
	}
	if hits[0].attempt != "1" || hits[1].attempt != "2" {
		t.Errorf("X-Qrypt-Attempt = %q, %q; want 1, 2", hits[0].attempt, hits[1].attempt)
	}
	c := testRedis(t)
	waitFor(t, "store emptied", func() bool {
		due, leased, jobs := pendingIn(t, c, prefix)
		return due+leased+jobs == 0
	})
}

// TestWebhookDurableNodeLoss: a node dies in the middle of an attempt (its Redis connection gone, so it cannot give
// the delivery back); when its lease ends, another node claims the delivery and delivers it with the same key, the
// lost attempt counted.
func TestWebhookDurableNodeLoss(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	inFlight := make(chan struct{})
	release := make(chan struct{})
	rec, url := newRecorder(t, func(n int, r *http.Request) int {
		if n == 0 {
			close(inFlight)
			select { // hang until the node is gone
			case <-release:
			case <-r.Context().Done():
			}
		}
		return http.StatusOK
	})
	cfg := Config{SigningSecret: "s", AllowNets: loopback, Timeout: time.Second, LeaseTime: 1500 * time.Millisecond,
		PollInterval: 20 * time.Millisecond}

	lostConn := testRedis(t)
	cfg.Store = NewRedisStore(lostConn, prefix)
	a := newOrFail(t, cfg)
	stopA := runDeliverer(t, a)
	if !a.Enqueue(t.Context(), Delivery{URL: url, Event: "message.created"}) {
		t.Fatal("Enqueue = false")
	}
	<-inFlight
	claimedAt := time.Now()
	_ = lostConn.Close() // the node is cut off: nothing it does from now on reaches Redis
	stopA()
	close(release)

	cfg.Store = NewRedisStore(testRedis(t), prefix)
	b := newOrFail(t, cfg)
	runDeliverer(t, b)
	waitFor(t, "delivered after the lease ran out", func() bool { return counterValue(t, b.m.delivered) == 1 })
	hits := rec.snapshot()
	if len(hits) != 2 || hits[0].delivery != hits[1].delivery || hits[1].attempt != "2" {
		t.Fatalf("hits = %+v; want the same delivery twice, the second as attempt 2", hits)
	}
	if gap := hits[1].at.Sub(claimedAt); gap < 1400*time.Millisecond {
		t.Errorf("reclaimed %v after the claim, before its lease of 1.5 s ran out", gap)
	}
}

// TestWebhookDurableOneClaimer: two deliverers on one Redis share 40 deliveries, all enqueued on the first; no
// delivery is ever attempted by both at once, each is delivered exactly once (no lease runs out here, so
// at-least-once is exactly once), and the second node takes its share.
func TestWebhookDurableOneClaimer(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"redis", "cluster"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Each deliverer is a node with its own connection; on the cluster, the store's keys share one slot.
			client := func() redis.UniversalClient { return testenv.RedisClients(t)[name] }
			testOneClaimer(t, client)
		})
	}
}

func testOneClaimer(t *testing.T, client func() redis.UniversalClient) {
	prefix := testPrefix(t)
	cleanup := client()
	t.Cleanup(func() { testenv.DeleteRedisKeys(context.Background(), cleanup, prefix+"*") })
	var mu sync.Mutex
	inflight := map[string]int{}
	seen := map[string]int{}
	overlaps := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Qrypt-Delivery")
		mu.Lock()
		if inflight[id] > 0 {
			overlaps++
		}
		inflight[id]++
		seen[id]++
		mu.Unlock()
		time.Sleep(30 * time.Millisecond)
		mu.Lock()
		inflight[id]--
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)

	var ds [2]*Deliverer
	for i := range ds {
		ds[i] = newOrFail(t, Config{SigningSecret: "s", AllowNets: loopback, PollInterval: 10 * time.Millisecond,
			Store: NewRedisStore(client(), prefix)})
		runDeliverer(t, ds[i])
	}
	const n = 40
	for i := range n {
		if !ds[0].Enqueue(t.Context(), Delivery{URL: srv.URL + "/" + strconv.Itoa(i), Event: "message.created"}) {
			t.Fatal("Enqueue = false")
		}
	}
	waitFor(t, "all delivered", func() bool {
		return counterValue(t, ds[0].m.delivered)+counterValue(t, ds[1].m.delivered) == n
	})
	mu.Lock()
	defer mu.Unlock()
	if overlaps != 0 {
		t.Errorf("%d requests overlapped another attempt of the same delivery", overlaps)
	}
	if len(seen) != n {
		t.Errorf("distinct deliveries = %d, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("delivery %s attempted %d times", id, c)
		}
	}
	if counterValue(t, ds[1].m.delivered) == 0 {
		t.Error("the second node delivered nothing")
	}
	t.Logf("delivered by node 1: %d, node 2: %d", counterValue(t, ds[0].m.delivered), counterValue(t, ds[1].m.delivered))
}

// TestWebhookDurableSchedule: retries follow BaseBackoff·2^(n-1) with equal jitter (each gap between half and all
// of it, plus scheduling slack) even with a poll interval far longer than the delays, and a delivery failing its
// last attempt is dropped from Redis and counted.
func TestWebhookDurableSchedule(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	rec, url := newRecorder(t, func(n int, r *http.Request) int {
		if r.URL.Path == "/dead" || n < 3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	base := 200 * time.Millisecond
	d := newOrFail(t, Config{SigningSecret: "s", AllowNets: loopback, BaseBackoff: base, MaxBackoff: 10 * base,
		MaxAttempts: 4, PollInterval: 5 * time.Second, Store: NewRedisStore(testRedis(t), prefix)})
	runDeliverer(t, d)
	if !d.Enqueue(t.Context(), Delivery{URL: url + "/ok", Event: "message.created"}) {
		t.Fatal("Enqueue = false")
	}
	waitFor(t, "delivered on the 4th attempt", func() bool { return counterValue(t, d.m.delivered) == 1 })
	hits := rec.snapshot()
	if len(hits) != 4 {
		t.Fatalf("hits = %d, want 4", len(hits))
	}
	const slack = 400 * time.Millisecond
	for i := 1; i < len(hits); i++ {
		full := base << (i - 1)
		gap := hits[i].at.Sub(hits[i-1].at)
		if gap < full/2-5*time.Millisecond || gap > full+slack {
			t.Errorf("gap before attempt %d = %v, want within [%v, %v]", i+1, gap, full/2, full+slack)
		}
		t.Logf("gap before attempt %d: %v (schedule %v–%v)", i+1, gap, full/2, full)
	}

	if !d.Enqueue(t.Context(), Delivery{URL: url + "/dead", Event: "message.created"}) {
		t.Fatal("Enqueue = false")
	}
	waitFor(t, "dead after 4 attempts", func() bool { return counterValue(t, d.m.failed) == 1 })
	c := testRedis(t)
	due, leased, jobs := pendingIn(t, c, prefix)
	if due+leased+jobs != 0 {
		t.Errorf("left in Redis: due %d, leased %d, jobs %d", due, leased, jobs)
	}
	if n := len(rec.snapshot()); n != 8 {
		t.Errorf("hits = %d, want 8", n)
	}
}

// TestWebhookDurableQueueCap: the cap counts every pending delivery in the shared store.
func TestWebhookDurableQueueCap(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	var got []bool
	for range 2 { // two nodes, one store, QueueSize 3
		d := newOrFail(t, Config{SigningSecret: "s", QueueSize: 3, Store: NewRedisStore(testRedis(t), prefix)})
		for range 2 {
			got = append(got, d.Enqueue(t.Context(), Delivery{URL: "https://example.org/h", Event: "message.created"}))
		}
		_ = d.Close()
	}
	if want := []bool{true, true, true, false}; !equalBools(got, want) {
		t.Errorf("Enqueue results = %v, want %v", got, want)
	}
	d := newOrFail(t, Config{SigningSecret: "s", MaxPayloadBytes: 100, Store: NewRedisStore(testRedis(t), prefix)})
	if d.Enqueue(t.Context(), Delivery{URL: "https://example.org/h", Event: "message.created",
		Data: []byte(`"` + strings.Repeat("a", 100) + `"`)}) {
		t.Error("oversized payload accepted")
	}
}
