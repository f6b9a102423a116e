package jobs

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RunnerConfig configures a [Runner].
type RunnerConfig struct {
	Name       string                                 // job name: lock keys, metric label, logs
	Interval   time.Duration                          // window length, e.g. 60 s
	Lock       Locker                                 // shared by every node running this job
	Run        func(ctx context.Context) (int, error) // does the work once; returns items processed
	Logger     *slog.Logger                           // nil = discard
	Registerer prometheus.Registerer                  // nil = no metrics registered
}

// Runner runs one job once per window on one node. Create it with [NewRunner] and call [Runner.Run].
type Runner struct {
	cfg     RunnerConfig
	log     *slog.Logger
	lockTTL time.Duration

	runs, failures, items, skipped prometheus.Counter
	lastSuccess                    prometheus.Gauge
	duration                       prometheus.Histogram
}

type tickKey struct{}

// TickFrom returns the start of the window a job run belongs to; Run funcs may use it as a stable "as of" time.
func TickFrom(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(tickKey{}).(time.Time)
	return t, ok
}

// NewRunner checks cfg and registers the job's metrics (labelled job=<Name>).
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Name == "" || cfg.Interval < 10*time.Millisecond || cfg.Lock == nil || cfg.Run == nil {
		return nil, errors.New("jobs: Name, Interval (>= 10ms), Lock and Run are required")
	}
	r := &Runner{cfg: cfg, log: cfg.Logger, lockTTL: cfg.Interval * 9 / 10}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	labels := prometheus.Labels{"job": cfg.Name}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "suparelay", Subsystem: "job", Name: name, Help: help, ConstLabels: labels}
	}
	r.runs = prometheus.NewCounter(prometheus.CounterOpts(opts("runs_total", "Job runs started on this node.")))
	r.failures = prometheus.NewCounter(prometheus.CounterOpts(opts("failures_total", "Job runs that failed, or windows lost to a lock error.")))
	r.items = prometheus.NewCounter(prometheus.CounterOpts(opts("items_processed_total", "Items the job reported processing.")))
	r.skipped = prometheus.NewCounter(prometheus.CounterOpts(opts("skipped_total", "Windows this node left to another node, or skipped as late or overlapping.")))
	r.lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts(opts("last_success_timestamp_seconds", "Unix time of the last successful run on this node.")))
	r.duration = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "suparelay", Subsystem: "job",
		Name: "duration_seconds", Help: "Duration of job runs on this node.", ConstLabels: labels,
		Buckets: prometheus.ExponentialBuckets(0.005, 4, 8)})
	if reg := cfg.Registerer; reg != nil {
		for _, c := range []prometheus.Collector{r.runs, r.failures, r.items, r.skipped, r.lastSuccess, r.duration} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// Run ticks at every window boundary until ctx ends; it returns ctx's error. The first run is at the first
// boundary after the call (like the original's setInterval, nothing runs at boot).
func (r *Runner) Run(ctx context.Context) error {
	iv := r.cfg.Interval
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := time.Now().Truncate(iv).Add(iv)
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		for time.Now().Before(next) { // a wall clock stepped back: wait out the rest
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Until(next)):
			}
		}
		r.tick(ctx, next)
	}
}

// tick handles the window starting at start.
func (r *Runner) tick(ctx context.Context, start time.Time) {
	iv := r.cfg.Interval
	if late := time.Since(start); late > iv/2 {
		// Too far into the window to be sure its claim is still held by whoever ran it.
		r.skipped.Inc()
		r.log.DebugContext(ctx, "job window skipped: late tick", "job", r.cfg.Name, "late", late)
		return
	}
	window := strconv.FormatInt(start.UnixMilli(), 10)
	// The claim outlives the window twice over: a claim call that reaches the lock late (a slow Redis) must still
	// find another node's claim. One that succeeds only after the window has ended is not acted on (below).
	_, ok, err := r.cfg.Lock.TryLock(ctx, r.cfg.Name+":window:"+window, 2*iv)
	if err != nil {
		r.failures.Inc()
		r.log.ErrorContext(ctx, "job lock unavailable; window not run", "job", r.cfg.Name, "error", err)
		return
	}
	if !ok {
		r.skipped.Inc()
		r.log.DebugContext(ctx, "job window taken by another node", "job", r.cfg.Name, "window", window)
		return
	}
	if late := time.Since(start); late > iv {
		// Claimed after the window ended: an earlier claim may have expired meanwhile and been acted on.
		r.skipped.Inc()
		r.log.DebugContext(ctx, "job window skipped: claimed too late", "job", r.cfg.Name, "late", late)
		return
	}
	unlock, ok, err := r.cfg.Lock.TryLock(ctx, r.cfg.Name+":running", r.lockTTL)
	if err != nil || !ok {
		r.skipped.Inc()
		if err != nil {
			r.failures.Inc()
			r.log.ErrorContext(ctx, "job lock unavailable; window not run", "job", r.cfg.Name, "error", err)
		} else {
			r.log.DebugContext(ctx, "job window skipped: previous run still going", "job", r.cfg.Name)
		}
		return
	}
	// The run must end before its lock can expire, or another node could start alongside it.
	runCtx, cancel := context.WithDeadline(context.WithValue(ctx, tickKey{}, start), start.Add(r.lockTTL))
	began := time.Now()
	r.runs.Inc()
	n, err := r.cfg.Run(runCtx)
	took := time.Since(began)
	cancel()
	r.duration.Observe(took.Seconds())
	if n > 0 {
		r.items.Add(float64(n))
	}
	if uerr := unlock(context.WithoutCancel(ctx)); uerr != nil {
		r.log.ErrorContext(ctx, "job lock release failed", "job", r.cfg.Name, "error", uerr)
	}
	if err != nil {
		r.failures.Inc()
		r.log.ErrorContext(ctx, "job run failed", "job", r.cfg.Name, "error", err, "took", took)
		return
	}
	r.lastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
	r.log.DebugContext(ctx, "job run", "job", r.cfg.Name, "window", window, "items", n, "took", took)
}
