#!/usr/bin/env bash
# bench/pg-spin.sh: the PostgreSQL-only baseline of bench/run.sh: the same draw
# done with SELECT … FOR UPDATE row locks, driven by pgbench at the same
# concurrency. This is what a user would otherwise pick; compare its spins/s
# with the HTTP figure of bench/run.sh.
#
#   bash bench/pg-spin.sh         # CONCURRENCY=50 DURATION=15 by default
#
# Each variant runs on a fresh database prizewheel_bench_pg (bench/pg-draw.sql:
# the campaign of bench/run.sh, quota never refusing), with pgbench -M prepared
# (cached prepared statements, as sqlx and most drivers do), 2 pgbench threads,
# 100,000 random users, a fresh idempotency key and a random R per spin, after a
# short warm-up. Variants (PG_VARIANTS, space-separated; see bench/pg-spin.pgbench):
#   stmt-lockall  one round trip per statement, all prize rows locked (default)
#   func-lockall  the same in one plpgsql call                         (default)
#   stmt-lockone  one round trip per statement, only the chosen prize locked
#   func-lockone  the same in one plpgsql call
# The last line is the headline: the fastest of the lock-all variants run (the
# usual design at its best), or the fastest of all if none of them ran.
#
# Durability: PG_SYNC_COMMIT (default off) sets synchronous_commit for the
# database. `off` is the class of the project's Redis (appendfsync everysec: an
# acknowledged spin may be lost in a crash, nothing is corrupted); `on` adds a
# WAL flush to every commit, inside the locks.
#
# Afterwards, per variant: no prize stock below zero, units conserved (initial
# stock = stock left + spins awarding it, so phones <= 1000), one spin row per
# transaction, no failed transactions. Exits 1 if any check fails.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../scripts/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/services.sh"
cd "$PW_ROOT"

conc="${CONCURRENCY:-50}"
duration="${DURATION:-15}"
warmup="${WARMUP:-3}"
variants="${PG_VARIANTS:-stmt-lockall func-lockall}"
sync_commit="${PG_SYNC_COMMIT:-off}"
db=prizewheel_bench_pg
work="$PW_ROOT/target/bench-pg"

for n in "$conc" "$duration" "$warmup"; do
    if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then
        pw_err "CONCURRENCY, DURATION and WARMUP must be positive integers (got '$n')"
        exit 1
    fi
done
case $sync_commit in
on | off) ;;
*)
    pw_err "PG_SYNC_COMMIT must be on or off, not '$sync_commit'"
    exit 1
    ;;
esac

pw_ensure_packages
# Debian ships pgbench in the server package (postgresql-NN), which the
# postgresql-contrib metapackage pulls in; /usr/bin/pgbench alone is a wrapper.
if ! pgbench --version >/dev/null 2>&1; then
    pw_log "installing pgbench (postgresql-contrib)"
    pw_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    pw_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends postgresql-contrib >/dev/null
fi
pw_start_postgres

rm -rf "$work"
mkdir -p "$work"
# Drops the database, without the NOTICE when it is not there.
drop_db() {
    PGOPTIONS='-c client_min_messages=warning' \
        pw_psql -d postgres -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
}
sampler_pid=""
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    if [[ -n $sampler_pid ]]; then
        kill "$sampler_pid" 2>/dev/null || true
    fi
    drop_db >/dev/null 2>&1 || true
}
trap cleanup EXIT

pgb=(pgbench -n -h 127.0.0.1 -p "$PW_PG_PORT" -U postgres -M prepared -j 2 -c "$conc"
    -f bench/pg-spin.pgbench)
q() { pw_psql -d "$db" -Atq -c "$1"; }

failed=0
check() {
    local what=$1 ok=$2
    if [[ $ok != t ]]; then
        pw_err "$variant: check failed: $what"
        failed=1
    fi
}

best_tps=0 best_line="" best_all_tps=0 best_all_line=""
for variant in $variants; do
    case $variant in
    stmt-lockall) func=0 lockall=1 ;;
    func-lockall) func=1 lockall=1 ;;
    stmt-lockone) func=0 lockall=0 ;;
    func-lockone) func=1 lockall=0 ;;
    *)
        pw_err "unknown variant '$variant' (stmt-lockall func-lockall stmt-lockone func-lockone)"
        exit 1
        ;;
    esac

    # A fresh database per variant.
    drop_db
    pw_create_database "$db"
    pw_psql -d postgres -q -c "ALTER DATABASE $db SET synchronous_commit = $sync_commit" >/dev/null
    pw_psql -d "$db" -q -f bench/pg-draw.sql >/dev/null

    pw_log "$variant: warm-up ${warmup}s, then ${duration}s at concurrency $conc"
    "${pgb[@]}" -D func="$func" -D lockall="$lockall" -T "$warmup" "$db" \
        >"$work/$variant.warmup.out" 2>&1 || {
        pw_err "$variant: warm-up failed (see $work/$variant.warmup.out)"
        exit 1
    }
    rows_before=$(q "SELECT count(*) FROM spins")

    # What the connections do during the run, sampled server-side every 50 ms.
    pw_psql -d "$db" -At -F ' ' \
        -c "SELECT * FROM pw_sample_waits($duration - 1, 0.05)" >"$work/$variant.waits" 2>&1 &
    sampler_pid=$!

    rc=0
    "${pgb[@]}" -D func="$func" -D lockall="$lockall" -T "$duration" -r \
        -l --log-prefix="$work/$variant.log" "$db" >"$work/$variant.out" 2>&1 || rc=$?
    wait "$sampler_pid" || true
    sampler_pid=""

    tps=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$work/$variant.out" | tail -n 1)
    txns=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$work/$variant.out")
    failed_txns=$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' "$work/$variant.out")
    aborted=$(grep -cE 'client [0-9]+ .*aborted' "$work/$variant.out" || true)
    if [[ -z $tps || -z $txns ]]; then
        pw_err "$variant: pgbench exited $rc without a summary; last lines of $work/$variant.out:"
        tail -n 5 "$work/$variant.out" >&2
        exit 1
    fi
    errors=$((${failed_txns:-0} + aborted + (rc != 0 ? 1 : 0)))

    # Latency percentiles (nearest rank) from the per-transaction logs:
    # column 3 is the transaction's latency in microseconds.
    read -r p50 p99 logged < <(cat "$work/$variant".log.* | awk '$3 ~ /^[0-9]+$/ { print $3 }' | sort -n |
        awk '{ v[NR] = $1 }
             END {
                 if (NR == 0) { print "nan nan 0"; exit }
                 i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++
                 i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++
                 printf "%.3f %.3f %d\n", v[i50] / 1000, v[i99] / 1000, NR
             }')

    read -r samples lock_wait running in_tx_idle idle <"$work/$variant.waits" || {
        samples=0 lock_wait=nan running=nan in_tx_idle=nan idle=nan
    }
    lock_pct=$(awk -v l="$lock_wait" -v c="$conc" 'BEGIN { printf "%.0f", 100 * l / c }')

    # Correctness.
    rows_after=$(q "SELECT count(*) FROM spins")
    check "no prize stock below zero" "$(q "SELECT bool_and(stock IS NULL OR stock >= 0) FROM prizes")"
    check "units conserved (initial = left + awarded) for every bounded prize" "$(q "
        SELECT bool_and(p.initial_stock = p.stock + (SELECT count(*) FROM spins s
                                                     WHERE s.prize_id = p.prize_id))
        FROM prizes p WHERE p.initial_stock IS NOT NULL")"
    check "phones awarded <= 1000" "$(q "SELECT count(*) <= 1000 FROM spins WHERE prize_id = 'phone'")"
    check "one spin row per transaction ($((rows_after - rows_before)) rows, $txns transactions)" \
        "$([[ $((rows_after - rows_before)) -eq $txns ]] && echo t || echo f)"
    check "every transaction logged ($logged logged, $txns processed)" \
        "$([[ $logged -eq $txns ]] && echo t || echo f)"
    check "no errors ($errors)" "$([[ $errors -eq 0 ]] && echo t || echo f)"
    awarded=$(q "SELECT string_agg(prize_id || '=' || n, ',' ORDER BY prize_id)
                 FROM (SELECT prize_id, count(*) AS n FROM spins GROUP BY prize_id) a")

    printf '%-13s tps=%s p50_ms=%s p99_ms=%s errors=%s spins=%s awarded_with_warmup=%s\n' \
        "$variant" "$tps" "$p50" "$p99" "$errors" "$txns" "$awarded"
    printf '%-13s connections on average: lock_wait=%s (%s%%) running=%s in_tx_idle=%s idle=%s (%s samples)\n' \
        "" "$lock_wait" "$lock_pct" "$running" "$in_tx_idle" "$idle" "$samples"

    line="PG variant=$variant tps=$tps p50_ms=$p50 p99_ms=$p99 errors=$errors lock_wait_pct=$lock_pct concurrency=$conc sync_commit=$sync_commit"
    if [[ $lockall -eq 1 ]] && awk -v a="$tps" -v b="$best_tps" 'BEGIN { exit !(a > b) }'; then
        best_tps=$tps best_line=$line
    fi
    if awk -v a="$tps" -v b="$best_all_tps" 'BEGIN { exit !(a > b) }'; then
        best_all_tps=$tps best_all_line=$line
    fi
done

pw_log "pgbench outputs (per-statement latencies with -r) and logs in $work"
echo "${best_line:-$best_all_line}"
exit "$failed"
