#!/usr/bin/env bash
# bench/spin.sh: HTTP spins per second against the same draw script driven
# straight at Redis by redis-benchmark, at the same concurrency, in one run.
#
#   bash bench/spin.sh            # CONCURRENCY=50 DURATION=15 by default
#
# Both sides use a fresh Redis with the project's settings (port 6392, AOF
# everysec, noeviction), the same campaign and ~100,000 distinct users; every
# request draws (no replays, no quota refusals). The machine is shared and noisy:
# read the ratio, not the absolute numbers. Target: ratio >= 0.6.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../scripts/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/services.sh"
cd "$PW_ROOT"

conc="${CONCURRENCY:-50}"
duration="${DURATION:-15}"
port="${PW_BENCH_REDIS_PORT:-6392}"
listen="127.0.0.1:${PW_BENCH_HTTP_PORT:-8099}"
users=100000
work="$PW_ROOT/target/bench"
mkdir -p "$work"

pw_ensure_packages
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
pw_start_postgres
pw_stop_redis "$port" 2>/dev/null || true
rm -rf "$work/redis"
pw_start_redis "$port" "$work/redis"
pw_create_database prizewheel_bench
trap 'kill "${server_pid:-0}" 2>/dev/null || true; pw_stop_redis "$port" || true' EXIT

cargo build --release --locked -q
bin="$PW_ROOT/target/release/prizewheel"
export REDIS_URL="redis://127.0.0.1:$port"
export DATABASE_URL="postgres://postgres@127.0.0.1:$PW_PG_PORT/prizewheel_bench"
export PRIZEWHEEL_JWT_SECRET="bench-secret-bench-secret-bench-secret"
export PRIZEWHEEL_LISTEN="$listen"
export PRIZEWHEEL__LOG__FILTER=warn
# The spin path alone: settlement would compete for the same two cores.
export PRIZEWHEEL__SETTLE__ENABLED=false

# A campaign open now, no quota in the way, one bounded prize and a fallback.
campaign="$work/bench.yaml"
cat >"$campaign" <<YAML
id: bench
name: Bench
starts_at: $(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)
ends_at: $(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
expected_users: 1000000
limits: { spins_per_user: 1000000 }
fallback: none
prizes:
  - { id: phone, name: Phone, weight: 1, stock: 1000, value: { amount: "79900.00", currency: INR } }
  - { id: coupon, name: Coupon, weight: 2000, stock: 1000000, value: { amount: "100.00", currency: INR } }
  - { id: none, name: Better luck, weight: 7999, stock: unlimited, value: { amount: "0", currency: INR } }
YAML
"$bin" migrate >/dev/null
"$bin" campaign apply "$campaign" --by bench >/dev/null

# 1. The script alone: redis-benchmark, no pipelining, random users and keys.
sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat lua/counters.lua lua/spin.lua)")
requests=$((conc * 4000))
baseline=$(redis-benchmark -p "$port" -c "$conc" -n "$requests" -r "$users" --csv \
    EVALSHA "$sha" 5 'pw:{bench}:meta' 'pw:{bench}:stock' 'pw:{bench}:awarded' 'pw:{bench}:days' 'pw:{bench}:results' \
    'u-__rand_int__' '__rand_int__' 'r__rand_int__' 'fpfpfpfp' '__rand_int__' '0123456789abcdef' \
    'bench-spin-id' '' 'k__rand_int__' | tail -1)
script_rps=$(echo "$baseline" | cut -d, -f2 | tr -d '"')

# 2. Over HTTP: the service, wrk at the same concurrency, tokens of $users users.
"$bin" token --sub u --count "$users" >"$work/tokens.txt"
"$bin" serve &
server_pid=$!
for _ in $(seq 1 100); do curl -sf "http://$listen/healthz" >/dev/null && break; sleep 0.1; done
wrk -t 2 -c "$conc" -d 3s -s bench/wrk-spin.lua "http://$listen/v1/campaigns/bench/spins" -- "$work/tokens.txt" >/dev/null
http=$(wrk -t 2 -c "$conc" -d "${duration}s" -s bench/wrk-spin.lua "http://$listen/v1/campaigns/bench/spins" -- "$work/tokens.txt" | grep '^WRK')
http_rps=$(echo "$http" | sed -E 's/.* rps=([0-9.]+).*/\1/')

usec=$(redis-cli -p "$port" INFO commandstats | grep '^cmdstat_evalsha' | sed -E 's/.*usec_per_call=([0-9.]+).*/\1/')
echo "concurrency:            $conc"
echo "script via redis-bench: $script_rps spins/s  ($baseline)"
echo "HTTP via wrk:           $http_rps spins/s  ($http)"
echo "spin.lua in Redis:      $usec us per call (all calls of this run)"
awk -v h="$http_rps" -v s="$script_rps" 'BEGIN { printf "ratio HTTP/script:      %.2f  (target >= 0.60)\n", h / s }'
