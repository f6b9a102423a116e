package main

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qryptchat/suparelay/internal/idlepark"
	"github.com/qryptchat/suparelay/relay"
	"github.com/qryptchat/suparelay/supa"
)

// newUpstreamMetrics returns supa's Observe hook feeding suparelay_upstream_request_duration_seconds{upstream,
// outcome}: latency and errors of PostgREST, Auth and Storage as this node sees them (an operator's first question
// when answers slow down is "which upstream?"). reg nil: no metrics.
func newUpstreamMetrics(reg prometheus.Registerer) func(supa.Call) {
	if reg == nil {
		return nil
	}
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "suparelay", Subsystem: "upstream",
		Name:    "request_duration_seconds",
		Help:    "Calls to Supabase by upstream (rest, auth, storage) and outcome (2xx, 4xx, 5xx, timeout, unreachable), until the answer's headers.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"upstream", "outcome"})
	reg.MustRegister(h)
	return func(c supa.Call) {
		h.WithLabelValues(c.Upstream, callOutcome(c)).Observe(c.Duration.Seconds())
	}
}

// callOutcome is a small, fixed label set: the status class, or why no answer came.
func callOutcome(c supa.Call) string {
	if c.Err == nil {
		return strconv.Itoa(c.Status/100) + "xx"
	}
	var ne net.Error
	if errors.Is(c.Err, context.DeadlineExceeded) || (errors.As(c.Err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	if errors.Is(c.Err, context.Canceled) {
		return "canceled"
	}
	return "unreachable"
}

// registerStateMetrics exports what is read on scrape: the PostgREST gate (limit, in flight, waiting, shed calls)
// and whether the relay's broker is reachable.
func registerStateMetrics(reg prometheus.Registerer, client *supa.Client, hub *relay.Hub) {
	if reg == nil {
		return
	}
	gate := func(f func(supa.GateStats) float64) func() float64 {
		return func() float64 { return f(client.GateStats()) }
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "suparelay", Subsystem: "upstream", Name: "gate_limit",
			Help: "PostgREST calls this node lets run at once (SUPABASE_MAX_CONCURRENT; 0 = unbounded)."},
			gate(func(s supa.GateStats) float64 { return float64(s.Limit) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "suparelay", Subsystem: "upstream", Name: "gate_in_flight",
			Help: "PostgREST calls running now."}, gate(func(s supa.GateStats) float64 { return float64(s.InFlight) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "suparelay", Subsystem: "upstream", Name: "gate_waiting",
			Help: "PostgREST calls waiting for a slot now."}, gate(func(s supa.GateStats) float64 { return float64(s.Waiting) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "suparelay", Subsystem: "upstream", Name: "shed_total",
			Help: "PostgREST calls refused (503) because no slot freed within SUPABASE_QUEUE_WAIT; never sent."},
			gate(func(s supa.GateStats) float64 { return float64(s.Shed) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "suparelay", Subsystem: "relay", Name: "broker_up",
			Help: "1 when the relay's broker (Redis) is reachable and subscribed, else 0."}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if hub.Ready(ctx) != nil {
				return 0
			}
			return 1
		}),
	)
}

// registerParkMetrics exports the keep-alive parking counters (HTTP_PARK_IDLE); zero while it is off.
func registerParkMetrics(reg prometheus.Registerer, parker func() *idlepark.Parker) {
	if reg == nil {
		return
	}
	stat := func(f func(idlepark.Stats) float64) func() float64 {
		return func() float64 {
			if p := parker(); p != nil {
				return f(p.Stats())
			}
			return 0
		}
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "suparelay", Subsystem: "http", Name: "parked_connections",
			Help: "Idle keep-alive connections waiting in epoll for their next request (HTTP_PARK_IDLE)."},
			stat(func(s idlepark.Stats) float64 { return float64(s.Parked) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "suparelay", Subsystem: "http", Name: "parks_total",
			Help: "Responses written by the parker, each followed by parking the connection or handing it back."},
			stat(func(s idlepark.Stats) float64 { return float64(s.Parks) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "suparelay", Subsystem: "http", Name: "park_fallbacks_total",
			Help: "Requests the parker left to net/http after buffering them (too large to drain, trailers, ...)."},
			stat(func(s idlepark.Stats) float64 { return float64(s.Fallbacks) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "suparelay", Subsystem: "http", Name: "park_expired_total",
			Help: "Parked connections closed after the server's idle timeout."},
			stat(func(s idlepark.Stats) float64 { return float64(s.Expired) })),
	)
}
