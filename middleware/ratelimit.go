package middleware

// Rate limits of the /api surface (routes.md §2.2). This file and ratelimit_redis.go belong together; they share no
// helpers with the rest of the package on purpose, so every unexported name here starts with "rl".

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RateKind says what one limit counts by.
type RateKind int

const (
	RateByIP   RateKind = iota + 1 // the client address
	RateByIPUA                     // the client address and the exact User-Agent (an absent one counts as "")
	RateByUser                     // the authenticated caller's key (only in RateRule.UserLimits)
)

func (k RateKind) String() string {
	switch k {
	case RateByIP:
		return "ip"
	case RateByIPUA:
		return "ipua"
	case RateByUser:
		return "user"
	}
	return "kind" + strconv.Itoa(int(k))
}

// RateLimit allows Limit requests per fixed Window, the window starting at the first counted request.
type RateLimit struct {
	Kind   RateKind
	Limit  int
	Window time.Duration
}

// RateRule is one path group. Rules are tried in order and the first match wins; a request matching none is not
// limited. All limits of the chosen list are counted on every request, and the request is refused if any is over.
type RateRule struct {
	Name       string      // bucket name, part of every key; unique within the rules
	Method     string      // "" = any method; "GET" also matches HEAD, which runs the GET handler
	Path       string      // exact path, or a prefix when Prefix is set
	Prefix     bool        //
	Message    string      // the 429 body's error text
	Limits     []RateLimit // for callers without a user key (RateByUser not allowed here)
	UserLimits []RateLimit // for callers UserKey identifies; nil = Limits for everyone
}

// RateCount is a store's answer for one hit.
type RateCount struct {
	Count int64     // hits in the current window, including this one
	Reset time.Time // when the current window ends
}

// RateStore counts hits in fixed windows. Incr adds one hit to key, starting a window of length window (from now)
// when none is running, and returns the count and the window's end. Implementations must be safe for concurrent
// use; [MemoryRateStore] keeps counts in this process, [RedisRateStore] shares them between nodes.
type RateStore interface {
	Incr(ctx context.Context, key string, window time.Duration, now time.Time) (RateCount, error)
}

// RateLimitConfig configures [NewRateLimiter]. Zero values mean the documented defaults.
type RateLimitConfig struct {
	Rules    []RateRule                         // required: the application's rules (api.RateRules)
	Store    RateStore                          // nil = NewMemoryRateStore(0)
	ClientIP func(*http.Request) string         // nil = the peer address (RemoteAddr), no forwarded headers
	UserKey  func(*http.Request) (string, bool) // nil = every caller is anonymous
	Logger   *slog.Logger                       // nil = discard
	Now      func() time.Time                   // nil = time.Now

	// Fallback counts per node while Store fails; nil = a NewMemoryRateStore(0) of the limiter's own. Unused when
	// Store is a *MemoryRateStore (it cannot fail).
	Fallback      RateStore
	StoreTimeout  time.Duration         // one call to Store; 0 = DefaultRateStoreTimeout
	FallbackRetry time.Duration         // on the fallback, one request per interval tries Store; 0 = DefaultRateFallbackRetry
	Registerer    prometheus.Registerer // the fallback's metrics (suparelay_ratelimit_*); nil = none
}

// NewRateLimiter returns middleware enforcing cfg.Rules. A refused request gets 429 with `{"error":"<message>"}`,
// `Retry-After: <seconds until the window ends>` and Cache-Control no-store, and never reaches next.
//
// Placement: after client-address resolution and after authentication (UserKey reads the identity), before the
// handlers. A missing User-Agent is counted as an empty one, never refused (the original refused it; the contract
// says not to copy that). An empty client address is counted as "unknown", one shared bucket: fail closed.
//
// If the store fails (Redis down), the same rules are counted per node in Fallback instead — never fail open, or an
// outage would open /api/auth/* to brute force — and the switch is logged and exported as
// suparelay_ratelimit_fallback_active; with N nodes a caller's budget is then up to N times the rule's. While on
// the fallback one request per FallbackRetry tries the store again, and the first success switches back. Only if
// the fallback fails too (a custom one) is the limit skipped, with an error logged at most once per 10 seconds.
//
// It panics on an invalid rule (empty name, duplicate name, no limits, limit or window ≤ 0, RateByUser outside
// UserLimits), because that is a programming error found at start-up.
func NewRateLimiter(cfg RateLimitConfig) func(http.Handler) http.Handler {
	rules := cfg.Rules
	if len(rules) == 0 {
		panic("middleware: NewRateLimiter: no rules (the application declares them next to its routes)")
	}
	if err := rlValidate(rules); err != nil {
		panic("middleware: NewRateLimiter: " + err.Error())
	}
	l := &rlLimiter{rules: rules, store: cfg.Store, clientIP: cfg.ClientIP, userKey: cfg.UserKey, log: cfg.Logger, now: cfg.Now}
	if l.store == nil {
		l.store = NewMemoryRateStore(0)
	}
	if l.clientIP == nil {
		l.clientIP = rlPeerIP
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	if _, infallible := l.store.(*MemoryRateStore); !infallible {
		f := &rlFailover{primary: l.store, fallback: cfg.Fallback, timeout: cfg.StoreTimeout, retry: cfg.FallbackRetry,
			log: l.log, m: newRLMetrics(cfg.Registerer)}
		if f.fallback == nil {
			f.fallback = NewMemoryRateStore(0)
		}
		if f.timeout <= 0 {
			f.timeout = DefaultRateStoreTimeout
		}
		if f.retry <= 0 {
			f.retry = DefaultRateFallbackRetry
		}
		l.store = f
	}
	return l.middleware
}

func rlValidate(rules []RateRule) error {
	seen := map[string]bool{}
	for i, r := range rules {
		if r.Name == "" || seen[r.Name] {
			return fmt.Errorf("rule %d: empty or duplicate name %q", i, r.Name)
		}
		seen[r.Name] = true
		if r.Path == "" || len(r.Limits) == 0 || r.Message == "" {
			return fmt.Errorf("rule %q: path, limits and message are required", r.Name)
		}
		for _, set := range [][]RateLimit{r.Limits, r.UserLimits} {
			for _, lim := range set {
				if lim.Limit <= 0 || lim.Window <= 0 || lim.Kind < RateByIP || lim.Kind > RateByUser {
					return fmt.Errorf("rule %q: bad limit %+v", r.Name, lim)
				}
			}
		}
		for _, lim := range r.Limits {
			if lim.Kind == RateByUser {
				return fmt.Errorf("rule %q: RateByUser is only valid in UserLimits", r.Name)
			}
		}
	}
	return nil
}

type rlLimiter struct {
	rules    []RateRule
	store    RateStore
	clientIP func(*http.Request) string
	userKey  func(*http.Request) (string, bool)
	log      *slog.Logger
	now      func() time.Time
	lastLog  atomic.Int64 // unix nanos of the last store-failure log line
}

func (l *rlLimiter) match(r *http.Request) *RateRule {
	p := r.URL.Path
	for i := range l.rules {
		rule := &l.rules[i]
		if rule.Method != "" && rule.Method != r.Method && (rule.Method != http.MethodGet || r.Method != http.MethodHead) {
			continue
		}
		if p == rule.Path || (rule.Prefix && strings.HasPrefix(p, rule.Path)) {
			return rule
		}
	}
	return nil
}

func (l *rlLimiter) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rule := l.match(r)
		if rule == nil {
			next.ServeHTTP(w, r)
			return
		}
		limits := rule.Limits
		var user string
		if rule.UserLimits != nil && l.userKey != nil {
			if u, ok := l.userKey(r); ok && u != "" {
				user, limits = u, rule.UserLimits
			}
		}
		ip := l.clientIP(r)
		if ip == "" {
			ip = "unknown"
		}
		now := l.now()
		var refused bool
		var retryAt time.Time
		for _, lim := range limits {
			key := rlKey(rule.Name, lim, ip, r.Header.Get("User-Agent"), user)
			c, err := l.store.Incr(r.Context(), key, lim.Window, now)
			if err != nil {
				l.storeFailed(r.Context(), rule.Name, err)
				continue
			}
			if c.Count > int64(lim.Limit) {
				refused = true
				if c.Reset.After(retryAt) {
					retryAt = c.Reset
				}
			}
		}
		if refused {
			rlRefuse(w, rule.Message, retryAt.Sub(now))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// rlUABuckets bounds the IP+UA windows one address can open per limit. The User-Agent is caller-chosen: without
// a bound, one address cycling through made-up agents (its requests refused by the address's own limit, but still
// counted) would fill the per-node store, whose evictions hand other callers fresh budgets, and Redis with keys.
// Two browsers behind one address share an IP+UA window only when their agents land in the same bucket (1 in 64);
// they share the address's own window anyway.
const rlUABuckets = 64

// rlKey builds a bounded key: the rule, the limit's kind and window (so changing a budget never mixes windows),
// and the caller. User-Agent and user keys are hashed because they are caller-chosen text of any length.
func rlKey(rule string, lim RateLimit, ip, ua, user string) string {
	prefix := rule + ":" + lim.Kind.String() + ":" + strconv.FormatInt(int64(lim.Window/time.Millisecond), 10) + ":"
	switch lim.Kind {
	case RateByIPUA:
		sum := sha256.Sum256([]byte(ua))
		return prefix + ip + "|ua" + strconv.Itoa(int(binary.BigEndian.Uint16(sum[:2])%rlUABuckets))
	case RateByUser:
		return prefix + rlHash(user)
	}
	return prefix + ip
}

func rlHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}

func (l *rlLimiter) storeFailed(ctx context.Context, rule string, err error) {
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last < int64(10*time.Second) || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	l.log.ErrorContext(ctx, "rate limit store and its fallback unavailable; limit skipped (fail open)", "rule", rule,
		"error", err)
}

func rlRefuse(w http.ResponseWriter, msg string, wait time.Duration) {
	secs := int64((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Retry-After", strconv.FormatInt(secs, 10))
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(body)
}

// rlPeerIP is the default client address: the direct peer, never a header a client can forge.
func rlPeerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	return a.Unmap().WithZone("").String()
}

// DefaultRateStoreMaxKeys bounds a MemoryRateStore when 0 is given.
const DefaultRateStoreMaxKeys = 200_000

const rlShards = 16

// MemoryRateStore counts in this process. Memory is bounded: expired windows are swept once a minute per shard as
// a side effect of Incr (no goroutine to stop), and a shard that is still full after a sweep forgets an arbitrary
// eighth of its keys — at worst some callers get a fresh budget early, never unbounded growth.
type MemoryRateStore struct {
	seed     maphash.Seed
	perShard int
	shards   [rlShards]rlShard
}

type rlShard struct {
	mu        sync.Mutex
	m         map[string]rlWindow
	nextSweep time.Time
}

type rlWindow struct {
	count int64
	reset time.Time
}

var _ RateStore = (*MemoryRateStore)(nil)

// NewMemoryRateStore returns a store holding at most maxKeys windows (0 = DefaultRateStoreMaxKeys).
func NewMemoryRateStore(maxKeys int) *MemoryRateStore {
	if maxKeys <= 0 {
		maxKeys = DefaultRateStoreMaxKeys
	}
	s := &MemoryRateStore{seed: maphash.MakeSeed(), perShard: max(1, maxKeys/rlShards)}
	for i := range s.shards {
		s.shards[i].m = make(map[string]rlWindow)
	}
	return s
}

// Incr implements [RateStore].
func (s *MemoryRateStore) Incr(_ context.Context, key string, window time.Duration, now time.Time) (RateCount, error) {
	sh := &s.shards[maphash.String(s.seed, key)%rlShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	w, ok := sh.m[key]
	if !ok || !now.Before(w.reset) {
		if !ok && len(sh.m) >= s.perShard || !now.Before(sh.nextSweep) {
			sh.sweep(now, s.perShard)
		}
		w = rlWindow{reset: now.Add(window)}
	}
	w.count++
	sh.m[key] = w
	return RateCount{Count: w.count, Reset: w.reset}, nil
}

func (sh *rlShard) sweep(now time.Time, limit int) {
	for k, w := range sh.m {
		if !now.Before(w.reset) {
			delete(sh.m, k)
		}
	}
	if len(sh.m) >= limit {
		drop := max(1, len(sh.m)/8)
		for k := range sh.m { // map order is unspecified: an arbitrary eighth
			delete(sh.m, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	sh.nextSweep = now.Add(time.Minute)
}

// Len reports how many windows are held (for tests and metrics).
func (s *MemoryRateStore) Len() int {
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += len(s.shards[i].m)
		s.shards[i].mu.Unlock()
	}
	return n
}
