package api

import (
	"context"
	"sync"
	"time"

	"github.com/qryptchat/suparelay/middleware"
	"github.com/qryptchat/suparelay/supa"
)

// The caller's profile: almost every route needs the caller's internal id (the chat tables' key) while requests
// carry only the auth uid, so the mapping is read once and then remembered for a short time.

// profile is the caller's public.users row as the handlers need it.
type profile = supa.Profile

// profileCache remembers auth uid → profile for a short time; the id mapping never changes for a row, the names
// rarely, and a stale display name in a typing event for 30 s is harmless.
type profileCache struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	now   func() time.Time
	items map[string]profileEntry
}

type profileEntry struct {
	p       profile
	expires time.Time
}

func newProfileCache(ttl time.Duration, max int, now func() time.Time) *profileCache {
	return &profileCache{ttl: ttl, max: max, now: now, items: make(map[string]profileEntry)}
}

func (c *profileCache) get(authUID string) (profile, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[authUID]
	if !ok || c.now().After(e.expires) {
		return profile{}, false
	}
	return e.p, true
}

// put remembers p; at the size bound it first drops the expired entries, and arbitrary others while still full.
func (c *profileCache) put(authUID string, p profile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.items) >= c.max {
		now := c.now()
		for k, e := range c.items {
			if now.After(e.expires) || len(c.items) >= c.max {
				delete(c.items, k)
			}
		}
	}
	c.items[authUID] = profileEntry{p: p, expires: c.now().Add(c.ttl)}
}

// forget drops the entry of authUID, after the caller changed what it holds (the avatar).
func (c *profileCache) forget(authUID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.items, authUID)
}

// profileOf maps the caller's auth uid to its public.users row, under the caller's token: supa.ErrNoProfile when
// there is none yet (auth.md §6.1), supa.ErrDuplicateProfile for more than one (a data error, auth.md §6).
func (s *Server) profileOf(ctx context.Context, id middleware.Identity) (profile, error) {
	if p, ok := s.profiles.get(id.AuthUID); ok {
		return p, nil
	}
	p, err := s.supa.As(id.Token).Profile(ctx, id.AuthUID)
	if err != nil {
		return profile{}, err
	}
	s.profiles.put(id.AuthUID, p)
	return p, nil
}
