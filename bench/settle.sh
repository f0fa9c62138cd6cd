#!/usr/bin/env bash
# bench/settle.sh: settlement throughput against a plain COPY of the same rows
# into the same table, in one run.
#
#   bash bench/settle.sh            # ROWS=1000000 by default
#
# Fills a campaign's results stream with ROWS spin entries, times `prizewheel
# settle` until every entry is settled and acknowledged, then exports the
# settled rows and times `\copy` of them back into the emptied table (same
# indexes). Read the ratio, not the absolute numbers. Target: ratio >= 0.5.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../scripts/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/services.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PW_ROOT"

rows="${ROWS:-1000000}"
port="${PW_BENCH_REDIS_PORT:-6393}"
db=prizewheel_bench_settle
work="$PW_ROOT/target/bench-settle"
mkdir -p "$work"
psql_db=(psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PW_PG_PORT" -U postgres -d "$db")

trap 'kill "${settler_pid:-0}" 2>/dev/null || true; pw_stop_redis "$port" || true' EXIT
bench_stores "$port" "$db" "$work"
export PRIZEWHEEL_JWT_SECRET="bench-secret-bench-secret-bench-secret"
export PRIZEWHEEL__LOG__FILTER="${PRIZEWHEEL__LOG__FILTER:-warn}"
"${psql_db[@]}" -c "INSERT INTO campaigns (campaign_id, name, timezone, starts_at, ends_at, version)
                     VALUES ('bench', 'Bench', 'UTC', now(), now() + interval '30 days', 1)"

stream='pw:{bench}:results'
pw_log "writing $rows entries to $stream"
now_ms=$(($(date +%s) * 1000))
awk -v n="$rows" -v t="$now_ms" -v s="$stream" 'BEGIN {
    for (i = 0; i < n; i++)
        printf "XADD %s * type spin spin %08x-0000-7000-8000-%012x user u%d prize coupon amount 100.00 currency INR r %d t %d ver 1 key k%d ctx \"\"\n", s, i, i, i % 100000, i * 7919, t + int(i / 1000), i
}' | redis-cli -p "$port" --pipe >/dev/null

pw_log "settling"
start=$(date +%s%N)
"$bin" settle &
settler_pid=$!
while :; do
    info=$(redis-cli -p "$port" XINFO GROUPS "$stream" 2>/dev/null | tr '\n' ' ')
    if [[ $info =~ pending\ ([0-9]+).*lag\ ([0-9]+) ]] && [[ ${BASH_REMATCH[1]} == 0 && ${BASH_REMATCH[2]} == 0 ]]; then
        break
    fi
    sleep 0.05
done
settle_ns=$(($(date +%s%N) - start))
kill "$settler_pid"
wait "$settler_pid" || true
settled=$("${psql_db[@]}" -t -A -c "SELECT count(*) FROM rewards")

pw_log "COPY of the same rows"
"${psql_db[@]}" -c "\\copy rewards TO '$work/rewards.csv' WITH (FORMAT csv)"
"${psql_db[@]}" -c "TRUNCATE rewards"
start=$(date +%s%N)
"${psql_db[@]}" -c "\\copy rewards FROM '$work/rewards.csv' WITH (FORMAT csv)"
copy_ns=$(($(date +%s%N) - start))
rm -f "$work/rewards.csv"

echo "rows:            $rows (settled: $settled)"
awk -v r="$rows" -v s="$settle_ns" -v c="$copy_ns" 'BEGIN {
    s /= 1e9; c /= 1e9
    printf "settle:          %.0f rows/s (%.1f s, stream -> rewards, exactly once)\n", r / s, s
    printf "plain COPY:      %.0f rows/s (%.1f s, same rows, same table and indexes)\n", r / c, c
    printf "ratio:           %.2f  (target >= 0.50)\n", (r / s) / (r / c)
}'
[[ $settled == "$rows" ]] || { echo "settled $settled of $rows rows" >&2; exit 1; }
