-- spin.lua: one atomic draw, in eight steps (docs/ARCHITECTURE.md, "A spin").
--
-- KEYS[1] pw:{C}:meta      campaign config (hash)
-- KEYS[2] pw:{C}:stock     remaining units per prize id; -1 = unlimited (hash)
-- KEYS[3] pw:{C}:awarded   units awarded per prize id (hash)
-- KEYS[4] pw:{C}:days      start of each campaign day in unix ms (sorted set)
-- KEYS[5] pw:{C}:results   settlement outbox (stream)
-- Derived in the script (same {C} hash tag): pw:{C}:u:<b> user state (counters.lua),
-- pw:{C}:i:<utc day>:<b> idempotency records, b = ARGV[2] mod meta.nb,
-- pw:{C}:rel:<prize id> a prize's release schedule, pw:{C}:codes:<prize id> a code
-- prize's pool of codes (set), pw:{C}:codes-awarded the codes handed out (set),
-- pw:{C}:initial a code prize's codes loaded (awarded + pool).
--
-- ARGV[1] user id (token subject)
-- ARGV[2] user hash, an integer in [0, 2^32)
-- ARGV[3] idempotency field: 8 bytes hashed from (user, key)
-- ARGV[4] request fingerprint: 8 bytes hashed from the canonical body
-- ARGV[5] R, an integer in [0, 2^53)
-- ARGV[6] spin id, 16 raw bytes (UUID v7)
-- ARGV[7] spin id, text
-- ARGV[8] client context, canonical JSON or ''
-- ARGV[9] idempotency key, text
-- ARGV[10] '1' when the service confirms the fsync of bounded wins (durability
--          fsync-wins): a replay of a bounded win then rewrites its record
--          unchanged, so that the WAITAOF the service sends next on the same
--          connection (which waits for that connection's writes) covers the draw
--          even when the draw was made on another connection or replica.
--
-- The campaign draws only while its `epoch` (meta) equals this Redis process's
-- LASTSAVE: after a restart or a failover Redis may have lost writes the ledger
-- holds, and new draws wait ('recovering') until src/recover has rebuilt the
-- campaign from the ledger (lua/recover.lua). Replays answer meanwhile: a record
-- that is here survived.
--
-- Returns a draw as one string (a table of ten would cost more to hand back
-- than to build): 'ok' or 'rp' (a replay), the spin id (16 bytes), spins left
-- (u32), bounded (u8: 1 for a stock-bounded prize, 0 for the fallback or an
-- unlimited one), last (u8: 1 when this draw took the prize's last unit, 0 on
-- a replay), the prize's entry as apply.lua packs it (v pe pd ps c, then id,
-- name, amount, currency, each a u16 length and the text), then the prize
-- code handed out ('' when none), all big-endian; src/store/redis/spin.rs
-- reads it. A refusal is {error_code[, retry_after_ms]}. Nothing is written
-- before every check has passed: Redis does not undo a script's earlier writes
-- on failure.

-- Library functions as locals: a global's field costs a table lookup per use.
local format, unpack_bytes, floor = string.format, struct.unpack, math.floor
local RECORD_TTL_SLACK_S = 3600
local DAY_MS = 86400000

local meta = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
-- Numbers go to Redis as text made once: Lua's own conversion of a number
-- (to pass it or to concatenate it) is a costly float format.
local now_s = format('%d', now)

-- The config (apply.lua): the numbers packed in `num`, the running sums of
-- the weights in `ws`, entry i packed alone in `p:<i>`; nothing is parsed as
-- text, nothing decoded whole, so a draw costs the same on a wheel of 3
-- prizes or 64. A campaign last applied before that form has text fields and
-- the JSON `tbl`: they are read and decoded as they used to be.
local m = redis.call('HMGET', meta, 'ver', 'num', 'ws', 'epoch', 'bs', 'pfb')
local start, stop, paused, limit, daily_limit, fb, tw, nb, free, eod_flag, budget, fallback_value
local ws, json_tbl = m[3], nil
if m[2] then
  start, stop, paused, limit, daily_limit, fb, tw, nb, free, eod_flag, budget, fallback_value =
    unpack_bytes('>dddddddddddd', m[2])
else
  if not m[1] then
    return {'no_campaign'}
  end
  local o = redis.call('HMGET', meta, 'start', 'end', 'paused', 'lim', 'dlim', 'fb', 'tw', 'nb', 'ef', 'ex',
    'bud', 'fbv')
  start, stop, paused, limit, daily_limit, fb, tw, nb = tonumber(o[1]), tonumber(o[2]), tonumber(o[3]),
    tonumber(o[4]), tonumber(o[5]), tonumber(o[6]), tonumber(o[7]), tonumber(o[8])
  free, eod_flag, budget = tonumber(o[9]) or -1, o[10] == 'end_of_day' and 1 or 0, tonumber(o[11] or '-1') or -1
  json_tbl = cjson.decode(redis.call('HGET', meta, 'tbl'))
  fallback_value = json_tbl[fb].v or 0
end
-- Entry i packed (apply.lua's form, which the reply carries), then id, name,
-- amount, currency, value, even stock, per day, schedule, code flag (nil
-- when absent): values, not a table, which would cost a draw more than the
-- rest of reading it.
local function entry(i, packed)
  if json_tbl then
    local e = json_tbl[i]
    local function text(t)
      return struct.pack('>I2', #t) .. t
    end
    packed = struct.pack('>dddBB', e.v or -1, e.pe or -1, e.pd or -1, e.ps or 0, e.c or 0)
      .. text(e.id) .. text(e.name) .. text(e.amt) .. text(e.cur)
    return packed, e.id, e.name, e.amt, e.cur, e.v, e.pe, e.pd, e.ps, e.c
  end
  packed = packed or redis.call('HGET', meta, 'p:' .. i)
  local v, pe, pd, ps, c, id, name, amt, cur = unpack_bytes('>dddBBI2c0I2c0I2c0I2c0', packed)
  return packed, id, name, amt, cur, v >= 0 and v or nil, pe >= 0 and pe or nil, pd >= 0 and pd or nil,
    ps > 0 and ps or nil, c > 0 and c or nil
end
local pfx = prefix_of(meta)
local bucket = format('%d', tonumber(ARGV[2]) % nb)
local utc_day = floor(now / DAY_MS)

-- 1. Replay: a record of (user, key) from today or yesterday (UTC) answers unchanged.
-- Record = fingerprint(8) .. spin id(16) .. prize index(u16) .. spins left(u32)
-- [.. the prize code, for a win of a code prize].
local idem_key = format('%si:%d:%s', pfx, utc_day, bucket)
local rec_key = idem_key
local rec = redis.call('HGET', rec_key, ARGV[3])
if not rec then
  rec_key = format('%si:%d:%s', pfx, utc_day - 1, bucket)
  rec = redis.call('HGET', rec_key, ARGV[3])
end
if rec then
  if string.sub(rec, 1, 8) ~= ARGV[4] then
    return {'key_reused'}
  end
  local idx, left = unpack_bytes('>HI4', rec, 25)
  local packed, id = entry(idx)
  -- Bounded unless its stock says unlimited now (a retired or missing entry
  -- counts as bounded: the safe side).
  local bounded = redis.call('HGET', KEYS[2], id) ~= '-1'
  if bounded and ARGV[10] == '1' then
    redis.call('HSET', rec_key, ARGV[3], rec)
  end
  return 'rp' .. string.sub(rec, 9, 24) .. struct.pack('>I4BB', left, bounded and 1 or 0, 0) .. packed
    .. string.sub(rec, 31)
end

-- Redis state known to hold every settled draw (see the header).
if tonumber(m[4]) ~= redis.call('LASTSAVE') then
  return {'recovering'}
end

-- 2. The campaign is open.
if now < start then
  return {'not_started'}
end
if now >= stop then
  return {'ended'}
end
if paused == 1 then
  return {'paused'}
end

-- 3. The user's quotas, then (with earned spins) the spins they have.
local user_key = pfx .. 'u:' .. bucket
local today = day_index(KEYS[4], now_s)
local total, day_count, earned = read_user(user_key, ARGV[1], today)
if total >= limit then
  return {'quota_exhausted'}
end
if daily_limit > 0 and day_count >= daily_limit then
  local next_day = redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. now_s, '+inf', 'LIMIT', 0, 1)[1]
  if next_day then
    return {'daily_quota_exhausted', tonumber(next_day) - now}
  end
  return {'quota_exhausted'}
end
local eod = eod_flag == 1
local free_left, earned_left
if free >= 0 then
  free_left, earned_left = balance(free, eod, today, total, earned)
  if free_left + earned_left == 0 then
    return {'no_spins_left'}
  end
end

-- 4. The budget must pay for the fallback (values in ten-thousandths, meta `bud`
-- the budget or -1, `bs` what was awarded).
-- Read only with a budget (or, below, to count a prize's value).
local spent, budget_left = nil, 0
if budget >= 0 then
  spent = tonumber(m[5] or '0') or 0
  -- What the budget has left (a budget set below what was awarded has none).
  budget_left = math.max(0, budget - spent)
  if fallback_value > budget_left then
    return {'budget_exhausted'}
  end
end

-- Whether the next unit of a paced prize is released by now: awarded <
-- released(now) (src/draw/release.rs): per day, pd * (today + 1); on a
-- schedule (ps), the units of its last instant at or before now; even (pe),
-- unit a + 1 is out once floor(a * window / S) <= now - start, i.e.
-- a * window < (now - start + 1) * S, S the configured stock or, for a code
-- prize (c), the codes loaded.
local function released(id, pe, pd, ps, c)
  local a = tonumber(redis.call('HGET', KEYS[3], id) or '0')
  if pd then
    return a < pd * (today + 1)
  end
  if ps then
    local by_now = redis.call('ZREVRANGEBYSCORE', pfx .. 'rel:' .. id, now_s, '-inf', 'LIMIT', 0, 1)[1]
    return by_now ~= nil and a < tonumber(by_now)
  end
  local S = pe
  if c then
    S = tonumber(redis.call('HGET', pfx .. 'initial', id) or '0')
  end
  -- x * y < u * v, exact for x, u < 2^40 and y, v < 2^35 (products reach
  -- 2^75, past a double's 2^53): each product as two base-2^40 digits.
  local function product(x, y)
    local xh, xl = floor(x / 1048576), x % 1048576
    local yh, yl = floor(y / 1048576), y % 1048576
    local mid = xh * yl + xl * yh
    local lo = xl * yl + (mid % 1048576) * 1048576
    return xh * yh + floor(mid / 1048576) + floor(lo / 1099511627776), lo % 1099511627776
  end
  local h1, l1 = product(a, stop - start)
  local h2, l2 = product(S, now - start + 1)
  return h1 < h2 or (h1 == h2 and l1 < l2)
end

-- 5. Choose: r = R mod W; walk the prize table adding weights; the first prize
-- whose running sum exceeds r wins. A prize that cannot be awarded now (no
-- stock left, its next unit not released yet, its value above the budget
-- left) gives its share to the fallback, so the odds of the others never rise.
-- A code prize's stock mirrors its pool (codes.lua keeps them equal); the pool
-- is checked too, so that a win always has a code to hand out.
-- The first entry whose running sum exceeds r: a binary search over the sums
-- (`ws`) finds the one the walk would (sums never decrease).
local r = math.fmod(tonumber(ARGV[5]), tw)
local idx = fb
if ws then
  local lo, hi = 1, #ws / 8
  if hi > 0 and r < unpack_bytes('>d', ws, 8 * hi - 7) then
    while lo < hi do
      local mid = floor((lo + hi) / 2)
      if r < unpack_bytes('>d', ws, 8 * mid - 7) then
        hi = mid
      else
        lo = mid + 1
      end
    end
    idx = lo
  end
else
  local acc = 0
  for i = 1, #json_tbl do
    acc = acc + json_tbl[i].w
    if r < acc then
      idx = i
      break
    end
  end
end
local stock = -1
local packed, id, name, amt, cur, v, pe, pd, ps, c
if idx ~= fb then
  packed, id, name, amt, cur, v, pe, pd, ps, c = entry(idx)
  stock = tonumber(redis.call('HGET', KEYS[2], id) or '0')
  if stock > 0 and c and redis.call('SCARD', pfx .. 'codes:' .. id) == 0 then
    stock = 0
  end
  if stock == 0 or (budget >= 0 and (v or 0) > budget_left)
      or ((pe or pd or ps) and not released(id, pe, pd, ps, c)) then
    idx = fb
    stock = -1
  end
end
if idx == fb then
  -- The fallback's entry came with the config (`pfb`).
  packed, id, name, amt, cur, v, pe, pd, ps, c = entry(fb, m[6])
end

-- 6. Take the unit (and a code: SPOP picks one at random) and count its value
-- (saturating at 2^53, past any budget). stock > 0 here for a bounded prize,
-- so it never goes below zero.
local code
if stock > 0 then
  redis.call('HINCRBY', KEYS[2], id, '-1')
  if c then
    code = redis.call('SPOP', pfx .. 'codes:' .. id)
    redis.call('SADD', pfx .. 'codes-awarded', code)
  end
end
redis.call('HINCRBY', KEYS[3], id, '1')
if v then
  spent = spent or tonumber(m[5] or '0') or 0
  redis.call('HSET', meta, 'bs', format('%d', math.min(spent + v, 9007199254740992)))
end

-- 7. The settlement outbox. A draw that took a bounded prize's last unit
-- (its stock 1 -> 0; a code prize's stock mirrors its pool) says so with
-- `last`: the ledger announces `prize.exhausted` from it (src/outbox).
local last = stock == 1
if code or last then
  local f = {'type', 'spin', 'spin', ARGV[7], 'user', ARGV[1], 'prize', id,
    'amount', amt, 'currency', cur, 'r', ARGV[5], 't', now_s,
    'ver', m[1], 'key', ARGV[9], 'ctx', ARGV[8]}
  if code then
    f[#f + 1] = 'code'
    f[#f + 1] = code
  end
  if last then
    f[#f + 1] = 'last'
    f[#f + 1] = '1'
  end
  redis.call('XADD', KEYS[5], '*', unpack(f))
else
  -- The common draw, without building a table.
  redis.call('XADD', KEYS[5], '*',
    'type', 'spin', 'spin', ARGV[7], 'user', ARGV[1], 'prize', id,
    'amount', amt, 'currency', cur, 'r', ARGV[5], 't', now_s,
    'ver', m[1], 'key', ARGV[9], 'ctx', ARGV[8])
end

-- 8. Count the spin, remember the answer, reply.
local left = spins_left(limit, daily_limit, total + 1, day_count + 1)
if free_left then
  spend(eod, free_left, earned_left, earned)
  left = math.min(left, free_left + earned_left - 1)
end
write_user(user_key, ARGV[1], total + 1, day_count + 1, today, earned)
redis.call('HSET', idem_key, ARGV[3], ARGV[4] .. ARGV[6] .. struct.pack('>HI4', idx, left) .. (code or ''))
redis.call('EXPIREAT', idem_key, format('%d', (utc_day + 2) * 86400 + RECORD_TTL_SLACK_S))
return 'ok' .. ARGV[6] .. struct.pack('>I4BB', left, stock > 0 and 1 or 0, last and 1 or 0) .. packed
  .. (code or '')
