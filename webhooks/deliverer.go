package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for zero Config fields.
const (
	DefaultQueueSize       = 10_000
	DefaultWorkers         = 4
	DefaultTimeout         = 10 * time.Second // routes.md §9.4
	DefaultMaxAttempts     = 4
	DefaultBaseBackoff     = time.Second
	DefaultMaxBackoff      = time.Minute
	DefaultMaxPayloadBytes = 16 << 10
	DefaultPollInterval    = time.Second
	DefaultUserAgent       = "QryptChat-Webhooks/1"
)

// storeOpTimeout bounds one Store call made after an attempt: it runs even while shutting down, so that the
// outcome of an attempt that did reach the receiver is not lost with the process.
const storeOpTimeout = 5 * time.Second

// Config configures a [Deliverer]. Zero values mean the documented defaults.
type Config struct {
	SigningSecret   string         // WEBHOOK_SIGNING_SECRET; required (a Delivery's own Secret overrides it)
	Store           Store          // where deliveries wait; nil = a new MemoryStore (lost on restart)
	QueueSize       int            // pending deliveries in the Store, including scheduled retries; 0 = DefaultQueueSize
	MaxPayloadBytes int            // largest request body accepted by Enqueue; 0 = DefaultMaxPayloadBytes
	Workers         int            // concurrent attempts on this node; 0 = DefaultWorkers
	Timeout         time.Duration  // one whole attempt (connect, send, headers, body); 0 = DefaultTimeout
	LeaseTime       time.Duration  // how long a claim holds a delivery; ≤ Timeout = 3×Timeout
	PollInterval    time.Duration  // longest wait between looks at the Store; 0 = DefaultPollInterval
	MaxAttempts     int            // attempts per delivery including the first; 0 = DefaultMaxAttempts
	BaseBackoff     time.Duration  // delay before the first retry, doubled per retry; 0 = DefaultBaseBackoff
	MaxBackoff      time.Duration  // cap on one retry delay; 0 = DefaultMaxBackoff
	AllowPrivate    bool           // DANGEROUS: contact any address (tests, trusted internal receivers)
	AllowNets       []netip.Prefix // refused ranges that are nevertheless allowed (e.g. 127.0.0.0/8 in tests)
	UserAgent       string         // "" = DefaultUserAgent
	Registerer      prometheus.Registerer
	Logger          *slog.Logger     // nil = discard
	Now             func() time.Time // payload and signature timestamps; nil = time.Now (the schedule uses the Store's clock)
}

// Delivery is one event for one webhook.
type Delivery struct {
	URL    string
	Event  string          // e.g. "message.created"
	Data   json.RawMessage // the event payload; nil = null
	Secret string          // optional per-webhook secret; "" = Config.SigningSecret
}

type metrics struct {
	delivered, failed, retried, dropped, leaseLost, storeErrors prometheus.Counter
}

// Deliverer sends webhook deliveries in the background, from a [Store] shared by every node that uses it. Create it
// with [New], start it with [Deliverer.Run] and stop it with [Deliverer.Shutdown] or [Deliverer.Close]; Enqueue may
// be called from any goroutine at any time.
type Deliverer struct {
	cfg    Config
	client *http.Client
	store  Store
	log    *slog.Logger
	now    func() time.Time
	m      metrics

	pending atomic.Int64  // deliveries in the Store at the last look, for the gauge
	wake    chan struct{} // a delivery was added or a worker freed: look at the Store now

	baseCtx  context.Context // canceled to abort attempts in flight
	cancel   context.CancelFunc
	stopping chan struct{} // closed to stop claiming
	running  atomic.Bool

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // Run
}

// New checks cfg, registers the metrics (when cfg.Registerer is set) and returns a Deliverer that is not yet
// running.
func New(cfg Config) (*Deliverer, error) {
	if cfg.SigningSecret == "" {
		return nil, errors.New("webhooks: SigningSecret is required")
	}
	setDefaults(&cfg)
	d := &Deliverer{cfg: cfg, store: cfg.Store, log: cfg.Logger, now: cfg.Now,
		wake: make(chan struct{}, 1), stopping: make(chan struct{})}
	if d.store == nil {
		d.store = NewMemoryStore()
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.baseCtx, d.cancel = context.WithCancel(context.Background())
	d.client = newClient(addressPolicy{allowPrivate: cfg.AllowPrivate, allow: cfg.AllowNets}, cfg.Timeout)

	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "suparelay", Subsystem: "webhooks", Name: name, Help: help})
	}
	d.m = metrics{
		delivered:   counter("delivered_total", "Webhook deliveries answered with 2xx."),
		failed:      counter("failed_total", "Webhook deliveries abandoned (dead) after a permanent error or the last attempt, or refused as malformed."),
		retried:     counter("retried_total", "Webhook attempts scheduled again after a retryable failure."),
		dropped:     counter("dropped_total", "Webhook deliveries refused because the queue was full, the store unavailable or the deliverer closed."),
		leaseLost:   counter("lease_lost_total", "Webhook attempts whose claim ran out before they finished (the delivery may be attempted again)."),
		storeErrors: counter("store_errors_total", "Failed calls to the webhook delivery store."),
	}
	if r := cfg.Registerer; r != nil {
		queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "suparelay", Subsystem: "webhooks",
			Name: "queue_length", Help: "Webhook deliveries waiting or being attempted, in the whole store, at this node's last look."},
			func() float64 { return float64(d.pending.Load()) })
		for _, c := range []prometheus.Collector{d.m.delivered, d.m.failed, d.m.retried, d.m.dropped, d.m.leaseLost,
			d.m.storeErrors, queued} {
			if err := r.Register(c); err != nil {
				d.cancel()
				return nil, fmt.Errorf("webhooks: register metrics: %w", err)
			}
		}
	}
	return d, nil
}

func setDefaults(cfg *Config) {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.MaxPayloadBytes <= 0 {
		cfg.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	// The lease must outlast the longest attempt plus the Store call that settles it, or a slow attempt would be
	// claimed again elsewhere while it is still running.
	if cfg.LeaseTime <= cfg.Timeout {
		cfg.LeaseTime = 3 * cfg.Timeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = DefaultBaseBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
}

// Enqueue stores del for delivery and reports whether it was accepted; once accepted, it is attempted until
// delivered or dead, by whichever node claims it, across restarts when the Store is shared. It never waits for a
// receiver, only for the Store (bounded by ctx): false means the queue is full, the Store failed, the Deliverer is
// closed, or the delivery is malformed (URL not http/https, Data not JSON, body over MaxPayloadBytes).
func (d *Deliverer) Enqueue(ctx context.Context, del Delivery) bool {
	id, job, err := d.newJob(del)
	if err != nil {
		d.m.failed.Inc()
		d.log.WarnContext(ctx, "webhook delivery refused", "event", del.Event, "error", err)
		return false
	}
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		d.m.dropped.Inc()
		return false
	}
	ok, err := d.store.Add(ctx, id, job, d.cfg.QueueSize)
	if err != nil {
		d.m.storeErrors.Inc()
		d.m.dropped.Inc()
		d.log.WarnContext(ctx, "webhook delivery not stored", "event", del.Event, "error", err)
		return false
	}
	if !ok {
		d.m.dropped.Inc()
		return false
	}
	d.poke()
	return true
}

// poke wakes the dispatcher without blocking.
func (d *Deliverer) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// payload is the wire body; field order is part of what receivers see.
type payload struct {
	Event     string          `json:"event"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// storedJob is a delivery as the Store keeps it, with the body fixed at enqueue time so that every attempt, on any
// node, sends the same bytes. Only a per-webhook secret is stored; the server-wide one is never written to the
// Store and is read at attempt time (so a rotated secret also signs pending retries).
type storedJob struct {
	URL    string `json:"url"`
	Event  string `json:"event"`
	Secret string `json:"secret,omitempty"`
	Body   string `json:"body"`
}

func (d *Deliverer) newJob(del Delivery) (string, []byte, error) {
	if len(del.URL) > maxURLLength {
		return "", nil, ErrInvalidURL
	}
	u, err := url.Parse(del.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", nil, ErrInvalidURL
	}
	data := del.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	// Millisecond UTC with a Z, the shape of JavaScript's toISOString that the original would have sent.
	ts := d.now().UTC().Format("2006-01-02T15:04:05.000Z")
	body, err := json.Marshal(payload{Event: del.Event, Timestamp: ts, Data: data})
	if err != nil {
		return "", nil, fmt.Errorf("encode payload: %w", err)
	}
	if len(body) > d.cfg.MaxPayloadBytes {
		return "", nil, fmt.Errorf("payload of %d bytes is over the limit of %d", len(body), d.cfg.MaxPayloadBytes)
	}
	job, err := json.Marshal(storedJob{URL: del.URL, Event: del.Event, Secret: del.Secret, Body: string(body)})
	if err != nil {
		return "", nil, fmt.Errorf("encode job: %w", err)
	}
	return newID(), job, nil
}

// newID is a delivery's identity and the receivers' idempotency key (X-Qrypt-Delivery): random, so that ids made on
// different nodes never collide.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Run claims due deliveries from the Store and attempts them, at most Workers at a time, until ctx is canceled or
// the Deliverer is shut down; then it waits for the attempts in flight. It may be called once.
func (d *Deliverer) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("webhooks: Run called twice")
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.wg.Add(1)
	d.mu.Unlock()
	defer d.wg.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.baseCtx, cancel)
	defer stop()

	var attempts sync.WaitGroup
	defer attempts.Wait()
	slots := make(chan struct{}, d.cfg.Workers)
	timer := time.NewTimer(0)
	defer timer.Stop()
	storeDown := false
	for {
		wait := d.cfg.PollInterval
		if free := cap(slots) - len(slots); free > 0 {
			res, err := d.store.Claim(ctx, free, d.cfg.LeaseTime)
			switch {
			case err != nil && ctx.Err() != nil:
				return nil
			case err != nil:
				d.m.storeErrors.Inc()
				if !storeDown {
					d.log.Warn("webhook store unavailable: deliveries wait", "error", err)
				}
				storeDown = true
			default:
				if storeDown {
					d.log.Info("webhook store available again")
				}
				storeDown = false
				d.pending.Store(int64(res.Pending))
				for _, c := range res.Claims {
					slots <- struct{}{}
					attempts.Add(1)
					go func() {
						defer attempts.Done()
						defer func() { <-slots; d.poke() }()
						d.attempt(ctx, c)
					}()
				}
				if res.Next >= 0 && res.Next < wait {
					wait = res.Next
				}
			}
		}
		timer.Reset(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-d.stopping:
			return nil
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// Shutdown stops claiming deliveries and refuses new ones, lets the attempts in flight finish until ctx ends, then
// cancels the rest (they stay in the Store, due again, not counted as attempts). Deliveries still waiting stay in
// the Store for the next Deliverer: with a shared Store, none is lost. It is safe to call more than once.
func (d *Deliverer) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.stopping)
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		d.cancel()
		<-done
	}
	d.cancel()
	d.client.CloseIdleConnections()
	return err
}

// Close is Shutdown without waiting for attempts in flight: they are canceled at once.
func (d *Deliverer) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = d.Shutdown(ctx)
	return nil
}
