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
	resumes      *prometheus.CounterVec
	slowCloses   prometheus.Counter
	leanSlow     prometheus.Counter
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
			Help: "Streams refused, by reason (user_cap, node_cap, shutdown, not_started)."}, []string{"reason"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relay_events_published_total",
			Help: "Events published through this node, by result (broker, local_fallback)."}, []string{"via"}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_events_delivered_total",
			Help: "Event frames written to streams (live and replayed)."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_events_replayed_total",
			Help: "Event frames written from history on resume."}),
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relay_resumes_total",
			Help: "Streams that came with a Last-Event-ID, by result (resumed, or why not: malformed, empty_log, " +
				"unknown_epoch, past_head, trimmed, epoch_changed; the client was then told to reload)."}, []string{"result"}),
		slowCloses: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_slow_consumer_closes_total",
			Help: "Streams closed because their queue overflowed."}),
		leanSlow: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_lean_slow_handoffs_total",
			Help: "Lean streams whose write did not finish in time and that got a goroutine of their own."}),
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
	for _, c := range []prometheus.Collector{m.streams, m.rejected, m.published, m.delivered, m.replayed, m.resumes,
		m.slowCloses, m.leanSlow, m.brokerErrors, m.gaps, m.resets, m.publishDur, m.brokerLag} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}

// historyStats are a history's numbers: records and bytes kept, records evicted by reason.
type historyStats struct {
	records, bytes int64
	evicted        [numEvictReasons]uint64
}

// historyStater is implemented by the brokers of this package. The Redis broker's numbers are as of this node's
// last publish, and its evictions those this node's publishes made (sum them over nodes).
type historyStater interface{ historyStats() historyStats }

var (
	historyRecordsDesc = prometheus.NewDesc("relay_history_records",
		"Records kept for resume, by store (node: this node's ring; broker: the shared log).", []string{"store"}, nil)
	historyBytesDesc = prometheus.NewDesc("relay_history_bytes",
		"Bytes of the records kept for resume (approximate for node), by store.", []string{"store"}, nil)
	historyEvictionsDesc = prometheus.NewDesc("relay_history_evictions_total",
		"Records dropped from history, by store and reason (count, bytes, age, gap).", []string{"store", "reason"}, nil)
)

// historyCollector reads the history numbers at scrape time, so publishing pays nothing for them.
type historyCollector struct{ h *Hub }

func (c *historyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- historyRecordsDesc
	ch <- historyBytesDesc
	ch <- historyEvictionsDesc
}

func (c *historyCollector) Collect(ch chan<- prometheus.Metric) {
	c.h.mu.Lock()
	g := c.h.ring
	node := historyStats{records: int64(g.n), bytes: g.bytes, evicted: g.evicted}
	c.h.mu.Unlock()
	emitHistory(ch, "node", node)
	if s, ok := c.h.b.(historyStater); ok {
		emitHistory(ch, "broker", s.historyStats())
	}
}

func emitHistory(ch chan<- prometheus.Metric, store string, s historyStats) {
	ch <- prometheus.MustNewConstMetric(historyRecordsDesc, prometheus.GaugeValue, float64(s.records), store)
	ch <- prometheus.MustNewConstMetric(historyBytesDesc, prometheus.GaugeValue, float64(s.bytes), store)
	for i, reason := range evictReasons {
		ch <- prometheus.MustNewConstMetric(historyEvictionsDesc, prometheus.CounterValue, float64(s.evicted[i]),
			store, reason)
	}
}

// registerCollector registers c on reg (nil: nothing), accepting an equal collector already there (several Hubs
// in one process: the first one's numbers are shown).
func registerCollector(reg prometheus.Registerer, c prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return err
		}
	}
	return nil
}
