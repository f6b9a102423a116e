package middleware

import (
	"testing"
	"time"
)

// TestTokenCachePerUserBound: one subject's many tokens (Auth mints one per refresh) take at most
// cachePerUserShard entries per shard, the newest always cached at the expense of its own older ones; other users'
// entries are untouched.
func TestTokenCachePerUserBound(t *testing.T) {
	t.Parallel()
	c := newTokenCache(1600) // 100 per shard: room for everyone without the clock hand
	now := time.Now()
	key := func(shard, i int, tag byte) [32]byte {
		var k [32]byte
		k[0], k[1], k[2], k[3] = byte(shard), byte(i), byte(i>>8), tag
		return k
	}
	for i := range 30 {
		c.put(key(i%cacheShards, i, 'b'), &Claims{Subject: "bob"}, now.Add(time.Hour), now)
	}
	for i := range 5000 {
		k := key(i%cacheShards, i, 'a')
		c.put(k, &Claims{Subject: "mallory"}, now.Add(time.Hour), now)
		if _, ok := c.get(k, now); !ok {
			t.Fatalf("mallory's token %d not cached right after put", i)
		}
	}
	if got, want := c.len(), 30+cacheShards*cachePerUserShard; got != want {
		t.Fatalf("cache holds %d entries, want %d (bob's 30 and mallory's share)", got, want)
	}
	for i := range 30 {
		if _, ok := c.get(key(i%cacheShards, i, 'b'), now); !ok {
			t.Fatalf("bob's token %d was evicted by mallory's", i)
		}
	}

	// At its share, a user's dead entry goes first.
	c = newTokenCache(1600)
	dead, live, newest := key(3, 1, 'x'), key(3, 2, 'x'), key(3, 3, 'x')
	c.put(dead, &Claims{Subject: "u"}, now.Add(time.Second), now)
	c.put(live, &Claims{Subject: "u"}, now.Add(time.Hour), now)
	later := now.Add(2 * time.Second)
	c.put(newest, &Claims{Subject: "u"}, later.Add(time.Hour), later)
	_, okLive := c.get(live, later)
	_, okNew := c.get(newest, later)
	if !okLive || !okNew || c.len() != 2 {
		t.Fatalf("live %v newest %v len %d: the dead entry should have made room", okLive, okNew, c.len())
	}
}
