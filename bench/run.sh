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
#     the latency at 70 % of the HTTP capacity (paced wrk connections); the same
#     two for a paced and budgeted campaign (the phone released per day, the
#     coupon evenly, a budget that never runs out), with spin.lua's Redis CPU
#     per call on both campaigns; spin.lua's Redis CPU per call on a 64-prize
#     wheel against the 3-prize bench campaign, and against bench/minimal-draw.lua
#     (the least a draw does, issue 22's baseline);
#  2. the rejection path: 429s/s from the per-user limiter and from the quota
#     cache against GET /healthz of the same server;
#  3. grants from the order service over HTTP (bench/wrk-grant.lua, a campaign
#     with earned_spins, a fresh grant id per grant, per-caller limiter off):
#     grants/s one per request (CONCURRENCY connections) and in batches of each
#     size in GRANT_BATCHES (default "100 1000"; GRANT_BATCH_CONNECTIONS
#     connections, default 4), each against the HTTP spins/s of 1.;
#  4. the PostgreSQL design (bench/pg-spin.sh, pgbench, same concurrency);
#  5. Redis memory, numeric user ids, a campaign with earned_spins: per user
#     and per idempotency record after one spin each for USERS users; per
#     shopper with grants and per grant record once each of them is granted a
#     spin too (13-digit order ids as grant ids); per grant record with
#     36-character UUID grant ids (USERS/10 grants, to other users);
#  6. the service's resident memory under the spin load;
#  7. prize codes (bench/codes.sh, its own Redis on port 6395): loading CODES
#     codes (default 1,000,000, 12 characters) through the CLI and over HTTP
#     against `redis-cli --pipe` of the same codes as SADDs, and Redis bytes
#     per code in a prize's pool (12 and 36 characters).
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
grant_batches="${GRANT_BATCHES:-100 1000}"
batch_conns="${GRANT_BATCH_CONNECTIONS:-4}"
uuid_grants=$((mem_users / 10 > 0 ? mem_users / 10 : 1)) # grants with UUID ids (memory)
codes_n="${CODES:-1000000}"
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
campaign() { bench_campaign "$work" "$1" "$2" "$3" 1000000 bench "${4:-}"; }
# A build from before earned spins (PW_BENCH_BIN) is measured without the grant rows.
grants=false
[[ $("$bin" token --help) == *grants* ]] && grants=true
earned=""
$grants && earned="earned_spins: { free: 1, expire: campaign_end }"
"$bin" migrate >/dev/null
campaign bench 1000000 1000000
campaign quota 1 1000
wide_campaign "$work" wide
# With earned_spins: a user without grants keeps the integer form of its state.
campaign memory 1 "$mem_users" "$earned"
# A build from before pacing (PW_BENCH_BIN) cannot apply it: measured without those rows.
paced_campaign=false
if bench_campaign "$work" paced 1000000 1000000 1000000 bench \
    'budget: { amount: "800000000000.00", currency: INR }' paced 2>/dev/null; then
    paced_campaign=true
fi
if $grants; then
    campaign grants 1000000 1000000 "$earned"
    campaign memory-uuids 1 "$uuid_grants" "$earned"
fi

# wrk_spin PATH TOKENS SECONDS: the WRK summary line of bench/wrk-spin.lua.
wrk_spin() {
    wrk -t 2 -c "$conc" -d "${3}s" -s bench/wrk-spin.lua "http://$listen$1" -- "$2" | grep '^WRK'
}
# CPU seconds (user + system) used so far by process $1, and by the Redis server.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"; }
redis_cpu() { redis-cli -p "$port" INFO cpu | awk -F: '/^used_cpu_(sys|user):/ { t += $2 } END { printf "%.3f", t }'; }

# 1. The script alone: redis-benchmark, no pipelining, random users and keys.
pw_log "1/7 spin.lua straight at Redis (redis-benchmark)"
sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat lua/counters.lua lua/spin.lua)")
baseline=$(redis-benchmark -p "$port" -c "$conc" -n $((conc * 4000)) -r "$users" --csv \
    EVALSHA "$sha" 5 'pw:{bench}:meta' 'pw:{bench}:stock' 'pw:{bench}:awarded' 'pw:{bench}:days' 'pw:{bench}:results' \
    'u-__rand_int__' '__rand_int__' 'r__rand_int__' 'fpfpfpfp' '__rand_int__' '0123456789abcdef' \
    'bench-spin-id' '' 'k__rand_int__' | tail -1 | tr -d '"')
script_rps=$(cut -d, -f2 <<<"$baseline")
script_p50=$(cut -d, -f5 <<<"$baseline")
script_p99=$(cut -d, -f7 <<<"$baseline")
# evalsha_usec: spin.lua's Redis time per call since the last RESETSTAT.
evalsha_usec() { redis-cli -p "$port" INFO commandstats | sed -nE 's/^cmdstat_evalsha:.*usec_per_call=([0-9.]+).*/\1/p'; }
# script_bench ID: spin.lua on campaign ID by redis-benchmark: sets sb_rps
# (calls/s) and sb_usec (its Redis µs per call).
script_bench() {
    redis-cli -p "$port" CONFIG RESETSTAT >/dev/null
    sb_rps=$(redis-benchmark -p "$port" -c "$conc" -n $((conc * 4000)) -r "$users" --csv \
        EVALSHA "$sha" 5 "pw:{$1}:meta" "pw:{$1}:stock" "pw:{$1}:awarded" "pw:{$1}:days" "pw:{$1}:results" \
        'u-__rand_int__' '__rand_int__' 'r__rand_int__' 'fpfpfpfp' '__rand_int__' '0123456789abcdef' \
        'bench-spin-id' '' 'k__rand_int__' | tail -1 | tr -d '"' | awk -F, '{ print $2 }')
    sb_usec=$(evalsha_usec)
}
if $paced_campaign; then
    pw_log "1/7 spin.lua straight at Redis, the plain and the paced, budgeted campaign"
    script_bench bench
    plain_usec=$sb_usec
    script_bench paced
    paced_script_rps=$sb_rps paced_script_usec=$sb_usec
fi
# The cost of a draw against the size of the wheel, and against the least a
# draw does (bench/minimal-draw.lua on hashes of its own: the 3 prizes of the
# bench campaign, stock and weights), one after the other. Its idempotency
# key takes two random numbers (10^10 keys): with one (10^5 keys for 200,000
# calls) over half its calls were replays, a GET and no draw.
pw_log "1/7 spin.lua on a 64-prize wheel, and the minimal draw"
script_bench bench
three_usec=$sb_usec
script_bench wide
wide_usec=$sb_usec
min_sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat bench/minimal-draw.lua)")
redis-cli -p "$port" HSET 'mk:{m}:cfg' lim 1000000 >/dev/null
redis-cli -p "$port" HSET 'mk:{m}:stock' phone 1000 coupon 1000000 none -1 >/dev/null
redis-cli -p "$port" HSET 'mk:{m}:w' phone 1 coupon 2000 none 7999 >/dev/null
redis-cli -p "$port" CONFIG RESETSTAT >/dev/null
redis-benchmark -p "$port" -c "$conc" -n $((conc * 4000)) -r "$users" --csv \
    EVALSHA "$min_sha" 6 'mk:{m}:cfg' 'mk:{m}:users' 'mk:{m}:stock' 'mk:{m}:w' 'mk:{m}:results' \
    'mk:{m}:i:k__rand_int__:__rand_int__' 'u-__rand_int__' '__rand_int__' 'k__rand_int__' >/dev/null
minimal_usec=$(evalsha_usec)
redis-cli -p "$port" CONFIG RESETSTAT >/dev/null

# 2. Over HTTP, with the service's resident memory sampled.
pw_log "2/7 spins over HTTP (wrk)"
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
if $paced_campaign; then
    pw_log "2/7 spins over HTTP, the paced and budgeted campaign"
    redis-cli -p "$port" CONFIG RESETSTAT >/dev/null
    pc0=$(cpu_of "$server_pid") pr0=$(redis_cpu)
    paced_http=$(wrk_spin /v1/campaigns/paced/spins "$work/tokens.txt" "$duration")
    pc1=$(cpu_of "$server_pid") pr1=$(redis_cpu)
    paced_usec=$(evalsha_usec)
    paced_cpu=$(awk -v c0="$pc0" -v c1="$pc1" -v r0="$pr0" -v r1="$pr1" -v n="$(field requests "$paced_http")" \
        'BEGIN { printf "service %.1f µs, Redis %.1f µs", (c1 - c0) * 1e6 / n, (r1 - r0) * 1e6 / n }')
fi

# The latency at 70 % of that capacity: PACED_CONNECTIONS connections, each
# pausing between requests (bench/wrk-paced.lua; wrk pauses in whole ms, hence
# many connections). A 5 s calibration run measures how long an answer takes at
# that load, and the pause is set so pause + answer gives the target rate.
pw_log "2/7 spins over HTTP at 70 % of that (wrk, paced)"
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

pw_log "3/7 rejections: per-user limiter, quota cache, against GET /healthz"
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

# Grants: the order service's one token, its per-caller limiter off (it would
# be all that is measured; it is a limit, not a cost).
if $grants; then
    pw_log "4/7 grants over HTTP (wrk): one per request, then batches of $grant_batches"
    "$bin" token --sub order-service --role grants >"$work/grants-token.txt"
    PRIZEWHEEL__ADMISSION__PER_GRANTER__ENABLED=false start_server
    # wrk_grant PATH CONNECTIONS SECONDS BATCH: the WRK line of bench/wrk-grant.lua.
    wrk_grant() {
        wrk -t 2 -c "$2" -d "${3}s" --timeout 10s -s bench/wrk-grant.lua "http://$listen$1" \
            -- "$work/grants-token.txt" "$users" "$4" | grep '^WRK'
    }
    # Grants made in Redis so far: grant.lua counts each in meta `gv`.
    grants_made() { redis-cli -p "$port" HGET 'pw:{grants}:meta' gv | sed 's/^$/0/'; }
    # grant_run PATH CONNECTIONS BATCH: the WRK line plus the service's and Redis's
    # CPU per grant, grant.lua's own time per call, and the grants Redis counted.
    grant_run() {
        local c0 r0 g0 line c1 r1 g1 ok usec
        redis-cli -p "$port" CONFIG RESETSTAT >/dev/null
        c0=$(cpu_of "$server_pid") r0=$(redis_cpu) g0=$(grants_made)
        line=$(wrk_grant "$1" "$2" "$duration" "$3")
        c1=$(cpu_of "$server_pid") r1=$(redis_cpu) g1=$(grants_made)
        ok=$(field ok "$line")
        usec=$(redis-cli -p "$port" INFO commandstats | sed -nE 's/^cmdstat_evalsha:.*usec_per_call=([0-9.]+).*/\1/p')
        awk -v l="$line" -v c0="$c0" -v c1="$c1" -v r0="$r0" -v r1="$r1" -v n="$ok" -v made=$((g1 - g0)) -v u="$usec" \
            'BEGIN { n = n > 0 ? n : 1; printf "%s service_us=%.1f redis_us=%.1f script_us=%s made=%d\n", l, (c1 - c0) * 1e6 / n, (r1 - r0) * 1e6 / n, u, made }'
    }
    wrk_grant /v1/campaigns/grants/grants "$conc" 3 0 >/dev/null
    grant_single=$(grant_run /v1/campaigns/grants/grants "$conc" 0)
    grant_batch=()
    for b in $grant_batches; do
        grant_batch+=("batch=$b $(grant_run /v1/campaigns/grants/grants/batch "$batch_conns" "$b")")
    done
    stop_server
fi

pw_log "5/7 the PostgreSQL design (bench/pg-spin.sh)"
pg=$(CONCURRENCY="$conc" DURATION="$duration" PG_VARIANTS="stmt-lockall func-lockall" bash bench/pg-spin.sh 2>/dev/null | tail -1)
pg_stmt_rps=$(awk '/^tps/ { print $3 }' "$PW_ROOT/target/bench-pg/stmt-lockall.out")

footprint_bin="$PW_ROOT/target/release/examples/redis_footprint"
if $grants; then
    pw_log "6/7 Redis memory: one spin each for $mem_users users, then one grant each; $uuid_grants grants with UUID ids"
    memory_out=$("$footprint_bin" memory "$mem_users" spins-grants)
    granted=$(grep '^GRANTED ' <<<"$memory_out")
    granted_uuids=$("$footprint_bin" memory-uuids "$uuid_grants" grant-uuids | grep '^GRANTED ')
else
    pw_log "6/7 Redis memory: one spin each for $mem_users users"
    memory_out=$("$footprint_bin" memory "$mem_users")
fi
footprint=$(grep '^FOOTPRINT ' <<<"$memory_out")

pw_log "7/7 prize codes: loading $codes_n codes (bench/codes.sh)"
codes=$(CODES="$codes_n" PW_BENCH_REDIS_PORT="${PW_BENCH_CODES_REDIS_PORT:-6395}" \
    PW_BENCH_HTTP_PORT="${PW_BENCH_CODES_HTTP_PORT:-8097}" bash bench/codes.sh 2>/dev/null | grep '^CODES ')

http_rps=$(field rps "$http")
pg_rps=$(field tps "$pg")
share() { awk -v e="$(field errors "$1")" -v n="$(field requests "$1")" 'BEGIN { printf "%.1f%%", 100 * e / n }'; }
# meets VALUE MAX: the target "≤ MAX" and whether VALUE meets it.
meets() { awk -v v="$1" -v m="$2" 'BEGIN { printf "≤ %s: %s", m, (v + 0 <= m + 0 ? "pass" : "**FAIL**") }'; }
# grant_row LABEL LINE: a grants/s row, against the HTTP spins/s.
grant_row() {
    echo "| grants/s, HTTP, $1 ($(field ok "$2") granted, $(field errors "$2") failed requests; p50 / p99 $(field p50_ms "$2") / $(field p99_ms "$2") ms per request) vs HTTP spins/s | $(field grants_per_s "$2") | $http_rps | $(ratio "$(field grants_per_s "$2")" "$http_rps") | |"
}
# grant_cpu LABEL LINE: the CPU per grant of a grants/s row.
grant_cpu() {
    echo "CPU per grant, $1: service $(field service_us "$2") µs, Redis $(field redis_us "$2") µs (grant.lua itself: $(field script_us "$2") µs per call); grants Redis counted: $(field made "$2") for $(field ok "$2") answered 200"
}
{
    echo
    echo "prizewheel bench, $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), concurrency $conc, ${duration}s per run"
    echo
    echo "| measure | prizewheel | baseline | ratio | target |"
    echo "| --- | --- | --- | --- | --- |"
    echo "| spins/s, HTTP vs spin.lua via redis-benchmark | $http_rps | $script_rps | $(ratio "$http_rps" "$script_rps") | ≥ 0.6 |"
    echo "| spin latency p50 / p99 / p99.9 (ms), at saturation | $(field p50_ms "$http") / $(field p99_ms "$http") / $(field p999_ms "$http") | $script_p50 / $script_p99 / - | | |"
    echo "| spin latency p50 / p99 / p99.9 (ms) at $(field rps "$paced") spins/s, $(ratio "$(field rps "$paced")" "$http_rps") × capacity ($paced_conns paced connections) | $(field p50_ms "$paced") / $(field p99_ms "$paced") / $(field p999_ms "$paced") | | | p99 < 5 at 0.7 |"
    if $paced_campaign; then
        paced_rps=$(field rps "$paced_http")
        echo "| spins/s, HTTP vs spin.lua via redis-benchmark, paced and budgeted campaign | $paced_rps | $paced_script_rps | $(ratio "$paced_rps" "$paced_script_rps") | ≥ 0.6 |"
        echo "| spin.lua Redis µs per call, paced and budgeted vs plain campaign (redis-benchmark, one after the other) | $paced_script_usec | $plain_usec | $(ratio "$paced_script_usec" "$plain_usec") | |"
    fi
    echo "| spin.lua Redis µs per call vs the minimal draw (bench/minimal-draw.lua), 3 prizes | $three_usec | $minimal_usec | $(ratio "$three_usec" "$minimal_usec") | ≤ 1.0 |"
    echo "| spin.lua Redis µs per call, 64 prizes vs 3 | $wide_usec | $three_usec | $(ratio "$wide_usec" "$three_usec") | ≤ 1.2 |"
    echo "| spins/s vs the PostgreSQL FOR UPDATE design, a round trip per statement | $http_rps | $pg_stmt_rps | $(ratio "$http_rps" "$pg_stmt_rps") | ≥ 30 |"
    echo "| spins/s vs the same in one plpgsql call | $http_rps | $pg_rps | $(ratio "$http_rps" "$pg_rps") | |"
    echo "| per-user limiter 429/s vs GET /healthz ($(share "$limited") refused) | $(field rps "$limited") | $health_rps | $(ratio "$(field rps "$limited")" "$health_rps") | |"
    echo "| quota cache 429/s vs GET /healthz ($(share "$cached") refused, $((evalsha_after - evalsha_before)) Redis calls) | $(field rps "$cached") | $health_rps | $(ratio "$(field rps "$cached")" "$health_rps") | |"
    if $grants; then
        grant_row "one grant per request ($conc connections)" "$grant_single"
        for line in "${grant_batch[@]}"; do
            grant_row "batches of $(field batch " $line") ($batch_conns connections)" "$line"
        done
    fi
    echo "| Redis bytes per user ($(field users "$footprint") users, one spin each) | $(field per_user "$footprint") | | | $(meets "$(field per_user "$footprint")" 20) |"
    echo "| Redis bytes per idempotency record | $(field per_record "$footprint") | | | $(meets "$(field per_record "$footprint")" 64) |"
    if $grants; then
        echo "| Redis bytes per shopper with grants (the same users, then one grant each) | $(field per_user "$granted") | | | $(meets "$(field per_user "$granted")" 32) |"
        echo "| Redis bytes per grant record ($(field grants "$granted") grants, 13-digit order ids) | $(field per_grant "$granted") | | | $(meets "$(field per_grant "$granted")" 64) |"
        echo "| Redis bytes per grant record ($(field grants "$granted_uuids") grants, 36-character UUID grant ids) | $(field per_grant "$granted_uuids") | | | $(meets "$(field per_grant "$granted_uuids")" 64) |"
    fi
    echo "| service RSS under spin load (MiB) | $((rss_max / 1024)) | | | |"
    echo "| codes/s loading $(field codes "$codes") codes, CLI \`campaign codes add\` vs \`redis-cli --pipe\` of one SADD per code | $(field cli_per_s "$codes") | $(field pipe_per_s "$codes") | $(field cli_ratio "$codes") | |"
    echo "| codes/s, HTTP upload ($(field parts "$codes") part(s) of ≤ 16 MiB) vs the same | $(field http_per_s "$codes") | $(field pipe_per_s "$codes") | $(field http_ratio "$codes") | |"
    echo "| Redis bytes per code in a prize's pool, 12 / 36 characters (used_memory delta; MEMORY USAGE $(field pool12 "$codes") / $(field pool36 "$codes")) | $(field used12 "$codes") / $(field used36 "$codes") | | | |"
    echo
    echo "CPU per HTTP spin: service $service_us µs, Redis $redis_us µs (spin.lua itself: $usec µs per call); per 429 from a limiter: service $reject_us µs"
    if $paced_campaign; then
        echo "CPU per HTTP spin, paced and budgeted campaign: $paced_cpu (spin.lua itself: $paced_usec µs per call)"
    fi
    if $grants; then
        grant_cpu "one per request" "$grant_single"
        for line in "${grant_batch[@]}"; do
            grant_cpu "batches of $(field batch " $line")" "$line"
        done
    fi
    echo "PostgreSQL: $pg"
} | tee "$work/table.md"
