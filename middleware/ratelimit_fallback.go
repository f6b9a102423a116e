package middleware

// The per-node fallback of the rate limiter: when the shared store (Redis) fails, the same rules are counted in this
// process instead of not at all, so an outage of the shared counter never opens /api/auth/* to brute force.

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the fallback (RateLimitConfig zero values).
const (
	DefaultRateStoreTimeout  = 500 * time.Millisecond // one shared-store call; Redis answers in well under 1 ms
	DefaultRateFallbackRetry = 2 * time.Second        // how long the shared store is left alone after a failure
)

// rlFailover counts in primary while it works and in fallback (per node, bounded) from its first failure on. While
// on the fallback it tries primary again with one request per retry interval, so that an outage costs the other
// requests no time (a Redis that does not answer would otherwise delay every request by the store timeout), and
// does so in the background, so that not even that one request waits.
type rlFailover struct {
	primary, fallback RateStore
	timeout, retry    time.Duration
	log               *slog.Logger

	down    atomic.Bool
	probeAt atomic.Int64 // unix nanos (on the limiter's clock) after which one request tries primary again
	lastLog atomic.Int64 // unix nanos of the last "still failing" log line
	probes  atomic.Int32 // probes in flight (at most one; read by tests)
	m       rlMetrics
}

type rlMetrics struct {
	active   prometheus.Gauge
	switches prometheus.Counter
	errors   prometheus.Counter
}

func newRLMetrics(reg prometheus.Registerer) rlMetrics {
	m := rlMetrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "suparelay", Subsystem: "ratelimit",
			Name: "fallback_active", Help: "1 while rate limits are counted per node because the shared store fails."}),
		switches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "suparelay", Subsystem: "ratelimit",
			Name: "fallback_switches_total", Help: "Times the rate limits moved from the shared store to per-node counting."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "suparelay", Subsystem: "ratelimit",
			Name: "store_errors_total", Help: "Failed calls to the shared rate-limit store."}),
	}
	if reg != nil {
		m.active = rlRegister(reg, m.active)
		m.switches = rlRegister(reg, m.switches)
		m.errors = rlRegister(reg, m.errors)
	}
	return m
}

// rlRegister registers c, or returns the collector already registered under its name (a second limiter on the
// same registry, as in tests, shares the series instead of panicking).
func rlRegister[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// Incr implements [RateStore].
func (f *rlFailover) Incr(ctx context.Context, key string, window time.Duration, now time.Time) (RateCount, error) {
	if f.down.Load() {
		if at := f.probeAt.Load(); now.UnixNano() >= at && f.probeAt.CompareAndSwap(at, now.Add(f.retry).UnixNano()) {
			// One probe per interval, off the request's path: this hit is counted here and, if the store is back,
			// there too (one hit counted twice, once per outage, is the price of never waiting on a dead store).
			f.probes.Add(1)
			go f.probe(context.WithoutCancel(ctx), key, window, now)
		}
		return f.fallback.Incr(ctx, key, window, now)
	}
	c, err := f.call(ctx, key, window, now)
	if err == nil {
		return c, nil
	}
	if ctx.Err() != nil {
		// The client went away mid-call: that says nothing about the store. Count here, do not switch.
		return f.fallback.Incr(ctx, key, window, now)
	}
	f.failed(ctx, err, now)
	return f.fallback.Incr(ctx, key, window, now)
}

// call is one bounded call to the shared store.
func (f *rlFailover) call(ctx context.Context, key string, window time.Duration, now time.Time) (RateCount, error) {
	cctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	return f.primary.Incr(cctx, key, window, now)
}

// probe tries the store once while on the fallback, and switches back when it answers. It ends within the store
// timeout, so it needs no stopping at shutdown.
func (f *rlFailover) probe(ctx context.Context, key string, window time.Duration, now time.Time) {
	defer f.probes.Add(-1)
	if _, err := f.call(ctx, key, window, now); err != nil {
		f.failed(ctx, err, now)
		return
	}
	if f.down.Swap(false) {
		f.m.active.Set(0)
		f.log.InfoContext(ctx, "rate limit store is back; limits are shared between nodes again")
	}
}

// failed records a store failure: the first one switches to the fallback (logged, exported); while down, a reminder
// is logged at most once a minute.
func (f *rlFailover) failed(ctx context.Context, err error, now time.Time) {
	f.m.errors.Inc()
	f.probeAt.Store(now.Add(f.retry).UnixNano())
	if !f.down.Swap(true) {
		f.m.active.Set(1)
		f.m.switches.Inc()
		f.lastLog.Store(time.Now().UnixNano())
		f.log.ErrorContext(ctx, "rate limit store unavailable; counting per node until it is back (same rules, "+
			"each node's own budget)", "error", err, "retry_every", f.retry)
		return
	}
	if t, last := time.Now().UnixNano(), f.lastLog.Load(); t-last >= int64(time.Minute) && f.lastLog.CompareAndSwap(last, t) {
		f.log.ErrorContext(ctx, "rate limit store still unavailable; counting per node", "error", err)
	}
}
