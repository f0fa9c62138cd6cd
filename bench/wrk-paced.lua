-- wrk script: bench/wrk-spin.lua with each connection pausing args[2] ms after
-- every answer, so CONNECTIONS connections offer a set rate instead of all they
-- can. bench/run.sh uses it for the latency at 70 % of capacity.
dofile("bench/wrk-spin.lua")

local pause_ms = 0
local spin_init = init

function init(args)
  spin_init(args)
  pause_ms = tonumber(args[2])
end

function delay()
  return pause_ms
end
