package relay

import (
	"context"
	"time"
)

// The memory broker's stream leases: one node, so "cluster-wide" is this process; the semantics match the Redis
// broker's (the conformance suite runs both).

// pruneLeasesLocked drops user's lapsed leases and returns the set (nil when the user holds none, live or not).
func (b *MemoryBroker) pruneLeasesLocked(user string, now time.Time) map[string]time.Time {
	set := b.leases[user]
	for l, exp := range set {
		if !now.Before(exp) {
			delete(set, l)
		}
	}
	return set
}

func (b *MemoryBroker) AcquireStream(ctx context.Context, user, lease string, max int, ttl time.Duration) (StreamGrant, error) {
	if err := ctx.Err(); err != nil {
		return StreamGrant{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return StreamGrant{}, ErrBrokerClosed
	}
	set := b.pruneLeasesLocked(user, time.Now())
	g := StreamGrant{First: set == nil, Live: len(set)}
	if _, held := set[lease]; !held && max > 0 && len(set) >= max {
		return g, nil
	}
	if set == nil {
		set = map[string]time.Time{}
		b.leases[user] = set
	}
	set[lease] = time.Now().Add(ttl)
	g.OK, g.Live = true, len(set)
	return g, nil
}

func (b *MemoryBroker) ReleaseStream(ctx context.Context, user, lease string, roomTTL time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false, ErrBrokerClosed
	}
	now := time.Now()
	if roomTTL > 0 {
		if m := b.liveLocked(user, now); m != nil {
			m.expires = now.Add(roomTTL)
		}
	}
	set := b.leases[user]
	if set == nil {
		return false, nil
	}
	delete(set, lease)
	if len(b.pruneLeasesLocked(user, now)) > 0 {
		return false, nil
	}
	delete(b.leases, user)
	return true, nil
}

func (b *MemoryBroker) RenewStreams(ctx context.Context, leases map[string][]string, ttl time.Duration) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrBrokerClosed
	}
	exp := time.Now().Add(ttl)
	var revived []string
	for user, ls := range leases {
		if len(ls) == 0 {
			continue
		}
		set := b.leases[user]
		if set == nil {
			set = map[string]time.Time{}
			b.leases[user] = set
			revived = append(revived, user)
		}
		for _, l := range ls {
			set[l] = exp
		}
	}
	return revived, nil
}

func (b *MemoryBroker) ExpireStreams(ctx context.Context, limit int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrBrokerClosed
	}
	now := time.Now()
	var gone []string
	for user := range b.leases {
		if limit > 0 && len(gone) >= limit {
			break
		}
		if len(b.pruneLeasesLocked(user, now)) == 0 {
			delete(b.leases, user)
			gone = append(gone, user)
		}
	}
	return gone, nil
}
