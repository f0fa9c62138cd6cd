#!/usr/bin/env bash
# bench/settle.sh: settlement throughput against a plain COPY of the same rows
# into the same table, without and with a webhook sink, and webhook deliveries
# against settlement, in one run.
#
#   bash bench/settle.sh            # ROWS=1000000 by default
#   HOOK_CONCURRENCY=64 bash bench/settle.sh   # the endpoint's concurrency (default 8)
#   PW_BENCH_BIN=/path/to/prizewheel bash bench/settle.sh   # another build's settler
#   PW_BENCH_REDIS_PORT, PW_BENCH_HOOK_PORT, PW_BENCH_SETTLE_DB: its Redis port
#   (6393), the receiver's port (8097) and database (prizewheel_bench_settle),
#   for a run beside another one
#
# 1. Fills a campaign's results stream with ROWS spin entries and times
#    `prizewheel settle` until every entry is settled and acknowledged (no
#    webhook configured: the outbox costs one small read per batch).
# 2. Exports the settled rows and times `\copy` of them back into the emptied
#    table (same indexes): the baseline. Target: settle / COPY >= 0.8 (issue 22).
# 3. Empties `rewards`, fills a second campaign's stream with ROWS entries and
#    times `prizewheel settle` again with a webhook endpoint configured for
#    reward.settled: each batch also writes its outbox events and deliveries,
#    in the same transaction.
# 4. Starts bench/webhook-receiver.py (loopback, answers 204 at once after
#    checking the signature) and times `prizewheel deliver` (one dispatcher,
#    the endpoint's concurrency HOOK_CONCURRENCY) until none of the ROWS
#    deliveries is pending; every one must be delivered, none dead, each id
#    received with a valid signature.
# 5. Measures the receiver's own ceiling with wrk (one signed request of the
#    run, HOOK_CONCURRENCY connections): the delivery figure means something
#    only while it stays well below it.
# Read the ratios, not the absolute numbers.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../scripts/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/services.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PW_ROOT"

rows="${ROWS:-1000000}"
port="${PW_BENCH_REDIS_PORT:-6393}"
hook_port="${PW_BENCH_HOOK_PORT:-8097}"
hook_conc="${HOOK_CONCURRENCY:-8}"
db="${PW_BENCH_SETTLE_DB:-prizewheel_bench_settle}"
work="$PW_ROOT/target/bench-settle"
mkdir -p "$work"
psql_db=(psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PW_PG_PORT" -U postgres -d "$db")
sql() { "${psql_db[@]}" -t -A -c "$1"; }

stop_all() {
    local pid
    for pid in "${settler_pid:-}" "${deliver_pid:-}" "${receiver_pid:-}" "${analyze_pid:-}"; do
        if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
    done
    pw_stop_redis "$port" || true
}
trap stop_all EXIT
command -v wrk >/dev/null || pw_apt_install wrk
command -v python3 >/dev/null || pw_apt_install python3
bench_stores "$port" "$db" "$work"
export PRIZEWHEEL_JWT_SECRET="bench-secret-bench-secret-bench-secret"
export PRIZEWHEEL__LOG__FILTER="${PRIZEWHEEL__LOG__FILTER:-warn}"

# The service's config with one webhook endpoint (the receiver) for
# reward.settled; its secret, whsec_ and 32 random bytes, only in the environment.
hooks_config="$work/prizewheel-hooks.yaml"
awk -v url="http://127.0.0.1:$hook_port/hooks" -v conc="$hook_conc" '
    $0 == "webhooks: []" {
        print "webhooks:"
        print "  - id: bench"
        print "    url: " url
        print "    secret_env: PW_BENCH_WEBHOOK_SECRET"
        print "    events: [reward.settled]"
        print "    concurrency: " conc
        done = 1
        next
    }
    { print }
    END { exit !done }' config/prizewheel.yaml >"$hooks_config" || {
    pw_err "config/prizewheel.yaml has no 'webhooks: []' line to replace"
    exit 1
}
PW_BENCH_WEBHOOK_SECRET="whsec_$(head -c 32 /dev/urandom | base64 -w 0)"
export PW_BENCH_WEBHOOK_SECRET

# A PostgreSQL run with autovacuum off (CI's machines are) never analyzes the
# tables the run fills, and the statements the settler and the dispatcher
# prepare keep the plans they got while the tables were empty: the outbox's
# lookup of a batch's rewards becomes a scan of the whole table (about 300
# rows/s at 100,000 rows, falling). A production server's autovacuum keeps the
# statistics current; this stands in for it (an ANALYZE every 10 s) while the
# settler and the dispatcher run, and is said in the output.
analyze_pid=""
stand_in=""
[[ $(sql "SHOW autovacuum") == off ]] && stand_in=" (autovacuum off: ANALYZE every 10 s stands in for it)"
start_analyze() {
    [[ -n $stand_in ]] || return 0
    (while sleep 10; do sql "ANALYZE rewards, outbox_events, outbox_deliveries" >/dev/null 2>&1 || true; done) &
    analyze_pid=$!
}
stop_analyze() {
    if [[ -n $analyze_pid ]]; then
        kill "$analyze_pid" 2>/dev/null || true
        wait "$analyze_pid" 2>/dev/null || true
        analyze_pid=""
    fi
}

# fill CAMPAIGN TAG: a campaign row and ROWS spin entries in its stream (spin
# ids differ by TAG, four hex digits).
fill() {
    sql "INSERT INTO campaigns (campaign_id, name, timezone, starts_at, ends_at, version)
         VALUES ('$1', 'Bench', 'UTC', now(), now() + interval '30 days', 1)" >/dev/null
    pw_log "writing $rows entries to pw:{$1}:results"
    awk -v n="$rows" -v t="$(($(date +%s) * 1000))" -v s="pw:{$1}:results" -v tag="$2" 'BEGIN {
        for (i = 0; i < n; i++)
            printf "XADD %s * type spin spin %08x-%s-7000-8000-%012x user u%d prize coupon amount 100.00 currency INR r %d t %d ver 1 key k%d ctx \"\"\n", s, i, tag, i, i % 100000, i * 7919, t + int(i / 1000), i
    }' | redis-cli -p "$port" --pipe >/dev/null
}

# settle CAMPAIGN [ARGS]: runs `prizewheel settle ARGS` until every entry of the
# campaign's stream is settled and acknowledged; the time in settle_ns.
settle() {
    local stream="pw:{$1}:results" info start
    shift
    start_analyze
    start=$(date +%s%N)
    "$bin" "$@" settle &
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
    settler_pid=""
    stop_analyze
}

pw_log "1/5 settling, no webhook configured"
fill bench 0000
settle bench
plain_ns=$settle_ns
settled=$(sql "SELECT count(*) FROM rewards")

pw_log "2/5 COPY of the same rows"
"${psql_db[@]}" -c "\\copy rewards TO '$work/rewards.csv' WITH (FORMAT csv)"
"${psql_db[@]}" -c "TRUNCATE rewards"
start=$(date +%s%N)
"${psql_db[@]}" -c "\\copy rewards FROM '$work/rewards.csv' WITH (FORMAT csv)"
copy_ns=$(($(date +%s%N) - start))
rm -f "$work/rewards.csv"

pw_log "3/5 settling with a webhook endpoint (outbox in the same transaction)"
sql "TRUNCATE rewards" >/dev/null
fill bench-hooks 0001
settle bench-hooks --config "$hooks_config"
hooks_ns=$settle_ns
settled_hooks=$(sql "SELECT count(*) FROM rewards WHERE campaign_id = 'bench-hooks'")
queued=$(sql "SELECT count(*) FROM outbox_deliveries WHERE sink = 'bench' AND state = 'pending'")

pw_log "4/5 delivering to a receiver that answers 204 (concurrency $hook_conc)"
python3 bench/webhook-receiver.py "$hook_port" &
receiver_pid=$!
for ((i = 0; i < 50; i++)); do
    curl -sf "http://127.0.0.1:$hook_port/stats" >/dev/null && break
    sleep 0.1
done
start_analyze
start=$(date +%s%N)
"$bin" --config "$hooks_config" deliver &
deliver_pid=$!
while [[ $(sql "SELECT EXISTS (SELECT 1 FROM outbox_deliveries WHERE sink = 'bench' AND state = 'pending')") == t ]]; do
    kill -0 "$deliver_pid" 2>/dev/null || { pw_err "prizewheel deliver exited"; exit 1; }
    sleep 0.2
done
deliver_ns=$(($(date +%s%N) - start))
kill "$deliver_pid"
wait "$deliver_pid" || true
deliver_pid=""
stop_analyze
read -r delivered dead attempts < <(sql "SELECT count(*) FILTER (WHERE state = 'delivered'),
        count(*) FILTER (WHERE state = 'dead'), coalesce(sum(attempts), 0)
    FROM outbox_deliveries WHERE sink = 'bench'" | tr '|' ' ')
received=$(curl -sf "http://127.0.0.1:$hook_port/stats")

pw_log "5/5 the receiver alone (wrk, $hook_conc connections, 10 s)"
# One recorded event as the dispatcher sends it, signed with the run's secret.
IFS=$'\t' read -r PW_HOOK_ID PW_HOOK_BODY < <(sql "SELECT event_id || E'\t' || json_build_object(
        'type', type, 'timestamp', to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
        'data', payload)::text FROM outbox_events LIMIT 1")
PW_HOOK_TIMESTAMP=$(date +%s)
PW_HOOK_SIGNATURE=$(PW_HOOK_ID="$PW_HOOK_ID" PW_HOOK_BODY="$PW_HOOK_BODY" PW_HOOK_TIMESTAMP="$PW_HOOK_TIMESTAMP" python3 -c '
import base64, hashlib, hmac, os
key = base64.b64decode(os.environ["PW_BENCH_WEBHOOK_SECRET"].removeprefix("whsec_"))
signed = "{}.{}.{}".format(os.environ["PW_HOOK_ID"], os.environ["PW_HOOK_TIMESTAMP"], os.environ["PW_HOOK_BODY"])
print("v1," + base64.b64encode(hmac.new(key, signed.encode(), hashlib.sha256).digest()).decode())')
export PW_HOOK_ID PW_HOOK_BODY PW_HOOK_TIMESTAMP PW_HOOK_SIGNATURE
ceiling=$(wrk -t 1 -c "$hook_conc" -d 10s -s bench/wrk-webhook.lua "http://127.0.0.1:$hook_port/hooks" |
    awk '/^Requests\/sec:/ { print $2 } /Non-2xx/ { print "non-2xx" }')
after=$(curl -sf "http://127.0.0.1:$hook_port/stats")
kill "$receiver_pid"
wait "$receiver_pid" 2>/dev/null || true
receiver_pid=""

json() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
distinct=$(json "$received" distinct)
requests=$(json "$received" requests)
invalid=$(json "$after" invalid)

echo "rows:            $rows (settled: $settled; with a sink: $settled_hooks, $queued deliveries queued)$stand_in"
awk -v r="$rows" -v s="$plain_ns" -v h="$hooks_ns" -v c="$copy_ns" -v d="$deliver_ns" \
    -v conc="$hook_conc" -v att="$attempts" -v req="$requests" -v ceil="$ceiling" 'BEGIN {
    s /= 1e9; h /= 1e9; c /= 1e9; d /= 1e9
    printf "settle:          %.0f rows/s (%.1f s, stream -> rewards, exactly once, no webhook)\n", r / s, s
    printf "settle + sink:   %.0f rows/s (%.1f s, the same with a webhook endpoint: outbox events and deliveries in the same transaction)\n", r / h, h
    printf "plain COPY:      %.0f rows/s (%.1f s, same rows, same table and indexes)\n", r / c, c
    printf "ratio:           %.2f  (settle / COPY, target >= 0.80)\n", (r / s) / (r / c)
    printf "sink ratio:      %.2f  (settle + sink / settle); vs COPY %.2f\n", (r / h) / (r / s), (r / h) / (r / c)
    printf "deliver:         %.0f deliveries/s (%.1f s, one prizewheel deliver, concurrency %d, %d attempts, %d requests received)\n", r / d, d, conc, att, req
    printf "deliver ratio:   %.2f  (deliveries/s / settle + sink rows/s)\n", (r / d) / (r / h)
    printf "receiver alone:  %.0f requests/s (wrk, %d connections; deliveries/s at %.2f of it)\n", ceil, conc, (r / d) / ceil
}'
ok=1
[[ $settled == "$rows" && $settled_hooks == "$rows" ]] || { pw_err "settled $settled and $settled_hooks of $rows rows"; ok=0; }
[[ $queued == "$rows" ]] || { pw_err "$queued deliveries queued for $rows rewards"; ok=0; }
[[ $delivered == "$rows" && $dead == 0 ]] || { pw_err "delivered $delivered of $rows, $dead dead"; ok=0; }
[[ $distinct == "$rows" && $invalid == 0 ]] || { pw_err "the receiver saw $distinct distinct ids of $rows, $invalid invalid signatures"; ok=0; }
[[ $ceiling =~ ^[0-9.]+$ ]] || { pw_err "wrk against the receiver: '$ceiling'"; ok=0; }
((ok))
