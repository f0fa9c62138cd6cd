-- Shared prelude of the scripts that read per-user counters (spin.lua, status.lua).
-- It is prepended to each of them when they are loaded, so the packing rule lives
-- in one place.
--
-- A user's counters are one integer in the bucket hash pw:{C}:u:<bucket>, field =
-- user id:   packed = total * 2^20 + day_count * 2^10 + day_index
-- total       spins over the whole campaign   (< 2^32, limit <= 1,000,000)
-- day_count   spins on day `day_index`         (< 2^10, limit <= 1,000)
-- day_index   campaign day of the last spin    (< 2^10, window < 366 days)
-- The product stays far below 2^53, so Lua's doubles hold it exactly, and small
-- values keep Redis' listpack integer encoding compact.

local DAY_RADIX = 1024
local COUNT_RADIX = 1048576

-- Campaign day index of `now_ms`: how many day starts lie at or before it, minus one.
local function day_index(days_key, now_ms)
  return redis.call('ZCOUNT', days_key, '-inf', now_ms) - 1
end

-- Unpacks a user's counters; the day count is zero when the last spin was on
-- another day.
local function read_counters(bucket_key, user, today)
  local packed = tonumber(redis.call('HGET', bucket_key, user) or '0')
  local total = math.floor(packed / COUNT_RADIX)
  local day_count = math.floor(packed / DAY_RADIX) % DAY_RADIX
  if packed % DAY_RADIX ~= today then
    day_count = 0
  end
  return total, day_count
end

local function pack_counters(total, day_count, today)
  return string.format('%d', total * COUNT_RADIX + day_count * DAY_RADIX + today)
end

-- Spins left under both limits (a daily limit of 0 means none).
local function spins_left(limit, daily_limit, total, day_count)
  local left = limit - total
  if daily_limit > 0 and daily_limit - day_count < left then
    left = daily_limit - day_count
  end
  if left < 0 then
    left = 0
  end
  return left
end

-- The key prefix pw:{C}: of a campaign, from its meta key pw:{C}:meta. Bucket keys
-- are derived from it inside the scripts because the bucket count lives in meta;
-- they share the {C} hash tag, so a script stays inside one cluster slot.
local function prefix_of(meta_key)
  return string.sub(meta_key, 1, -5)
end
