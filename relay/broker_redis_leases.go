package relay

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Stream leases on Redis. Two kinds of keys, both under the broker's prefix (so, with a {hash tag} in it, in one
// cluster slot with everything else the scripts touch):
//
//   - s:<user>, a hash lease → expiry (unix ms, Redis's clock: nodes' clocks never compare with each other);
//   - sx, a sorted set user → the latest expiry of the user's leases. A user is in it from the first lease until
//     the last one is released or found lapsed, which is what makes "first" and "gone" exact: the script that
//     takes the user out is the only one to report the transition.
//
// The hash also carries a key TTL (its latest expiry plus one lease TTL) only as garbage collection for a cluster
// that stopped altogether; sweeps normally remove it first.

// leaseNow reads Redis's clock in ms. Scripts that call TIME and then write are replicated by effects (the
// default from Redis 7; replicate_commands turns it on before).
const leaseNow = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// leasePrune drops the lapsed leases of the hash in `key`, and sets live (their count) and maxexp.
const leasePrune = `
local function prune(key, now, lease)
  local all = redis.call('HGETALL', key)
  local live, maxexp, held = 0, 0, false
  for i = 1, #all, 2 do
    local e = tonumber(all[i + 1])
    if e <= now then
      redis.call('HDEL', key, all[i])
    else
      live = live + 1
      if e > maxexp then maxexp = e end
      if all[i] == lease then held = true end
    end
  end
  return live, maxexp, held
end
`

// KEYS: lease hash, index. ARGV: user, lease, max (≤ 0: none), ttl ms. Returns {ok, first, live}.
var luaAcquire = redis.NewScript(leaseNow + leasePrune + `
local first = redis.call('ZSCORE', KEYS[2], ARGV[1]) == false
local live, maxexp, held = prune(KEYS[1], now, ARGV[2])
local max = tonumber(ARGV[3])
if not held and max > 0 and live >= max then return {0, first and 1 or 0, live} end
local ttl = tonumber(ARGV[4])
local exp = now + ttl
redis.call('HSET', KEYS[1], ARGV[2], exp)
if not held then live = live + 1 end
if exp > maxexp then maxexp = exp end
redis.call('ZADD', KEYS[2], maxexp, ARGV[1])
redis.call('PEXPIREAT', KEYS[1], maxexp + ttl)
return {1, first and 1 or 0, live}
`)

// KEYS: lease hash, index, membership hash. ARGV: user, lease, room ttl ms (> 0: extend the memberships).
// Returns 1 when the user is left with no live lease (and was in the index).
var luaRelease = redis.NewScript(leaseNow + leasePrune + `
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
redis.call('HDEL', KEYS[1], ARGV[2])
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then return 0 end
local live = prune(KEYS[1], now, '')
if live > 0 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`)

// KEYS: index, then one lease hash per user. ARGV: ttl ms, then per user: user, n, n leases.
// Returns the users that were not in the index.
var luaRenew = redis.NewScript(leaseNow + `
local ttl = tonumber(ARGV[1])
local exp = now + ttl
local revived = {}
local a = 2
for k = 2, #KEYS do
  local user, n = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  local cur = redis.call('ZSCORE', KEYS[1], user)
  if cur == false then
    revived[#revived + 1] = user
    cur = 0
  else
    cur = tonumber(cur)
  end
  for j = 1, n do
    redis.call('HSET', KEYS[k], ARGV[a], exp)
    a = a + 1
  end
  if exp > cur then cur = exp end
  redis.call('ZADD', KEYS[1], cur, user)
  redis.call('PEXPIREAT', KEYS[k], cur + ttl)
end
return revived
`)

// KEYS: index. ARGV: prefix, limit. Returns the users whose last lease lapsed (taken out of the index).
var luaExpire = redis.NewScript(leaseNow + leasePrune + `
local users = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local gone = {}
for i = 1, #users do
  local key = ARGV[1] .. 's:' .. users[i]
  local live, maxexp = prune(key, now, '')
  if live == 0 then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], users[i])
    gone[#gone + 1] = users[i]
  else
    redis.call('ZADD', KEYS[1], maxexp, users[i])
  end
end
return gone
`)

func (b *RedisBroker) AcquireStream(ctx context.Context, user, lease string, max int, ttl time.Duration) (StreamGrant, error) {
	if err := b.check(); err != nil {
		return StreamGrant{}, err
	}
	res, err := luaAcquire.Run(ctx, b.rdb, []string{b.key("s:" + user), b.key("sx")},
		user, lease, max, ttl.Milliseconds()).Int64Slice()
	if err != nil {
		return StreamGrant{}, b.unavailable(err)
	}
	if len(res) < 3 {
		return StreamGrant{}, ErrBrokerUnavailable
	}
	return StreamGrant{OK: res[0] == 1, First: res[1] == 1, Live: int(res[2])}, nil
}

func (b *RedisBroker) ReleaseStream(ctx context.Context, user, lease string, roomTTL time.Duration) (bool, error) {
	if err := b.check(); err != nil {
		return false, err
	}
	n, err := luaRelease.Run(ctx, b.rdb, []string{b.key("s:" + user), b.key("sx"), b.key("u:" + user)},
		user, lease, roomTTL.Milliseconds()).Int()
	if err != nil {
		return false, b.unavailable(err)
	}
	return n == 1, nil
}

// RenewStreams sends the leases in batches of at most 200 users per script call (bounded script run time).
func (b *RedisBroker) RenewStreams(ctx context.Context, leases map[string][]string, ttl time.Duration) ([]string, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	var revived []string
	keys := []string{b.key("sx")}
	args := []any{ttl.Milliseconds()}
	flush := func() error {
		if len(keys) == 1 {
			return nil
		}
		got, err := luaRenew.Run(ctx, b.rdb, keys, args...).StringSlice()
		if err != nil {
			return b.unavailable(err)
		}
		revived = append(revived, got...)
		keys, args = keys[:1], args[:1]
		return nil
	}
	for user, ls := range leases {
		if len(ls) == 0 {
			continue
		}
		keys = append(keys, b.key("s:"+user))
		args = append(args, user, strconv.Itoa(len(ls)))
		for _, l := range ls {
			args = append(args, l)
		}
		if len(keys) > 200 {
			if err := flush(); err != nil {
				return revived, err
			}
		}
	}
	return revived, flush()
}

func (b *RedisBroker) ExpireStreams(ctx context.Context, limit int) ([]string, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	gone, err := luaExpire.Run(ctx, b.rdb, []string{b.key("sx")}, b.cfg.Prefix, limit).StringSlice()
	if err != nil {
		return nil, b.unavailable(err)
	}
	return gone, nil
}
