#!/usr/bin/env bash
# bench/soak.sh: the soak (docs/reliability.md, "Soak") in one command: a k6
# run (k6/soak.js) at SOAK_SHARE of the measured capacity for SOAK_MINUTES,
# with the service's memory, Redis's memory and the settlement lag sampled
# throughout.
#
#   bash bench/soak.sh                        # 0.7 × capacity for 15 minutes
#   SOAK_MINUTES=3 bash bench/soak.sh         # a short check
#   SOAK_RATE=1500 bash bench/soak.sh         # a given rate, no capacity run
#
# Builds in release mode, starts its own Redis (project settings: AOF everysec,
# noeviction; port $PW_SOAK_REDIS_PORT, default 6431) and a fresh database, and
# runs `serve` WITH settlement (the lag is one of the measured quantities) and
# the per-IP limiter off (all load comes from 127.0.0.1). Then:
#  1. capacity: a campaign with a large quota is driven to saturation for
#     CAPACITY_SECONDS by wrk (bench/wrk-spin.lua: the service alone) and by k6
#     (k6/soak.js MODE=capacity: closed-loop clients); neither is what the soak
#     itself can sustain on this machine: wrk leaves out k6, which shares the
#     cores and costs more CPU per spin than the service, and a short saturated
#     burst leaves settlement behind, to catch up after. So by default
#     (CAPACITY_BY=steps) the capacity is found with the soak's own traffic:
#     k6/soak.js at rates rising by STEP_FACTOR (1.2) from STEP_START (a quarter
#     of k6's closed-loop figure), STEP_SECONDS (30) each; a step holds when k6
#     passes (no error, < 1 % of arrivals dropped, p95/p99 bounds) and settlement
#     drains within 5 s after it; the capacity is the last rate that held. The
#     soak rate is SOAK_SHARE of it (CAPACITY_BY=k6 or wrk take those figures
#     instead: only right where k6 has cores of its own);
#  2. the soak: a fresh service process (its bounded per-user tables scaled so
#     they fill within the first sixth of the run, see below; SOAK_TABLES=
#     production keeps the defaults) and a campaign `soak` (5 spins per user,
#     stock that lasts) get k6/soak.js at that rate; every SOAK_INTERVAL
#     seconds (aligned with k6's intervals) it samples the service's RSS
#     (/proc), Redis used_memory, the users with counters and the idempotency
#     records (HLEN over the campaign's u:* and i:* bucket hashes) and the
#     results stream; every 5 s the settlement lag gauges of /metrics;
#  3. afterwards: waits for settlement to catch up, measures bytes per user and
#     per record (MEMORY USAGE over the same hashes, as src/store/redis/
#     footprint.rs does) and counts the ledger's rows against Redis's awarded
#     counters.
# bench/soak-report.py prints a table per interval and the verdict, also
# written to bench/results/soak-<time>.md (not committed: add the run you mean
# to keep with `git add -f`). Exit status 1 when a promise fails:
#   - an answer other than a draw, a replay or a quota refusal (k6 soak_errors),
#     or any k6 threshold (k6/soak.js);
#   - RSS: mean of the last third above the first third's by more than
#     RSS_BOUND_MIB (16): the bounded tables (per-user limiter, quota cache)
#     are full after the first sixth, a leak keeps growing;
#   - p99: median per-interval p99 of the last third above P99_DRIFT (1.5) ×
#     that of the first third + P99_SLACK_MS (2);
#   - settlement lag: oldest unsettled entry older than LAG_BOUND_S (30) at any
#     sample, or not caught up DRAIN_SECONDS (120) after the run;
#   - Redis: used_memory growth not within REDIS_SLACK_PCT (10 %) or
#     REDIS_SLACK_MIB (4) of users × bytes/user + records × bytes/record +
#     the stream's bytes; the ledger's rows differ from the awarded counters.
# Exit status 2 when the run itself could not be made.
#
# Environment (defaults in brackets): SOAK_SHARE [0.7], SOAK_MINUTES [15],
# SOAK_INTERVAL [30] seconds, SOAK_RATE (visits/s; skips the capacity runs),
# CAPACITY_BY [steps] | k6 | wrk, CAPACITY_SECONDS [15], CONCURRENCY [50] (wrk),
# STEP_START, STEP_FACTOR [1.2], STEP_SECONDS [30], STEP_MAX [12] steps,
# VUS [64] (k6 capacity), SOAK_TABLES [scaled] | production, DRAIN_SECONDS
# [120], PW_SOAK_REDIS_PORT [6431], PW_SOAK_HTTP_PORT [8131], LOG_FILTER [warn],
# the bounds above, and k6/soak.js's own (SPINS_PER_USER, REPLAY_RATIO, ...).
# Work files (k6 logs and summaries, samples, Redis MEMORY STATS before and
# after) are left in target/soak/.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../scripts/services.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/services.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PW_ROOT"

die() {
    pw_err "$*"
    exit 2
}

share="${SOAK_SHARE:-0.7}"
minutes="${SOAK_MINUTES:-15}"
interval="${SOAK_INTERVAL:-30}"
capacity_by="${CAPACITY_BY:-steps}"
step_factor="${STEP_FACTOR:-1.2}"
step_seconds="${STEP_SECONDS:-30}"
step_max="${STEP_MAX:-12}"
cap_seconds="${CAPACITY_SECONDS:-15}"
conc="${CONCURRENCY:-50}"
port="${PW_SOAK_REDIS_PORT:-6431}"
listen="127.0.0.1:${PW_SOAK_HTTP_PORT:-8131}"
drain_seconds="${DRAIN_SECONDS:-120}"
db=prizewheel_soak
work="$PW_ROOT/target/soak"
results="$PW_ROOT/bench/results"

[[ $interval =~ ^[0-9]+$ && $interval -ge 5 ]] || die "SOAK_INTERVAL must be whole seconds, at least 5"
[[ $cap_seconds =~ ^[0-9]+$ && $cap_seconds -ge 5 ]] || die "CAPACITY_SECONDS must be whole seconds, at least 5"
[[ $capacity_by == steps || $capacity_by == k6 || $capacity_by == wrk ]] || die "CAPACITY_BY must be steps, k6 or wrk"
[[ $step_seconds =~ ^[0-9]+$ && $step_seconds -ge 10 ]] || die "STEP_SECONDS must be whole seconds, at least 10"
awk -v f="$step_factor" 'BEGIN { exit !(f + 0 > 1.01) }' || die "STEP_FACTOR must be above 1"
[[ $step_max =~ ^[0-9]+$ && $step_max -ge 1 ]] || die "STEP_MAX must be a whole number of steps, at least 1"
[[ -z ${STEP_START:-} || ($STEP_START =~ ^[0-9]+$ && $STEP_START -gt 0) ]] || die "STEP_START must be a whole number of visits/s"
duration=$(awk -v m="$minutes" 'BEGIN { if (m + 0 > 0) printf "%d", m * 60 + 0.5; else print 0 }')
[[ $duration -ge $((3 * interval)) ]] ||
    die "SOAK_MINUTES ($minutes) must cover at least three intervals of ${interval}s (the verdict compares thirds)"
intervals=$(((duration + interval - 1) / interval))

mkdir -p "$work" "$results"
rm -f "$work"/*.tsv "$work"/*.json "$work"/*.log "$work"/*.txt "$work/meta.env"
meta="$work/meta.env"
# note KEY VALUE: one line of the run's facts for the report.
note() { printf '%s=%s\n' "$1" "$2" >>"$meta"; }

pw_ensure_packages
command -v wrk >/dev/null || pw_apt_install wrk || die "cannot install wrk"
pw_start_postgres || die "no PostgreSQL"
pw_stop_redis "$port" 2>/dev/null || true
rm -rf "$work/redis"
pw_start_redis "$port" "$work/redis" || die "no Redis on $port"
pw_psql -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
pw_create_database "$db" || die "no database $db"

k6_pid=""
fast_pid=""
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    if [[ -n $k6_pid ]] && kill -0 "$k6_pid" 2>/dev/null; then
        pkill -P "$k6_pid" 2>/dev/null || true
        kill "$k6_pid" 2>/dev/null || true
    fi
    if [[ -n $fast_pid ]]; then kill "$fast_pid" 2>/dev/null || true; fi
    stop_server
    pw_stop_redis "$port" || true
}
trap cleanup EXIT

pw_log "building (release)"
cargo build --release --locked -q --bin prizewheel
bench_env "$port" "$db" "$listen"
export PRIZEWHEEL__SETTLE__ENABLED=true
# All load comes from one address: the per-IP layer would be the only thing measured.
export PRIZEWHEEL__ADMISSION__PER_IP__ENABLED=false
export PRIZEWHEEL_URL="http://$listen"

# campaign ID SPINS_PER_USER EXPECTED_USERS (bench/lib.sh): the coupon's stock
# outlasts the run.
campaign() { bench_campaign "$work" "$1" "$2" "$3" 100000000 soak; }
"$bin" migrate >/dev/null
campaign soak-cap 1000000 100000
campaign soak-steps 5 1000000
start_server

rcli() { redis-cli -p "$port" "$@"; }
# shellcheck disable=SC2154 # server_pid: set by start_server (lib.sh)
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status" 2>/dev/null || echo 0; }
# cpu_ticks PID: the process's user + system CPU time in clock ticks (0 when gone).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# connections: TCP connections established to the service's port.
connections() { ss -Htn state established "( sport = :${listen##*:} )" | wc -l; }
# spin_histogram FILE: the service's own latency histogram of spins (every
# status), cumulative buckets as /metrics has them, to FILE.
spin_histogram() {
    curl -sf --max-time 2 "http://$listen/metrics" |
        awk '/^http_server_request_duration_seconds_bucket\{/ && /spins/ && /POST/' >"$1" || true
}
used_memory() { rcli INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }
# metric NAME CAMPAIGN: a gauge of /metrics for one campaign (0 when absent).
metric() {
    curl -sf --max-time 2 "http://$listen/metrics" |
        awk -v n="$1" -v c="campaign=\"$2\"" 'index($0, n "{") == 1 && index($0, c) { v = $NF } END { print v + 0 }'
}
# over_keys PATTERN COMMAND [ARGS]: runs "COMMAND KEY ARGS" (COMMAND may be
# two words, e.g. "MEMORY USAGE") for every key matching PATTERN and prints
# the sum of the answers.
over_keys() {
    rcli --scan --pattern "$1" |
        awk -v cmd="$2" -v args="${3:-}" '{ print cmd, $0, args }' |
        rcli | awk '{ s += $1 } END { printf "%d\n", s }'
}
# settled CAMPAIGN: true when the campaign's stream has nothing unsettled:
# nothing pending in the settlers' group and no entry after the group's
# last-delivered id (not the group's `lag`, which drifts after trims; see
# src/settle/stream.rs), or no group at all yet with an empty stream.
settled() {
    local stream="pw:{$1}:results" pending last
    read -r pending last < <(rcli XINFO GROUPS "$stream" 2>/dev/null |
        awk 'p == "pending" { n = $0 } p == "last-delivered-id" { id = $0 } { p = $0 } END { print n + 0, id }')
    if [[ -z $last ]]; then
        [[ "$(rcli XLEN "$stream")" == 0 ]]
        return
    fi
    [[ $pending == 0 && -z "$(rcli XRANGE "$stream" "($last" + COUNT 1)" ]]
}
# wait_settled CAMPAIGN SECONDS: waits until settled; prints the seconds waited
# (-1 and status 1 when it is not within SECONDS).
wait_settled() {
    local i
    for ((i = 0; i < $2 * 2; i++)); do
        if settled "$1"; then
            awk -v i="$i" 'BEGIN { printf "%.1f\n", i / 2 }'
            return 0
        fi
        sleep 0.5
    done
    echo -1
    return 1
}

# ------------------------------------------------------------ capacity ---

# capacity_in_steps K6_CAPACITY: the highest rate the soak's own traffic holds
# (see the header), printed; status 1 when even the first step fails. Each
# step's users are new (RUN_ID), on a campaign with the soak's quota.
capacity_in_steps() {
    local r held="" i status verdict
    r=${STEP_START:-$(awk -v c="$1" 'BEGIN { printf "%d", c / 4 + 0.5 }')}
    [[ $r =~ ^[0-9]+$ && $r -gt 0 ]] || return 1
    for ((i = 1; i <= step_max; i++)); do
        pw_log "1/3 capacity: step $i, $r visits/s for ${step_seconds}s (k6/soak.js)"
        set +e
        RATE="$r" DURATION="${step_seconds}s" INTERVAL="${step_seconds}s" CAMPAIGN=soak-steps RUN_ID="step$r" \
            bash k6/run.sh soak --summary-export="$work/step-$r.json" >"$work/k6-step-$r.log" 2>&1
        status=$?
        set -e
        if [[ $status -ne 0 ]]; then
            verdict="k6 thresholds failed (exit $status)"
        elif ! wait_settled soak-steps 5 >/dev/null; then
            verdict="settlement did not drain within 5 s"
        else
            verdict="held"
        fi
        pw_log "step $i: $r visits/s: $verdict"
        note "step_$i" "$r visits/s: $verdict"
        [[ $verdict == held ]] || break
        held=$r
        r=$(awk -v r="$r" -v f="$step_factor" 'BEGIN { printf "%d", r * f + 0.5 }')
        # Let settlement finish before the next step.
        wait_settled soak-steps "$drain_seconds" >/dev/null || true
    done
    [[ -n $held ]] || return 1
    printf '%s\n' "$held"
}

"$bin" token --sub cap --count 100000 >"$work/tokens.txt"
if [[ -n ${SOAK_RATE:-} ]]; then
    [[ $SOAK_RATE =~ ^[0-9]+$ && $SOAK_RATE -gt 0 ]] || die "SOAK_RATE must be a whole number of visits/s"
    rate=$SOAK_RATE
    note capacity_by "SOAK_RATE"
else
    pw_log "1/3 capacity: wrk, $conc connections, ${cap_seconds}s"
    wrk -t 2 -c "$conc" -d 3s -s bench/wrk-spin.lua "http://$listen/v1/campaigns/soak-cap/spins" -- "$work/tokens.txt" >/dev/null
    wrk_line=$(wrk -t 2 -c "$conc" -d "${cap_seconds}s" -s bench/wrk-spin.lua \
        "http://$listen/v1/campaigns/soak-cap/spins" -- "$work/tokens.txt" | grep '^WRK')
    pw_log "wrk: $wrk_line"
    note wrk_rps "$(field rps "$wrk_line")"
    note wrk_p99_ms "$(field p99_ms "$wrk_line")"
    wait_settled soak-cap "$drain_seconds" >/dev/null || pw_log "warning: soak-cap not settled yet"

    pw_log "1/3 capacity: k6 (k6/soak.js MODE=capacity), ${VUS:-64} clients, ${cap_seconds}s"
    MODE=capacity CAMPAIGN=soak-cap DURATION="${cap_seconds}s" \
        bash k6/run.sh soak --summary-export="$work/capacity.json" >"$work/k6-capacity.log" 2>&1 ||
        die "the k6 capacity run failed (see $work/k6-capacity.log)"
    k6_cap=$(python3 -c 'import json, sys; print("%.1f" % json.load(open(sys.argv[1]))["metrics"]["iterations"]["rate"])' "$work/capacity.json")
    pw_log "k6: $k6_cap spins/s"
    note k6_capacity "$k6_cap"
    note capacity_by "$capacity_by"
    note step_seconds "$step_seconds"
    case $capacity_by in
    wrk) basis=$(field rps "$wrk_line") ;;
    k6) basis=$k6_cap ;;
    steps) basis=$(capacity_in_steps "$k6_cap") || die "no step held, not even the first (see $work/k6-step-*.log)" ;;
    esac
    note capacity "$basis"
    rate=$(awk -v s="$share" -v b="$basis" 'BEGIN { printf "%d", s * b + 0.5 }')
    [[ $rate -gt 0 ]] || die "capacity measured as $basis spins/s"
fi

# ---------------------------------------------------------------- soak ---

# Buckets sized so a bucket's idempotency records of one UTC day stay within
# Redis's listpack limit (records ≤ draws ≤ visits; 256 per bucket or fewer).
campaign soak 5 "$(awk -v r="$rate" -v d="$duration" 'BEGIN { n = r * d; printf "%d", n < 100000 ? 100000 : n }')"
pw_log "waiting for settlement to catch up"
waited=$(wait_settled soak-cap "$drain_seconds") || die "settlement did not catch up before the soak"
note settle_before_s "$waited"

# A fresh service for the soak (nothing left of the capacity runs' users). Its
# per-user state lives in bounded tables: the per-user limiter keeps a key per
# user until the table is full (then drops the stale ones), the quota cache an
# entry per refused user for max_ttl. Filling them is growth that stops; so
# that it stops within the first sixth of the run, and the thirds compare
# steady states, they are scaled to the run: max_keys = the users of the first
# sixth (at least 10 × the visits of a second, at most the default 200,000),
# max_ttl = a sixth of the run (at least 30 s). SOAK_TABLES=production keeps
# the defaults (the verdict's RSS bound then needs a run long enough to fill them).
stop_server
sixth=$((duration / 6))
if [[ ${SOAK_TABLES:-scaled} == scaled ]]; then
    keys=$(awk -v r="$rate" -v s="$sixth" -v v="${SPINS_PER_USER:-4}" \
        'BEGIN { k = r / v * s; if (k < 10 * r) k = 10 * r; if (k > 200000) k = 200000; printf "%d", k }')
    export PRIZEWHEEL__ADMISSION__PER_USER__MAX_KEYS="${PRIZEWHEEL__ADMISSION__PER_USER__MAX_KEYS:-$keys}"
    export PRIZEWHEEL__ADMISSION__QUOTA_CACHE__MAX_TTL_SECS="${PRIZEWHEEL__ADMISSION__QUOTA_CACHE__MAX_TTL_SECS:-$((sixth > 30 ? sixth : 30))}"
    note tables "per-user limiter max_keys ${PRIZEWHEEL__ADMISSION__PER_USER__MAX_KEYS}, quota cache max_ttl ${PRIZEWHEEL__ADMISSION__QUOTA_CACHE__MAX_TTL_SECS} s (scaled to the run)"
else
    note tables "per-user limiter and quota cache as configured (SOAK_TABLES=${SOAK_TABLES})"
fi
start_server
sleep 6 # the settler refreshes its campaigns every 5 s
note rate "$rate"
note share "$share"
note duration_s "$duration"
note interval_s "$interval"
note intervals "$intervals"
note cores "$(nproc)"
note date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
note base_used_memory "$(used_memory)"
rcli MEMORY STATS >"$work/redis-memory-before.txt"
note base_rss_kb "$(rss_kb)"
note nb "$(rcli HGET 'pw:{soak}:meta' nb)"

pw_log "2/3 soak: $rate visits/s for ${duration}s (k6/soak.js, log in $work/k6-soak.log)"
RATE="$rate" DURATION="${duration}s" INTERVAL="${interval}s" CAMPAIGN=soak \
    bash k6/run.sh soak --summary-export="$work/soak.json" >"$work/k6-soak.log" 2>&1 &
k6_pid=$!

# Every 5 s: time, RSS and the lag gauges (the service samples them every 5 s).
fast_sampler() {
    local i
    for ((i = 0; i < (duration + drain_seconds + 120) / 5; i++)); do
        [[ -e $work/stop ]] && return 0
        printf '%s\t%s\t%s\t%s\n' "$(date +%s%3N)" "$(rss_kb)" \
            "$(metric prizewheel_settlement_lag_entries soak)" "$(metric prizewheel_settlement_lag_age_seconds soak)"
        sleep 5
    done
}
rm -f "$work/stop"
fast_sampler >"$work/fast.tsv" &
fast_pid=$!

t0=""
for ((i = 0; i < 240; i++)); do
    t0=$(sed -nE 's/.*SOAK_T0=([0-9]+).*/\1/p' "$work/k6-soak.log" | head -n 1)
    [[ -n $t0 ]] && break
    kill -0 "$k6_pid" 2>/dev/null || break
    sleep 0.5
done
[[ -n $t0 ]] || die "k6 did not start the soak (see $work/k6-soak.log)"
note t0_ms "$t0"
note clk_tck "$(getconf CLK_TCK)"
spin_histogram "$work/histogram-start.txt"
# k6 itself (k6/run.sh runs it as a child): its CPU time tells whether the
# load generator kept up or was starved, which its latency figures include.
k6_proc=$(pgrep -P "$k6_pid" -x k6 | head -n 1 || true)
note k6_pid "${k6_proc:-none}"
note server_ticks0 "$(cpu_ticks "$server_pid")"
note k6_ticks0 "$(cpu_ticks "${k6_proc:-0}")"

# At the end of each interval: the per-user state and the stream.
for ((i = 0; i < intervals; i++)); do
    kill -0 "$k6_pid" 2>/dev/null || { pw_log "k6 ended before interval $((i + 1))"; break; }
    due=$((t0 + (i + 1) * interval * 1000))
    now=$(date +%s%3N)
    if ((due > now)); then sleep "$(awk -v d=$((due - now)) 'BEGIN { printf "%.3f", d / 1000 }')"; fi
    spin_histogram "$work/histogram-$i.txt"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$(date +%s%3N)" "$(rss_kb)" "$(used_memory)" \
        "$(over_keys 'pw:{soak}:u:*' HLEN)" "$(over_keys 'pw:{soak}:i:*' HLEN)" \
        "$(rcli XLEN 'pw:{soak}:results')" "$(rcli MEMORY USAGE 'pw:{soak}:results' SAMPLES 0)" \
        "$(cpu_ticks "$server_pid")" "$(cpu_ticks "${k6_proc:-0}")" "$(connections)" >>"$work/intervals.tsv"
    pw_log "interval $((i + 1))/$intervals: $(tail -n 1 "$work/intervals.tsv" | cut -f3-7,9- | tr '\t' ' ')"
done

set +e
wait "$k6_pid"
k6_status=$?
set -e
k6_pid=""
note k6_status "$k6_status"
pw_log "k6 exited with status $k6_status"

# ---------------------------------------------------------- afterwards ---

pw_log "3/3 settlement drain, footprint, ledger"
waited=$(wait_settled soak "$drain_seconds") || pw_log "settlement did not catch up within ${drain_seconds}s"
note drain_s "$waited"
touch "$work/stop"
wait "$fast_pid" 2>/dev/null || true
fast_pid=""
note end_used_memory "$(used_memory)"
rcli MEMORY STATS >"$work/redis-memory-after.txt"
note end_rss_kb "$(rss_kb)"
note users "$(over_keys 'pw:{soak}:u:*' HLEN)"
note user_bytes "$(over_keys 'pw:{soak}:u:*' 'MEMORY USAGE' 'SAMPLES 0')"
note records "$(over_keys 'pw:{soak}:i:*' HLEN)"
note record_bytes "$(over_keys 'pw:{soak}:i:*' 'MEMORY USAGE' 'SAMPLES 0')"
note user_keys "$(rcli --scan --pattern 'pw:{soak}:u:*' | wc -l)"
note record_keys "$(rcli --scan --pattern 'pw:{soak}:i:*' | wc -l)"
note hashtable_buckets "$(rcli --scan --pattern 'pw:{soak}:[ui]:*' | awk '{ print "OBJECT ENCODING", $0 }' | rcli | grep -vc listpack || true)"
note stream_len "$(rcli XLEN 'pw:{soak}:results')"
note awarded "$(rcli HVALS 'pw:{soak}:awarded' | awk '{ s += $1 } END { printf "%d", s }')"
note ledger_rows "$(pw_psql -d "$db" -Atc "SELECT count(*) FROM rewards WHERE campaign_id = 'soak'")"
note dead_letters "$(rcli XLEN 'pw:{soak}:dead')"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
set +e
python3 bench/soak-report.py "$work" "$results/soak-$stamp.md"
verdict=$?
set -e
pw_log "table and verdict written to bench/results/soak-$stamp.md"
exit "$verdict"
