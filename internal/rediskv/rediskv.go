// Package rediskv holds the few Redis primitives that several parts of suparelay share — the refresh single-flight
// store and the rate limiter (middleware), the job locks (jobs) — so that each atomic step is written once: a key
// set only if absent, a lock released only by its holder, a fixed-window counter that can never lose its expiry.
// Every key lives under a prefix, so that two deployments (or two test runs) on one Redis stay apart.
package rediskv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Store is a prefix on a Redis client. Its zero value is not usable; it is safe for concurrent use.
type Store struct {
	c      redis.UniversalClient
	prefix string
}

// New returns a Store whose keys all start with prefix (e.g. "suparelay:auth:").
func New(c redis.UniversalClient, prefix string) Store { return Store{c: c, prefix: prefix} }

// Get returns the value and true, or false when the key does not exist (or expired).
func (s Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	b, err := s.c.Get(ctx, s.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// SetNX stores value for ttl only if the key does not exist, reporting whether it did (SET NX PX).
func (s Store) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	res, err := s.c.SetArgs(ctx, s.prefix+key, value, redis.SetArgs{Mode: "NX", TTL: ttl}).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return res == "OK", nil
}

// Set stores value for ttl unconditionally.
func (s Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return s.c.Set(ctx, s.prefix+key, value, ttl).Err()
}

// Del removes the key (no error when absent).
func (s Store) Del(ctx context.Context, key string) error { return s.c.Del(ctx, s.prefix+key).Err() }

// delIfValueScript is compare-and-delete in one step: no other client's SET can come between GET and DEL.
var delIfValueScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// DelIfValue removes the key only while it still holds value — a lock released by its holder only — and reports
// whether it did.
func (s Store) DelIfValue(ctx context.Context, key string, value []byte) (bool, error) {
	n, err := delIfValueScript.Run(ctx, s.c, []string{s.prefix + key}, value).Int64()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return n == 1, err
}

// incrWindowScript counts a hit and starts the window on the first one, atomically, so that a crash between INCR
// and PEXPIRE can never leave a counter without expiry (which would lock a caller out for good). A key found
// without a TTL for any other reason is given one too.
var incrWindowScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// IncrWindow counts one hit in the fixed window of the key and returns the count so far and the time left of
// the window. Window lengths are kept by Redis, so node clocks do not matter.
func (s Store) IncrWindow(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	ms := max(window.Milliseconds(), 1)
	res, err := incrWindowScript.Run(ctx, s.c, []string{s.prefix + key}, ms).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("rediskv: unexpected reply %v", res)
	}
	return res[0], time.Duration(res[1]) * time.Millisecond, nil
}
