package middleware

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// rlOwnRedis is a redis-server of this test's own on a loopback port of its own (never the stack's nor the
// machine's 6379), so that it can be killed and started again without disturbing anyone.
type rlOwnRedis struct {
	t    *testing.T
	port int
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
}

func newOwnRedis(t *testing.T) *rlOwnRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &rlOwnRedis{t: t, port: port, dir: t.TempDir()}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *rlOwnRedis) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// start runs redis-server (no persistence: a restart comes back empty, as after a crash without AOF) and waits
// until it answers PING.
func (r *rlOwnRedis) start() {
	r.t.Helper()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", r.dir, "--daemonize", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.cmd = cmd
	r.mu.Unlock()
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.t.Fatal("own redis-server did not come up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops it the hard way (SIGKILL), as a crash would.
func (r *rlOwnRedis) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// rlGauge reads one metric's value from reg (gauge or counter), or -1 when it is not there.
func rlGauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
	}
	return -1
}

// TestRateLimitRedisStoppedAndBack: limits shared through a real Redis; the Redis is killed — the auth rule keeps
// refusing (per node, same rules) without the requests waiting on the dead Redis, and the switch is logged and
// exported; Redis comes back (empty) — counting moves back to it, which is logged and exported too.
func TestRateLimitRedisStoppedAndBack(t *testing.T) {
	t.Parallel()
	own := newOwnRedis(t)
	opt, err := redis.ParseURL("redis://" + own.addr() + "/0") // production's options: retries and timeouts
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	var buf bytes.Buffer
	var mu sync.Mutex
	reg := prometheus.NewRegistry()
	const prefix = "test:rl:"
	const retry = 300 * time.Millisecond
	h := rlTestHandler(RateLimitConfig{Store: NewRedisRateStore(client, prefix), FallbackRetry: retry, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(&rlLockedWriter{w: &buf, mu: &mu}, nil))})
	login := func(ip string) func(int) rlReq {
		return func(int) rlReq { return rlReq{"POST", "/api/auth/verify-sms", ip, "Mozilla/5.0", ""} }
	}
	keys := func() []string {
		c := redis.NewClient(&redis.Options{Addr: own.addr(), MaxRetries: -1})
		defer c.Close()
		k, _ := c.Keys(context.Background(), prefix+"*").Result()
		return k
	}

	// Shared: two hits land in Redis (one IP key, one IP+UA key).
	for range 2 {
		if w := rlDo(h, login("203.0.113.7")(0)); w.Code != 200 {
			t.Fatalf("status %d with Redis up", w.Code)
		}
	}
	if k := keys(); len(k) != 2 {
		t.Fatalf("keys in Redis: %v, want 2", k)
	}
	if v := rlGauge(t, reg, "suparelay_ratelimit_fallback_active"); v != 0 {
		t.Fatalf("fallback_active = %v with Redis up, want 0", v)
	}

	own.kill()
	// The per-node budget starts afresh (Redis's 2 hits are out of reach): 4 more, then 429, never fail open.
	start := time.Now()
	if n := rlAllowed(t, h, rlMsg, 4, login("203.0.113.7")); n != 4 {
		t.Fatalf("Redis down: allowed %d, want 4 then 429", n)
	}
	// Nine requests; only the first waited for Redis to fail (connection refused: immediate, and bounded by the
	// store timeout otherwise).
	if el := time.Since(start); el > DefaultRateStoreTimeout+time.Second {
		t.Errorf("nine requests with Redis down took %v", el)
	}
	if a, s := rlGauge(t, reg, "suparelay_ratelimit_fallback_active"), rlGauge(t, reg, "suparelay_ratelimit_fallback_switches_total"); a != 1 || s != 1 {
		t.Errorf("fallback_active = %v, switches = %v; want 1 and 1", a, s)
	}
	if e := rlGauge(t, reg, "suparelay_ratelimit_store_errors_total"); e < 1 {
		t.Errorf("store_errors_total = %v, want >= 1", e)
	}

	own.start()
	// After the retry interval one request probes Redis, succeeds, and counting is shared again.
	deadline := time.Now().Add(10 * time.Second)
	for rlGauge(t, reg, "suparelay_ratelimit_fallback_active") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("still on the fallback 10 s after Redis came back")
		}
		time.Sleep(retry / 2)
		if w := rlDo(h, login("203.0.113.8")(0)); w.Code != 200 {
			t.Fatalf("other IP: status %d", w.Code)
		}
	}
	if w := rlDo(h, login("203.0.113.9")(0)); w.Code != 200 {
		t.Fatalf("status %d with Redis back", w.Code)
	}
	if k := keys(); len(k) < 2 {
		t.Fatalf("keys in Redis after it came back: %v, want the new hits there", k)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"counting per node until it is back", "rate limit store is back"} {
		if n := bytes.Count(buf.Bytes(), []byte(want)); n != 1 {
			t.Errorf("log has %q %d times, want once:\n%s", want, n, buf.String())
		}
	}
}

// TestRateLimitRedisHangs: a Redis that accepts connections and never answers (a hung process, a dead peer behind
// a proxy) costs the first request the store timeout (with a client honouring context deadlines, as cmd/suparelay
// builds it), then the per-node fallback answers at once and still refuses beyond the budget.
func TestRateLimitRedisHangs(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn // held open, never answered
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	opt, err := redis.ParseURL("redis://" + ln.Addr().String() + "/0")
	if err != nil {
		t.Fatal(err)
	}
	opt.ContextTimeoutEnabled = true
	client := redis.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	h := rlTestHandler(RateLimitConfig{Store: NewRedisRateStore(client, "x:")})
	q := rlReq{"POST", "/api/auth/x", "203.0.113.1", "ua", ""}
	start := time.Now()
	if w := rlDo(h, q); w.Code != http.StatusOK {
		t.Fatalf("first request: status %d", w.Code)
	}
	if el := time.Since(start); el > DefaultRateStoreTimeout+time.Second {
		t.Fatalf("first request took %v with Redis hanging, want about the store timeout (%v)", el, DefaultRateStoreTimeout)
	}
	start = time.Now()
	if n := rlAllowed(t, h, rlMsg, 3, func(int) rlReq { return q }); n != 3 {
		t.Fatalf("allowed %d more, want 3 (4 per IP+UA, per node)", n)
	}
	if el := time.Since(start); el > 200*time.Millisecond {
		t.Errorf("requests on the fallback took %v: they must not wait on the hung store", el)
	}
}
