package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for zero Config fields.
const (
	DefaultQueueSize   = 1000
	DefaultWorkers     = 4
	DefaultTimeout     = 10 * time.Second // routes.md §9.4
	DefaultMaxAttempts = 4
	DefaultBaseBackoff = time.Second
	DefaultMaxBackoff  = time.Minute
	DefaultUserAgent   = "QryptChat-Webhooks/1"
)

// maxResponseDrain is how much of a receiver's answer is read (and discarded) so the connection can be reused.
const maxResponseDrain = 64 << 10

// Config configures a [Deliverer]. Zero values mean the documented defaults.
type Config struct {
	SigningSecret string         // WEBHOOK_SIGNING_SECRET; required (a Delivery's own Secret overrides it)
	QueueSize     int            // pending deliveries, including scheduled retries; 0 = DefaultQueueSize
	Workers       int            // concurrent attempts; 0 = DefaultWorkers
	Timeout       time.Duration  // one whole attempt (connect, send, headers, body); 0 = DefaultTimeout
	MaxAttempts   int            // attempts per delivery including the first; 0 = DefaultMaxAttempts
	BaseBackoff   time.Duration  // delay before the first retry, doubled per retry; 0 = DefaultBaseBackoff
	MaxBackoff    time.Duration  // cap on one retry delay; 0 = DefaultMaxBackoff
	AllowPrivate  bool           // DANGEROUS: contact any address (tests, trusted internal receivers)
	AllowNets     []netip.Prefix // refused ranges that are nevertheless allowed (e.g. 127.0.0.0/8 in tests)
	UserAgent     string         // "" = DefaultUserAgent
	Registerer    prometheus.Registerer
	Logger        *slog.Logger     // nil = discard
	Now           func() time.Time // nil = time.Now
}

// Delivery is one event for one webhook.
type Delivery struct {
	URL    string
	Event  string          // e.g. "message.created"
	Data   json.RawMessage // the event payload; nil = null
	Secret string          // optional per-webhook secret; "" = Config.SigningSecret
}

// job is a Delivery on its way, with the body fixed at enqueue time so every attempt sends the same bytes.
type job struct {
	url     string
	host    string // for logs: URLs may carry credentials in their query
	event   string
	id      string
	secret  []byte
	body    []byte
	attempt int // attempts made so far
}

type metrics struct {
	delivered, failed, retried, dropped prometheus.Counter
}

// Deliverer sends webhook deliveries in the background. Create it with [New], start it with [Deliverer.Run] and
// stop it with [Deliverer.Close]; Enqueue may be called from any goroutine at any time.
type Deliverer struct {
	cfg    Config
	client *http.Client
	queue  chan *job
	log    *slog.Logger
	now    func() time.Time
	m      metrics

	baseCtx context.Context
	cancel  context.CancelFunc
	running atomic.Bool

	mu     sync.Mutex
	closed bool
	timers map[*time.Timer]struct{} // scheduled retries
	wg     sync.WaitGroup           // workers and scheduled retries
}

// New checks cfg, registers the metrics (when cfg.Registerer is set) and returns a Deliverer that is not yet
// running.
func New(cfg Config) (*Deliverer, error) {
	if cfg.SigningSecret == "" {
		return nil, errors.New("webhooks: SigningSecret is required")
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
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
	d := &Deliverer{cfg: cfg, queue: make(chan *job, cfg.QueueSize), log: cfg.Logger, now: cfg.Now,
		timers: make(map[*time.Timer]struct{})}
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
		delivered: counter("delivered_total", "Webhook deliveries answered with 2xx."),
		failed:    counter("failed_total", "Webhook deliveries abandoned after a permanent error or the last attempt."),
		retried:   counter("retried_total", "Webhook attempts scheduled again after a retryable failure."),
		dropped:   counter("dropped_total", "Webhook deliveries or retries refused because the queue was full or closed."),
	}
	if r := cfg.Registerer; r != nil {
		queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "suparelay", Subsystem: "webhooks",
			Name: "queue_length", Help: "Webhook deliveries waiting for a worker."}, func() float64 { return float64(len(d.queue)) })
		for _, c := range []prometheus.Collector{d.m.delivered, d.m.failed, d.m.retried, d.m.dropped, queued} {
			if err := r.Register(c); err != nil {
				d.cancel()
				return nil, fmt.Errorf("webhooks: register metrics: %w", err)
			}
		}
	}
	return d, nil
}

// newClient builds the HTTP client whose dialer enforces policy on every connection and which never follows
// redirects or uses environment proxies (a proxy would make the dial-time check inspect the proxy instead).
func newClient(policy addressPolicy, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: policy.control}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Enqueue queues d for delivery and reports whether it was accepted. It never blocks: false means the queue is
// full, the Deliverer is closed, or the delivery is malformed (URL not http/https, Data not JSON).
func (d *Deliverer) Enqueue(del Delivery) bool {
	j, err := d.newJob(del)
	if err != nil {
		d.m.failed.Inc()
		d.log.Warn("webhook delivery refused", "event", del.Event, "error", err)
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		d.m.dropped.Inc()
		return false
	}
	select {
	case d.queue <- j:
		return true
	default:
		d.m.dropped.Inc()
		return false
	}
}

// payload is the wire body; field order is part of what receivers see.
type payload struct {
	Event     string          `json:"event"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

func (d *Deliverer) newJob(del Delivery) (*job, error) {
	if len(del.URL) > maxURLLength {
		return nil, ErrInvalidURL
	}
	u, err := url.Parse(del.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, ErrInvalidURL
	}
	data := del.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	// Millisecond UTC with a Z, the shape of JavaScript's toISOString that the original would have sent.
	ts := d.now().UTC().Format("2006-01-02T15:04:05.000Z")
	body, err := json.Marshal(payload{Event: del.Event, Timestamp: ts, Data: data})
	if err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	secret := del.Secret
	if secret == "" {
		secret = d.cfg.SigningSecret
	}
	return &job{url: del.URL, host: u.Host, event: del.Event, id: newID(), secret: []byte(secret), body: body}, nil
}

func newID() string {
	const hexdigits = "0123456789abcdef"
	b := make([]byte, 24)
	for i := range b {
		b[i] = hexdigits[rand.IntN(16)]
	}
	return string(b)
}

// Run starts the workers and blocks until ctx is canceled or [Deliverer.Close] is called, then waits for the
// attempts in flight (canceled with it) to return. It may be called once.
func (d *Deliverer) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("webhooks: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.baseCtx, cancel)
	defer stop()

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	var workers sync.WaitGroup
	for range d.cfg.Workers {
		workers.Add(1)
		d.wg.Add(1)
		go func() {
			defer workers.Done()
			defer d.wg.Done()
			d.work(ctx)
		}()
	}
	d.mu.Unlock()
	<-ctx.Done()
	workers.Wait()
	return nil
}

func (d *Deliverer) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-d.queue:
			d.attempt(ctx, j)
		}
	}
}

// attempt makes one try and decides what follows: done, retry later, or give up.
func (d *Deliverer) attempt(ctx context.Context, j *job) {
	j.attempt++
	status, retryAfter, err := d.send(ctx, j)
	if err == nil && status >= 200 && status <= 299 {
		d.m.delivered.Inc()
		return
	}
	if ctx.Err() != nil {
		return // shutting down: the delivery is abandoned with the queue
	}
	retryable := retryableStatus(status)
	if err != nil {
		retryable = !errors.Is(err, ErrForbiddenAddress)
	}
	if retryable && j.attempt < d.cfg.MaxAttempts && d.schedule(j, d.backoff(j.attempt, retryAfter)) {
		d.m.retried.Inc()
		return
	}
	d.m.failed.Inc()
	attrs := []any{"host", j.host, "event", j.event, "delivery", j.id, "attempts", j.attempt}
	if err != nil {
		attrs = append(attrs, "error", err)
	} else {
		attrs = append(attrs, "status", status)
	}
	d.log.Warn("webhook delivery failed", attrs...)
}

func retryableStatus(status int) bool {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return true
	case status >= 500:
		return true
	}
	return false
}

// send makes one HTTP attempt and returns the status and any Retry-After delay.
func (d *Deliverer) send(ctx context.Context, j *job) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.url, bytes.NewReader(j.body))
	if err != nil {
		return 0, 0, err
	}
	ts := strconv.FormatInt(d.now().Unix(), 10)
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", d.cfg.UserAgent)
	h.Set("X-Qrypt-Event", j.event)
	h.Set("X-Qrypt-Delivery", j.id)
	h.Set("X-Qrypt-Timestamp", ts)
	h.Set("X-Qrypt-Signature", Sign(j.secret, ts, j.body))
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrain))
	var ra time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		ra = time.Duration(min(s, 86400)) * time.Second
	}
	return resp.StatusCode, ra, nil
}

// backoff is BaseBackoff·2^(attempt-1), capped at MaxBackoff, with "equal jitter" (half fixed, half random) so
// receivers recovering from an outage are not hit by synchronized retries; a Retry-After within the cap wins.
func (d *Deliverer) backoff(attempt int, retryAfter time.Duration) time.Duration {
	delay := d.cfg.MaxBackoff
	if attempt-1 < 30 {
		delay = min(d.cfg.BaseBackoff<<(attempt-1), d.cfg.MaxBackoff)
	}
	half := delay / 2
	delay = half + rand.N(half+1)
	if retryAfter > delay && retryAfter <= d.cfg.MaxBackoff {
		delay = retryAfter
	}
	return delay
}

// schedule re-queues j after delay without holding a worker. It returns false when closed.
func (d *Deliverer) schedule(j *job, delay time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		defer d.wg.Done()
		d.mu.Lock()
		defer d.mu.Unlock()
		delete(d.timers, t)
		if d.closed {
			return
		}
		select {
		case d.queue <- j:
		default:
			d.m.dropped.Inc()
			d.log.Warn("webhook retry dropped: queue full", "host", j.host, "event", j.event, "delivery", j.id)
		}
	})
	d.timers[t] = struct{}{}
	return true
}

// Close stops accepting deliveries, cancels scheduled retries and attempts in flight, and waits for the workers to
// return. Deliveries still queued are discarded. It is safe to call more than once.
func (d *Deliverer) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	for t := range d.timers {
		if t.Stop() {
			d.wg.Done()
		}
		delete(d.timers, t)
	}
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	d.client.CloseIdleConnections()
	return nil
}
