#!/usr/bin/env bash
# bench/run.sh: the benchmark table, every figure a ratio against a baseline
# measured in the same run (the machine is shared and noisy: read the ratios).
#
#   bash bench/run.sh            # CONCURRENCY=50 DURATION=15 USERS=1000000
#   PW_BENCH_BIN=/tmp/prizewheel-before bash bench/run.sh   # another build of serve
#
# Builds in release mode, starts a fresh Redis with the project's settings (port
# 6392, AOF everysec, noeviction) and PostgreSQL, then measures:
#  1. the spin path: HTTP spins/s and latency (wrk, CONCURRENCY connections,
#     100,000 users, a fresh key per request) against lua/spin.lua driven straight
#     at Redis by redis-benchmark (EVALSHA, same concurrency, no pipelining), and
#     the latency at 70 % of the HTTP capacity (paced wrk connections);
#  2. the rejection path: 429s/s from the per-user limiter and from the quota
#     cache against GET /healthz of the same server;
#  3. the PostgreSQL design (bench/pg-spin.sh, pgbench, same concurrency);
#  4. Redis memory per user and per idempotency record, USERS users;
#  5. the service's resident memory under the spin load.
# wrk, not k6, drives HTTP: it is C and leaves most of a core to the server.
# Settlement is off in the server: it would compete for the same two cores.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../scripts/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/services.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PW_ROOT"

conc="${CONCURRENCY:-50}"
duration="${DURATION:-15}"
mem_users="${USERS:-1000000}"
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
trap 'stop_server; pw_stop_redis "$port" || true' EXIT

pw_log "building (release)"
cargo build --release --locked -q --bin prizewheel --example redis_footprint
bench_env "$port" "prizewheel_bench" "$listen"
# PW_BENCH_BIN=path measures another build of the service (e.g. the commit
# before a change, for a before/after in one sitting); the rest is this tree's.
bin="${PW_BENCH_BIN:-$bin}"
# All load comes from one address: the per-IP layer would be the only thing measured.
export PRIZEWHEEL__ADMISSION__PER_IP__ENABLED=false

# campaign ID SPINS_PER_USER EXPECTED_USERS (bench/lib.sh).
campaign() { bench_campaign "$work" "$1" "$2" "$3" 1000000 bench; }
"$bin" migrate >/dev/null
campaign bench 1000000 1000000
campaign quota 1 1000
campaign memory 1 "$mem_users"

# wrk_spin PATH TOKENS SECONDS: the WRK summary line of bench/wrk-spin.lua.
wrk_spin() {
    wrk -t 2 -c "$conc" -d "${3}s" -s bench/wrk-spin.lua "http://$listen$1" -- "$2" | grep '^WRK'
}
# CPU seconds (user + system) used so far by process $1, and by the Redis server.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"; }
redis_cpu() { redis-cli -p "$port" INFO cpu | awk -F: '/^used_cpu_(sys|user):/ { t += $2 } END { printf "%.3f", t }'; }

# 1. The script alone: redis-benchmark, no pipelining, random users and keys.
pw_log "1/5 spin.lua straight at Redis (redis-benchmark)"
sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat lua/counters.lua lua/spin.lua)")
baseline=$(redis-benchmark -p "$port" -c "$conc" -n $((conc * 4000)) -r "$users" --csv \
    EVALSHA "$sha" 5 'pw:{bench}:meta' 'pw:{bench}:stock' 'pw:{bench}:awarded' 'pw:{bench}:days' 'pw:{bench}:results' \
    'u-__rand_int__' '__rand_int__' 'r__rand_int__' 'fpfpfpfp' '__rand_int__' '0123456789abcdef' \
    'bench-spin-id' '' 'k__rand_int__' | tail -1 | tr -d '"')
script_rps=$(cut -d, -f2 <<<"$baseline")
script_p50=$(cut -d, -f5 <<<"$baseline")
script_p99=$(cut -d, -f7 <<<"$baseline")
redis-cli -p "$port" CONFIG RESETSTAT >/dev/null

# 2. Over HTTP, with the service's resident memory sampled.
pw_log "2/5 spins over HTTP (wrk)"
"$bin" token --sub u --count "$users" >"$work/tokens.txt"
"$bin" token --sub hammer >"$work/one-token.txt"
"$bin" token --sub spent >"$work/spent-token.txt"
start_server
wrk_spin /v1/campaigns/bench/spins "$work/tokens.txt" 3 >/dev/null
(while kill -0 "$server_pid" 2>/dev/null; do ps -o rss= -p "$server_pid"; sleep 0.5; done >"$work/rss.txt") &
sampler=$!
cpu0=$(cpu_of "$server_pid")
rcpu0=$(redis_cpu)
http=$(wrk_spin /v1/campaigns/bench/spins "$work/tokens.txt" "$duration")
cpu1=$(cpu_of "$server_pid")
rcpu1=$(redis_cpu)
kill "$sampler" 2>/dev/null || true
per_spin_us() { awk -v a="$1" -v b="$2" -v n="$(field requests "$http")" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }'; }
service_us=$(per_spin_us "$cpu0" "$cpu1")
redis_us=$(per_spin_us "$rcpu0" "$rcpu1")
rss_max=$(sort -n "$work/rss.txt" | tail -1)
usec=$(redis-cli -p "$port" INFO commandstats | grep '^cmdstat_evalsha' | sed -E 's/.*usec_per_call=([0-9.]+).*/\1/')

# The latency at 70 % of that capacity: PACED_CONNECTIONS connections, each
# pausing between requests (bench/wrk-paced.lua; wrk pauses in whole ms, hence
# many connections). A 5 s calibration run measures how long an answer takes at
# that load, and the pause is set so pause + answer gives the target rate.
pw_log "2/5 spins over HTTP at 70 % of that (wrk, paced)"
paced_conns="${PACED_CONNECTIONS:-200}"
target=$(awk -v r="$(field rps "$http")" 'BEGIN { printf "%.0f", 0.7 * r }')
wrk_paced() {
    wrk -t 2 -c "$paced_conns" -d "${2}s" -s bench/wrk-paced.lua \
        "http://$listen/v1/campaigns/bench/spins" -- "$work/tokens.txt" "$1" | grep '^WRK'
}
pause=$(awk -v c="$paced_conns" -v t="$target" 'BEGIN { printf "%d", c * 1000 / t }')
calibration=$(wrk_paced "$pause" 5)
pause=$(awk -v c="$paced_conns" -v t="$target" -v r="$(field rps "$calibration")" -v p="$pause" \
    'BEGIN { answer = c * 1000 / r - p; q = c * 1000 / t - answer; if (q < 1) q = 1; printf "%d", q + 0.5 }')
paced=$(wrk_paced "$pause" "$duration")

pw_log "3/5 rejections: per-user limiter, quota cache, against GET /healthz"
health_rps=$(wrk -t 2 -c "$conc" -d "${duration}s" "http://$listen/healthz" | awk '/^Requests\/sec/ { print $2 }')
cpu0=$(cpu_of "$server_pid")
limited=$(wrk_spin /v1/campaigns/bench/spins "$work/one-token.txt" "$duration")
cpu1=$(cpu_of "$server_pid")
reject_us=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$(field requests "$limited")" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')
stop_server
# The quota cache alone: a user whose one spin is spent, per-user limiter off.
PRIZEWHEEL__ADMISSION__PER_USER__ENABLED=false start_server
for k in first second; do
    curl -s -o /dev/null -X POST "http://$listen/v1/campaigns/quota/spins" \
        -H "Authorization: Bearer $(cat "$work/spent-token.txt")" -H "Idempotency-Key: $k"
done
evalsha_before=$(redis-cli -p "$port" INFO commandstats | sed -nE 's/^cmdstat_evalsha:calls=([0-9]+).*/\1/p')
cached=$(wrk_spin /v1/campaigns/quota/spins "$work/spent-token.txt" "$duration")
evalsha_after=$(redis-cli -p "$port" INFO commandstats | sed -nE 's/^cmdstat_evalsha:calls=([0-9]+).*/\1/p')
stop_server

pw_log "4/5 the PostgreSQL design (bench/pg-spin.sh)"
pg=$(CONCURRENCY="$conc" DURATION="$duration" PG_VARIANTS="stmt-lockall func-lockall" bash bench/pg-spin.sh 2>/dev/null | tail -1)
pg_stmt_rps=$(awk '/^tps/ { print $3 }' "$PW_ROOT/target/bench-pg/stmt-lockall.out")

pw_log "5/5 Redis memory: one spin each for $mem_users users"
footprint=$("$PW_ROOT/target/release/examples/redis_footprint" memory "$mem_users" | grep '^FOOTPRINT')

http_rps=$(field rps "$http")
pg_rps=$(field tps "$pg")
share() { awk -v e="$(field errors "$1")" -v n="$(field requests "$1")" 'BEGIN { printf "%.1f%%", 100 * e / n }'; }
{
    echo
    echo "prizewheel bench, $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), concurrency $conc, ${duration}s per run"
    echo
    echo "| measure | prizewheel | baseline | ratio | target |"
    echo "| --- | --- | --- | --- | --- |"
    echo "| spins/s, HTTP vs spin.lua via redis-benchmark | $http_rps | $script_rps | $(ratio "$http_rps" "$script_rps") | ≥ 0.6 |"
    echo "| spin latency p50 / p99 / p99.9 (ms), at saturation | $(field p50_ms "$http") / $(field p99_ms "$http") / $(field p999_ms "$http") | $script_p50 / $script_p99 / - | | |"
    echo "| spin latency p50 / p99 / p99.9 (ms) at $(field rps "$paced") spins/s, $(ratio "$(field rps "$paced")" "$http_rps") × capacity ($paced_conns paced connections) | $(field p50_ms "$paced") / $(field p99_ms "$paced") / $(field p999_ms "$paced") | | | p99 < 5 at 0.7 |"
    echo "| spins/s vs the PostgreSQL FOR UPDATE design, a round trip per statement | $http_rps | $pg_stmt_rps | $(ratio "$http_rps" "$pg_stmt_rps") | ≥ 30 |"
    echo "| spins/s vs the same in one plpgsql call | $http_rps | $pg_rps | $(ratio "$http_rps" "$pg_rps") | |"
    echo "| per-user limiter 429/s vs GET /healthz ($(share "$limited") refused) | $(field rps "$limited") | $health_rps | $(ratio "$(field rps "$limited")" "$health_rps") | |"
    echo "| quota cache 429/s vs GET /healthz ($(share "$cached") refused, $((evalsha_after - evalsha_before)) Redis calls) | $(field rps "$cached") | $health_rps | $(ratio "$(field rps "$cached")" "$health_rps") | |"
    echo "| Redis bytes per user ($(field users "$footprint") users) | $(field per_user "$footprint") | | | ≤ 20 |"
    echo "| Redis bytes per idempotency record | $(field per_record "$footprint") | | | ≤ 64 |"
    echo "| service RSS under spin load (MiB) | $((rss_max / 1024)) | | | |"
    echo
    echo "CPU per HTTP spin: service $service_us µs, Redis $redis_us µs (spin.lua itself: $usec µs per call); per 429 from a limiter: service $reject_us µs"
    echo "PostgreSQL: $pg"
} | tee "$work/table.md"
