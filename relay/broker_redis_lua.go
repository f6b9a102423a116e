package relay

import (
	"fmt"

	"github.com/redis/go-redis/v9"
)

// The Redis broker's scripts. Each runs atomically in Redis, which is what makes "append + publish" one step and
// keeps the membership hash (per user) and its reverse index (per room) consistent. Every key a script touches
// shares the configured prefix, so a prefix with a {hash tag} keeps them in one cluster slot.
//
// Log records, on the channel and in the list, are the text  e<epoch>:<offset>:<unix ms>:<data>.
// Membership announcements are  m<json MembershipChange>; a Reset is announced as  g<new epoch>.

// KEYS: epoch, head, log, log bytes. ARGV: new epoch (used if none), unix ms, data, history size, history ttl ms,
// channel, seen epoch, seen offset (the newest position this node has delivered), history max bytes.
// Returns {epoch, offset, records kept, bytes kept, evicted by count, by bytes, by age}.
//
// A head below what a node has seen in the same epoch means the log went back (a restore from a snapshot, a
// failover to a lagging replica): offsets would be reused for other records, so the log starts a new epoch
// instead (see luaHead). The list is trimmed from its oldest end by count, bytes (the sum of the records' lengths,
// kept in its own key) and age, so it stays contiguous up to the head; a record larger than the whole byte
// budget is published but not kept. The list and its byte count expire together when the log is idle.
var luaPublish = redis.NewScript(luaCurrentEpoch(7, 8) + `
local off = redis.call('INCR', KEYS[2])
local msg = 'e' .. epoch .. ':' .. off .. ':' .. ARGV[2] .. ':' .. ARGV[3]
if redis.call('EXISTS', KEYS[4]) == 0 then -- a list of unknown bytes (kept before byte counting) is dropped
  redis.call('UNLINK', KEYS[3])
end
redis.call('RPUSH', KEYS[3], msg)
local bytes = redis.call('INCRBY', KEYS[4], #msg)
local n = redis.call('LLEN', KEYS[3])
local maxn, maxb = tonumber(ARGV[4]), tonumber(ARGV[9])
local cutoff = tonumber(ARGV[2]) - tonumber(ARGV[5])
local ev = {0, 0, 0}
while n > 0 do
  local why = 0
  if n > maxn then why = 1
  elseif bytes > maxb then why = 2
  else
    local ms = tonumber(string.match(redis.call('LINDEX', KEYS[3], 0), '^e[^:]*:%d+:(%d+):'))
    if ms and ms < cutoff then why = 3 end
  end
  if why == 0 then break end
  bytes = bytes - #redis.call('LPOP', KEYS[3])
  n = n - 1
  ev[why] = ev[why] + 1
end
redis.call('SET', KEYS[4], bytes)
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('PEXPIRE', KEYS[4], ARGV[5])
redis.call('PUBLISH', ARGV[6], msg)
return {epoch, tostring(off), tostring(n), tostring(bytes), tostring(ev[1]), tostring(ev[2]), tostring(ev[3])}
`)

// luaCurrentEpoch is the opening both luaPublish and luaHead share: the log's epoch in the local `epoch`, a new
// one (ARGV[1], with the head, list and byte count cleared) when there is none or when the head went back below
// the position this node has seen (ARGV[seenEpoch], ARGV[seenOffset]) in the same epoch.
func luaCurrentEpoch(seenEpoch, seenOffset int) string {
	return fmt.Sprintf(`
local epoch = redis.call('GET', KEYS[1])
if epoch and epoch == ARGV[%d] and tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[%d]) then
  epoch = false
end
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
end
`, seenEpoch, seenOffset)
}

// KEYS: epoch, head, log, log bytes. ARGV: new epoch (used if none), seen epoch, seen offset (as for luaPublish). Returns
// {epoch, head}. An empty log gets its epoch here too, not only at the first Publish: a stream that starts on an
// empty log then holds "<epoch>-0", a position it can resume from, instead of "-0", which names no log. A log
// that went back below the seen position starts a new epoch, as in luaPublish.
var luaHead = redis.NewScript(luaCurrentEpoch(2, 3) + `
return {epoch, redis.call('GET', KEYS[2]) or '0'}
`)

// KEYS: epoch, head, log, log bytes. ARGV: new epoch, channel. A new epoch with an empty log, announced as  g<epoch>.
var luaReset = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], '0')
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('PUBLISH', ARGV[2], 'g' .. ARGV[1])
return ARGV[1]
`)

// KEYS: epoch, head, log. ARGV: after epoch, after offset, limit.
// Returns {epoch, head, status, records...}; status is OK, GONE (trimmed) or EPOCH (different epoch).
var luaHistory = redis.NewScript(`
local epoch = redis.call('GET', KEYS[1]) or ''
local head = tonumber(redis.call('GET', KEYS[2]) or '0')
if epoch ~= ARGV[1] then return {epoch, tostring(head), 'EPOCH'} end
local after = tonumber(ARGV[2])
if after > head then return {epoch, tostring(head), 'EPOCH'} end
if after == head then return {epoch, tostring(head), 'OK'} end
local n = redis.call('LLEN', KEYS[3])
local first = head - n + 1
if after + 1 < first then return {epoch, tostring(head), 'GONE'} end
local start = after + 1 - first
local stop = -1
if tonumber(ARGV[3]) > 0 then stop = start + tonumber(ARGV[3]) - 1 end
local items = redis.call('LRANGE', KEYS[3], start, stop)
local out = {epoch, tostring(head), 'OK'}
for i = 1, #items do out[#out + 1] = items[i] end
return out
`)

// KEYS: user hash, room set, head. ARGV: room, user, max rooms, ttl ms, room set ttl ms, channel, prefix.
var luaJoin = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then
  local max = tonumber(ARGV[3])
  if max > 0 and redis.call('HLEN', KEYS[1]) >= max then
    local all = redis.call('HGETALL', KEYS[1])
    local oldest, oldestOff = nil, nil
    for i = 1, #all, 2 do
      local o = tonumber(all[i + 1])
      if oldest == nil or o < oldestOff or (o == oldestOff and all[i] < oldest) then
        oldest, oldestOff = all[i], o
      end
    end
    redis.call('HDEL', KEYS[1], oldest)
    redis.call('SREM', ARGV[7] .. 'r:' .. oldest, ARGV[2])
    redis.call('PUBLISH', ARGV[6], 'm' .. cjson.encode({op = 'leave', room = oldest, user = ARGV[2]}))
  end
  cur = redis.call('GET', KEYS[3]) or '0'
  redis.call('HSET', KEYS[1], ARGV[1], cur)
  redis.call('PUBLISH', ARGV[6], 'm' .. cjson.encode({op = 'join', room = ARGV[1], user = ARGV[2], off = tonumber(cur)}))
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return cur
`)

// KEYS: user hash, room set. ARGV: room, user, channel.
var luaLeave = redis.NewScript(`
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], 'm' .. cjson.encode({op = 'leave', room = ARGV[1], user = ARGV[2]}))
return 1
`)

// KEYS: user hash. ARGV: user, channel, prefix.
var luaLeaveAll = redis.NewScript(`
local rooms = redis.call('HKEYS', KEYS[1])
for i = 1, #rooms do redis.call('SREM', ARGV[3] .. 'r:' .. rooms[i], ARGV[1]) end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], 'm' .. cjson.encode({op = 'leaveall', user = ARGV[1]}))
return #rooms
`)

// KEYS: room set. ARGV: room, channel, prefix.
var luaCloseRoom = redis.NewScript(`
local users = redis.call('SMEMBERS', KEYS[1])
for i = 1, #users do redis.call('HDEL', ARGV[3] .. 'u:' .. users[i], ARGV[1]) end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], 'm' .. cjson.encode({op = 'close', room = ARGV[1]}))
return #users
`)

// KEYS: user hash. ARGV: ttl ms.
var luaRooms = redis.NewScript(`
local all = redis.call('HGETALL', KEYS[1])
if #all > 0 and tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return all
`)
