-- revoke.lua: takes back what is left of a grant's spins (the order was
-- cancelled), once.
--
-- KEYS[1] pw:{C}:meta  KEYS[2] pw:{C}:days  KEYS[3] pw:{C}:results
-- ARGV[1] grant id     ARGV[2] grant hash in [0, 2^32)
-- ARGV[3] '1' under durability fsync-wins: a replay rewrites its record unchanged
--         (see grant.lua).
-- The grant record (grant.lua) names the user and the grant's day.
--
-- The grant's spins are taken from the user's pool it went into: what is unused
-- there, up to the grant's spins, is revoked (or, when its day has ended under
-- end_of_day, reported as lapsed); the rest was already used. The grant leaves
-- the pool with its used part, so the user keeps exactly the spins earned by
-- other grants. Under end_of_day, once a later day's grant has replaced the pool,
-- a grant of an earlier day has nothing left: its spins count as lapsed (used or
-- not, they can no longer be told apart).
--
-- Returns {'ok'|'replay', revoked, already_used, lapsed} | {error_code}.

local meta = KEYS[1]
local m = redis.call('HMGET', meta, 'nb', 'epoch', 'ex')
if not m[1] then
  return {'no_campaign'}
end
local pfx = prefix_of(meta)
local nb = tonumber(m[1])
local grant_key = pfx .. 'g:' .. (tonumber(ARGV[2]) % nb)
local rec = redis.call('HGET', grant_key, ARGV[1])
if not rec then
  return {'unknown_grant'}
end
local spins, day, left, revoked, used, lapsed, state, user_hash, user_at =
  struct.unpack('>BhI4BBBBI4', rec, 9)
if state == 1 then
  if ARGV[3] == '1' then
    redis.call('HSET', grant_key, ARGV[1], rec)
  end
  return {'replay', revoked, used, lapsed}
end
if tonumber(m[2]) ~= redis.call('LASTSAVE') then
  return {'recovering'}
end

local user = string.sub(rec, user_at)
local eod = m[3] == 'end_of_day'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local today = day_index(KEYS[2], now)
local user_key = pfx .. 'u:' .. (user_hash % nb)
local total, day_count, earned = read_user(user_key, user, today)
revoked, used, lapsed = 0, 0, spins
if earned and (not eod or earned[3] == day) then
  local take = math.min(spins, math.max(0, earned[1] - earned[2]))
  if not eod or day == today then
    revoked, lapsed = take, 0
  else
    revoked, lapsed = 0, take
  end
  used = spins - take
  earned[1] = math.max(0, earned[1] - spins)
  earned[2] = math.max(0, earned[2] - used)
  write_user(user_key, user, total, day_count, today, earned)
end

redis.call('HSET', grant_key, ARGV[1], string.sub(rec, 1, 8) ..
  struct.pack('>BhI4BBBBI4', spins, day, left, revoked, used, lapsed, 1, user_hash) .. user)
-- The campaign's count of revocations (meta `rv`, for reconcile).
redis.call('HINCRBY', meta, 'rv', 1)
redis.call('XADD', KEYS[3], '*', 'type', 'revoke', 'grant', ARGV[1], 'user', user,
  'spins', spins, 'revoked', revoked, 'used', used, 'lapsed', lapsed, 't', now)
return {'ok', revoked, used, lapsed}
