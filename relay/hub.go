package relay

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	DefaultWriteTimeout      = 10 * time.Second
	DefaultShutdownGrace     = 5 * time.Second
)

// HubConfig tunes a Hub. Every zero field means its Default*.
type HubConfig struct {
	Heartbeat         time.Duration // comment line interval, reset by every write
	Retry             time.Duration // the retry: hint sent with CONNECTED (at least 1 s)
	RoomGrace         time.Duration // how long memberships outlive a user's last stream
	QueueSize         int           // per-stream queue; a stream whose queue overflows is closed
	MaxStreamsPerUser int           // per user on this node
	MaxStreamsPerNode int           // on this node
	MaxRoomsPerUser   int           // joining one more drops the oldest-joined room
	HistorySize       int           // records this node keeps for resume
	HistoryTTL        time.Duration // older records are not replayed
	WriteTimeout      time.Duration // deadline of each write+flush to a stream
	ShutdownGrace     time.Duration // Shutdown's wait when its ctx has no deadline
	// Presence announces USER_ONLINE to the rooms a user has joined when the user's first stream on this node
	// opens (once the rooms are loaded), and USER_OFFLINE when the last one closes. Per node: a user with
	// streams on two nodes is announced offline when one node loses its last stream (additive events, which the
	// current frontend ignores).
	Presence bool
	// Now is the clock for envelope timestamps and heartbeats (tests pin it); default time.Now.
	Now func() time.Time
	// DetachHTTP1 hijacks HTTP/1.1 streams and serves them from a lean goroutine, roughly halving the memory per
	// stream (see detach.go); ServeStream then returns as soon as the stream is set up, so middleware that
	// measures or wraps the handler sees only that part. HTTP/2 streams are never detached.
	DetachHTTP1 bool
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
	setDur(&c.WriteTimeout, DefaultWriteTimeout)
	setDur(&c.ShutdownGrace, DefaultShutdownGrace)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Hub is one node's real-time registry: the streams open here, indexed by user and by room for the users that
// have streams here, plus the node's copy of the recent log. Everything shared between nodes (the log, fan-out,
// membership) goes through the Broker; see doc.go for the design.
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

	startOnce sync.Once
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
	return &Hub{b: b, cfg: cfg, log: log, m: m, users: map[string]*userState{},
		rooms: map[string]map[*userState]struct{}{}, ring: newRing(cfg.HistorySize, cfg.HistoryTTL)}
}

// Start subscribes to the broker and starts the membership keep-alive loop; it returns at once. A broker that is
// down does not make it fail: the Hub serves local streams and the broker reconnects in the background.
//
// Every other method starts the Hub (with a background context) if Start or Run has not run yet, so a Hub whose
// Run goroutine has not been scheduled yet still delivers; Shutdown stops it either way.
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
		go h.touchLoop(ctx)
	})
	return err
}

// Run is Start followed by waiting for ctx to end (or Shutdown).
func (h *Hub) Run(ctx context.Context) error {
	if err := h.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
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

// CloseUserStreams ends userID's streams on this node (they simply close; browsers reconnect and resume) and
// returns how many there were. Useful after a sign-out or an account deletion.
func (h *Hub) CloseUserStreams(userID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	us := h.users[userID]
	if us == nil {
		return 0
	}
	n := len(us.streams)
	for _, s := range slices.Clone(us.streams) {
		h.closeStreamLocked(s, closeNone)
	}
	return n
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

// ensureStarted starts the Hub if nobody has yet (see Start).
func (h *Hub) ensureStarted() { _ = h.Start(context.Background()) }

// HandleMessage is the broker's delivery of one log record: keep it in the ring and fan it out locally.
func (h *Hub) HandleMessage(m Message) {
	rec, err := decodeRecord(m.Data, m.Pos, m.Time)
	if err != nil {
		h.log.Error("relay: undecodable record", "offset", m.Pos.Offset, "err", err)
		rec = &record{pos: m.Pos, at: m.Time} // kind 0: kept for contiguity, addressed to nobody
	}
	if !m.Time.IsZero() {
		h.m.brokerLag.Observe(max(time.Since(m.Time), 0).Seconds())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pos = m.Pos
	h.ring.add(rec)
	h.fanoutLocked(rec)
}

// fanoutLocked queues rec on every local stream it is addressed to. It never blocks: a full queue closes that
// stream (its client reconnects and resumes from its last id).
func (h *Hub) fanoutLocked(rec *record) {
	switch rec.kind {
	case 'u':
		if us := h.users[rec.user]; us != nil {
			h.deliverLocked(us, rec)
		}
	case 'r':
		if rec.local {
			for _, us := range h.users {
				if us.loading && len(us.deferred) < h.cfg.QueueSize {
					us.deferred = append(us.deferred, rec)
				}
			}
		}
		for us := range h.rooms[rec.room] {
			if rec.addressedTo(us.id, us.rooms[rec.room], true) {
				h.deliverLocked(us, rec)
			}
		}
		if rec.parts == nil || rec.membersOnly {
			return
		}
		for _, p := range rec.parts {
			us := h.users[p]
			if us == nil {
				continue
			}
			off, member := us.rooms[rec.room]
			if member && rec.addressedTo(us.id, off, true) {
				continue // delivered above
			}
			if rec.addressedTo(us.id, off, false) {
				h.deliverLocked(us, rec)
			}
		}
	}
}

func (h *Hub) deliverLocked(us *userState, rec *record) {
	for i := 0; i < len(us.streams); i++ {
		s := us.streams[i]
		select {
		case s.ch <- rec:
		default:
			h.m.slowCloses.Inc()
			h.closeStreamLocked(s, closeSlow) // removes s from us.streams
			i--
		}
	}
}

// HandleMembership applies a membership change announced by the broker to the local users it concerns.
// It is idempotent, because the Hub also applies its own changes directly.
func (h *Hub) HandleMembership(c MembershipChange) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applyLocked(c)
}

func (h *Hub) applyLocked(c MembershipChange) {
	if c.Op == OpCloseRoom {
		for us := range h.rooms[c.Room] {
			delete(us.rooms, c.Room)
		}
		delete(h.rooms, c.Room)
		for _, us := range h.users {
			if us.loading {
				us.pending = append(us.pending, c)
			}
		}
		return
	}
	us := h.users[c.User]
	if us == nil {
		return
	}
	if us.loading {
		us.pending = append(us.pending, c)
		return
	}
	switch c.Op {
	case OpJoin:
		if _, ok := us.rooms[c.Room]; !ok {
			us.rooms[c.Room] = c.Offset
			h.indexLocked(c.Room, us)
		}
	case OpLeave:
		delete(us.rooms, c.Room)
		h.unindexLocked(c.Room, us)
	case OpLeaveAll:
		for room := range us.rooms {
			h.unindexLocked(room, us)
		}
		clear(us.rooms)
	}
}

func (h *Hub) indexLocked(room string, us *userState) {
	set := h.rooms[room]
	if set == nil {
		set = map[*userState]struct{}{}
		h.rooms[room] = set
	}
	set[us] = struct{}{}
}

func (h *Hub) unindexLocked(room string, us *userState) {
	if set := h.rooms[room]; set != nil {
		delete(set, us)
		if len(set) == 0 {
			delete(h.rooms, room)
		}
	}
}

// Join makes userID a member of conversationID (on every node). It is allowed without an open stream; the
// membership then lives for RoomGrace unless a stream appears. When the broker is down the join applies to this
// node only (logged and counted); the error is returned only for invalid arguments or a cancelled ctx.
func (h *Hub) Join(ctx context.Context, conversationID, userID string) error {
	if conversationID == "" || userID == "" {
		return errors.New("relay: Join needs a conversation and a user")
	}
	h.ensureStarted()
	off, err := h.b.Join(ctx, conversationID, userID, h.cfg.MaxRoomsPerUser, h.cfg.RoomGrace)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.brokerError("join", err)
		h.mu.Lock()
		off = h.pos.Offset
		h.mu.Unlock()
	}
	h.HandleMembership(MembershipChange{Op: OpJoin, Room: conversationID, User: userID, Offset: off})
	return nil
}

// Leave removes userID from conversationID.
func (h *Hub) Leave(ctx context.Context, conversationID, userID string) error {
	return h.change(ctx, "leave", MembershipChange{Op: OpLeave, Room: conversationID, User: userID},
		func() error { return h.b.Leave(ctx, conversationID, userID) })
}

// LeaveAll removes userID from every room (nuclear delete).
func (h *Hub) LeaveAll(ctx context.Context, userID string) error {
	return h.change(ctx, "leaveall", MembershipChange{Op: OpLeaveAll, User: userID},
		func() error { return h.b.LeaveAll(ctx, userID) })
}

// CloseRoom removes every member from conversationID (a direct chat wiped for everyone).
func (h *Hub) CloseRoom(ctx context.Context, conversationID string) error {
	return h.change(ctx, "close", MembershipChange{Op: OpCloseRoom, Room: conversationID},
		func() error { return h.b.CloseRoom(ctx, conversationID) })
}

func (h *Hub) change(ctx context.Context, op string, c MembershipChange, call func() error) error {
	if (c.Op != OpLeaveAll && c.Room == "") || (c.Op != OpCloseRoom && c.User == "") {
		return errors.New("relay: " + op + " needs its ids")
	}
	h.ensureStarted()
	if err := call(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.brokerError(op, err)
	}
	h.HandleMembership(c)
	return nil
}

// PublishToRoom delivers ev to the room's members (all their streams on every node), narrowed or widened by opt.
// When the broker is down the event still reaches this node's streams (without resume). The error is only for
// an invalid event or a cancelled ctx.
func (h *Hub) PublishToRoom(ctx context.Context, conversationID string, ev Event, opt PublishOptions) error {
	if conversationID == "" {
		return errors.New("relay: PublishToRoom needs a conversation")
	}
	return h.publish(ctx, ev, wireRecord{K: "r", R: conversationID, X: opt.ExcludeUser, P: opt.Participants,
		M: opt.MembersOnly})
}

// announcePresence publishes USER_ONLINE/USER_OFFLINE for userID to each of rooms (joined members only, not the
// user), in the background: presence is best effort and must never hold up a stream.
func (h *Hub) announcePresence(userID string, rooms []string, online bool) {
	if !h.cfg.Presence || len(rooms) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ev := PresenceEvent(userID, online)
		for _, room := range rooms {
			if err := h.PublishToRoom(ctx, room, ev, PublishOptions{ExcludeUser: userID, MembersOnly: true}); err != nil {
				h.log.Debug("presence not published", "user", userID, "room", room, "err", err)
				return
			}
		}
	}()
}

// PublishToUser delivers ev to all of userID's streams on every node.
func (h *Hub) PublishToUser(ctx context.Context, userID string, ev Event) error {
	if userID == "" {
		return errors.New("relay: PublishToUser needs a user")
	}
	return h.publish(ctx, ev, wireRecord{K: "u", U: userID})
}

func (h *Hub) publish(ctx context.Context, ev Event, w wireRecord) error {
	data, err := ev.normalize()
	if err != nil {
		return err
	}
	h.ensureStarted()
	w.T, w.D = ev.Type, data
	enc, err := encodeRecord(w)
	if err != nil {
		return err
	}
	start := time.Now()
	_, err = h.b.Publish(ctx, enc)
	h.m.publishDur.Observe(time.Since(start).Seconds())
	if err == nil {
		h.m.published.WithLabelValues("broker").Inc()
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	h.brokerError("publish", err)
	h.m.published.WithLabelValues("local_fallback").Inc()
	h.mu.Lock()
	defer h.mu.Unlock()
	rec := newRecord(w, h.pos, time.Now())
	rec.local = true
	h.fanoutLocked(rec)
	return nil
}
