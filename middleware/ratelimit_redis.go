package middleware

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/rediskv"
)

// RedisRateStore shares fixed-window counters between nodes through Redis (internal/rediskv's IncrWindow), so a
// client's budget is the same whichever node it reaches. When Redis is unreachable Incr returns the error and
// [NewRateLimiter] counts per node in its fallback until Redis answers again (and logs and exports the switch).
type RedisRateStore struct{ kv rediskv.Store }

var _ RateStore = (*RedisRateStore)(nil)

// NewRedisRateStore counts under keys "<prefix><rule>:<kind>:<window ms>:<caller>"; use a prefix such as
// "suparelay:rl:" (tests use a random one to stay apart).
func NewRedisRateStore(client redis.UniversalClient, prefix string) *RedisRateStore {
	return &RedisRateStore{kv: rediskv.New(client, prefix)}
}

// Incr implements [RateStore].
func (s *RedisRateStore) Incr(ctx context.Context, key string, window time.Duration, now time.Time) (RateCount, error) {
	n, left, err := s.kv.IncrWindow(ctx, key, window)
	if err != nil {
		return RateCount{}, fmt.Errorf("redis rate count: %w", err)
	}
	return RateCount{Count: n, Reset: now.Add(left)}, nil
}
