package rediskv_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/rediskv"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestStore runs every primitive against the stack's real Redis and its Redis Cluster, under a random prefix.
func TestStore(t *testing.T) {
	t.Parallel()
	for name, c := range testenv.RedisClients(t) {
		t.Run(name, func(t *testing.T) { t.Parallel(); testStore(t, c) })
	}
}

func testStore(t *testing.T, c redis.UniversalClient) {
	prefix := "rediskv-test:" + testenv.RandomHex(6) + ":"
	t.Cleanup(func() { testenv.DeleteRedisKeys(context.Background(), c, prefix+"*") })
	s := rediskv.New(c, prefix)
	ctx := context.Background()

	if ok, err := s.SetNX(ctx, "lock", []byte("mine"), time.Minute); err != nil || !ok {
		t.Fatalf("SetNX on a free key = %v, %v", ok, err)
	}
	if ok, err := s.SetNX(ctx, "lock", []byte("theirs"), time.Minute); err != nil || ok {
		t.Fatalf("SetNX on a held key = %v, %v", ok, err)
	}
	if v, ok, err := s.Get(ctx, "lock"); err != nil || !ok || string(v) != "mine" {
		t.Fatalf("Get = %q %v %v", v, ok, err)
	}
	if n, _ := c.Exists(ctx, prefix+"lock").Result(); n != 1 {
		t.Fatal("the key is not under the prefix")
	}
	if ok, err := s.DelIfValue(ctx, "lock", []byte("theirs")); err != nil || ok {
		t.Fatalf("DelIfValue with another value = %v, %v", ok, err)
	}
	if ok, err := s.DelIfValue(ctx, "lock", []byte("mine")); err != nil || !ok {
		t.Fatalf("DelIfValue by the holder = %v, %v", ok, err)
	}
	if _, ok, _ := s.Get(ctx, "lock"); ok {
		t.Fatal("lock survived its release")
	}

	for want := int64(1); want <= 3; want++ {
		n, left, err := s.IncrWindow(ctx, "count", time.Minute)
		if err != nil || n != want || left <= 0 || left > time.Minute {
			t.Fatalf("IncrWindow #%d = %d, %v, %v", want, n, left, err)
		}
	}
	// A counter that somehow lost its expiry gets one again (it must never lock a caller out for good).
	if err := c.Persist(ctx, prefix+"count").Err(); err != nil {
		t.Fatal(err)
	}
	if _, left, err := s.IncrWindow(ctx, "count", time.Minute); err != nil || left <= 0 {
		t.Fatalf("IncrWindow after PERSIST: left %v, %v", left, err)
	}
	if ttl, _ := c.PTTL(ctx, prefix+"count").Result(); ttl <= 0 {
		t.Fatalf("counter TTL %v after IncrWindow", ttl)
	}
}
