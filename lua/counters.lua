-- Shared prelude of the scripts that read per-user state (spin, status, grant,
-- revoke, recover). It is prepended to each of them when they are loaded, so the
-- packing rule lives in one place.
--
-- A user's state is one value in the bucket hash pw:{C}:u:<bucket>, field = user
-- id. Until the user is granted a spin it is the packed counters, an integer:
--            packed = total * 2^20 + day_count * 2^10 + day_index
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

--
-- With earned spins (meta `ef` >= 0: every user's free spins), a user granted a
-- spin has the text "<packed>:<earned>:<earned used>:<earned day>:<free used>":
-- earned      spins granted minus revoked in the user's pool of earned spins
-- earned used spins spent from that pool
-- earned day  the campaign day the pool was earned on (meta `ex` end_of_day: it
--             lapses when that day ends; campaign_end: it lasts the campaign)
-- free used   free spins spent (a user without grants spent only free ones)
-- src/draw/model.rs `Counters` and `Earned` hold the same state.

-- Unpacks a user's counters and earned state (nil without grants); the day count
-- is zero when the last spin was on another day.
local function read_user(bucket_key, user, today)
  local v = redis.call('HGET', bucket_key, user)
  local earned
  if v and string.find(v, ':', 1, true) then
    local p, g, u, d, f = string.match(v, '^(%d+):(%d+):(%d+):(-?%d+):(%d+)$')
    v = p
    earned = {tonumber(g), tonumber(u), tonumber(d), tonumber(f)}
  end
  local packed = tonumber(v or '0')
  local total = math.floor(packed / COUNT_RADIX)
  local day_count = math.floor(packed / DAY_RADIX) % DAY_RADIX
  if packed % DAY_RADIX ~= today then
    day_count = 0
  end
  return total, day_count, earned
end

local function pack_counters(total, day_count, today)
  return string.format('%d', total * COUNT_RADIX + day_count * DAY_RADIX + today)
end

-- Writes a user's state; `day_count` counts spins on `today` (before the first
-- campaign day, -1, there are none).
local function write_user(bucket_key, user, total, day_count, today, earned)
  local v = pack_counters(total, day_count, math.max(today, 0))
  if earned then
    v = v .. string.format(':%d:%d:%d:%d', earned[1], earned[2], earned[3], earned[4])
  end
  redis.call('HSET', bucket_key, user, v)
end

-- The spins a user may still spend before the caps: free ones and earned ones.
-- `eod`: earned spins lapse at the end of the day they were earned on.
local function balance(free, eod, today, total, earned)
  if not earned then
    return math.max(0, free - total), 0
  end
  local earned_left = 0
  if not eod or earned[3] == today then
    earned_left = math.max(0, earned[1] - earned[2])
  end
  return math.max(0, free - earned[4]), earned_left
end

-- Spends one spin from `earned` (a user without grants spends a free one,
-- counted by the total): the spin that lapses first goes first, so earned ones
-- under end_of_day, free ones under campaign_end.
local function spend(eod, free_left, earned_left, earned)
  if not earned then
    return
  end
  if (eod and earned_left > 0) or (not eod and free_left == 0) then
    earned[2] = earned[2] + 1
  else
    earned[4] = earned[4] + 1
  end
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
