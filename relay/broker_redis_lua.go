package relay

import "github.com/redis/go-redis/v9"

// The Redis broker's scripts. Each runs atomically in Redis, which is what makes "append + publish" one step and
// keeps the membership hash (per user) and its reverse index (per room) consistent. Every key a script touches
// shares the configured prefix, so a prefix with a {hash tag} keeps them in one cluster slot.
//
// Log records, on the channel and in the list, are the text  e<epoch>:<offset>:<unix ms>:<data>.
// Membership announcements are  m<json MembershipChange>; a Reset is announced as  g<new epoch>.

// KEYS: epoch, head, log. ARGV: new epoch (used if none), unix ms, data, history size, history ttl ms, channel.
var luaPublish = redis.NewScript(`
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3])
end
local off = redis.call('INCR', KEYS[2])
local msg = 'e' .. epoch .. ':' .. off .. ':' .. ARGV[2] .. ':' .. ARGV[3]
redis.call('RPUSH', KEYS[3], msg)
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[4]), -1)
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('PUBLISH', ARGV[6], msg)
return {epoch, tostring(off)}
`)

// KEYS: epoch, head, log. ARGV: new epoch, channel. A new epoch with an empty log, announced as  g<epoch>.
var luaReset = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], '0')
redis.call('DEL', KEYS[3])
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
