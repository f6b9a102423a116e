package relay

import (
	"context"
	"hash/maphash"
	"time"
)

// Presence announcements leave through a few queues, each drained by one goroutine, with a user always on the
// same queue: a user's USER_ONLINE and USER_OFFLINE decided on this node are published in the order they were
// decided (goroutines per announcement could publish a quick reconnect's OFFLINE after its ONLINE, leaving the
// user "online" for good), and a burst (a node shutting down with thousands of users) costs bounded memory:
// what does not fit is dropped, as presence is best effort.
const (
	presenceShards = 4
	presenceQueue  = 1024
)

type presenceJob struct {
	user   string
	rooms  []string // the user's rooms; nil with lookup
	online bool
	lookup bool // read the rooms from the broker first (a user gone with a dead node: no rooms known here)
}

// startPresence starts the queues' goroutines; they end with ctx, after publishing what is queued.
func (h *Hub) startPresence(ctx context.Context) {
	if !h.cfg.Presence {
		return
	}
	for _, q := range h.presenceQ {
		go func() {
			for {
				select {
				case j := <-q:
					h.publishPresence(j)
				case <-ctx.Done():
					for {
						select {
						case j := <-q:
							h.publishPresence(j)
						default:
							return
						}
					}
				}
			}
		}()
	}
}

// announcePresence queues USER_ONLINE/USER_OFFLINE for userID to each of rooms (joined members only, not the
// user). It never blocks: presence must never hold up a stream.
func (h *Hub) announcePresence(userID string, rooms []string, online bool) {
	if len(rooms) == 0 {
		return
	}
	h.queuePresence(presenceJob{user: userID, rooms: rooms, online: online})
}

func (h *Hub) queuePresence(j presenceJob) {
	if !h.cfg.Presence {
		return
	}
	select {
	case h.presenceQ[maphash.String(h.presenceSeed, j.user)%presenceShards] <- j:
	default:
		h.log.Debug("relay: presence queue full; announcement dropped", "user", j.user, "online", j.online)
	}
}

// publishPresence publishes one announcement to each of its rooms.
func (h *Hub) publishPresence(j presenceJob) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if j.lookup {
		rooms, err := h.b.Rooms(ctx, j.user, 0)
		if err != nil {
			h.brokerError("rooms", err)
			return
		}
		j.rooms = roomList(rooms)
	}
	ev := PresenceEvent(j.user, j.online)
	for _, room := range j.rooms {
		if err := h.PublishToRoom(ctx, room, ev, PublishOptions{ExcludeUser: j.user, MembersOnly: true}); err != nil {
			h.log.Debug("presence not published", "user", j.user, "room", room, "err", err)
			return
		}
	}
}
