-- status.lua: what a client shows before spinning (read only).
--
-- KEYS[1] pw:{C}:meta   KEYS[2] pw:{C}:stock   KEYS[3] pw:{C}:days
-- KEYS[4] pw:{C}:awarded
-- ARGV[1] user id       ARGV[2] user hash in [0, 2^32)
--
-- Returns {} when the campaign does not exist, else
-- {now_ms, cfg_json, tbl_json, spins_left, budget (-1: none), value awarded,
-- n, stock_1, awarded_1, …, stock_n, awarded_n, day_start_1, …} with the stock
-- (-1 = unlimited) and awarded units of each prize of the table in table
-- order, then the campaign's day starts when a prize is released per day (the
-- service computes what is released from them: src/draw/release.rs).

local meta = KEYS[1]
local m = redis.call('HMGET', meta, 'cfg', 'tbl', 'lim', 'dlim', 'nb', 'ef', 'ex', 'bud', 'bs')
if not m[1] then
  return {}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local bucket = tonumber(ARGV[2]) % tonumber(m[5])
local today = day_index(KEYS[3], now)
local total, day_count, earned = read_user(prefix_of(meta) .. 'u:' .. bucket, ARGV[1], today)
local left = spins_left(tonumber(m[3]), tonumber(m[4]), total, day_count)
local free = tonumber(m[6])
if free and free >= 0 then
  local free_left, earned_left = balance(free, m[7] == 'end_of_day', today, total, earned)
  left = math.min(left, free_left + earned_left)
end
local tbl = cjson.decode(m[2])
local out = {now, m[1], m[2], left, tonumber(m[8] or '-1') or -1, tonumber(m[9] or '0') or 0, #tbl}
local per_day = false
for _, p in ipairs(tbl) do
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[2], p.id) or '0')
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[4], p.id) or '0')
  per_day = per_day or p.pd ~= nil
end
if per_day then
  for _, d in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    out[#out + 1] = tonumber(d)
  end
end
return out
