package middleware

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// rlTestClock is a settable clock shared by a limiter and its memory store.
type rlTestClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *rlTestClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *rlTestClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// rlTestUserHeader stands in for authentication: the lead's UserKey will read the verified identity instead.
const rlTestUserHeader = "X-Test-User"

// rlMsg is the 429 text of every test rule; the application's own texts and budgets are tested in api.
const rlMsg = "slow down"

// rlTestRules exercises the engine's shapes: a prefix group keyed on IP and IP+UA, two user-keyed groups with
// buckets of their own, and a catch-all group whose signed-in callers are counted per user.
func rlTestRules() []RateRule {
	anon := []RateLimit{{RateByIP, 60, time.Minute}, {RateByIPUA, 30, time.Minute}}
	perUser := func(n int) []RateLimit { return []RateLimit{{RateByUser, n, time.Minute}} }
	return []RateRule{
		{Name: "login", Path: "/api/auth/", Prefix: true, Message: rlMsg,
			Limits: []RateLimit{{RateByIP, 8, time.Minute}, {RateByIPUA, 4, time.Minute}}},
		{Name: "typing", Path: "/api/typing/", Prefix: true, Message: rlMsg, Limits: anon, UserLimits: perUser(20)},
		{Name: "stream", Path: "/api/events", Message: rlMsg, Limits: anon, UserLimits: perUser(20)},
		{Name: "rest", Path: "/api/", Prefix: true, Message: rlMsg, Limits: anon, UserLimits: perUser(50)},
	}
}

func rlTestHandler(cfg RateLimitConfig) http.Handler {
	if cfg.Rules == nil {
		cfg.Rules = rlTestRules()
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = func(r *http.Request) string { return r.Header.Get("X-Test-IP") }
	}
	if cfg.UserKey == nil {
		cfg.UserKey = func(r *http.Request) (string, bool) {
			u := r.Header.Get(rlTestUserHeader)
			return u, u != ""
		}
	}
	return NewRateLimiter(cfg)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
}

type rlReq struct {
	method, path, ip, ua, user string
}

func rlDo(h http.Handler, q rlReq) *httptest.ResponseRecorder {
	method := q.method
	if method == "" {
		method = http.MethodGet
	}
	r := httptest.NewRequest(method, q.path, nil)
	r.Header.Del("User-Agent")
	if q.ua != "" {
		r.Header.Set("User-Agent", q.ua)
	}
	r.Header.Set("X-Test-IP", q.ip)
	if q.user != "" {
		r.Header.Set(rlTestUserHeader, q.user)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// rlAllowed sends up to max+5 requests built by mk(i) and returns how many passed before the first 429, checking
// the 429's exact body and headers.
func rlAllowed(t *testing.T, h http.Handler, wantMsg string, max int, mk func(i int) rlReq) int {
	t.Helper()
	for i := range max + 5 {
		w := rlDo(h, mk(i))
		if w.Code == http.StatusOK {
			continue
		}
		if w.Code != http.StatusTooManyRequests {
			t.Fatalf("request %d: status %d", i+1, w.Code)
		}
		if got, want := w.Body.String(), `{"error":"`+wantMsg+`"}`; got != want {
			t.Errorf("429 body = %s, want %s", got, want)
		}
		if w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("429 Content-Type = %q", w.Header().Get("Content-Type"))
		}
		if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("Retry-After = %q", w.Header().Get("Retry-After"))
		}
		return i
	}
	return max + 5
}

// TestRateLimitWindowsAndKeys: fixed windows reset after their length; other IPs, users and groups keep their own
// budgets; a request without User-Agent is counted, not refused; non-/api paths are never limited.
func TestRateLimitWindowsAndKeys(t *testing.T) {
	t.Parallel()
	clock := &rlTestClock{t: time.Unix(1_700_000_000, 0)}
	h := rlTestHandler(RateLimitConfig{Now: clock.Now})
	auth := func(ip, ua string) rlReq { return rlReq{"POST", "/api/auth/send-sms", ip, ua, ""} }

	if n := rlAllowed(t, h, rlMsg, 4, func(int) rlReq { return auth("198.51.100.1", "") }); n != 4 {
		t.Errorf("no User-Agent: allowed %d, want 4 (counted as an empty UA, not refused)", n)
	}
	if w := rlDo(h, auth("198.51.100.2", "")); w.Code != http.StatusOK {
		t.Errorf("other IP: status %d", w.Code)
	}
	// Retry-After counts down to the end of the window that started with the first hit.
	clock.Add(20 * time.Second)
	w := rlDo(h, auth("198.51.100.1", ""))
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "40" {
		t.Errorf("mid-window: status %d Retry-After %q, want 429 40", w.Code, w.Header().Get("Retry-After"))
	}
	clock.Add(40 * time.Second)
	if w := rlDo(h, auth("198.51.100.1", "")); w.Code != http.StatusOK {
		t.Errorf("after the window: status %d", w.Code)
	}

	// Exhausting one user's general bucket leaves typing, events, other users and anonymous callers alone.
	u := func(path, user string) rlReq { return rlReq{"POST", path, "198.51.100.3", "UA", user} }
	if n := rlAllowed(t, h, rlMsg, 50, func(int) rlReq { return u("/api/messages/send", "alice") }); n != 50 {
		t.Fatalf("alice general: allowed %d", n)
	}
	for _, q := range []rlReq{u("/api/typing/start", "alice"), u("/api/events", "alice"), u("/api/messages/send", "bob"),
		u("/api/messages/send", "")} {
		if w := rlDo(h, q); w.Code != http.StatusOK {
			t.Errorf("%+v: status %d", q, w.Code)
		}
	}
	for range 100 {
		if w := rlDo(h, rlReq{"GET", "/chat", "198.51.100.3", "UA", ""}); w.Code != http.StatusOK {
			t.Fatalf("page: status %d", w.Code)
		}
	}
}

// TestRateLimitEmptyClientIP: an unresolvable client address is one shared bucket (fail closed).
func TestRateLimitEmptyClientIP(t *testing.T) {
	t.Parallel()
	h := rlTestHandler(RateLimitConfig{})
	if n := rlAllowed(t, h, rlMsg, 8, func(i int) rlReq {
		return rlReq{"POST", "/api/auth/x", "", "ua" + strconv.Itoa(i), ""}
	}); n != 8 {
		t.Errorf("allowed %d, want 8", n)
	}
}

// TestRateLimitDefaultClientIP: without a ClientIP func the peer address is used and forwarded headers are ignored.
func TestRateLimitDefaultClientIP(t *testing.T) {
	t.Parallel()
	h := NewRateLimiter(RateLimitConfig{Rules: rlTestRules()})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for i := range 9 {
		r := httptest.NewRequest("POST", "/api/auth/x", nil)
		r.RemoteAddr = "192.0.2.9:" + strconv.Itoa(1000+i)
		r.Header.Set("X-Forwarded-For", fmt.Sprintf("10.0.0.%d", i))
		r.Header.Set("User-Agent", strconv.Itoa(i))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if want := map[bool]int{true: 429, false: 200}[i == 8]; w.Code != want {
			t.Fatalf("request %d: status %d, want %d", i+1, w.Code, want)
		}
	}
}

// rlFailingStore is a shared store that is down; it counts the calls it gets.
type rlFailingStore struct{ calls atomic.Int64 }

func (s *rlFailingStore) Incr(context.Context, string, time.Duration, time.Time) (RateCount, error) {
	s.calls.Add(1)
	return RateCount{}, errors.New("connection refused")
}

// TestRateLimitFallback: a failing store never opens the limits (issue 11): the same rules are counted per node,
// the switch is logged once, and the store is left alone until the retry interval has passed, then tried by one
// request in the background (which fails again here, so counting stays per node and is not logged again).
func TestRateLimitFallback(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&rlLockedWriter{w: &buf, mu: &mu}, nil))
	clock := &rlTestClock{t: time.Unix(1_700_000_000, 0)}
	store := &rlFailingStore{}
	h := rlTestHandler(RateLimitConfig{Store: store, Logger: logger, Now: clock.Now, FallbackRetry: 5 * time.Second})
	login := func(int) rlReq { return rlReq{"POST", "/api/auth/x", "203.0.113.1", "ua", ""} }
	if n := rlAllowed(t, h, rlMsg, 4, login); n != 4 {
		t.Fatalf("with the store down: allowed %d, want 4 (the IP+UA budget, counted per node)", n)
	}
	if n := store.calls.Load(); n != 1 {
		t.Errorf("store called %d times before the retry interval, want 1", n)
	}
	clock.Add(5 * time.Second)
	for range 3 {
		if w := rlDo(h, login(0)); w.Code != http.StatusTooManyRequests {
			t.Fatalf("after the retry interval: status %d, want 429 (still counted per node)", w.Code)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); store.calls.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // the probe runs in the background
	}
	time.Sleep(20 * time.Millisecond)
	if n := store.calls.Load(); n != 2 {
		t.Errorf("store called %d times after one retry interval, want 2 (one probe)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := bytes.Count(buf.Bytes(), []byte("counting per node until it is back")); n != 1 || strings.Contains(buf.String(), "fail open") {
		t.Errorf("want one switch line and no fail-open line:\n%s", buf.String())
	}
}

type rlLockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *rlLockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestRateLimitRejectsBadRules(t *testing.T) {
	t.Parallel()
	bad := [][]RateRule{
		nil,
		{{Name: "", Path: "/a", Message: "m", Limits: []RateLimit{{RateByIP, 1, time.Second}}}},
		{{Name: "a", Path: "/a", Message: "m"}},
		{{Name: "a", Path: "/a", Message: "m", Limits: []RateLimit{{RateByUser, 1, time.Second}}}},
		{{Name: "a", Path: "/a", Message: "m", Limits: []RateLimit{{RateByIP, 0, time.Second}}}},
		{{Name: "a", Path: "/a", Message: "m", Limits: []RateLimit{{RateByIP, 1, time.Second}}},
			{Name: "a", Path: "/b", Message: "m", Limits: []RateLimit{{RateByIP, 1, time.Second}}}},
	}
	for i, rules := range bad {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("rules %d accepted", i)
				}
			}()
			NewRateLimiter(RateLimitConfig{Rules: rules})
		}()
	}
}

// TestMemoryRateStoreBounded: many distinct keys never grow the store past its bound, and once their windows have
// expired the old keys are swept as new ones arrive.
func TestMemoryRateStoreBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewMemoryRateStore(160)
	now := time.Unix(1_700_000_000, 0)
	for i := range 10_000 {
		if _, err := s.Incr(ctx, "k"+strconv.Itoa(i), time.Minute, now); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Len(); n > 160 {
		t.Errorf("Len = %d, want <= 160", n)
	}

	s = NewMemoryRateStore(3200) // 200 per shard: room for everything below without eviction
	for i := range 1000 {
		_, _ = s.Incr(ctx, "old"+strconv.Itoa(i), time.Minute, now)
	}
	later := now.Add(2 * time.Minute)
	for i := range 1000 {
		_, _ = s.Incr(ctx, "new"+strconv.Itoa(i), time.Minute, later)
	}
	if n := s.Len(); n != 1000 {
		t.Errorf("after expiry Len = %d, want 1000 (only the new keys)", n)
	}
}

// TestRateLimitUAWindowsBounded: one address sending a new User-Agent with every request opens at most
// rlUABuckets IP+UA windows per limit (plus its IP window), and stays refused by its IP limit throughout.
func TestRateLimitUAWindowsBounded(t *testing.T) {
	t.Parallel()
	store := NewMemoryRateStore(0)
	h := rlTestHandler(RateLimitConfig{Store: store})
	if n := rlAllowed(t, h, rlMsg, 8, func(i int) rlReq {
		return rlReq{"POST", "/api/auth/x", "198.51.100.77", "agent-" + strconv.Itoa(i), ""}
	}); n != 8 {
		t.Fatalf("allowed %d, want 8 (the IP limit)", n)
	}
	for i := range 5000 {
		if w := rlDo(h, rlReq{"POST", "/api/auth/x", "198.51.100.77", "made-up-" + strconv.Itoa(i), ""}); w.Code != http.StatusTooManyRequests {
			t.Fatalf("request %d: status %d, want 429", i, w.Code)
		}
	}
	if n := store.Len(); n > 1+rlUABuckets {
		t.Fatalf("windows held for one address: %d, want <= %d", n, 1+rlUABuckets)
	}
}

func rlRedis(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestRateLimitRedisShared: two limiter instances (two "nodes") on one real Redis, with a random key prefix,
// share one budget; keys carry a TTL.
func TestRateLimitRedisShared(t *testing.T) {
	t.Parallel()
	a, b := testenv.RedisClients(t), testenv.RedisClients(t) // two nodes, on Redis and on the cluster
	for name := range a {
		t.Run(name, func(t *testing.T) { t.Parallel(); testRateLimitRedisShared(t, a[name], b[name]) })
	}
}

func testRateLimitRedisShared(t *testing.T, ca, cb redis.UniversalClient) {
	prefix := "test:rl:" + testenv.RandomHex(6) + ":"
	nodeA := rlTestHandler(RateLimitConfig{Store: NewRedisRateStore(ca, prefix)})
	nodeB := rlTestHandler(RateLimitConfig{Store: NewRedisRateStore(cb, prefix)})
	q := rlReq{"POST", "/api/auth/verify-sms", "203.0.113.50", "Mozilla/5.0", ""}
	for i := range 4 {
		h := nodeA
		if i%2 == 1 {
			h = nodeB
		}
		if w := rlDo(h, q); w.Code != http.StatusOK {
			t.Fatalf("request %d: status %d", i+1, w.Code)
		}
	}
	for _, h := range []http.Handler{nodeA, nodeB} {
		w := rlDo(h, q)
		if w.Code != http.StatusTooManyRequests || w.Body.String() != `{"error":"`+rlMsg+`"}` {
			t.Errorf("5th request: %d %s", w.Code, w.Body.String())
		}
		if ra, _ := strconv.Atoi(w.Header().Get("Retry-After")); ra < 1 || ra > 60 {
			t.Errorf("Retry-After = %q", w.Header().Get("Retry-After"))
		}
	}
	c := ca
	keys, err := testenv.RedisKeys(context.Background(), c, prefix+"*")
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys = %v, %v; want 2", keys, err)
	}
	for _, k := range keys {
		if ttl := c.PTTL(context.Background(), k).Val(); ttl <= 0 || ttl > time.Minute {
			t.Errorf("%s TTL = %v", k, ttl)
		}
	}
	t.Cleanup(func() { testenv.DeleteRedisKeys(context.Background(), c, prefix+"*") })
}

// TestRateLimitRedisDown: a Redis that cannot be reached at all (nothing listens) is replaced by per-node counting
// from the first request on.
func TestRateLimitRedisDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	h := rlTestHandler(RateLimitConfig{Store: NewRedisRateStore(c, "x:")})
	if n := rlAllowed(t, h, rlMsg, 4, func(int) rlReq { return rlReq{"POST", "/api/auth/x", "203.0.113.1", "ua", ""} }); n != 4 {
		t.Fatalf("allowed %d, want 4 (counted per node, not fail open)", n)
	}
}
