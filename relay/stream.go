package relay

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

type closeReason uint8

const (
	closeNone closeReason = iota
	closeSlow
	closeShutdown
	closeResync // records were lost: the client must reconnect, and its resume will tell it to reload
)

// stream is one open GET /api/events. The Hub closes ch (under h.mu) to end it; reason says why.
type stream struct {
	u      *userState
	ch     chan *record
	closed bool
	reason closeReason
	lease  string      // its stream lease at the broker (node id + sequence)
	lean   *leanStream // set once a detached stream is live without a goroutine (lean.go); guarded by the hub's mu
	ended  atomic.Bool // closed, as seen without the hub's lock (a lean stream's writer asks after every batch)
}

// streamStart is what a registered stream carries into run: register fills the first four fields, ServeStream
// the client's side.
type streamStart struct {
	s       *stream
	userID  string
	p0      Position // the node's position at registration: everything after it reaches the stream
	load    bool     // this stream is the user's first here and must load the user's rooms
	lastID  string   // the client's Last-Event-ID, unparsed ("" when none)
	expires time.Time
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// frameWriter writes one batch of SSE bytes and flushes it, with a per-write deadline.
type frameWriter interface{ write(b []byte) error }

// ServeStream serves GET /api/events for an already authenticated user (internal id) until the client goes,
// the token expires (expires; zero = never), the stream falls behind, or the Hub shuts down. Headers set on w
// by the caller (a refreshed Set-Cookie) are kept. A cap hit answers 429 {"error":"Too many connections"}; a Hub
// that is not started yet or shutting down answers 503 with Retry-After.
//
// It returns when the stream ends, except with HubConfig.DetachHTTP1, where an HTTP/1.1 stream is hijacked and
// served by a lean goroutine of its own and ServeStream returns at once.
func (h *Hub) ServeStream(w http.ResponseWriter, r *http.Request, userID string, expires time.Time) {
	st, err := h.register(userID)
	if err != nil {
		status, body := http.StatusTooManyRequests, `{"error":"Too many connections"}`
		switch {
		case errors.Is(err, errShuttingDown):
			status, body = http.StatusServiceUnavailable, `{"error":"Server shutting down"}`
			w.Header().Set("Retry-After", "1")
		case errors.Is(err, ErrNotStarted):
			status, body = http.StatusServiceUnavailable, `{"error":"Real-time service unavailable"}`
			w.Header().Set("Retry-After", "1")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
		return
	}
	st.lastID, st.expires = r.Header.Get("Last-Event-ID"), expires
	hdr := w.Header()
	SetStreamHeaders(hdr, r.ProtoMajor)
	hdr.Del("Content-Length")
	rc := http.NewResponseController(w)
	if h.cfg.DetachHTTP1 && r.ProtoMajor == 1 && r.ProtoMinor >= 1 {
		if conn, _, err := rc.Hijack(); err == nil {
			h.detach(conn, hdr, st)
			return
		}
		// Not hijackable (a wrapper without Unwrap): serve through net/http below.
	}
	defer h.unregister(st.s)
	w.WriteHeader(http.StatusOK)
	_ = rc.SetReadDeadline(time.Time{}) // a server ReadTimeout must not end the stream
	h.run(r.Context(), &httpWriter{w: w, rc: rc, dl: writeDeadline{timeout: h.cfg.WriteTimeout}}, st)
}

// run is the life of a registered stream: CONNECTED, rooms, replay, then the live loop.
func (h *Hub) run(ctx context.Context, fw frameWriter, st streamStart) {
	if skip, ok := h.prepare(ctx, fw, st); ok {
		h.loop(ctx, fw, st.s, skip, st.expires)
	}
}

// prepare writes CONNECTED, waits for the user's rooms and replays what the client missed; it returns the
// position up to which queued live records are duplicates of the replay, and false when the stream is over.
func (h *Hub) prepare(ctx context.Context, fw frameWriter, st streamStart) (Position, bool) {
	s, p0 := st.s, st.p0
	if st.load { // whatever happens to this stream, the user's other streams wait for these rooms
		defer h.loadRooms(ctx, s.u)
	}
	// The Last-Event-ID is judged before CONNECTED, whose id says where this stream starts: the client's own
	// position (resumed, with a fresh id) or the node's current one (cannot resume; see resume.go).
	plan := h.planResume(ctx, p0, st.lastID)
	now := h.cfg.Now()
	ts := appendTimestamp(nil, now)
	connected := &record{head: frameHead(TypeConnected),
		tail: frameTail(connectedData(st.userID, string(ts)), plan.connID, h.cfg.Retry)}
	if fw.write(appendFrame(nil, connected, now)) != nil {
		return Position{}, false
	}
	if st.load {
		// On a helper goroutine: a broker call (go-redis) is deep, and the stack it would grow here would stay
		// with this long-lived goroutine (about 4 KiB per stream).
		done := make(chan struct{})
		go func() { h.loadRooms(ctx, s.u); close(done) }()
		<-done
	} else {
		select {
		case <-s.u.loaded:
		case <-ctx.Done():
			return Position{}, false
		}
	}
	return h.replay(ctx, fw, s.u, plan, p0)
}

// replay writes the records addressed to the user between the plan's position and the node's current one, after
// reload hints when the client's position cannot be resumed (as planned, or found here: history trimmed, epoch
// changed meanwhile). It returns the position up to which live records on the queue are duplicates
// (register-before-replay: the stream was already receiving live records while this ran, mercure's liveQueue).
func (h *Hub) replay(ctx context.Context, sw frameWriter, us *userState, plan resumePlan, p0 Position) (Position, bool) {
	now := time.Now()
	h.mu.Lock()
	p1 := h.pos
	rooms := make(map[string]uint64, len(us.rooms))
	for k, v := range us.rooms {
		rooms[k] = v
	}
	start := plan.from
	if p1.Epoch != "" && (start.Epoch == "" || start.Epoch != p1.Epoch) {
		// Registered before this node had seen any record, or the epoch changed since: every record of the
		// current epoch this node holds arrived after registration and counts.
		if start.Epoch != "" && plan.outcome == resumeOK {
			plan.outcome = resumeEpochChanged
		}
		start = Position{Epoch: p1.Epoch, Offset: h.ring.firstOffset(p1.Offset+1) - 1}
	}
	var recs []*record
	ok := true
	if p1.Epoch != "" {
		recs, ok = h.ring.since(start, p1.Offset, now)
	}
	h.mu.Unlock()
	if !ok {
		recs, ok = h.brokerHistory(ctx, start, p1.Offset)
	}
	if !ok && start != p0 && p0.Epoch == p1.Epoch { // the gap is older than history: continue from p0
		start = p0
		h.mu.Lock()
		recs, ok = h.ring.since(p0, p1.Offset, now)
		h.mu.Unlock()
	}
	if start != plan.from && plan.outcome == resumeOK {
		plan.outcome = resumeTrimmed
	}
	if plan.outcome != resumeNone {
		h.m.resumes.WithLabelValues(plan.outcome).Inc()
	}
	skip := start // nothing replayed: every queued record after start is new
	if ok && start.Epoch == p1.Epoch {
		skip.Offset = max(p1.Offset, start.Offset)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	b := (*bp)[:0]
	defer func() { *bp = b[:0] }()
	if plan.outcome != resumeNone && plan.outcome != resumeOK {
		b = appendReloadHints(b, rooms, h.cfg.Now())
	}
	for _, rec := range recs {
		off, member := rooms[rec.room]
		if rec.kind == 0 || !rec.addressedTo(us.id, off, member) {
			continue
		}
		b = appendFrame(b, rec, h.cfg.Now())
		h.m.delivered.Inc()
		h.m.replayed.Inc()
		if len(b) >= 32<<10 {
			if sw.write(b) != nil {
				return skip, false
			}
			b = b[:0]
		}
	}
	if len(b) > 0 && sw.write(b) != nil {
		return skip, false
	}
	return skip, true
}

// brokerHistory reads (after, upto] from the broker's history, for resumes the node's ring cannot serve. What it
// holds is bounded like the ring (HistorySize records, HistoryMaxBytes): a range beyond that is not served.
func (h *Hub) brokerHistory(ctx context.Context, after Position, upto uint64) ([]*record, bool) {
	var out []*record
	var bytes int64
	for after.Offset < upto && len(out) <= h.cfg.HistorySize && bytes <= h.cfg.HistoryMaxBytes {
		msgs, _, err := h.b.History(ctx, after, min(int(upto-after.Offset), 1000))
		if err != nil {
			if !errors.Is(err, ErrHistoryUnavailable) {
				h.brokerError("history", err)
			}
			return nil, false
		}
		if len(msgs) == 0 {
			return nil, false
		}
		for _, m := range msgs {
			if m.Pos.Offset > upto {
				break
			}
			rec, err := decodeRecord(m.Data, m.Pos, m.Time)
			if err != nil {
				rec = &record{pos: m.Pos, at: m.Time}
			}
			out = append(out, rec)
			bytes += rec.size
			after = m.Pos
		}
	}
	return out, after.Offset >= upto
}

// loop is the stream's select loop (mercure's subscriber loop): queued records, heartbeats reset by every write,
// token expiry, client gone, hub closing the queue. The heartbeat timer is not re-armed on every write (a timer
// update per delivery is measurable at 200k deliveries/s): when it fires after a write, it is pushed back by the
// time since that write instead.
func (h *Hub) loop(ctx context.Context, sw frameWriter, s *stream, skip Position, expires time.Time) {
	hb := time.NewTimer(h.cfg.Heartbeat)
	defer hb.Stop()
	lastWrite := time.Now()
	var expC <-chan time.Time
	if !expires.IsZero() {
		exp := time.NewTimer(time.Until(expires))
		defer exp.Stop()
		expC = exp.C
	}
	for {
		var rec *record
		var open bool
		select {
		case rec, open = <-s.ch:
		case <-hb.C:
			if idle := time.Since(lastWrite); idle < h.cfg.Heartbeat {
				hb.Reset(h.cfg.Heartbeat - idle)
				continue
			}
			var small [48]byte
			if sw.write(appendHeartbeat(small[:0], h.cfg.Now())) != nil {
				return
			}
			lastWrite = time.Now()
			hb.Reset(h.cfg.Heartbeat)
			continue
		case <-expC:
			return
		case <-ctx.Done():
			return
		}
		// The buffer is borrowed per batch: an idle stream holds none (memory per stream matters at 19k streams).
		bp := bufPool.Get().(*[]byte)
		b := (*bp)[:0]
		frames := 0 // counted once per batch: a shared counter bumped per delivery is a contended cache line
		if open {
			var more int
			b, frames = appendLive(b, rec, skip, h.cfg.Now(), frames)
			b, open, more = h.drainQueue(b, s, skip)
			frames += more
		}
		h.m.delivered.Add(float64(frames))
		if !open {
			_ = sw.write(h.appendEnd(b, s))
			*bp = b[:0]
			bufPool.Put(bp)
			return
		}
		var werr error
		if len(b) > 0 {
			werr = sw.write(b)
		}
		if cap(b) <= 256<<10 {
			*bp = b[:0]
			bufPool.Put(bp)
		}
		if werr != nil {
			return
		}
		if len(b) > 0 {
			lastWrite = time.Now()
		}
	}
}

// writeDeadline hands out per-write deadlines, renewing the connection's only when less than half the timeout
// is left: every write still gets between WriteTimeout/2 and WriteTimeout, without a poller timer update each.
type writeDeadline struct {
	at      time.Time
	timeout time.Duration
}

func (d *writeDeadline) renew() (time.Time, bool) {
	now := time.Now()
	if d.at.Sub(now) >= d.timeout/2 {
		return d.at, false
	}
	d.at = now.Add(d.timeout)
	return d.at, true
}

// httpWriter writes and flushes through net/http with a fresh deadline for every write (no server-wide
// WriteTimeout assumed).
type httpWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	dl writeDeadline
}

func (sw *httpWriter) write(b []byte) error {
	if at, renew := sw.dl.renew(); renew {
		if err := sw.rc.SetWriteDeadline(at); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
	}
	if len(b) > 0 {
		if _, err := sw.w.Write(b); err != nil {
			return err
		}
	}
	return sw.rc.Flush()
}
