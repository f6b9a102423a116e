package testenv

import (
	"context"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// RedisClients returns clients of the stack's Redis ("redis") and of its three-master Redis Cluster ("cluster"),
// closed when the test ends: every Redis layout (broker, limiter, locks, webhook queue) is tested on both, since a
// script whose keys fall into different cluster slots works on one Redis and fails on a cluster.
func RedisClients(t testing.TB) map[string]redis.UniversalClient {
	t.Helper()
	opt, err := redis.ParseURL(RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	single := redis.NewClient(opt)
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: RedisClusterAddrs(t)})
	t.Cleanup(func() { _ = single.Close(); _ = cluster.Close() })
	return map[string]redis.UniversalClient{"redis": single, "cluster": cluster}
}

// RedisKeys lists the keys matching pattern on every master (KEYS on a cluster client asks only one node).
func RedisKeys(ctx context.Context, c redis.UniversalClient, pattern string) ([]string, error) {
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return c.Keys(ctx, pattern).Result()
	}
	var mu sync.Mutex // ForEachMaster calls fn for the masters concurrently
	var keys []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		k, err := n.Keys(ctx, pattern).Result()
		mu.Lock()
		keys = append(keys, k...)
		mu.Unlock()
		return err
	})
	return keys, err
}

// DeleteRedisKeys removes the keys matching pattern, one by one (they may live in different slots).
func DeleteRedisKeys(ctx context.Context, c redis.UniversalClient, pattern string) {
	keys, _ := RedisKeys(ctx, c, pattern)
	for _, k := range keys {
		c.Del(ctx, k)
	}
}
