#!/usr/bin/env bash
# bench/codes.sh: loading prize codes (stock: codes) against `redis-cli --pipe`
# of the same codes, in one run.
#
#   bash bench/codes.sh            # CODES=1000000 CODE_CHARS=12 by default
#
# Starts PostgreSQL, a fresh Redis of its own (project settings: AOF everysec,
# noeviction; port PW_BENCH_REDIS_PORT, default 6395, loopback only) and builds
# in release mode. Generates CODES distinct codes of CODE_CHARS characters (12:
# a letter and 11 digits in a scrambled order; 36: UUID-shaped), one per line,
# then times loading them into the code prize `coupon` of a fresh campaign each
# way:
#  (a) the CLI, `prizewheel campaign codes add CAMPAIGN coupon FILE` (one file,
#      batches of 1000 through lua/codes.lua, one after another);
#  (b) HTTP, `POST /v1/admin/campaigns/{id}/prizes/coupon/codes` against a
#      running `serve` (127.0.0.1:PW_BENCH_HTTP_PORT, default 8097), the file
#      split at line ends into parts of at most 16 MiB
#      (http.max_codes_upload_bytes), uploaded one after another;
#  (c) the baseline: `redis-cli --pipe` of one SADD per code into one set (the
#      commands generated beforehand, not timed).
# Each load is checked (every code added, the pool's SCARD = CODES). Then Redis
# memory per code: CODES 12-character and CODES 36-character codes loaded
# through lua/codes.lua by the `redis_footprint` example into campaigns of
# their own (the `used_memory` delta of the load and the pool's MEMORY USAGE,
# per code). Prints one table: codes/s each way and its ratio to the baseline;
# the last line, `CODES …`, is the summary bench/run.sh reads. Each step is
# bounded by STEP_TIMEOUT seconds (default 900). Read the ratios, not the
# absolute numbers: the machine is shared.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../scripts/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/services.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PW_ROOT"

n="${CODES:-1000000}"
chars="${CODE_CHARS:-12}"
port="${PW_BENCH_REDIS_PORT:-6395}"
listen="127.0.0.1:${PW_BENCH_HTTP_PORT:-8097}"
step_timeout="${STEP_TIMEOUT:-900}"
db=prizewheel_bench_codes
work="$PW_ROOT/target/bench-codes"
target_dir="${CARGO_TARGET_DIR:-$PW_ROOT/target}"
upload_limit=$((16 << 20)) # http.max_codes_upload_bytes (src/http/settings.rs)
[[ $chars == 12 || $chars == 36 ]] || { pw_err "CODE_CHARS is 12 or 36"; exit 1; }
mkdir -p "$work"

pw_ensure_packages
pw_start_postgres
pw_stop_redis "$port" 2>/dev/null || true
rm -rf "$work/redis"
pw_start_redis "$port" "$work/redis"
trap 'stop_server; pw_stop_redis "$port" || true' EXIT
pw_psql -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
pw_create_database "$db"

pw_log "building (release)"
cargo build --release --locked -q --bin prizewheel --example redis_footprint
bench_env "$port" "$db" "$listen"
bin="$target_dir/release/prizewheel"
footprint_bin="$target_dir/release/examples/redis_footprint"
# One address sends every upload: the per-IP layer is not what is measured.
export PRIZEWHEEL__ADMISSION__PER_IP__ENABLED=false
"$bin" migrate >/dev/null
rcli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }

# code_campaign ID: a campaign open now whose prize `coupon` takes codes.
code_campaign() {
    cat >"$work/$1.yaml" <<YAML
id: $1
name: Bench codes $1
starts_at: $(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)
ends_at: $(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
expected_users: 1000000
limits: { spins_per_user: 1 }
fallback: none
prizes:
  - { id: coupon, name: Coupon, weight: 2000, stock: codes, value: { amount: "100.00", currency: INR } }
  - { id: none, name: Better luck, weight: 8000, stock: unlimited, value: { amount: "0", currency: INR } }
YAML
    "$bin" campaign apply "$work/$1.yaml" --by bench >/dev/null
}
for c in codes-cli codes-http codes-mem12 codes-mem36; do
    code_campaign "$c"
done

pw_log "generating $n codes of $chars characters"
# 12: K and 11 digits, i * 7919 + 13 mod 10^11 (7919 is prime to 10^11: all
# distinct); 36: the same number as the last 12 digits of a UUID-shaped code.
awk -v n="$n" -v chars="$chars" 'BEGIN {
    for (i = 0; i < n; i++) {
        k = (i * 7919 + 13) % 100000000000
        if (chars == 12) printf "K%011.0f\n", k
        else printf "c0de%04x-b3nc-4c0d-8e5a-%012.0f\n", i % 65536, k
    }
}' >"$work/codes.txt"
[[ $(sort -u "$work/codes.txt" | wc -l) == "$n" ]] || { pw_err "generated codes are not distinct"; exit 1; }
# The baseline's commands, in the protocol: SADD KEY CODE.
awk 'BEGIN { k = "bench:baseline:codes" }
{ printf "*3\r\n$4\r\nSADD\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length($0), $0 }' \
    "$work/codes.txt" >"$work/sadd.resp"
rm -f "$work"/part-*
split -C "$upload_limit" -d -a 3 "$work/codes.txt" "$work/part-"
parts=("$work"/part-*)

now_ns() { date +%s%N; }
# pool_size CAMPAIGN: the codes in the pool of its prize `coupon`.
pool_size() { rcli SCARD "pw:{$1}:codes:coupon"; }
# expect WHAT WANT GOT: fails the run unless GOT is WANT.
expect() { [[ $3 == "$2" ]] || { pw_err "$1: $3, expected $2"; exit 1; }; }

pw_log "(c) baseline: redis-cli --pipe, one SADD per code"
t0=$(now_ns)
timeout "$step_timeout" redis-cli -h 127.0.0.1 -p "$port" --pipe <"$work/sadd.resp" >"$work/pipe.out"
pipe_ns=$(($(now_ns) - t0))
expect "baseline set" "$n" "$(rcli SCARD bench:baseline:codes)"

pw_log "(a) prizewheel campaign codes add (CLI)"
t0=$(now_ns)
cli_out=$(timeout "$step_timeout" "$bin" campaign codes add codes-cli coupon "$work/codes.txt")
cli_ns=$(($(now_ns) - t0))
[[ $cli_out == *": $n added, 0 duplicates, 0 invalid; $n available" ]] || { pw_err "CLI: $cli_out"; exit 1; }
expect "CLI pool" "$n" "$(pool_size codes-cli)"

pw_log "(b) HTTP uploads: ${#parts[@]} part(s) of at most 16 MiB, one after another"
token=$("$bin" token --sub bench-marketer --role marketing)
start_server
url="http://$listen/v1/admin/campaigns/codes-http/prizes/coupon/codes"
added=0
t0=$(now_ns)
for part in "${parts[@]}"; do
    answer=$(curl -sS --fail-with-body --max-time "$step_timeout" -X POST "$url" \
        -H "Authorization: Bearer $token" -H 'Content-Type: text/plain' --data-binary "@$part")
    added=$((added + $(sed -E 's/.*"added":([0-9]+).*/\1/' <<<"$answer")))
done
http_ns=$(($(now_ns) - t0))
stop_server
expect "HTTP codes added" "$n" "$added"
expect "HTTP pool" "$n" "$(pool_size codes-http)"

pw_log "Redis memory: $n codes of 12 and of 36 characters (redis_footprint)"
mem12=$(timeout "$step_timeout" "$footprint_bin" codes-mem12 "$n" codes 12 | grep '^CODES ')
mem36=$(timeout "$step_timeout" "$footprint_bin" codes-mem36 "$n" codes 36 | grep '^CODES ')

rate() { awk -v n="$n" -v ns="$1" 'BEGIN { printf "%.0f", n / (ns / 1e9) }'; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.2f", ns / 1e9 }'; }
pipe_rate=$(rate "$pipe_ns") cli_rate=$(rate "$cli_ns") http_rate=$(rate "$http_ns")
{
    echo
    echo "prizewheel codes bench, $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $n codes of $chars characters ($(du -m "$work/codes.txt" | cut -f1) MB)"
    echo
    echo "| load | seconds | codes/s | vs redis-cli --pipe |"
    echo "| --- | --- | --- | --- |"
    echo "| CLI, \`prizewheel campaign codes add\`, one file | $(secs "$cli_ns") | $cli_rate | $(ratio "$cli_rate" "$pipe_rate") |"
    echo "| HTTP, POST …/prizes/coupon/codes, ${#parts[@]} upload(s) of ≤ 16 MiB one after another | $(secs "$http_ns") | $http_rate | $(ratio "$http_rate" "$pipe_rate") |"
    echo "| baseline: \`redis-cli --pipe\`, one SADD per code into one set | $(secs "$pipe_ns") | $pipe_rate | 1.00 |"
    echo
    echo "Redis bytes per code in a prize's pool ($n codes): 12 characters $(field used_per_code "$mem12") allocated (used_memory delta), $(field pool_per_code "$mem12") by MEMORY USAGE; 36 characters $(field used_per_code "$mem36") and $(field pool_per_code "$mem36")"
    echo
    echo "CODES codes=$n chars=$chars parts=${#parts[@]} cli_per_s=$cli_rate http_per_s=$http_rate pipe_per_s=$pipe_rate cli_ratio=$(ratio "$cli_rate" "$pipe_rate") http_ratio=$(ratio "$http_rate" "$pipe_rate") used12=$(field used_per_code "$mem12") pool12=$(field pool_per_code "$mem12") used36=$(field used_per_code "$mem36") pool36=$(field pool_per_code "$mem36")"
} | tee "$work/table.md"
rm -f "$work/codes.txt" "$work/sadd.resp" "$work"/part-*
