package relay

import (
	"context"
	"slices"
	"time"
)

// Lost events. An event that the broker could not take (Redis down, or the subscription not yet back) reaches only
// this node's streams; one that a node could not receive (its subscription was down while the log was trimmed,
// flushed or replaced) reaches nobody there. Either way a client could later resume across the hole and never
// know. So the hole is made visible: the publishing node starts a new epoch once the broker is back (Reset), and
// every node that learns of a gap (HandleGap) ends its streams with a retry hint. Their clients reconnect with a
// Last-Event-ID of the old epoch, which cannot be resumed, and are told to reload.

// HandleGap implements BrokerHandler: records before next are gone, so this node's history is dropped and every
// stream ends for a resume.
func (h *Hub) HandleGap(next Position) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ring.reset(evictGap)
	h.pos = next
	n := 0
	for _, us := range h.users {
		for _, s := range slices.Clone(us.streams) {
			h.closeStreamLocked(s, closeResync)
			n++
		}
	}
	h.m.gaps.Inc()
	h.log.Warn("relay: records were lost; streams end so that their clients resume and reload",
		"streams", n, "epoch", next.Epoch, "offset", next.Offset)
}

// requestReset asks resetLoop for a new epoch; requests made while one is pending fold into it.
func (h *Hub) requestReset() {
	h.lostPublishes.Add(1)
	select {
	case h.resetReq <- struct{}{}:
	default:
	}
}

// resetLoop serves requestReset until ctx ends: it retries Reset with backoff (100 ms doubling to 5 s) until the
// broker takes it. The broker then announces the gap to every node, this one included.
func (h *Hub) resetLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.resetReq:
		}
		backoff := 100 * time.Millisecond
		for {
			lost := h.lostPublishes.Load()
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			p, err := h.b.Reset(rctx)
			cancel()
			if err == nil {
				h.m.resets.Inc()
				h.log.Warn("relay: new epoch after events that reached only this node", "epoch", p.Epoch)
				if h.lostPublishes.Load() == lost {
					// Every loss so far happened before this epoch began: requests queued meanwhile are served.
					select {
					case <-h.resetReq:
					default:
					}
				}
				break
			}
			if ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
		}
	}
}
