package relay

import (
	"context"
	"errors"
	"time"
)

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
	if err := h.checkStarted(); err != nil {
		return err
	}
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
	if err := h.checkStarted(); err != nil {
		return err
	}
	if err := call(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.brokerError(op, err)
	}
	h.HandleMembership(c)
	return nil
}

// loadRooms fetches the user's memberships from the broker (inheriting rooms joined within the grace period or
// on other nodes), then applies the changes announced meanwhile and indexes the rooms.
func (h *Hub) loadRooms(ctx context.Context, us *userState) {
	h.mu.Lock()
	done := !us.loading
	h.mu.Unlock()
	if done {
		return
	}
	// Not the stream's ctx: when this stream dies early the user's other streams still need the real rooms.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rooms, err := h.b.Rooms(ctx, us.id, h.cfg.RoomGrace)
	if err != nil {
		h.brokerError("rooms", err)
		rooms = map[string]uint64{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !us.loading {
		return
	}
	us.rooms, us.loading = rooms, false
	for _, c := range us.pending {
		h.applyLocked(c)
	}
	us.pending = nil
	if h.users[us.id] == us {
		for room := range us.rooms {
			h.indexLocked(room, us)
		}
		for _, rec := range us.deferred {
			off, member := us.rooms[rec.room]
			if !rec.addressedTo(us.id, 0, false) && rec.addressedTo(us.id, off, member) { // not already sent
				h.deliverLocked(us, rec)
			}
		}
	}
	us.deferred = nil
	close(us.loaded)
	if h.users[us.id] == us && us.announce {
		us.announce = false
		h.announcePresence(us.id, roomList(us.rooms), true)
	}
}

// roomList copies the keys of a user's room set (the caller holds h.mu).
func roomList(rooms map[string]uint64) []string {
	out := make([]string, 0, len(rooms))
	for r := range rooms {
		out = append(out, r)
	}
	return out
}
