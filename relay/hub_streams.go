package relay

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"
)

func (h *Hub) closeStreamLocked(s *stream, why closeReason) {
	if s.closed {
		return
	}
	s.closed, s.reason = true, why
	s.ended.Store(true)
	close(s.ch)
	if s.lean != nil {
		s.lean.kick()
	}
	if i := slices.Index(s.u.streams, s); i >= 0 {
		s.u.streams = slices.Delete(s.u.streams, i, i+1)
	}
}

var errTooMany = errors.New("too many connections")
var errShuttingDown = errors.New("shutting down")

// register adds a stream for userID and returns its start: the node's position at that moment (everything after
// it reaches the stream live or through replay) and whether this call must load the user's rooms.
//
// The per-user cap is cluster-wide: the stream takes a lease at the broker first (one round trip), which the
// broker refuses when the user already holds MaxStreamsPerUser live leases anywhere. The checks this node can
// make alone come before it (no broker call for a stream refused anyway) and again after it (other streams may
// have registered meanwhile). When the broker cannot answer, the cap falls back to this node's own count: never
// unlimited.
func (h *Hub) register(userID string) (streamStart, error) {
	h.mu.Lock()
	err := h.admitLocked(h.users[userID])
	h.mu.Unlock()
	if err != nil {
		return streamStart{}, err
	}
	var lb [32]byte
	lease := string(strconv.AppendUint(append(append(lb[:0], h.node...), '.'), h.leaseSeq.Add(1), 36))
	var g StreamGrant
	var berr error
	// On a helper goroutine: the stack a go-redis call grows would stay with a long-lived handler goroutine.
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g, berr = h.b.AcquireStream(ctx, userID, lease, h.cfg.MaxStreamsPerUser, h.cfg.StreamLeaseTTL)
	}()
	<-done
	if berr != nil {
		h.leaseError("acquire", berr)
	} else if !g.OK {
		h.m.rejected.WithLabelValues("user_cap").Inc()
		return streamStart{}, errTooMany
	}
	h.mu.Lock()
	us := h.users[userID]
	if err := h.admitLocked(us); err != nil {
		h.mu.Unlock()
		if berr == nil {
			h.releaseLease(userID, lease, 0)
		}
		return streamStart{}, err
	}
	load := false
	if us == nil {
		us = &userState{id: userID, rooms: map[string]uint64{}, loading: true,
			loaded: make(chan struct{})}
		h.users[userID] = us
		load = true
	}
	// Presence: the user comes online when the broker says this is the user's first stream in the cluster; with
	// the broker unreachable, when it is the first on this node (the per-node rule, best effort).
	if online := (berr == nil && g.First) || (berr != nil && load); online {
		if us.loading {
			us.announce = true // loadRooms announces once the rooms are known
		} else {
			h.announcePresence(userID, roomList(us.rooms), true)
		}
	}
	s := &stream{u: us, ch: make(chan *record, h.cfg.QueueSize), lease: lease}
	us.streams = append(us.streams, s)
	h.nstreams++
	h.wg.Add(1)
	h.m.streams.Inc()
	st := streamStart{s: s, userID: userID, p0: h.pos, load: load}
	h.mu.Unlock()
	return st, nil
}

// admitLocked makes the checks this node can make alone: started, not shutting down, the node cap, and the
// user's streams here against the per-user cap (a lower bound of the user's streams in the cluster).
func (h *Hub) admitLocked(us *userState) error {
	if !h.started.Load() {
		h.m.rejected.WithLabelValues("not_started").Inc()
		return ErrNotStarted
	}
	if h.shutting {
		h.m.rejected.WithLabelValues("shutdown").Inc()
		return errShuttingDown
	}
	if h.nstreams >= h.cfg.MaxStreamsPerNode {
		h.m.rejected.WithLabelValues("node_cap").Inc()
		return errTooMany
	}
	if us != nil && len(us.streams) >= h.cfg.MaxStreamsPerUser {
		h.m.rejected.WithLabelValues("user_cap").Inc()
		return errTooMany
	}
	return nil
}

// releaseLease gives lease back to the broker (roomTTL > 0: and keeps the user's memberships for that long) and
// reports whether it was the user's last stream in the cluster. It holds leaseMu for reading, so that a renewal
// working from an older list of streams cannot bring the lease back after it is gone.
func (h *Hub) releaseLease(userID, lease string, roomTTL time.Duration) (last bool, err error) {
	h.leaseMu.RLock()
	defer h.leaseMu.RUnlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	last, err = h.b.ReleaseStream(ctx, userID, lease, roomTTL)
	if err != nil {
		h.leaseError("release", err)
	}
	return last, err
}

// leaseError counts a failed lease call. It logs at debug level only: with the broker down every connect and
// close fails one, and the outage is already logged (and reported by Ready).
func (h *Hub) leaseError(op string, err error) {
	h.m.brokerErrors.WithLabelValues(op).Inc()
	h.log.Debug("relay: broker call failed", "op", op, "err", err)
}

// unregister removes s and gives its lease back; when it was the user's last stream here, the user's local state
// goes and the broker is told (in the same call) to keep the memberships for RoomGrace from now. USER_OFFLINE is
// announced when it was the user's last stream in the cluster (per node when the broker cannot answer).
func (h *Hub) unregister(s *stream) {
	h.mu.Lock()
	h.closeStreamLocked(s, closeNone)
	us := s.u
	last := len(us.streams) == 0 && h.users[us.id] == us
	if last {
		delete(h.users, us.id)
		for room := range us.rooms {
			h.unindexLocked(room, us)
		}
	}
	h.nstreams--
	h.m.streams.Dec()
	var rooms []string
	if h.cfg.Presence && last {
		rooms = roomList(us.rooms)
	}
	h.mu.Unlock()
	var grace time.Duration
	if last {
		grace = h.cfg.RoomGrace
	}
	gone, err := h.releaseLease(us.id, s.lease, grace)
	if err != nil {
		gone = last
		if last {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := h.b.Touch(ctx, []string{us.id}, h.cfg.RoomGrace); err != nil {
				h.brokerError("touch", err)
			}
			cancel()
		}
	}
	// Not while the user still has a stream here (one registered while the broker was down, not yet renewed).
	if gone && last {
		h.announcePresence(us.id, rooms, false)
	}
	h.wg.Done()
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
