-- wrk script for bench/spin.sh: POST a spin per request, as a random user from a
-- token file (args[1]), with a fresh Idempotency-Key each time.
local tokens = {}
local prefix = ""
local n = 0
-- A global: setup() (in wrk's main Lua state) numbers each thread with
-- thread:set, which sets the thread's global. A local here would shadow it, every
-- thread would seed the same sequence, and each spin of one thread would replay
-- the same spin (same token, same key) of the other.
thread_no = 0

function setup(thread)
  thread_no = thread_no + 1
  thread:set("thread_no", thread_no)
end

function init(args)
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = "Bearer " .. line
  end
  math.randomseed(os.time() * 1000 + (thread_no or 0))
  prefix = "b" .. tostring(thread_no) .. "-" .. tostring(math.random(1, 1000000000)) .. "-"
end

function request()
  n = n + 1
  return wrk.format("POST", wrk.path, {
    ["Authorization"] = tokens[math.random(#tokens)],
    ["Idempotency-Key"] = prefix .. n,
  }, nil)
end

function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("WRK requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, errors))
end
