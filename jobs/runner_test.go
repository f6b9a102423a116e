package jobs

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/testenv"
)

func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// windowLog records which runner processed which window.
type windowLog struct {
	mu      sync.Mutex
	windows map[time.Time][]string
}

func (w *windowLog) record(runner string) func(ctx context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		start, ok := TickFrom(ctx)
		if !ok {
			return 0, errors.New("no tick in context")
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.windows[start] = append(w.windows[start], runner)
		return 1, nil
	}
}

func (w *windowLog) distinct() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.windows)
}

// runPair starts two runners of one job on lockers a and b, waits (bounded) until `want` distinct windows have
// been processed, stops them, and checks that every window was processed by exactly one runner.
func runPair(t *testing.T, a, b Locker, name string, want int) {
	t.Helper()
	log := &windowLog{windows: map[time.Time][]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, l := range []Locker{a, b} {
		r, err := NewRunner(RunnerConfig{Name: name, Interval: 50 * time.Millisecond, Lock: l, Run: log.record([]string{"A", "B"}[i])})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(ctx) }()
	}
	for range 1000 { // bounded wait: at most 10 s
		if log.distinct() >= want {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if n := log.distinct(); n < want {
		t.Fatalf("only %d windows processed, want >= %d", n, want)
	}
	for start, by := range log.windows {
		if len(by) != 1 {
			t.Errorf("window %s processed %d times (%v), want once", start.Format(time.StampMilli), len(by), by)
		}
		if !start.Equal(start.Truncate(50 * time.Millisecond)) {
			t.Errorf("window start %v not aligned", start)
		}
	}
}

// TestRunnersShareRedisLock: two runners ("two nodes", each with its own Redis client) sharing one real Redis
// lock process each window exactly once.
func TestRunnersShareRedisLock(t *testing.T) {
	t.Parallel()
	a, b := testenv.RedisClients(t), testenv.RedisClients(t) // two nodes: two clients each of Redis and the cluster
	for name := range a {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			prefix := "test:jobs:" + testenv.RandomHex(6) + ":"
			runPair(t, NewRedisLocker(a[name], prefix), NewRedisLocker(b[name], prefix), "cleanup", 12)
		})
	}
}

// TestRunnersShareLocalLock: the same guarantee within one process through LocalLocker.
func TestRunnersShareLocalLock(t *testing.T) {
	t.Parallel()
	l := NewLocalLocker()
	runPair(t, l, l, "cleanup", 12)
}

// TestRedisLockerTokens: a held lock refuses a second taker; an expired holder's unlock cannot release the new
// holder's lock; the holder's own unlock does.
func TestRedisLockerTokens(t *testing.T) {
	t.Parallel()
	for name, c := range testenv.RedisClients(t) {
		t.Run(name, func(t *testing.T) { t.Parallel(); testRedisLockerTokens(t, c) })
	}
}

func testRedisLockerTokens(t *testing.T, c redis.UniversalClient) {
	l := NewRedisLocker(c, "test:jobs:"+testenv.RandomHex(6)+":")
	ctx := context.Background()
	unlockA, ok, err := l.TryLock(ctx, "k", 30*time.Millisecond)
	if err != nil || !ok {
		t.Fatalf("first TryLock = %v, %v", ok, err)
	}
	if _, ok, err := l.TryLock(ctx, "k", time.Minute); err != nil || ok {
		t.Fatalf("second TryLock while held = %v, %v; want false", ok, err)
	}
	var unlockB func(context.Context) error
	for range 500 { // bounded wait for A's expiry
		if unlockB, ok, err = l.TryLock(ctx, "k", time.Minute); err != nil || ok {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil || !ok {
		t.Fatalf("TryLock after expiry = %v, %v", ok, err)
	}
	if err := unlockA(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l.TryLock(ctx, "k", time.Minute); ok {
		t.Fatal("stale unlock released the new holder's lock")
	}
	if err := unlockB(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l.TryLock(ctx, "k", time.Minute); !ok {
		t.Fatal("holder's unlock did not release")
	}
}

func TestLocalLockerTokens(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	l := NewLocalLocker()
	l.now = func() time.Time { return now }
	ctx := context.Background()
	unlockA, ok, _ := l.TryLock(ctx, "k", time.Second)
	if !ok {
		t.Fatal("first TryLock failed")
	}
	if _, ok, _ := l.TryLock(ctx, "k", time.Second); ok {
		t.Fatal("second TryLock succeeded while held")
	}
	now = now.Add(time.Second)
	unlockB, ok, _ := l.TryLock(ctx, "k", time.Second)
	if !ok {
		t.Fatal("TryLock after expiry failed")
	}
	_ = unlockA(ctx)
	if _, ok, _ := l.TryLock(ctx, "k", time.Second); ok {
		t.Fatal("stale unlock released the new holder's lock")
	}
	_ = unlockB(ctx)
	if _, ok, _ := l.TryLock(ctx, "k", time.Second); !ok {
		t.Fatal("holder's unlock did not release")
	}
}

func metricValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// TestRunnerMetricsAndErrors: failures are counted and logged at error level; successes count items and set the
// last-success time; the metrics carry the job label in the registry.
func TestRunnerMetricsAndErrors(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{b: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelError}))
	reg := prometheus.NewRegistry()
	var calls int
	r, err := NewRunner(RunnerConfig{Name: "flaky", Interval: time.Hour, Lock: NewLocalLocker(), Logger: logger, Registerer: reg,
		Run: func(ctx context.Context) (int, error) {
			calls++
			if calls%2 == 1 {
				return 0, errors.New("database unavailable")
			}
			return 3, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	// Drive windows directly, no timing involved: distinct window starts an hour apart (never "late").
	base := time.Now().Truncate(time.Hour)
	for i := range 4 {
		r.tick(context.Background(), base.Add(time.Duration(i+1)*time.Hour))
	}
	// The same window again is left alone (its claim is kept).
	r.tick(context.Background(), base.Add(time.Hour))
	if got := metricValue(t, r.runs); got != 4 {
		t.Errorf("runs = %v, want 4", got)
	}
	if got := metricValue(t, r.failures); got != 2 {
		t.Errorf("failures = %v, want 2", got)
	}
	if got := metricValue(t, r.items); got != 6 {
		t.Errorf("items = %v, want 6", got)
	}
	if got := metricValue(t, r.lastSuccess); got <= 0 {
		t.Errorf("last success = %v", got)
	}
	if got := metricValue(t, r.skipped); got != 1 {
		t.Errorf("skipped = %v, want 1", got)
	}
	if got := metricValue(t, r.duration); got != 4 {
		t.Errorf("duration samples = %v, want 4", got)
	}
	mu.Lock()
	if n := bytes.Count(buf.Bytes(), []byte("database unavailable")); n != 2 {
		t.Errorf("error log lines = %d, want 2:\n%s", n, buf.String())
	}
	mu.Unlock()
	mfs, _ := reg.Gather()
	if len(mfs) != 6 {
		t.Errorf("registered metric families = %d, want 6", len(mfs))
	}
	for _, mf := range mfs {
		if l := mf.GetMetric()[0].GetLabel(); len(l) != 1 || l[0].GetName() != "job" || l[0].GetValue() != "flaky" {
			t.Errorf("%s labels = %v", mf.GetName(), l)
		}
	}
	if _, err := NewRunner(RunnerConfig{Name: "x", Interval: time.Second, Lock: NewLocalLocker()}); err == nil {
		t.Error("missing Run accepted")
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
