package relay

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Hub's Prometheus collectors. They are registered on the Registerer given to NewHub (none when
// it is nil), never on the global default, so several Hubs can live in one process (tests, relaybench).
type metrics struct {
	streams      prometheus.Gauge
	rejected     *prometheus.CounterVec
	published    *prometheus.CounterVec
	delivered    prometheus.Counter
	replayed     prometheus.Counter
	slowCloses   prometheus.Counter
	brokerErrors *prometheus.CounterVec
	gaps         prometheus.Counter
	resets       prometheus.Counter
	publishDur   prometheus.Histogram
	brokerLag    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_streams_open",
			Help: "SSE streams currently open on this node."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relay_streams_rejected_total",
			Help: "Streams refused, by reason (user_cap, node_cap, shutdown)."}, []string{"reason"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relay_events_published_total",
			Help: "Events published through this node, by result (broker, local_fallback)."}, []string{"via"}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_events_delivered_total",
			Help: "Event frames written to streams (live and replayed)."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_events_replayed_total",
			Help: "Event frames written from history on resume."}),
		slowCloses: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_slow_consumer_closes_total",
			Help: "Streams closed because their queue overflowed."}),
		brokerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relay_broker_errors_total",
			Help: "Broker calls that failed, by operation."}, []string{"op"}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_history_gaps_total",
			Help: "Times this node learnt that records were lost (a Reset, a vanished or trimmed log) and ended its streams for a resume."}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_log_resets_total",
			Help: "New epochs this node started because events it published reached only its own streams."}),
		publishDur: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "relay_broker_publish_seconds",
			Help: "Latency of Broker.Publish.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		brokerLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "relay_broker_lag_seconds",
			Help: "Time from publish to this node receiving the record.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.streams, m.rejected, m.published, m.delivered, m.replayed,
		m.slowCloses, m.brokerErrors, m.gaps, m.resets, m.publishDur, m.brokerLag} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}
