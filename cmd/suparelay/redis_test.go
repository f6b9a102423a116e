package main

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestOpenRedisCluster: REDIS_CLUSTER reads REDIS_URL as the seeds of the stack's real Redis Cluster, and the
// client reaches every slot through them.
func TestOpenRedisCluster(t *testing.T) {
	addrs := testenv.RedisClusterAddrs(t)
	u := "redis://" + addrs[0]
	if len(addrs) > 1 {
		u += "?addr=" + strings.Join(addrs[1:], "&addr=")
	}
	c, err := openRedis(u, true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("client %T, want a cluster client", c)
	}
	ctx := context.Background()
	if err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		return n.Ping(ctx).Err()
	}); err != nil {
		t.Fatal(err)
	}
	prefix := "test:open:" + testenv.RandomHex(4) + ":"
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} { // spread over the slots
		if err := c.Set(ctx, prefix+k, "v", 0).Err(); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
		c.Del(ctx, prefix+k)
	}
	if _, err := openRedis("redis://"+addrs[0], false, false); err != nil {
		t.Fatalf("single: %v", err)
	}
}
