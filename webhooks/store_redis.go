package webhooks

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore is a [Store] in Redis, shared by every node that uses the same Redis and prefix: deliveries and their
// retry schedule survive restarts and the loss of any node, and a delivery whose claimer died comes back when its
// lease ends.
//
// Layout (every key starts with prefix and carries the hash tag "{q}" after it, so that the scripts, which touch
// all five keys, also run on Redis Cluster — a tag inside prefix wins and is shared just the same):
//
//	<prefix>{q}:due    sorted set: delivery id → time (ms) its next attempt is due
//	<prefix>{q}:lease  sorted set: delivery id → time (ms) its current claim runs out
//	<prefix>{q}:jobs   hash: delivery id → the job (URL, event, body fixed at enqueue time)
//	<prefix>{q}:tries  hash: delivery id → attempts started so far
//	<prefix>{q}:owner  hash: delivery id → the token of the claim that holds it
//
// Times come from the Redis server's clock (TIME inside the scripts), so that nodes with skewed clocks still agree
// on when a lease has run out.
type RedisStore struct {
	c    redis.UniversalClient
	keys []string
}

// NewRedisStore returns the store under prefix (e.g. "suparelay:webhooks:").
func NewRedisStore(c redis.UniversalClient, prefix string) *RedisStore {
	k := func(name string) string { return prefix + "{q}:" + name }
	return &RedisStore{c: c, keys: []string{k("due"), k("lease"), k("jobs"), k("tries"), k("owner")}}
}

// luaNow is the Redis server's clock in milliseconds.
const luaNow = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// KEYS: due lease jobs tries owner. ARGV: id, job, max.
var addScript = redis.NewScript(luaNow + `
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 1 end
if redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
return 1
`)

// claimScript first makes due again what a dead claimer left (its attempt stays counted, so a delivery that
// crashes its claimers cannot loop for ever), then leases up to n due deliveries. ARGV: n, lease ms, token base.
// Returns {ms until the next due time or lease end (-1: none), pending, {id, token, attempt, job, ...}}.
var claimScript = redis.NewScript(luaNow + `
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(stale) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[5], id)
  redis.call('ZADD', KEYS[1], now, id)
end
local out = {}
local n = tonumber(ARGV[1])
if n > 0 then
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, n)
  for i, id in ipairs(ids) do
    redis.call('ZREM', KEYS[1], id)
    local job = redis.call('HGET', KEYS[3], id)
    if job then
      local token = ARGV[3] .. ':' .. i
      redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), id)
      redis.call('HSET', KEYS[5], id, token)
      local attempt = redis.call('HINCRBY', KEYS[4], id, 1)
      table.insert(out, id)
      table.insert(out, token)
      table.insert(out, attempt)
      table.insert(out, job)
    else
      redis.call('HDEL', KEYS[4], id)
    end
  end
end
local wait = -1
local d = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if d[2] then wait = math.max(tonumber(d[2]) - now, 0) end
local l = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if l[2] then
  local w = math.max(tonumber(l[2]) - now, 0)
  if wait < 0 or w < wait then wait = w end
end
return {wait, redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]), out}
`)

// ARGV: id, token.
var doneScript = redis.NewScript(`
if redis.call('HGET', KEYS[5], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
`)

// ARGV: id, token, delay ms, counted (1/0).
var retryScript = redis.NewScript(luaNow + `
if redis.call('HGET', KEYS[5], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
if ARGV[4] == '0' then redis.call('HINCRBY', KEYS[4], ARGV[1], -1) end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
`)

// Add implements [Store].
func (s *RedisStore) Add(ctx context.Context, id string, job []byte, max int) (bool, error) {
	n, err := addScript.Run(ctx, s.c, s.keys, id, job, max).Int()
	return n == 1, err
}

// Claim implements [Store].
func (s *RedisStore) Claim(ctx context.Context, n int, lease time.Duration) (ClaimResult, error) {
	raw, err := claimScript.Run(ctx, s.c, s.keys, n, lease.Milliseconds(), claimToken()).Slice()
	if err != nil {
		return ClaimResult{}, err
	}
	if len(raw) != 3 {
		return ClaimResult{}, fmt.Errorf("webhooks: claim script answered %d values", len(raw))
	}
	wait, _ := raw[0].(int64)
	pending, _ := raw[1].(int64)
	res := ClaimResult{Next: time.Duration(wait) * time.Millisecond, Pending: int(pending)}
	if wait < 0 {
		res.Next = -1
	}
	flat, _ := raw[2].([]any)
	for i := 0; i+3 < len(flat); i += 4 {
		id, _ := flat[i].(string)
		token, _ := flat[i+1].(string)
		attempt, _ := flat[i+2].(int64)
		job, _ := flat[i+3].(string)
		res.Claims = append(res.Claims, Claim{ID: id, Token: token, Attempt: int(attempt), Job: []byte(job)})
	}
	return res, nil
}

// Done implements [Store].
func (s *RedisStore) Done(ctx context.Context, c Claim) (bool, error) {
	n, err := doneScript.Run(ctx, s.c, s.keys, c.ID, c.Token).Int()
	return n == 1, err
}

// Retry implements [Store].
func (s *RedisStore) Retry(ctx context.Context, c Claim, delay time.Duration, counted bool) (bool, error) {
	flag := 0
	if counted {
		flag = 1
	}
	n, err := retryScript.Run(ctx, s.c, s.keys, c.ID, c.Token, delay.Milliseconds(), flag).Int()
	return n == 1, err
}
