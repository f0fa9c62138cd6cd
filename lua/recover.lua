-- recover.lua: rebuilding a campaign's Redis state from the ledger after Redis
-- lost writes (a crash inside the AOF fsync window, a failover to a replica that
-- was behind). src/recover/mod.rs drives it; docs/reliability.md ("Redis crash recovery") explains it.
--
-- A campaign's `epoch` (a field of pw:{C}:meta) is the LASTSAVE value of the
-- Redis process whose state is known to hold every settled draw. LASTSAVE is set
-- when the process starts and, as the project runs Redis (save "", AOF), changes
-- only when it restarts or a replica takes over: exactly when writes may have
-- been lost. spin.lua draws only while the two match; 'certify' makes them match.
-- LASTSAVE counts whole seconds, so two processes started within the same second
-- share it: 'certify' waits until this process has lived past the second it
-- started in. Then a later process (started after the certify) has a later
-- LASTSAVE, as long as the host's clock does not step back.
--
-- KEYS[1] meta  KEYS[2] stock  KEYS[3] awarded  KEYS[4] initial  KEYS[5] results
-- ARGV[1] the operation:
--   'state'    → {epoch or '', LASTSAVE, the stream's last generated id or '',
--              1 if the campaign exists else 0}
--   'pause'    clears the epoch: new draws wait for 'certify' (an operator's
--              `prizewheel recover`). → {'paused'}
--   'counters' then groups of (bucket key, user, total, day count, day index,
--              earned state or ''): sets a user's state to the ledger's, unless
--              Redis counts more spins (never lowered). → {'counters', n set}
--   'grants'   then groups of (grant records key, grant id, record): restores a
--              grant record the ledger proves, or marks one revoked (a record
--              already revoked is kept), and counts either in meta `gv` / `rv`
--              as grant.lua and revoke.lua do. → {'grants', n set}
--   'codes'    then pairs (prize id, code) of codes the ledger awarded in draws
--              Redis forgot: each leaves the prize's pool (pw:{C}:codes:<prize>)
--              and joins pw:{C}:codes-awarded, so no win hands it out again and
--              no upload loads it again ('certify' then brings the stock to the
--              pool). → {'codes', n removed from a pool}
--   'records'  then groups of (record key, field, record, expire at): restores
--              idempotency records the ledger proves, never replacing one.
--              → {'records', n restored}
--   'certify'  ARGV[2] the LASTSAVE the recovery started under, ARGV[3] the
--              ledger's last stream id or '', ARGV[4] the value the ledger's
--              rewards add up to (ten-thousandths, at most 2^53), then pairs
--              (prize id, units the ledger holds): raises awarded to the
--              ledger, lowers stock to max(0, configured - awarded), raises
--              the value awarded (meta `bs`, the budget's) to the ledger's, moves the stream's last id past the
--              ledger's (new draws must sort after every settled one) and sets
--              the epoch. → {'certified', units raised, stock lowered}, or
--              {'restarted'} when Redis restarted since the recovery began, or
--              {'too_early', µs to wait} during the process's first second.
-- Every operation is idempotent and only moves state towards the ledger: a
-- recovery that stops half-way is simply run again.

local op = ARGV[1]

-- A stream id 'ms-seq' as two numbers (both below 2^53).
local function stream_id(s)
  local ms, seq = string.match(s or '', '^(%d+)-(%d+)$')
  if not ms then
    return nil
  end
  return {tonumber(ms), tonumber(seq)}
end

local function last_generated(key)
  local ok, info = pcall(redis.call, 'XINFO', 'STREAM', key)
  if not ok then
    return ''
  end
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      return info[i + 1]
    end
  end
  return ''
end

if op == 'state' then
  return {redis.call('HGET', KEYS[1], 'epoch') or '', redis.call('LASTSAVE'),
    last_generated(KEYS[5]), redis.call('EXISTS', KEYS[1])}
end

if op == 'pause' then
  redis.call('HDEL', KEYS[1], 'epoch')
  return {'paused'}
end

if op == 'counters' then
  local set = 0
  for i = 2, #ARGV, 6 do
    local key, user = ARGV[i], ARGV[i + 1]
    local total = tonumber(ARGV[i + 2])
    local current = redis.call('HGET', key, user) or '0'
    local packed = tonumber(string.match(current, '^(%d+)') or '0')
    local value = pack_counters(total, tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]))
    if ARGV[i + 5] ~= '' then
      value = value .. ':' .. ARGV[i + 5]
    end
    if math.floor(packed / COUNT_RADIX) <= total and current ~= value then
      redis.call('HSET', key, user, value)
      set = set + 1
    end
  end
  return {'counters', set}
end

if op == 'grants' then
  local set = 0
  for i = 2, #ARGV, 3 do
    local current = redis.call('HGET', ARGV[i], ARGV[i + 1])
    -- Byte 19 of a record is its state: 0 granted, 1 revoked (grant.lua).
    local revoked = string.byte(ARGV[i + 2], 19) == 1
    if not current or (string.byte(current, 19) == 0 and revoked) then
      redis.call('HSET', ARGV[i], ARGV[i + 1], ARGV[i + 2])
      if not current then
        redis.call('HINCRBY', KEYS[1], 'gv', 1)
      end
      if revoked then
        redis.call('HINCRBY', KEYS[1], 'rv', 1)
      end
      set = set + 1
    end
  end
  return {'grants', set}
end

if op == 'codes' then
  local pfx = string.sub(KEYS[1], 1, -5)
  local removed = 0
  for i = 2, #ARGV, 2 do
    removed = removed + redis.call('SREM', pfx .. 'codes:' .. ARGV[i], ARGV[i + 1])
    redis.call('SADD', pfx .. 'codes-awarded', ARGV[i + 1])
  end
  return {'codes', removed}
end

if op == 'records' then
  local restored = 0
  for i = 2, #ARGV, 4 do
    restored = restored + redis.call('HSETNX', ARGV[i], ARGV[i + 1], ARGV[i + 2])
    redis.call('EXPIREAT', ARGV[i], ARGV[i + 3])
  end
  return {'records', restored}
end

if op == 'certify' then
  local lastsave = redis.call('LASTSAVE')
  if tonumber(ARGV[2]) ~= lastsave then
    return {'restarted'}
  end
  local now = redis.call('TIME')
  if tonumber(now[1]) <= lastsave then
    return {'too_early', 1000000 - tonumber(now[2])}
  end
  local raised, lowered = 0, 0
  local spent = tonumber(ARGV[4])
  if spent > tonumber(redis.call('HGET', KEYS[1], 'bs') or '0') then
    redis.call('HSET', KEYS[1], 'bs', ARGV[4])
  end
  for i = 5, #ARGV, 2 do
    local id, settled = ARGV[i], tonumber(ARGV[i + 1])
    local awarded = tonumber(redis.call('HGET', KEYS[3], id) or '0')
    if settled > awarded then
      raised = raised + settled - awarded
      awarded = settled
      redis.call('HSET', KEYS[3], id, awarded)
    end
    local stock = tonumber(redis.call('HGET', KEYS[2], id) or '-1')
    local configured = tonumber(redis.call('HGET', KEYS[4], id) or '-1')
    if stock > 0 and configured >= 0 then
      local left = math.max(0, configured - awarded)
      if left < stock then
        lowered = lowered + stock - left
        redis.call('HSET', KEYS[2], id, left)
      end
    end
  end
  local ledger_last = stream_id(ARGV[3])
  local here = stream_id(last_generated(KEYS[5]))
  if ledger_last and here and (ledger_last[1] > here[1]
      or (ledger_last[1] == here[1] and ledger_last[2] > here[2])) then
    redis.call('XSETID', KEYS[5], ARGV[3])
  end
  redis.call('HSET', KEYS[1], 'epoch', lastsave)
  return {'certified', raised, lowered}
end

return redis.error_reply('recover.lua: unknown operation ' .. tostring(op))
