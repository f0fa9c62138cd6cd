#!/usr/bin/env bash
# scripts/serve.sh: run the prizewheel service locally.
#
#   bash scripts/serve.sh [extra args for `prizewheel serve`]
#
# Installs Redis/PostgreSQL if missing, starts PostgreSQL and the project's own
# Redis (port $PW_REDIS_PORT, default 6390, data in .data/redis), creates the
# database, builds the release binary, applies migrations and the example
# campaigns, then execs `prizewheel serve` on $PRIZEWHEEL_LISTEN (default
# 127.0.0.1:8080). Safe to re-run: everything already present is reused, and
# an example campaign already in Redis is left as it is live.
#
# The Redis keeps running after the service exits (its AOF is the state of the
# live campaigns). To stop it:
#   bash -c 'source scripts/services.sh && pw_stop_redis 6390'
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=services.sh
source "$(dirname "${BASH_SOURCE[0]}")/services.sh"
# Relative paths below (config/prizewheel.yaml is the binary's default config).
cd "$PW_ROOT"

if ! command -v cargo >/dev/null 2>&1; then
    pw_err "cargo not found; install Rust (https://rustup.rs) first"
    exit 1
fi

pw_ensure_packages
pw_start_postgres
pw_start_redis "$PW_REDIS_PORT" "$PW_ROOT/.data/redis"
pw_create_database "$PW_DB_NAME"

export REDIS_URL="redis://127.0.0.1:$PW_REDIS_PORT"
export DATABASE_URL="postgres://postgres@127.0.0.1:$PW_PG_PORT/$PW_DB_NAME"
export PRIZEWHEEL_LISTEN="${PRIZEWHEEL_LISTEN:-127.0.0.1:8080}"

# HS256 signing secret. A real deployment provides PRIZEWHEEL_JWT_SECRET; for
# local use we generate one once and keep it (mode 600) in .data/jwt-secret so
# tokens stay valid across restarts.
dev_secret_file=""
if [[ -z ${PRIZEWHEEL_JWT_SECRET:-} ]]; then
    dev_secret_file="$PW_ROOT/.data/jwt-secret"
    if [[ ! -s $dev_secret_file ]]; then
        mkdir -p "$PW_ROOT/.data"
        (umask 077 && head -c 32 /dev/urandom | base64 >"$dev_secret_file")
    fi
    PRIZEWHEEL_JWT_SECRET="$(<"$dev_secret_file")"
    export PRIZEWHEEL_JWT_SECRET
    pw_log "warning: using the DEVELOPMENT JWT secret from .data/jwt-secret; set PRIZEWHEEL_JWT_SECRET for anything real"
fi

pw_log "building (cargo build --release --locked)"
cargo build --release --locked

bin="$PW_ROOT/target/release/prizewheel"

pw_log "applying database migrations"
"$bin" migrate

# mega-sale is live for a year from 2026-11-01, so there is something to spin;
# order-spins likewise, with spins earned by orders (grants).
# Each example is applied only while it is not in Redis yet: once it is,
# marketing may have changed it live (a stock top-up, a pause), and applying the
# file again would silently undo that.
for campaign in config/campaigns/mega-sale.yaml config/campaigns/order-spins.yaml config/campaigns/diwali-2026.yaml; do
    id="$(sed -n 's/^id:[[:space:]]*\([a-z0-9-]*\).*/\1/p' "$campaign" | head -n 1)"
    if [[ -n $id && "$(pw_redis_cli "$PW_REDIS_PORT" EXISTS "pw:{$id}:meta")" == "1" ]]; then
        pw_log "campaign $id is already applied: kept as it is live (to apply $campaign again: $bin campaign apply $campaign)"
        continue
    fi
    pw_log "applying campaign $campaign (not applied yet)"
    "$bin" campaign apply "$campaign" --by serve.sh
    if [[ $id == order-spins ]]; then
        # Its coupon-200 hands out codes (stock: codes): 5000 example ones.
        pw_log "loading 5000 example codes for order-spins/coupon-200"
        seq -f 'EXAMPLE200-%06g' 1 5000 | "$bin" campaign codes add order-spins coupon-200 -
    fi
done

# How to call the API from another shell (\$ leaves a variable for that shell).
base_url="http://${PRIZEWHEEL_LISTEN/#0.0.0.0:/127.0.0.1:}"
echo "==> try it from another shell, in $PW_ROOT:" >&2
if [[ -n $dev_secret_file ]]; then
    # shellcheck disable=SC2016 # literal command for the user to paste
    echo '      export PRIZEWHEEL_JWT_SECRET="$(cat .data/jwt-secret)"' >&2
else
    echo '      (with the same PRIZEWHEEL_JWT_SECRET exported)' >&2
fi
cat >&2 <<HINT
      TOKEN=\$(target/release/prizewheel token --sub user-1)
      curl -sS -X POST $base_url/v1/campaigns/mega-sale/spins \\
        -H "Authorization: Bearer \$TOKEN" \\
        -H "Idempotency-Key: \$(uuidgen || cat /proc/sys/kernel/random/uuid)"
    the web console (docs/console.md): open $base_url/console/ and paste
      target/release/prizewheel token --sub alice --role marketing --role finance
HINT

pw_log "serving on $PRIZEWHEEL_LISTEN (Redis 127.0.0.1:$PW_REDIS_PORT, database $PW_DB_NAME)"
exec "$bin" serve "$@"
