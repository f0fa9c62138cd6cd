#!/usr/bin/env bash
# scripts/fuzz-api.sh: property-based fuzzing of a running prizewheel from its
# own OpenAPI document with schemathesis (installed from PyPI when missing).
#
#   bash scripts/serve.sh              # terminal 1
#   bash scripts/fuzz-api.sh [N]       # terminal 2; N examples per operation (default 300)
#
# Every operation is called with generated (valid and invalid) requests under a
# token holding the marketing and finance roles; every check runs (no 5xx, status
# codes and content types as documented, problem+json bodies, 405 with Allow for
# undocumented methods). Exits with schemathesis's status.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=services.sh
source "$(dirname "${BASH_SOURCE[0]}")/services.sh"
cd "$PW_ROOT"

url="${PRIZEWHEEL_URL:-http://127.0.0.1:8080}"
examples="${1:-300}"
command -v st >/dev/null 2>&1 || pw_pip_install "schemathesis==4.32.5"
curl -sf "$url/healthz" >/dev/null || { pw_err "no prizewheel at $url (run scripts/serve.sh)"; exit 1; }
export PRIZEWHEEL_JWT_SECRET="${PRIZEWHEEL_JWT_SECRET:-$(cat .data/jwt-secret)}"
token="$(target/release/prizewheel token --sub fuzzer --role marketing --role finance)"
st run "$url/openapi.json" -H "Authorization: Bearer $token" -n "$examples" --checks all -w 2
