-- codes.lua: the pools of prize codes (`stock: codes`), one batch of codes per call.
--
-- KEYS[1] pw:{C}:meta  KEYS[2] pw:{C}:stock  KEYS[3] pw:{C}:initial
-- Derived (same {C} hash tag):
--   pw:{C}:codes:<prize>     set: the prize's pool, codes loaded and not yet
--                            awarded (spin.lua SPOPs one per win) or withdrawn
--   pw:{C}:codes-awarded     set: every code handed out (spin.lua SADDs it)
--   pw:{C}:codes-withdrawn   set: every code withdrawn from a pool
--   pw:{C}:codes-stats       hash: '<prize>:loaded' → codes ever added to its
--                            pool, '<prize>:withdrawn' → codes withdrawn from it
-- ARGV[1] the operation, ARGV[2] the prize id, then the codes (the caller has
-- checked their syntax).
--   'add'      adds each code to the prize's pool unless the campaign has
--              seen it: in a pool (this prize's or another's), awarded or
--              withdrawn. A code prize's stock and configured units (pw:{C}:initial)
--              grow by the codes added, so stock = the pool's size.
--              → {'added', added, duplicates, available}
--   'withdraw' takes each code out of the prize's pool for good.
--              → {'withdrawn', withdrawn, already awarded, unknown, available}
--   'count'    → {'count', loaded, awarded, withdrawn, available} of the prize
--              (awarded = loaded − withdrawn − available)
-- or {'no_campaign'} | {'no_prize'} (not in the live table) | {'not_code_prize'}
-- (its stock is not `codes`; 'withdraw' and 'count' also serve a prize that was one).

local meta = KEYS[1]
local tbl_json = redis.call('HGET', meta, 'tbl')
if not tbl_json then
  return {'no_campaign'}
end
local op, id = ARGV[1], ARGV[2]
local pfx = string.sub(meta, 1, -5)
local pool = pfx .. 'codes:' .. id
local awarded_set, withdrawn_set = pfx .. 'codes-awarded', pfx .. 'codes-withdrawn'
local stats = pfx .. 'codes-stats'

local entry
local pools = {}
for _, e in ipairs(cjson.decode(tbl_json)) do
  if e.id == id then
    entry = e
  end
  if e.id ~= id and redis.call('EXISTS', pfx .. 'codes:' .. e.id) == 1 then
    pools[#pools + 1] = pfx .. 'codes:' .. e.id
  end
end
if not entry then
  return {'no_prize'}
end
local is_code_prize = entry.c ~= nil
if not is_code_prize and (op == 'add' or redis.call('HEXISTS', stats, id .. ':loaded') == 0) then
  return {'not_code_prize'}
end

-- The stock and configured units of a code prize follow its pool.
local function follow(delta)
  if is_code_prize and delta ~= 0 then
    redis.call('HINCRBY', KEYS[2], id, delta)
    redis.call('HINCRBY', KEYS[3], id, delta)
  end
end

local function seen(code)
  if redis.call('SISMEMBER', awarded_set, code) == 1 or redis.call('SISMEMBER', withdrawn_set, code) == 1 then
    return true
  end
  for _, other in ipairs(pools) do
    if redis.call('SISMEMBER', other, code) == 1 then
      return true
    end
  end
  return false
end

if op == 'add' then
  local added, dups = 0, 0
  for i = 3, #ARGV do
    local code = ARGV[i]
    if not seen(code) and redis.call('SADD', pool, code) == 1 then
      added = added + 1
    else
      dups = dups + 1
    end
  end
  redis.call('HINCRBY', stats, id .. ':loaded', added)
  follow(added)
  return {'added', added, dups, redis.call('SCARD', pool)}
end

if op == 'withdraw' then
  local withdrawn, given, unknown = 0, 0, 0
  for i = 3, #ARGV do
    local code = ARGV[i]
    if redis.call('SREM', pool, code) == 1 then
      redis.call('SADD', withdrawn_set, code)
      withdrawn = withdrawn + 1
    elseif redis.call('SISMEMBER', awarded_set, code) == 1 then
      given = given + 1
    else
      unknown = unknown + 1
    end
  end
  follow(-withdrawn)
  redis.call('HINCRBY', stats, id .. ':withdrawn', withdrawn)
  return {'withdrawn', withdrawn, given, unknown, redis.call('SCARD', pool)}
end

if op == 'count' then
  local loaded = tonumber(redis.call('HGET', stats, id .. ':loaded') or '0')
  local withdrawn = tonumber(redis.call('HGET', stats, id .. ':withdrawn') or '0')
  local available = redis.call('SCARD', pool)
  return {'count', loaded, loaded - withdrawn - available, withdrawn, available}
end

return redis.error_reply('codes.lua: unknown operation ' .. tostring(op))
