package relay

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qryptchat/suparelay/internal/netpoll"
)

// Defaults for HubConfig's zero fields.
const (
	DefaultHeartbeat         = 25 * time.Second
	DefaultRetry             = 3 * time.Second
	DefaultRoomGrace         = 120 * time.Second
	DefaultQueueSize         = 128
	DefaultMaxStreamsPerUser = 10
	DefaultMaxStreamsPerNode = 19000
	DefaultMaxRoomsPerUser   = 500
	DefaultHistorySize       = 10000
	DefaultHistoryTTL        = 5 * time.Minute
	DefaultHistoryMaxBytes   = 64 << 20
	DefaultWriteTimeout      = 10 * time.Second
	DefaultShutdownGrace     = 5 * time.Second
	DefaultStreamLeaseTTL    = 45 * time.Second
)

// HubConfig tunes a Hub. Every zero field means its Default*.
type HubConfig struct {
	Heartbeat         time.Duration // comment line interval, reset by every write
	Retry             time.Duration // the retry: hint sent with CONNECTED (at least 1 s)
	RoomGrace         time.Duration // how long memberships outlive a user's last stream
	QueueSize         int           // per-stream queue; a stream whose queue overflows is closed
	MaxStreamsPerUser int           // per user in the cluster (per node while the broker is unreachable)
	MaxStreamsPerNode int           // on this node
	MaxRoomsPerUser   int           // joining one more drops the oldest-joined room
	HistorySize       int           // records this node keeps for resume
	HistoryTTL        time.Duration // older records are not replayed
	// HistoryMaxBytes bounds the bytes of the records this node keeps for resume (the oldest go first), so that
	// large events cannot pin memory for HistoryTTL. Size the broker's budget (MemoryBrokerConfig,
	// RedisBrokerConfig) alike: a resume the node's ring cannot serve is served from there.
	HistoryMaxBytes int64
	WriteTimeout    time.Duration // deadline of each write+flush to a stream
	ShutdownGrace   time.Duration // Shutdown's wait when its ctx has no deadline
	// Presence announces USER_ONLINE to the rooms a user has joined when the user's first stream in the cluster
	// opens (once the rooms are loaded), and USER_OFFLINE when the last one closes or its lease lapses (its node
	// died), once per transition, from whichever node sees it (additive events, which the current frontend
	// ignores). While the broker is unreachable a node falls back to deciding alone (first and last stream here).
	Presence bool
	// StreamLeaseTTL is how long a stream's lease at the broker outlives its node's last renewal (every third of
	// it). 45 s: a node may miss two renewals (a Redis blip) without its users looking gone, and a node killed
	// outright stops counting against caps and presence within about a minute (the TTL plus a sweep, every
	// ninth of it).
	StreamLeaseTTL time.Duration
	// Now is the clock for envelope timestamps and heartbeats (tests pin it); default time.Now.
	Now func() time.Time
	// DetachHTTP1 hijacks HTTP/1.1 streams and serves them from a lean goroutine, roughly halving the memory per
	// stream (see detach.go); ServeStream then returns as soon as the stream is set up, so middleware that
	// measures or wraps the handler sees only that part. HTTP/2 streams are never detached.
	DetachHTTP1 bool
	// CloseWatcher, when set, notices detached clients hanging up through one epoll instance for all of them
	// instead of a reader goroutine per stream (~4 KiB each); connections it cannot watch keep the goroutine.
	// The caller owns it and closes it after the hub's Shutdown.
	CloseWatcher *netpoll.Watcher
	// LeanStreams serves live detached streams without a goroutine each (lean.go): a few writer goroutines write
	// for all of them, and a stream whose client reads too slowly gets its own goroutine back. Needs DetachHTTP1
	// and CloseWatcher; ~4 KiB less per stream.
	LeanStreams bool
}

func (c HubConfig) withDefaults() HubConfig {
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setInt := func(n *int, def int) {
		if *n <= 0 {
			*n = def
		}
	}
	setDur(&c.Heartbeat, DefaultHeartbeat)
	setDur(&c.Retry, DefaultRetry)
	if c.Retry < time.Second {
		c.Retry = time.Second
	}
	setDur(&c.RoomGrace, DefaultRoomGrace)
	setInt(&c.QueueSize, DefaultQueueSize)
	setInt(&c.MaxStreamsPerUser, DefaultMaxStreamsPerUser)
	setInt(&c.MaxStreamsPerNode, DefaultMaxStreamsPerNode)
	setInt(&c.MaxRoomsPerUser, DefaultMaxRoomsPerUser)
	setInt(&c.HistorySize, DefaultHistorySize)
	setDur(&c.HistoryTTL, DefaultHistoryTTL)
	if c.HistoryMaxBytes <= 0 {
		c.HistoryMaxBytes = DefaultHistoryMaxBytes
	}
	setDur(&c.WriteTimeout, DefaultWriteTimeout)
	setDur(&c.ShutdownGrace, DefaultShutdownGrace)
	setDur(&c.StreamLeaseTTL, DefaultStreamLeaseTTL)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Hub is one node's real-time registry: the streams open here, indexed by user and by room for the users that
// have streams here, plus the node's copy of the recent log. Everything shared between nodes (the log, fan-out,
// membership, stream leases) goes through the Broker; see doc.go for the design.
//
// Lock order: the broker may call the Hub (HandleMessage, HandleMembership) while holding its own lock, so the
// Hub never calls the broker while holding h.mu.
type Hub struct {
	b   Broker
	cfg HubConfig
	log *slog.Logger
	m   *metrics

	mu       sync.Mutex
	users    map[string]*userState              // users with ≥1 stream on this node
	rooms    map[string]map[*userState]struct{} // room → loaded local users who joined it
	ring     *ring
	pos      Position // newest record this node has processed
	nstreams int
	shutting bool
	wg       sync.WaitGroup // one per registered stream

	node     string        // this Hub's id in its stream leases
	leaseSeq atomic.Uint64 // numbers this node's leases
	// leaseMu orders renewals (held for writing: a snapshot of the open streams, then the broker call) against
	// releases (held for reading), so a renewal never revives a lease released after its snapshot.
	leaseMu sync.RWMutex

	presenceQ    [presenceShards]chan presenceJob // see hub_presence.go
	presenceSeed maphash.Seed

	resetReq      chan struct{} // one pending request to start a new epoch (events reached only this node)
	lostPublishes atomic.Uint64 // events the broker refused, ever: tells resetLoop whether a request is stale

	lean *leanPool // the run queue of lean streams; nil without HubConfig.LeanStreams

	startOnce sync.Once
	started   atomic.Bool        // set once Start has subscribed
	stop      context.CancelFunc // guarded by mu
}

// userState is a user with streams on this node. rooms mirrors the broker's membership once loaded; changes
// announced while it loads are queued in pending and applied after.
type userState struct {
	id      string
	streams []*stream         // usually one or two: a slice is cheaper to walk on every delivery than a map
	rooms   map[string]uint64 // room → join offset
	loading bool
	loaded  chan struct{}
	pending []MembershipChange
	// deferred holds local-only room records (broker down) seen while loading: they are in no history, so
	// replay cannot bring them; they are judged once the rooms are known.
	deferred []*record
	// announce: USER_ONLINE is due once the rooms are loaded (the broker said the user's first stream opened).
	announce bool
}

var _ BrokerHandler = (*Hub)(nil)

// NewHub makes a Hub on broker b. Metrics go to reg (nil: not registered). Call Start or Run before serving.
func NewHub(b Broker, cfg HubConfig, log *slog.Logger, reg prometheus.Registerer) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(reg)
	if err != nil {
		log.Error("relay: metrics not registered", "err", err)
		m, _ = newMetrics(nil)
	}
	h := &Hub{b: b, cfg: cfg, log: log, m: m, users: map[string]*userState{},
		rooms: map[string]map[*userState]struct{}{}, ring: newRing(cfg.HistorySize, cfg.HistoryTTL, cfg.HistoryMaxBytes),
		resetReq: make(chan struct{}, 1), node: newEpoch(), presenceSeed: maphash.MakeSeed()}
	for i := range h.presenceQ {
		if cfg.Presence {
			h.presenceQ[i] = make(chan presenceJob, presenceQueue)
		}
	}
	if cfg.LeanStreams && cfg.DetachHTTP1 && cfg.CloseWatcher != nil {
		h.lean = newLeanPool()
	}
	if err := registerCollector(reg, &historyCollector{h: h}); err != nil {
		log.Error("relay: history metrics not registered", "err", err)
	}
	return h
}

// Start subscribes to the broker and starts the membership keep-alive loop until ctx ends or Shutdown; it returns
// at once. A broker that is down does not make it fail: the Hub serves local streams and the broker reconnects in
// the background. Only a closed broker is an error. Call it once before serving: until it has returned, the
// other methods return ErrNotStarted (Shutdown works either way); later calls do nothing.
func (h *Hub) Start(ctx context.Context) error {
	var err error
	h.startOnce.Do(func() {
		var stop context.CancelFunc
		ctx, stop = context.WithCancel(ctx)
		h.mu.Lock()
		h.stop = stop
		h.mu.Unlock()
		if serr := h.b.Subscribe(ctx, h); serr != nil {
			h.m.brokerErrors.WithLabelValues("subscribe").Inc()
			h.log.Warn("relay: broker subscription failed; serving local streams, retrying in background", "err", serr)
			if errors.Is(serr, ErrBrokerClosed) {
				err = serr
			}
		}
		if head, herr := h.b.Head(ctx); herr == nil {
			h.mu.Lock()
			if h.pos.Epoch == "" {
				h.pos = head
			}
			h.mu.Unlock()
		}
		if err != nil {
			return
		}
		h.startPresence(ctx)
		if h.lean != nil {
			h.lean.start(ctx, h)
		}
		h.started.Store(true)
		go h.touchLoop(ctx)
		go h.resetLoop(ctx)
		go h.leaseLoop(ctx)
	})
	return err
}

// touchLoop keeps the memberships of users with streams here alive at the broker (every grace/4), so they
// expire only RoomGrace after the user's last stream anywhere has closed.
func (h *Hub) touchLoop(ctx context.Context) {
	t := time.NewTicker(max(h.cfg.RoomGrace/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		users := make([]string, 0, len(h.users))
		for id := range h.users {
			users = append(users, id)
		}
		h.mu.Unlock()
		if len(users) == 0 {
			continue
		}
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := h.b.Touch(tctx, users, h.cfg.RoomGrace); err != nil {
			h.brokerError("touch", err)
		}
		cancel()
	}
}

func (h *Hub) brokerError(op string, err error) {
	h.m.brokerErrors.WithLabelValues(op).Inc()
	h.log.Warn("relay: broker call failed", "op", op, "err", err)
}

// Ready returns nil when the broker is healthy.
func (h *Hub) Ready(ctx context.Context) error { return h.b.Ready(ctx) }

// Streams returns the number of streams open on this node.
func (h *Hub) Streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nstreams
}

// Shutdown refuses new streams and ends every open one (with a jittered retry hint, so reconnects spread out),
// waiting for them to finish within ctx (or ShutdownGrace when ctx has no deadline).
func (h *Hub) Shutdown(ctx context.Context) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.cfg.ShutdownGrace)
		defer cancel()
	}
	h.mu.Lock()
	h.shutting = true
	for _, us := range h.users {
		for _, s := range slices.Clone(us.streams) {
			h.closeStreamLocked(s, closeShutdown)
		}
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		h.log.Warn("relay: shutdown deadline reached with streams still open", "streams", h.Streams())
	}
	h.mu.Lock()
	stop := h.stop
	h.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// ErrNotStarted is returned by the Hub's methods (and ServeStream answers 503) before Start has returned: a Hub
// that started itself on first use would run on a context nobody cancels, and a caller that forgot Start would
// never find out.
var ErrNotStarted = errors.New("relay: hub not started")

// checkStarted returns ErrNotStarted until Start has succeeded.
func (h *Hub) checkStarted() error {
	if !h.started.Load() {
		return ErrNotStarted
	}
	return nil
}
