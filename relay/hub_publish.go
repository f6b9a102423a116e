package relay

import (
	"context"
	"errors"
	"time"
)

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
	h.ring.add(rec, time.Now())
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
			if s.lean != nil {
				s.lean.kick()
			}
		default:
			h.m.slowCloses.Inc()
			h.closeStreamLocked(s, closeSlow) // removes s from us.streams
			i--
		}
	}
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
	if err := h.checkStarted(); err != nil {
		return err
	}
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
	h.requestReset()
	h.mu.Lock()
	defer h.mu.Unlock()
	rec := newRecord(w, h.pos, time.Now())
	rec.local = true
	h.fanoutLocked(rec)
	return nil
}
