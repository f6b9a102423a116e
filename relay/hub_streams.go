package relay

import (
	"context"
	"errors"
	"slices"
	"time"
)

func (h *Hub) closeStreamLocked(s *stream, why closeReason) {
	if s.closed {
		return
	}
	s.closed, s.reason = true, why
	close(s.ch)
	if i := slices.Index(s.u.streams, s); i >= 0 {
		s.u.streams = slices.Delete(s.u.streams, i, i+1)
	}
}

var errTooMany = errors.New("too many connections")
var errShuttingDown = errors.New("shutting down")

// register adds a stream for userID and returns its start: the node's position at that moment (everything after
// it reaches the stream live or through replay) and whether this call must load the user's rooms.
func (h *Hub) register(userID string) (streamStart, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.started.Load() {
		h.m.rejected.WithLabelValues("not_started").Inc()
		return streamStart{}, ErrNotStarted
	}
	if h.shutting {
		h.m.rejected.WithLabelValues("shutdown").Inc()
		return streamStart{}, errShuttingDown
	}
	us := h.users[userID]
	if h.nstreams >= h.cfg.MaxStreamsPerNode {
		h.m.rejected.WithLabelValues("node_cap").Inc()
		return streamStart{}, errTooMany
	}
	if us != nil && len(us.streams) >= h.cfg.MaxStreamsPerUser {
		h.m.rejected.WithLabelValues("user_cap").Inc()
		return streamStart{}, errTooMany
	}
	load := false
	if us == nil {
		us = &userState{id: userID, rooms: map[string]uint64{}, loading: true,
			loaded: make(chan struct{})}
		h.users[userID] = us
		load = true
	}
	s := &stream{u: us, ch: make(chan *record, h.cfg.QueueSize)}
	us.streams = append(us.streams, s)
	h.nstreams++
	h.wg.Add(1)
	h.m.streams.Inc()
	return streamStart{s: s, userID: userID, p0: h.pos, load: load}, nil
}

// unregister removes s; when it was the user's last stream here, the user's local state goes and the broker is
// told to keep the memberships for RoomGrace from now.
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
	if last {
		rooms = roomList(us.rooms)
	}
	h.mu.Unlock()
	if last {
		h.announcePresence(us.id, rooms, false)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := h.b.Touch(ctx, []string{us.id}, h.cfg.RoomGrace); err != nil {
			h.brokerError("touch", err)
		}
		cancel()
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
