-- wrk script for bench/run.sh: grants from the order service, with a fresh
-- grant id on every request (and on every item of a batch).
--
--   wrk ... -s bench/wrk-grant.lua URL -- TOKEN_FILE USERS [BATCH]
--
-- TOKEN_FILE: the order service's token (role grants), first line. USERS: the
-- shoppers are numeric ids 900000000 + 7 i, i < USERS, drawn at random. BATCH:
-- 0 or absent, POST URL (…/grants) with the grant id as Idempotency-Key;
-- N, POST URL (…/grants/batch) with N grants per request, each item's answer
-- counted (an item can fail alone while the batch answers 200).
-- The WRK summary line adds ok (grants answered 200) and grants_per_s.
local token = ""
local users = 1
local prefix = ""
local n = 0
local threads = {}
-- Globals, read across Lua states: thread_no by thread:set in setup() (see
-- bench/wrk-spin.lua), batch and ok_items by thread:get in done().
thread_no = 0
batch = 0
ok_items = 0

function setup(thread)
  thread_no = thread_no + 1
  thread:set("thread_no", thread_no)
  threads[#threads + 1] = thread
end

function init(args)
  for line in io.lines(args[1]) do
    token = "Bearer " .. line
    break
  end
  users = tonumber(args[2])
  batch = tonumber(args[3] or "0")
  math.randomseed(os.time() * 1000 + (thread_no or 0))
  prefix = "g" .. tostring(thread_no) .. "-" .. tostring(math.random(1, 1000000000)) .. "-"
  if batch > 0 then
    -- Only batches have their answers read: wrk parses no body otherwise.
    response = function(status, headers, body)
      if status == 200 then
        local _, ok = string.gsub(body, '"status":200', "")
        ok_items = ok_items + ok
      end
    end
  end
end

local function user()
  return tostring(900000000 + 7 * math.random(0, users - 1))
end

local function item(id)
  return '{"grant_id":"' .. id .. '","user_id":"' .. user()
    .. '","spins":1,"reason":{"order_id":"' .. id .. '"}}'
end

function request()
  n = n + 1
  local id = prefix .. n
  if batch == 0 then
    return wrk.format("POST", wrk.path, {
      ["Authorization"] = token,
      ["Idempotency-Key"] = id,
      ["Content-Type"] = "application/json",
    }, '{"user_id":"' .. user() .. '","spins":1,"reason":{"order_id":"' .. id .. '"}}')
  end
  local items = {}
  for i = 1, batch do
    items[i] = item(id .. "-" .. i)
  end
  return wrk.format("POST", wrk.path, {
    ["Authorization"] = token,
    ["Content-Type"] = "application/json",
  }, '{"grants":[' .. table.concat(items, ",") .. ']}')
end

function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  local seconds = summary.duration / 1e6
  local ok = summary.requests - errors
  if threads[1]:get("batch") > 0 then
    ok = 0
    for _, t in ipairs(threads) do
      ok = ok + t:get("ok_items")
    end
  end
  io.write(string.format("WRK requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f errors=%d ok=%d grants_per_s=%.1f\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, errors, ok, ok / seconds))
end
