-- apply.lua: install or change a campaign atomically, also while it is live.
--
-- KEYS[1] pw:{C}:meta  KEYS[2] pw:{C}:stock  KEYS[3] pw:{C}:awarded
-- KEYS[4] pw:{C}:initial (configured stock per prize id, -1 = unlimited)
-- KEYS[5] pw:{C}:days  KEYS[6] pw:{C}:results
--
-- ARGV[1]  hash of the live config the caller planned against ('' = none, '*' = any)
-- ARGV[2]  hash of the new config
-- ARGV[3]  canonical config JSON      ARGV[4]  prize table JSON (draw order)
-- ARGV[5]  YAML text as applied       ARGV[6]  start ms   ARGV[7] end ms
-- ARGV[8]  paused 0|1                 ARGV[9]  spins per user
-- ARGV[10] spins per user per day (0 = none)
-- ARGV[11] fallback index (1-based)   ARGV[12] total weight
-- ARGV[13] user buckets (kept from the first apply: bucket keys depend on it)
-- ARGV[14] earned spins: the free spins of every user, or -1 when spins are not earned
-- ARGV[15] earned spins: when they lapse, 'campaign_end' | 'end_of_day' ('' when off).
--          Fixed by the first apply that sets it (meta `ex`): the users' counters
--          are kept for that rule, so a later apply with the other is refused.
-- ARGV[16] budget: the most value the campaign may award, in ten-thousandths of
--          its currency, or -1 for none (meta `bud`; meta `bs` counts what was
--          awarded, spin.lua)
-- ARGV[17] n = number of prizes in the table, then n pairs (prize id, configured
--          stock: >= 0, -1 unlimited, -2 retired, -3 the codes loaded), then s = number of release
--          schedules and s groups (prize id, k, then k pairs (instant ms, units
--          released by then)), then the day starts in ms.
--
-- Stock is set to max(0, configured - awarded): a top-up or cut acts on what
-- remains, awarded units are never resurrected and awarded counts are untouched.
-- A code prize's stock is its pool (pw:{C}:codes:<id>, loaded by codes.lua) and
-- its configured units awarded + pool.
-- Returns {'applied', version} | {'unchanged', version} | {'conflict', live_hash}
-- | {'expire_fixed', live expire rule}.

local cur = redis.call('HGET', KEYS[1], 'hash')
if ARGV[1] ~= '*' and (cur or '') ~= ARGV[1] then
  return {'conflict', cur or ''}
end
if cur == ARGV[2] then
  return {'unchanged', tonumber(redis.call('HGET', KEYS[1], 'ver'))}
end

local fixed = redis.call('HGET', KEYS[1], 'ex')
if ARGV[15] ~= '' and fixed and fixed ~= ARGV[15] then
  return {'expire_fixed', fixed}
end

-- Check every argument before the first write.
local P = 17 -- ARGV index of the prize count
local n = tonumber(ARGV[P])
local pfx = string.sub(KEYS[1], 1, -5)
for i = 5, 16 do
  if i ~= 5 and i ~= 15 and not tonumber(ARGV[i]) then
    return redis.error_reply('apply.lua: ARGV[' .. i .. '] is not a number')
  end
end
if not n or #ARGV < P + 2 * n + 1 then
  return redis.error_reply('apply.lua: malformed prize list')
end
for i = 0, n - 1 do
  if not tonumber(ARGV[P + 2 + 2 * i]) then
    return redis.error_reply('apply.lua: stock of ' .. ARGV[P + 1 + 2 * i] .. ' is not a number')
  end
end
-- The schedules, as (prize id, first ARGV index of its pairs, k).
local schedules = {}
local at = P + 1 + 2 * n
local s = tonumber(ARGV[at])
if not s then
  return redis.error_reply('apply.lua: malformed schedule list')
end
at = at + 1
for _ = 1, s do
  local k = tonumber(ARGV[at + 1])
  if not k or #ARGV < at + 1 + 2 * k then
    return redis.error_reply('apply.lua: malformed schedule')
  end
  for i = at + 2, at + 1 + 2 * k do
    if not tonumber(ARGV[i]) then
      return redis.error_reply('apply.lua: schedule of ' .. ARGV[at] .. ' is not numbers')
    end
  end
  schedules[#schedules + 1] = {ARGV[at], at + 2, k}
  at = at + 2 + 2 * k
end
local days_from = at
local decoded, entries = pcall(cjson.decode, ARGV[4])
if not decoded or type(entries) ~= 'table' then
  return redis.error_reply('apply.lua: the prize table is not JSON')
end
if not entries[tonumber(ARGV[11])] then
  return redis.error_reply('apply.lua: the fallback index is not in the prize table')
end
for i = days_from, #ARGV do
  if not tonumber(ARGV[i]) then
    return redis.error_reply('apply.lua: day start is not a number')
  end
end

for i = 0, n - 1 do
  local id, configured = ARGV[P + 1 + 2 * i], tonumber(ARGV[P + 2 + 2 * i])
  if configured == -2 then
    redis.call('HSET', KEYS[2], id, 0)
  elseif configured == -3 then
    local pool = redis.call('SCARD', pfx .. 'codes:' .. id)
    redis.call('HSET', KEYS[2], id, pool)
    redis.call('HSET', KEYS[4], id, string.format('%d', pool + tonumber(redis.call('HGET', KEYS[3], id) or '0')))
  elseif configured < 0 then
    redis.call('HSET', KEYS[2], id, -1)
    redis.call('HSET', KEYS[4], id, -1)
  else
    local left = configured - tonumber(redis.call('HGET', KEYS[3], id) or '0')
    if left < 0 then
      left = 0
    end
    redis.call('HSET', KEYS[2], id, string.format('%d', left))
    redis.call('HSET', KEYS[4], id, ARGV[P + 2 + 2 * i])
  end
end

redis.call('DEL', KEYS[5])
for i = days_from, #ARGV do
  redis.call('ZADD', KEYS[5], ARGV[i], ARGV[i])
end

-- Release schedules replace the ones before (pw:{C}:rel:<prize id>).
for i = 0, n - 1 do
  redis.call('DEL', pfx .. 'rel:' .. ARGV[P + 1 + 2 * i])
end
for _, sc in ipairs(schedules) do
  for i = sc[2], sc[2] + 2 * sc[3] - 1, 2 do
    redis.call('ZADD', pfx .. 'rel:' .. sc[1], ARGV[i], ARGV[i + 1])
  end
end

local ver = redis.call('HINCRBY', KEYS[1], 'ver', 1)
redis.call('HSET', KEYS[1], 'hash', ARGV[2], 'cfg', ARGV[3], 'tbl', ARGV[4], 'yaml', ARGV[5],
  'start', ARGV[6], 'end', ARGV[7], 'paused', ARGV[8], 'lim', ARGV[9], 'dlim', ARGV[10],
  'fb', ARGV[11], 'tw', ARGV[12], 'ef', ARGV[14], 'bud', ARGV[16])
redis.call('HSETNX', KEYS[1], 'nb', ARGV[13])
-- What spin.lua reads without parsing text (Lua's tonumber and number
-- formatting cost more than the Redis calls of a draw):
--   `num`  the numbers of the config as 8-byte big-endian doubles, in order:
--          start, end, paused, lim, dlim, fb, tw, nb, ef, ex (1 end_of_day,
--          else 0), bud, the fallback's value (ten-thousandths);
--   `ws`   the running sums of the weights in draw order (doubles: the sums
--          the JSON walk made, exact below 2^53), binary-searched;
--   `p:<i>` entry i packed: v, pe, pd (doubles, -1 when absent), ps, c (one
--          byte each), then id, name, amt, cur (each a 2-byte length and the
--          text); one is unpacked per draw;
--   `np`   the entries written (an earlier, longer table's extra ones are removed);
--   `pfb`  the fallback's entry packed again, read with the config.
-- A spin.lua from before `num` reads `cw`: it is removed, so such a script
-- takes the JSON path on a campaign applied by this one.
local function packed_entry(e)
  local function text(t)
    return struct.pack('>I2', #t) .. t
  end
  return struct.pack('>dddBB', e.v or -1, e.pe or -1, e.pd or -1, e.ps or 0, e.c or 0)
    .. text(e.id) .. text(e.name) .. text(e.amt) .. text(e.cur)
end
local sums, acc = {}, 0
for i, e in ipairs(entries) do
  acc = acc + e.w
  sums[i] = struct.pack('>d', acc)
  redis.call('HSET', KEYS[1], 'p:' .. i, packed_entry(e))
end
for i = #entries + 1, tonumber(redis.call('HGET', KEYS[1], 'np') or '0') do
  redis.call('HDEL', KEYS[1], 'p:' .. i)
end
local fallback = entries[tonumber(ARGV[11])]
local expire = redis.call('HGET', KEYS[1], 'ex') or ARGV[15]
local num = struct.pack('>dddddddddddd', tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]),
  tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]),
  tonumber(redis.call('HGET', KEYS[1], 'nb')), tonumber(ARGV[14]), expire == 'end_of_day' and 1 or 0,
  tonumber(ARGV[16]), fallback.v or 0)
redis.call('HSET', KEYS[1], 'ws', table.concat(sums), 'np', #entries, 'num', num,
  'pfb', packed_entry(fallback))
redis.call('HDEL', KEYS[1], 'cw', 'fbv')
-- The value awarded (`bs`, counted by spin.lua) starts at 0. A campaign first
-- applied before it was counted starts from its awarded units at this
-- version's values (their values then are not known here; a recovery raises
-- it to the ledger's sum).
if redis.call('HEXISTS', KEYS[1], 'bs') == 0 then
  local spent = 0
  if cur then
    for _, e in ipairs(entries) do
      if e.v then
        spent = spent + e.v * tonumber(redis.call('HGET', KEYS[3], e.id) or '0')
      end
    end
  end
  redis.call('HSET', KEYS[1], 'bs', string.format('%d', math.min(spent, 9007199254740992)))
end
if ARGV[15] ~= '' then
  redis.call('HSET', KEYS[1], 'ex', ARGV[15])
end
-- The apply takes its place in the draw order, so the ledger can be replayed.
redis.call('XADD', KEYS[6], '*', 'type', 'apply', 'ver', ver, 'hash', ARGV[2], 't',
  redis.call('TIME')[1])
return {'applied', ver}
