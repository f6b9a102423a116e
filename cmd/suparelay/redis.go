package main

import (
	"fmt"

	"github.com/redis/go-redis/v9"
)

// openRedis connects to REDIS_URL: one Redis, or with REDIS_CLUSTER a Redis Cluster whose seed nodes are the URL's
// host and its addr= parameters (redis://host1:6379?addr=host2:6379&addr=host3:6379). contextTimeouts makes
// every call honour its context's deadline (go-redis otherwise waits its own read timeout on a hung server).
func openRedis(rawURL string, cluster, contextTimeouts bool) (redis.UniversalClient, error) {
	if cluster {
		opts, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL (cluster): %w", err)
		}
		opts.ContextTimeoutEnabled = contextTimeouts
		return redis.NewClusterClient(opts), nil
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opts.ContextTimeoutEnabled = contextTimeouts
	return redis.NewClient(opts), nil
}
