#!/usr/bin/env bash
# bench/audit.sh: how fast `prizewheel audit` replays a ledger.
#
#   bash bench/audit.sh            # ROWS=10000000 by default
#
# Builds a ledger of ROWS rewards that follows the draw rule (two unlimited
# prizes with weights 1 and 9: R mod 10 < 1 draws `a`, else `b`), sets the live
# counters to match, and times the audit, which must pass.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../scripts/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/services.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PW_ROOT"

rows="${ROWS:-10000000}"
port="${PW_BENCH_REDIS_PORT:-6394}"
db=prizewheel_bench_audit
work="$PW_ROOT/target/bench-audit"
mkdir -p "$work"
psql_db=(psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PW_PG_PORT" -U postgres -d "$db")

trap 'pw_stop_redis "$port" || true' EXIT
bench_stores "$port" "$db" "$work"
cat >"$work/bench.yaml" <<YAML
id: bench
name: Bench
starts_at: $(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)
ends_at: $(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
limits: { spins_per_user: 1000000 }
fallback: b
prizes:
  - { id: a, name: A, weight: 1, stock: unlimited, value: { amount: "10.00", currency: INR } }
  - { id: b, name: B, weight: 9, stock: unlimited, value: { amount: "0", currency: INR } }
YAML
"$bin" campaign apply "$work/bench.yaml" --by bench >/dev/null
# The apply settles its own stream entry (its recovery check drains the stream)
# at today's stream id; the made-up rewards below have ids from 1970, so the
# apply is recorded again at 1-0, before them, and the stream emptied.
redis-cli -p "$port" XTRIM 'pw:{bench}:results' MAXLEN 0 >/dev/null

pw_log "building a ledger of $rows rewards"
"${psql_db[@]}" <<SQL
DELETE FROM ledger_applies WHERE campaign_id = 'bench';
INSERT INTO ledger_applies VALUES ('bench', '1-0', 1, 0, 1, 'bench', now());
INSERT INTO rewards (spin_id, campaign_id, user_id, prize_id, amount, currency, r, stream_id,
                     stream_ms, stream_seq, config_version, idempotency_key, spun_at)
SELECT gen_random_uuid(), 'bench', 'u' || (i % 100000),
       CASE WHEN (i * 7919) % 10 < 1 THEN 'a' ELSE 'b' END,
       CASE WHEN (i * 7919) % 10 < 1 THEN 10 ELSE 0 END, 'INR',
       i * 7919, (1000000 + i) || '-0', 1000000 + i, 0, 1, 'k' || i, now()
FROM generate_series(1::bigint, $rows::bigint) AS i;
SQL
counts=$("${psql_db[@]}" -t -A -F ' ' -c "SELECT prize_id, count(*) FROM rewards GROUP BY prize_id ORDER BY prize_id")
# shellcheck disable=SC2086 # "a N b M" → HSET field value pairs
redis-cli -p "$port" HSET 'pw:{bench}:awarded' $counts >/dev/null

pw_log "auditing"
start=$(date +%s%N)
"$bin" audit bench
elapsed_ns=$(($(date +%s%N) - start))
awk -v r="$rows" -v ns="$elapsed_ns" 'BEGIN { printf "audit: %d rewards in %.1f s (%.0f rewards/s, including start-up)\n", r, ns / 1e9, r / (ns / 1e9) }'
