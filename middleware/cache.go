package middleware

import (
	"sync"
	"time"
)

// tokenCache remembers tokens that passed full user verification, keyed by the SHA-256 of the token so that the
// cache never holds a usable credential. It is sharded to keep lock contention low and bounded with the CLOCK
// (second-chance) policy: lookups only set a reference bit, and eviction sweeps a hand over the shard, which gives
// near-LRU behaviour without moving list nodes on every hit. Entries die with their token (exp + leeway).
//
// Caveat: a key revoked from the JWKS keeps its already-cached tokens valid until they expire (at most one token
// lifetime, 1 h in this project), which is the same window Supabase documents for revocation.
type tokenCache struct {
	shards [cacheShards]cacheShard
}

const cacheShards = 16

// cachePerUserShard bounds what one user can hold in the cache: cachePerUserShard entries per shard, so at most
// 32 tokens per subject in all. Auth mints a new access token on every refresh, and a user controls its
// user_metadata, which every token carries (up to MaxTokenBytes): without this one account could fill all
// DefaultCacheSize entries with large ones (measured: ~55 KB of heap per cached 10 KB token, so ~550 MB).
const cachePerUserShard = 2

type cacheShard struct {
	mu   sync.Mutex
	idx  map[[32]byte]int
	ents []cacheEntry
	subs map[string]int // entries per subject
	hand int
	max  int
}

type cacheEntry struct {
	key    [32]byte
	claims *Claims
	until  int64 // unix nanoseconds after which the entry is dead
	ref    bool
}

// newTokenCache returns a cache holding about size entries in total, or nil (caching off) when size <= 0.
func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		return nil
	}
	per := (size + cacheShards - 1) / cacheShards
	c := &tokenCache{}
	for i := range c.shards {
		c.shards[i] = cacheShard{idx: make(map[[32]byte]int, per), subs: make(map[string]int), max: per}
	}
	return c
}

func (c *tokenCache) shard(key *[32]byte) *cacheShard { return &c.shards[key[0]%cacheShards] }

// get returns the cached claims for key if the entry is still alive at now.
func (c *tokenCache) get(key [32]byte, now time.Time) (*Claims, bool) {
	s := c.shard(&key)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.idx[key]
	if !ok {
		return nil, false
	}
	e := &s.ents[i]
	if now.UnixNano() > e.until {
		return nil, false // left for the clock hand to reclaim
	}
	e.ref = true
	return e.claims, true
}

// put stores claims until the given instant.
func (c *tokenCache) put(key [32]byte, claims *Claims, until time.Time, now time.Time) {
	s := c.shard(&key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.idx[key]; ok {
		s.ents[i].claims, s.ents[i].until, s.ents[i].ref = claims, until.UnixNano(), true
		return
	}
	e := cacheEntry{key: key, claims: claims, until: until.UnixNano()}
	if s.subs[claims.Subject] >= cachePerUserShard {
		s.replaceOwn(e, now.UnixNano())
		return
	}
	s.subs[claims.Subject]++
	if len(s.ents) < s.max {
		s.idx[key] = len(s.ents)
		s.ents = append(s.ents, e)
		return
	}
	// CLOCK sweep: a dead entry or one not referenced since the last pass is the victim. Two full turns always find
	// one, because the first turn clears every reference bit.
	nowNano := now.UnixNano()
	for range 2 * len(s.ents) {
		v := &s.ents[s.hand]
		victim := s.hand
		s.hand = (s.hand + 1) % len(s.ents)
		if v.ref && nowNano <= v.until {
			v.ref = false
			continue
		}
		delete(s.idx, v.key)
		s.forget(v.claims.Subject)
		s.ents[victim] = e
		s.idx[key] = victim
		return
	}
}

// replaceOwn puts e in the place of one of its subject's entries (one that is dead, else one not used since the
// hand last passed, else the first), so a user at its share still gets its newest token cached, at its own
// expense only. Called with s.mu held; O(shard) but only on a miss of a user already at its share.
func (s *cacheShard) replaceOwn(e cacheEntry, nowNano int64) {
	best, rank := -1, 3
	for i := range s.ents {
		v := &s.ents[i]
		if v.claims.Subject != e.claims.Subject {
			continue
		}
		r := 2
		switch {
		case nowNano > v.until:
			r = 0
		case !v.ref:
			r = 1
		}
		if r < rank {
			best, rank = i, r
			if r == 0 {
				break
			}
		}
	}
	if best < 0 { // cannot happen while subs is consistent; stay correct regardless
		return
	}
	delete(s.idx, s.ents[best].key)
	s.ents[best] = e
	s.idx[e.key] = best
}

func (s *cacheShard) forget(sub string) {
	if s.subs[sub]--; s.subs[sub] <= 0 {
		delete(s.subs, sub)
	}
}

// len returns the number of stored entries (live or not yet reclaimed); used by tests.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += len(c.shards[i].ents)
		c.shards[i].mu.Unlock()
	}
	return n
}
