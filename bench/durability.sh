#!/usr/bin/env bash
# bench/durability.sh: what each durability mode (redis.durability) costs on
# the spin path, every figure against `aof` measured in the same run.
#
#   bash bench/durability.sh        # CONCURRENCY=50 DURATION=15
#
# Builds in release mode and, for each row, starts a fresh Valkey (the one
# pw_valkey_server installs: it has WAITAOF) with config/redis.conf on port
# $PW_BENCH_VALKEY_PORT (default 6393), applies the campaign, starts the
# service with that mode and drives spins with wrk (bench/wrk-spin.lua,
# CONCURRENCY connections, DURATION seconds, 100,000 users, a fresh key each):
#   none        appendonly no
#   aof         appendonly yes, appendfsync everysec
#   fsync-wins  the same, plus WAITAOF before answering each bounded win
# on two campaigns: `mixed`, where 20 % of spins win a stock-bounded prize, and
# `allwin`, where (all but one in a million) every spin does. Settlement and
# the rate limiters are off: only the durability mode differs between rows.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../scripts/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/services.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PW_ROOT"

conc="${CONCURRENCY:-50}"
duration="${DURATION:-15}"
port="${PW_BENCH_VALKEY_PORT:-6393}"
listen="127.0.0.1:${PW_BENCH_HTTP_PORT:-8098}"
users=100000
db=prizewheel_bench_durability
work="$PW_ROOT/target/bench-durability"
mkdir -p "$work"

pw_ensure_packages
command -v wrk >/dev/null || pw_apt_install wrk
pw_check_redis_port "$port"
PW_REDIS_SERVER="$(pw_valkey_server)"
export PW_REDIS_SERVER
pw_start_postgres
PGOPTIONS='--client-min-messages=warning' pw_psql -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
pw_create_database "$db"

trap 'stop_server; pw_stop_redis "$port" || true' EXIT

pw_log "building (release)"
cargo build --release --locked -q --bin prizewheel
bench_env "$port" "$db" "$listen"
export PRIZEWHEEL__ADMISSION__PER_IP__ENABLED=false
export PRIZEWHEEL__ADMISSION__PER_USER__ENABLED=false
"$bin" migrate >/dev/null
"$bin" token --sub u --count "$users" >"$work/tokens.txt"

# campaign ID BOUNDED_WEIGHT FALLBACK_WEIGHT: one stock-bounded prize (stock
# that outlasts the run) and the fallback.
campaign() {
    cat >"$work/$1.yaml" <<YAML
id: $1
name: Bench $1
starts_at: $(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)
ends_at: $(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
expected_users: $users
limits: { spins_per_user: 1000000 }
fallback: none
prizes:
  - { id: coupon, name: Coupon, weight: $2, stock: 100000000, value: { amount: "100.00", currency: INR } }
  - { id: none, name: Better luck, weight: $3, stock: unlimited, value: { amount: "0", currency: INR } }
YAML
    "$bin" campaign apply "$work/$1.yaml" --by bench >/dev/null
}

wrk_spin() {
    wrk -t 2 -c "$conc" -d "${2}s" -s bench/wrk-spin.lua "http://$listen/v1/campaigns/$1/spins" -- "$work/tokens.txt" | grep '^WRK'
}
calls() { redis-cli -p "$port" INFO commandstats | sed -nE "s/^cmdstat_$1:calls=([0-9]+).*/\1/p" | grep . || echo 0; }

# row MODE CAMPAIGN APPENDONLY: one measured run on a fresh Valkey; sets $result.
row() {
    local mode=$1 id=$2 appendonly=$3
    pw_stop_redis "$port" >/dev/null 2>&1 || true
    rm -rf "$work/valkey"
    pw_start_redis "$port" "$work/valkey" --appendonly "$appendonly" --appendfsync everysec
    # The CLI checks the server against the mode too (`none` accepts no AOF).
    export PRIZEWHEEL__REDIS__DURABILITY=$mode
    campaign mixed 2000 8000
    campaign allwin 999999 1
    start_server
    wrk_spin "$id" 3 >/dev/null
    local before after out
    before=$(calls waitaof)
    out=$(wrk_spin "$id" "$duration")
    after=$(calls waitaof)
    stop_server
    local waits
    waits=$(awk -v a="$before" -v b="$after" -v n="$(field requests "$out")" 'BEGIN { printf "%.2f", (b - a) / n }')
    result="$out waits=$waits"
    pw_log "$mode/$id: $result"
}

declare -A runs
for spec in "none mixed no" "aof mixed yes" "fsync-wins mixed yes" "aof allwin yes" "fsync-wins allwin yes"; do
    read -r mode id appendonly <<<"$spec"
    pw_log "$mode on campaign $id (appendonly $appendonly)"
    row "$mode" "$id" "$appendonly"
    runs["$mode/$id"]=$result
done

line() {
    local base=$2 label=$3 r=${runs[$1]}
    echo "| $label | $(field rps "$r") | $(field p50_ms "$r") / $(field p99_ms "$r") | $(field waits "$r") | $(field errors "$r") | $(ratio "$(field rps "$r")" "$(field rps "${runs[$base]}")") |"
}
{
    echo
    echo "prizewheel durability bench, $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $("$PW_REDIS_SERVER" --version | cut -d' ' -f1-3), concurrency $conc, ${duration}s per run"
    echo
    echo "| mode (campaign) | spins/s | p50 / p99 (ms) | WAITAOF per spin | non-2xx | spins/s vs aof |"
    echo "| --- | --- | --- | --- | --- | --- |"
    line none/mixed aof/mixed "none: appendonly no (20 % bounded wins)"
    line aof/mixed aof/mixed "aof: everysec (20 % bounded wins)"
    line fsync-wins/mixed aof/mixed "fsync-wins: everysec + WAITAOF (20 % bounded wins)"
    line aof/allwin aof/allwin "aof: everysec (every spin a bounded win)"
    line fsync-wins/allwin aof/allwin "fsync-wins: everysec + WAITAOF (every spin a bounded win)"
} | tee "$work/table.md"
