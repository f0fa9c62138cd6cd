-- bench/minimal-draw.lua: the baseline of "spin.lua <= 1.0x a minimal draw in
-- Redis CPU per call" (bench/run.sh, issue 22): the least a draw with a stock
-- bound, a per-user limit and an idempotency record must do, written plainly.
-- GET the idempotency record, HGET the limit and the user's count, HGETALL
-- stock and weights, pick, three HINCRBY, XADD of 5 fields, SET EX.
--
-- KEYS[1] config hash (field `lim`)   KEYS[2] per-user counts (hash)
-- KEYS[3] stock per prize (hash, -1 unlimited)   KEYS[4] weight per prize (hash)
-- KEYS[5] results stream   KEYS[6] the request's idempotency record (string)
-- ARGV[1] user id   ARGV[2] R, an integer   ARGV[3] idempotency key
-- Returns the prize id, 'quota', or the recorded prize id on a replay.

local rec = redis.call('GET', KEYS[6])
if rec then
  return rec
end
local limit = tonumber(redis.call('HGET', KEYS[1], 'lim'))
local count = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if count >= limit then
  return 'quota'
end
local stock = redis.call('HGETALL', KEYS[3])
local weights = redis.call('HGETALL', KEYS[4])
local total, left = 0, {}
for i = 1, #weights, 2 do
  total = total + tonumber(weights[i + 1])
end
for i = 1, #stock, 2 do
  left[stock[i]] = tonumber(stock[i + 1])
end
local r = tonumber(ARGV[2]) % total
local prize, acc = weights[#weights - 1], 0
for i = 1, #weights, 2 do
  acc = acc + tonumber(weights[i + 1])
  if r < acc then
    if left[weights[i]] ~= 0 then
      prize = weights[i]
    end
    break
  end
end
redis.call('HINCRBY', KEYS[3], prize, left[prize] == -1 and 0 or -1)
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('HINCRBY', KEYS[1], 'awarded:' .. prize, 1)
redis.call('XADD', KEYS[5], '*', 'user', ARGV[1], 'prize', prize, 'r', ARGV[2], 'key', ARGV[3],
  't', redis.call('TIME')[1])
redis.call('SET', KEYS[6], prize, 'EX', 172800)
return prize
