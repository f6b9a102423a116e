package relay

import (
	"context"
	"time"
)

// leaseLoop keeps this node's stream leases alive at the broker (every StreamLeaseTTL/3) and sweeps lapsed ones
// (every StreamLeaseTTL/9): the sweep is how the cluster learns that a node died with streams open. Every node
// sweeps; the broker reports each user gone to one of them only.
func (h *Hub) leaseLoop(ctx context.Context) {
	ttl := h.cfg.StreamLeaseTTL
	renew := time.NewTicker(max(ttl/3, 10*time.Millisecond))
	defer renew.Stop()
	sweep := time.NewTicker(max(ttl/9, 10*time.Millisecond))
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			h.renewLeases(ctx)
		case <-sweep.C:
			h.sweepLeases(ctx)
		}
	}
}

// renewLeases renews the lease of every stream open here; it also puts back leases the broker lost or never had
// (streams opened while it was down), so the cluster-wide count heals by itself. Users the broker did not count
// at all come online again.
func (h *Hub) renewLeases(ctx context.Context) {
	h.leaseMu.Lock()
	h.mu.Lock()
	leases := make(map[string][]string, len(h.users))
	for id, us := range h.users {
		ls := make([]string, 0, len(us.streams))
		for _, s := range us.streams {
			ls = append(ls, s.lease)
		}
		leases[id] = ls
	}
	h.mu.Unlock()
	var revived []string
	var err error
	if len(leases) > 0 {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		revived, err = h.b.RenewStreams(rctx, leases, h.cfg.StreamLeaseTTL)
		cancel()
	}
	h.leaseMu.Unlock()
	if err != nil {
		h.brokerError("renew", err)
	}
	if len(revived) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range revived {
		us := h.users[id]
		switch {
		case us == nil:
		case us.loading:
			us.announce = true
		default:
			h.announcePresence(id, roomList(us.rooms), true)
		}
	}
}

// sweepLeases asks the broker for users whose last lease lapsed and announces them offline to their rooms (read
// from the broker: their node is gone, and memberships outlive leases by RoomGrace).
func (h *Hub) sweepLeases(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	gone, err := h.b.ExpireStreams(sctx, 1000)
	cancel()
	if err != nil {
		h.m.brokerErrors.WithLabelValues("expire").Inc() // renewals log the outage; no second line every sweep
		return
	}
	if len(gone) == 0 || !h.cfg.Presence {
		return
	}
	for _, id := range gone {
		h.queuePresence(presenceJob{user: id, lookup: true})
	}
}
