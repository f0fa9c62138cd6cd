-- grant.lua: spins earned by an order, granted once per grant id, atomically.
--
-- KEYS[1] pw:{C}:meta  KEYS[2] pw:{C}:days  KEYS[3] pw:{C}:results
-- Derived (same {C} hash tag): pw:{C}:u:<b> user state (counters.lua), b =
-- ARGV[2] mod nb; pw:{C}:g:<g> grant records, g = ARGV[4] mod nb.
--
-- ARGV[1] user id          ARGV[2] user hash in [0, 2^32)
-- ARGV[3] grant id (the Idempotency-Key, e.g. the order id)
-- ARGV[4] grant hash in [0, 2^32)
-- ARGV[5] fingerprint: 8 bytes hashed from (user, spins, reason)
-- ARGV[6] spins, 1..100    ARGV[7] reason, canonical JSON or ''
-- ARGV[8] '1' under durability fsync-wins: a replay rewrites its record unchanged,
--         so that the WAITAOF the service sends next on this connection covers
--         the grant even when it was made on another connection (as spin.lua).
--
-- A grant record (field = grant id) never expires while the campaign lives: a
-- cancelled order may be revoked at any time. Record = fingerprint (8) .. spins
-- (u8) .. grant day (i16) .. spins left after the grant (u32) .. revoked (u8) ..
-- already used (u8) .. lapsed (u8) .. state (u8: 0 granted, 1 revoked) .. user
-- hash (u32) .. user id.
--
-- Returns {'ok', spins_left} | {'replay', spins_left} | {error_code}. Nothing is
-- written before every check has passed.

local meta = KEYS[1]
local m = redis.call('HMGET', meta, 'ver', 'start', 'end', 'lim', 'dlim', 'nb', 'epoch', 'ef', 'ex')
if not m[1] then
  return {'no_campaign'}
end
local pfx = prefix_of(meta)
local nb = tonumber(m[6])
local grant_key = pfx .. 'g:' .. (tonumber(ARGV[4]) % nb)

-- 1. Replay: the same grant id answers as it first did, or is a reuse.
local rec = redis.call('HGET', grant_key, ARGV[3])
if rec then
  if string.sub(rec, 1, 8) ~= ARGV[5] then
    return {'key_reused'}
  end
  local _, _, left = struct.unpack('>BhI4', rec, 9)
  if ARGV[8] == '1' then
    redis.call('HSET', grant_key, ARGV[3], rec)
  end
  return {'replay', left}
end

-- 2. The campaign takes grants now.
if tonumber(m[7]) ~= redis.call('LASTSAVE') then
  return {'recovering'}
end
local free = tonumber(m[8])
if not free or free < 0 then
  return {'not_enabled'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now >= tonumber(m[3]) then
  return {'ended'}
end
local eod = m[9] == 'end_of_day'
-- Spins that lapse with their day need a campaign day to be earned on.
if eod and now < tonumber(m[2]) then
  return {'not_started'}
end

-- 3. Add the spins to the user's pool; under end_of_day a pool of an earlier
-- day has lapsed and starts again.
local spins = tonumber(ARGV[6])
local user_key = pfx .. 'u:' .. (tonumber(ARGV[2]) % nb)
local today = day_index(KEYS[2], now)
local total, day_count, earned = read_user(user_key, ARGV[1], today)
if not earned then
  earned = {0, 0, today, total}
end
if eod and earned[3] ~= today then
  earned[1], earned[2], earned[3] = 0, 0, today
end
earned[1] = earned[1] + spins
write_user(user_key, ARGV[1], total, day_count, today, earned)
local free_left, earned_left = balance(free, eod, today, total, earned)
local left = math.min(spins_left(tonumber(m[4]), tonumber(m[5]), total, day_count),
  free_left + earned_left)

-- 4. The record, the outbox, and the campaign's count of grants (meta `gv`,
-- for reconcile; each move also tells the replicas' quota caches that a
-- cached `no_spins_left` may no longer hold).
redis.call('HSET', grant_key, ARGV[3],
  ARGV[5] .. struct.pack('>BhI4BBBBI4', spins, today, left, 0, 0, 0, 0, tonumber(ARGV[2])) .. ARGV[1])
redis.call('XADD', KEYS[3], '*', 'type', 'grant', 'grant', ARGV[3], 'user', ARGV[1],
  'spins', spins, 'reason', ARGV[7], 't', now, 'day', today)
redis.call('HINCRBY', meta, 'gv', 1)
return {'ok', left}
