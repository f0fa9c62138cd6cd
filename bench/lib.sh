# shellcheck shell=bash
#
# bench/lib.sh: what the HTTP benchmarks share (sourced after scripts/services.sh):
# the service's environment for a benchmark and starting and stopping it.

# bench_env REDIS_PORT DATABASE LISTEN: the release binary in $bin and the
# environment `serve` and the CLI read; settlement off (it would compete for the
# same cores), logs at warn unless LOG_FILTER says otherwise (spans and access
# lines cost CPU per request: LOG_FILTER=info measures them).
bench_env() {
    bin="$PW_ROOT/target/release/prizewheel"
    export REDIS_URL="redis://127.0.0.1:$1"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$PW_PG_PORT/$2"
    export PRIZEWHEEL_JWT_SECRET="bench-secret-bench-secret-bench-secret"
    export PRIZEWHEEL_LISTEN="$3"
    export PRIZEWHEEL__LOG__FILTER="${LOG_FILTER:-warn}"
    export PRIZEWHEEL__SETTLE__ENABLED=false
}

server_pid=""

# Starts `serve` in the background and waits (up to 10 s) for /healthz.
start_server() {
    "$bin" serve &
    server_pid=$!
    local i
    for ((i = 0; i < 100; i++)); do
        curl -sf "http://$PRIZEWHEEL_LISTEN/healthz" >/dev/null && return 0
        sleep 0.1
    done
    pw_err "the server did not start"
    exit 1
}

stop_server() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}

# field NAME LINE: the value of NAME=… in a summary line (wrk-spin.lua's WRK line).
field() { sed -E "s/.* $1=([0-9.]+).*/\1/" <<<"$2"; }

# ratio A B: A / B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# bench_campaign DIR ID SPINS_PER_USER EXPECTED_USERS COUPON_STOCK BY [EXTRA [PACED]]:
# writes DIR/ID.yaml (open now, a rare bounded prize, a common one with
# COUPON_STOCK units, the fallback, and the top-level YAML line EXTRA if given,
# e.g. `earned_spins: { free: 1 }`) and applies it as BY. With PACED (any
# word), the phone is released 10 a day and the coupon evenly over the window,
# so most draws check a release.
bench_campaign() {
    cat >"$1/$2.yaml" <<YAML
id: $2
name: Bench $2
starts_at: $(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)
ends_at: $(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
expected_users: $4
limits: { spins_per_user: $3 }
${7:-}
fallback: none
prizes:
  - { id: phone, name: Phone, weight: 1, stock: 1000, value: { amount: "79900.00", currency: INR }${8:+, release: { per_day: 10 \}} }
  - { id: coupon, name: Coupon, weight: 2000, stock: $5, value: { amount: "100.00", currency: INR }${8:+, release: even} }
  - { id: none, name: Better luck, weight: 7999, stock: unlimited, value: { amount: "0", currency: INR } }
YAML
    "$bin" campaign apply "$1/$2.yaml" --by "$6" >/dev/null
}

# wide_campaign WORK ID: a 64-prize wheel (the limit): 63 bounded prizes and
# the fallback, for the cost of a draw against the size of the wheel.
wide_campaign() {
    {
        echo "id: $2"
        echo "name: Bench $2"
        echo "starts_at: $(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)"
        echo "ends_at: $(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)"
        echo "expected_users: 1000000"
        echo "limits: { spins_per_user: 1000000 }"
        echo "fallback: none"
        echo "prizes:"
        for i in $(seq 1 63); do
            echo "  - { id: p$i, name: Prize $i, weight: 30, stock: 1000000, value: { amount: \"10.00\", currency: INR } }"
        done
        echo "  - { id: none, name: Better luck, weight: 8110, stock: unlimited, value: { amount: \"0\", currency: INR } }"
    } >"$1/$2.yaml"
    "$bin" campaign apply "$1/$2.yaml" --by bench >/dev/null
}

# bench_stores PORT DATABASE WORK: what the ledger benchmarks start from:
# PostgreSQL running, a fresh Redis on PORT (data in WORK/redis), the database
# dropped and created again, the release build in $bin (or the build
# PW_BENCH_BIN names, without building), REDIS_URL and
# DATABASE_URL set, migrations applied. The caller sets its own EXIT trap.
bench_stores() {
    pw_ensure_packages
    pw_start_postgres
    pw_stop_redis "$1" 2>/dev/null || true
    rm -rf "$3/redis"
    pw_start_redis "$1" "$3/redis"
    psql -q -X -h 127.0.0.1 -p "$PW_PG_PORT" -U postgres -d postgres -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)"
    pw_create_database "$2"
    if [[ -n ${PW_BENCH_BIN:-} ]]; then
        bin="$PW_BENCH_BIN"
    else
        cargo build --release --locked -q
        bin="$PW_ROOT/target/release/prizewheel"
    fi
    export REDIS_URL="redis://127.0.0.1:$1"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$PW_PG_PORT/$2"
    "$bin" migrate >/dev/null
}
