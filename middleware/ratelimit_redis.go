package middleware

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// rlIncrScript counts a hit and starts the window on the first one, atomically, so that a crash between INCR and
// PEXPIRE can never leave a counter without expiry (which would lock a caller out for good). A key found without
// a TTL for any other reason is given one too.
var rlIncrScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// RedisRateStore shares fixed-window counters between nodes through Redis, so a client's budget is the same
// whichever node it reaches. Window lengths are kept by Redis (PEXPIRE), so node clocks do not matter. When Redis
// is unreachable Incr returns the error and [NewRateLimiter] fails open (and logs it).
type RedisRateStore struct {
	client redis.UniversalClient
	prefix string
}

var _ RateStore = (*RedisRateStore)(nil)

// NewRedisRateStore counts under keys "<prefix><rule>:<kind>:<window ms>:<caller>"; use a prefix such as
// "suparelay:rl:" (tests use a random one to stay apart).
func NewRedisRateStore(client redis.UniversalClient, prefix string) *RedisRateStore {
	return &RedisRateStore{client: client, prefix: prefix}
}

// Incr implements [RateStore].
func (s *RedisRateStore) Incr(ctx context.Context, key string, window time.Duration, now time.Time) (RateCount, error) {
	ms := window.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	res, err := rlIncrScript.Run(ctx, s.client, []string{s.prefix + key}, ms).Int64Slice()
	if err != nil {
		return RateCount{}, fmt.Errorf("redis rate count: %w", err)
	}
	if len(res) != 2 {
		return RateCount{}, fmt.Errorf("redis rate count: unexpected reply %v", res)
	}
	return RateCount{Count: res[0], Reset: now.Add(time.Duration(res[1]) * time.Millisecond)}, nil
}
