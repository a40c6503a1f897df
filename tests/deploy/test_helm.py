"""The Helm chart (deploy/helm/parley), rendered by the real helm binary, no cluster needed.

Every release shape is rendered once per module (default values, the production example)
and the tests read the objects Kubernetes would receive: probes, security contexts, the
migration hook, the Ingress routes, autoscaling, the worker Deployments per queue and
where the settings come from. The objects are validated against the Kubernetes OpenAPI
schemas, and values.schema.json and the templates' own checks must refuse bad values.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy.helm import check_chart
from deploy.helm.check_chart import ChartError, lint, render, validate

from parley.worker.process import node_name

pytestmark = pytest.mark.mode_independent

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = check_chart.CHART / "values-production.yaml"

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def default_objects() -> list[Obj]:
    """The release as `helm template` renders it with the chart's default values."""
    return render()


@pytest.fixture(scope="module")
def production_objects() -> list[Obj]:
    """The release with the production example values."""
    return render([PRODUCTION])


@pytest.fixture(scope="module", params=["default", "production"])
def objects(
    request: pytest.FixtureRequest, default_objects: list[Obj], production_objects: list[Obj]
) -> list[Obj]:
    """Each release shape in turn."""
    return default_objects if request.param == "default" else production_objects


def named(objects: list[Obj], kind: str) -> dict[str, Obj]:
    """The objects of one kind, by name."""
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_templates(objects: list[Obj]) -> dict[str, Obj]:
    """The pod spec of every Deployment and Job, by its owner's kind/name."""
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
    }


def container(objects: list[Obj], deployment: str) -> Obj:
    """The one container of a Deployment."""
    (only,) = named(objects, "Deployment")[deployment]["spec"]["template"]["spec"]["containers"]
    return only


def option(args: list[str], flag: str) -> str:
    """The value following `flag` in a command line."""
    assert flag in args, f"{flag} not in {args}"
    return args[args.index(flag) + 1]


def image_user() -> int:
    """The numeric user the image runs as (deploy/Dockerfile's USER)."""
    users = set(re.findall(r"^USER (\d+):\d+$", (REPO / "deploy/Dockerfile").read_text(), re.M))
    assert len(users) == 1, users
    return int(users.pop())


# ---------------------------------------------------------------------- Kubernetes accepts it


def test_both_releases_lint_and_validate_against_the_kubernetes_schemas(
    default_objects: list[Obj], production_objects: list[Obj]
) -> None:
    lint()
    lint([PRODUCTION])
    assert validate(default_objects) == []
    assert validate(production_objects) == []
    assert {o["kind"] for o in production_objects} == {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Ingress",
        "Job",
    }
    assert {o["kind"] for o in default_objects} - {o["kind"] for o in production_objects} == {
        "Secret"
    }


def test_validation_catches_what_a_cluster_would_refuse(default_objects: list[Obj]) -> None:
    """The schema check is no rubber stamp: a wrong type, a misspelt field and a removed
    API version are errors."""
    deployment = named(default_objects, "Deployment")["parley-api"]
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "three"
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    wrong_version = {**deployment, "apiVersion": "extensions/v1beta1"}
    errors = validate([wrong_type, misspelt, wrong_version])
    assert len(errors) == 3, errors
    assert "spec/replicas" in errors[0]
    assert "livenesProbe" in errors[1]
    assert "extensions/v1beta1" in errors[2]


# ------------------------------------------------------------------------------------- api


def test_api_serves_on_all_addresses_with_health_probes(objects: list[Obj]) -> None:
    api = container(objects, "parley-api")
    assert api["args"][:5] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert api["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert api["readinessProbe"]["httpGet"] == {"path": "/api/v1/health", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/api/v1/health/live", "port": "http"}
    assert api["startupProbe"]["httpGet"]["path"] == "/api/v1/health/live"


def test_api_shuts_down_gracefully(objects: list[Obj]) -> None:
    """The endpoint leaves the Service (preStop pause) before SIGTERM, and the kubelet
    waits longer than the pause plus the time open requests get."""
    api = container(objects, "parley-api")
    pod = named(objects, "Deployment")["parley-api"]["spec"]["template"]["spec"]
    command = api["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = int(command[1])
    graceful = int(option(api["args"], "--graceful-timeout"))
    assert pause >= 5
    assert graceful == 20
    assert pod["terminationGracePeriodSeconds"] > pause + graceful


def test_api_scales_on_cpu_and_keeps_replicas_through_disruptions(objects: list[Obj]) -> None:
    deployment = named(objects, "Deployment")["parley-api"]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpa = named(objects, "HorizontalPodAutoscaler")["parley-api"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "parley-api",
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = named(objects, "PodDisruptionBudget")["parley-api"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


# ----------------------------------------------------------------------------------- hooks


def test_hooks_runs_apart_with_its_own_probes(objects: list[Obj]) -> None:
    hooks = container(objects, "parley-hooks")
    assert hooks["args"] == ["hooks", "--host", "0.0.0.0", "--port", "8001"]
    assert hooks["readinessProbe"]["httpGet"] == {"path": "/hooks/health", "port": "http"}
    assert hooks["livenessProbe"]["httpGet"] == {"path": "/hooks/health/live", "port": "http"}
    service = named(objects, "Service")["parley-hooks"]
    labels = named(objects, "Deployment")["parley-hooks"]["spec"]["template"]["metadata"]
    assert service["spec"]["selector"].items() <= labels["labels"].items()


def test_production_scales_hooks_too(production_objects: list[Obj]) -> None:
    assert "parley-hooks" in named(production_objects, "HorizontalPodAutoscaler")
    assert "parley-hooks" in named(production_objects, "PodDisruptionBudget")


# --------------------------------------------------------------------------------- workers


def test_production_runs_a_worker_deployment_per_queue_group(
    production_objects: list[Obj],
) -> None:
    deployments = named(production_objects, "Deployment")
    workers = {n: d for n, d in deployments.items() if n.startswith("parley-worker-")}
    assert set(workers) == {"parley-worker-parse-billing", "parley-worker-previews"}
    queues = {
        name: option(container(production_objects, name)["args"], "--queues") for name in workers
    }
    assert queues == {
        "parley-worker-parse-billing": "parse,billing",
        "parley-worker-previews": "previews",
    }
    # Separate selectors: neither Deployment adopts the other's pods.
    selectors = [
        tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in workers.values()
    ]
    assert len(set(selectors)) == 2
    assert "parley-worker-parse-billing" in named(production_objects, "HorizontalPodAutoscaler")
    assert (
        option(container(production_objects, "parley-worker-previews")["args"], "--concurrency")
        == "8"
    )


def test_default_worker_consumes_every_queue(default_objects: list[Obj]) -> None:
    worker = container(default_objects, "parley-worker-default")
    assert "--queues" not in worker["args"]


def test_worker_liveness_pings_the_pods_own_worker(objects: list[Obj]) -> None:
    """`--check --name` names exactly the node the worker runs as; `%h` is the pod's name."""
    workers = [n for n in named(objects, "Deployment") if n.startswith("parley-worker-")]
    assert workers
    for name in workers:
        worker = container(objects, name)
        assert worker["args"][0] == "worker"
        node = option(worker["args"], "--name")
        assert node == name.removeprefix("parley-worker-") + "@%h"
        probe = worker["livenessProbe"]
        command = probe["exec"]["command"]
        assert command[:3] == ["parley", "worker", "--check"]
        assert option(command, "--name") == node
        assert probe["timeoutSeconds"] > float(option(command, "--timeout"))
        assert option(worker["args"], "--metrics-host") == "0.0.0.0"
        assert worker["ports"] == [{"name": "metrics", "containerPort": 9808, "protocol": "TCP"}]


def test_worker_node_names_expand_to_the_host_name() -> None:
    """`parley worker --name X@%h` and `--check --name X@%h` resolve `%h` alike, to the
    host name, which in a pod is the pod's name: each check pings its own pod's worker."""
    assert node_name("previews@%h") == f"previews@{socket.gethostname()}"


# ----------------------------------------------------------------------- pods are locked down


def test_every_pod_and_container_is_locked_down(objects: list[Obj]) -> None:
    user = image_user()
    pods = pod_templates(objects)
    assert len(pods) >= 4
    for owner, pod in pods.items():
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, owner
        assert context["runAsUser"] == user, owner
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, owner
        assert pod["automountServiceAccountToken"] is False, owner
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"] + pod.get("initContainers", []):
            where = f"{owner}/{c['name']}"
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["runAsUser"] == user, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            (tmp,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]  # noqa: S108
            assert "emptyDir" in volumes[tmp["name"]], where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= c["resources"][kind].keys(), where


# -------------------------------------------------------------------------------- migration


def test_migration_runs_as_a_hook_before_install_and_upgrade(objects: list[Obj]) -> None:
    job = named(objects, "Job")["parley-migrate"]
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {
        "before-hook-creation",
        "hook-succeeded",
    }
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (migrate,) = pod["containers"]
    assert migrate["args"] == ["migrate"]
    # What it reads exists before it runs: hooks of a lower weight, or a Secret that is
    # not the release's (existingSecret).
    hooks_by_name = {
        (o["kind"], o["metadata"]["name"]): o
        for o in objects
        if "helm.sh/hook" in o["metadata"].get("annotations", {})
    }
    job_weight = int(annotations["helm.sh/hook-weight"])
    release_secrets = named(objects, "Secret")
    for source in migrate["envFrom"]:
        kind, ref = next(iter(source.items()))
        kind = {"configMapRef": "ConfigMap", "secretRef": "Secret"}[kind]
        hook = hooks_by_name.get((kind, ref["name"]))
        if hook is None:
            assert kind == "Secret", ref
            assert ref["name"] not in release_secrets, ref
            continue
        assert "pre-install" in hook["metadata"]["annotations"]["helm.sh/hook"]
        assert int(hook["metadata"]["annotations"]["helm.sh/hook-weight"]) < job_weight


def test_migration_reads_the_same_settings_as_the_pods(default_objects: list[Obj]) -> None:
    configs = named(default_objects, "ConfigMap")
    secrets = named(default_objects, "Secret")
    assert configs["parley-migrate"]["data"] == configs["parley"]["data"]
    # The generated signing key too: one key per render, not one per template.
    assert secrets["parley-migrate"]["data"] == secrets["parley"]["data"]
    key = base64.b64decode(secrets["parley"]["data"]["PARLEY_SECRET_KEY"]).decode()
    assert len(key) >= 32


def test_pods_never_migrate_themselves(objects: list[Obj]) -> None:
    config = named(objects, "ConfigMap")["parley"]["data"]
    assert config["PARLEY_AUTO_MIGRATE"] == "false"
    assert config["PARLEY_ENV"] == "production"


# ---------------------------------------------------------------------------------- ingress


def test_ingress_routes_hooks_apart_and_keeps_websockets_open(objects: list[Obj]) -> None:
    ingress = named(objects, "Ingress")["parley"]
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    annotations = ingress["metadata"]["annotations"]
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 3600
    services = named(objects, "Service")
    for rule in ingress["spec"]["rules"]:
        routes = {
            p["path"]: (p["pathType"], p["backend"]["service"]) for p in rule["http"]["paths"]
        }
        assert routes == {
            "/hooks": ("Prefix", {"name": "parley-hooks", "port": {"name": "http"}}),
            "/": ("Prefix", {"name": "parley-api", "port": {"name": "http"}}),
        }
        for _, backend in routes.values():
            (port,) = services[backend["name"]]["spec"]["ports"]
            assert port["name"] == "http"
            assert port["targetPort"] == "http"


def test_ingress_keeps_metrics_inside_the_cluster(objects: list[Obj]) -> None:
    """Through the ingress, /metrics answers the controller alone (403 for the world)."""
    ingress = named(objects, "Ingress")["parley-metrics"]
    allowed = ingress["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/whitelist-source-range"
    ]
    assert allowed == "127.0.0.1/32"
    main_rules = named(objects, "Ingress")["parley"]["spec"]["rules"]
    assert [r.get("host") for r in ingress["spec"]["rules"]] == [r.get("host") for r in main_rules]
    for rule in ingress["spec"]["rules"]:
        (path,) = rule["http"]["paths"]
        assert (path["path"], path["pathType"]) == ("/metrics", "Exact")
        assert path["backend"]["service"]["name"] == "parley-api"


def test_production_ingress_serves_tls(production_objects: list[Obj]) -> None:
    ingress = named(production_objects, "Ingress")["parley"]
    assert ingress["spec"]["tls"] == [{"secretName": "parley-tls", "hosts": ["chat.example.com"]}]
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["chat.example.com"]


def test_without_hooks_the_api_answers_webhooks() -> None:
    objects = render(set_values=["hooks.enabled=false"])
    assert "parley-hooks" not in named(objects, "Deployment")
    (rule,) = named(objects, "Ingress")["parley"]["spec"]["rules"]
    assert [p["path"] for p in rule["http"]["paths"]] == ["/"]


# --------------------------------------------------------------------------------- settings


def test_existing_secret_replaces_the_charts(production_objects: list[Obj]) -> None:
    assert named(production_objects, "Secret") == {}
    for owner, pod in pod_templates(production_objects).items():
        for c in pod["containers"]:
            refs = [s["secretRef"]["name"] for s in c["envFrom"] if "secretRef" in s]
            assert refs == ["parley-secrets"], owner


def test_trusted_proxies_are_the_pod_network(objects: list[Obj]) -> None:
    config = named(objects, "ConfigMap")["parley"]["data"]
    networks = [ipaddress.ip_network(n) for n in config["PARLEY_TRUSTED_PROXIES"].split(",")]
    assert networks
    assert not any(n.is_global for n in networks)
    assert config["PARLEY_REDIS_CLUSTER"] == "false"


def test_default_proxies_cover_the_usual_pod_ranges(default_objects: list[Obj]) -> None:
    config = named(default_objects, "ConfigMap")["parley"]["data"]
    networks = [ipaddress.ip_network(n) for n in config["PARLEY_TRUSTED_PROXIES"].split(",")]
    for pod_address in ("10.244.1.7", "172.17.0.5", "192.168.3.4", "100.64.0.9", "fd00::12"):
        assert any(ipaddress.ip_address(pod_address) in n for n in networks), pod_address


def test_extra_settings_keep_their_numbers(tmp_path: Path) -> None:
    """Helm reads numbers as floats; a whole one must not reach the pods as 1e+07."""
    path = tmp_path / "values.yaml"
    extra = {
        "PARLEY_EVENT_LOG_MAX_AGE_SECONDS": 10_000_000,
        "PARLEY_WS_HEARTBEAT_SECONDS": 12.5,
        "PARLEY_WS_COMPRESSION": True,
    }
    path.write_text(yaml.safe_dump({"config": {"extra": extra}}))
    config = named(render([path]), "ConfigMap")["parley"]["data"]
    assert config["PARLEY_EVENT_LOG_MAX_AGE_SECONDS"] == "10000000"
    assert config["PARLEY_WS_HEARTBEAT_SECONDS"] == "12.5"
    assert config["PARLEY_WS_COMPRESSION"] == "true"


def test_secrets_go_only_to_the_secret(default_objects: list[Obj]) -> None:
    config = named(default_objects, "ConfigMap")["parley"]["data"]
    secret = named(default_objects, "Secret")["parley"]["data"]
    assert {"PARLEY_SECRET_KEY", "PARLEY_DATABASE_URL", "PARLEY_REDIS_URL"} <= secret.keys()
    assert not secret.keys() & config.keys()


# ------------------------------------------------------------------------- refused values


INVALID_VALUES = {
    "a number as a string": {"api": {"replicas": "three"}},
    "a misspelt key": {"api": {"replica": 3}},
    "an unknown queue": {"workers": [{"name": "mail", "queues": ["email"]}]},
    "a short secret key": {"secrets": {"secretKey": "too-short"}},
    "a SQLite database": {"secrets": {"databaseUrl": "sqlite+aiosqlite:///./parley.db"}},
    "Redis Cluster as the broker": {"config": {"redisCluster": True}},
    "TLS without a host": {"ingress": {"tlsSecretName": "parley-tls"}},
    "a secret among the plain settings": {"config": {"extra": {"PARLEY_SECRET_KEY": "x" * 40}}},
    "an unknown environment": {"config": {"env": "staging"}},
}


@pytest.mark.parametrize("values", INVALID_VALUES.values(), ids=INVALID_VALUES.keys())
def test_schema_refuses_invalid_values(values: Obj, tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ChartError, match="schema"):
        render([path])
    with pytest.raises(ChartError):
        lint([path])


REFUSED_RELEASES = {
    "grace period shorter than the shutdown": (
        {"api": {"terminationGracePeriodSeconds": 25}},
        "terminationGracePeriodSeconds must exceed",
    ),
    "two workers of one name": (
        {"workers": [{"name": "jobs", "queues": ["parse"]}, {"name": "jobs", "queues": []}]},
        "used twice",
    ),
    "more connections than PostgreSQL allows": (
        {"api": {"autoscaling": {"maxReplicas": 20}}},
        "database connections",
    ),
    "a probe that cannot wait for the check": (
        {
            "workers": [
                {
                    "name": "jobs",
                    "queues": [],
                    "livenessProbe": {
                        "checkTimeoutSeconds": 10,
                        "initialDelaySeconds": 0,
                        "periodSeconds": 60,
                        "timeoutSeconds": 10,
                        "failureThreshold": 3,
                    },
                }
            ]
        },
        "must exceed checkTimeoutSeconds",
    ),
}


@pytest.mark.parametrize(
    ("values", "message"), REFUSED_RELEASES.values(), ids=REFUSED_RELEASES.keys()
)
def test_templates_refuse_releases_that_would_misbehave(
    values: Obj, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ChartError, match=message):
        render([path])


def test_connection_guard_can_be_raised_or_turned_off() -> None:
    assert render(set_values=["api.autoscaling.maxReplicas=20", "database.maxConnections=400"])
    assert render(set_values=["api.autoscaling.maxReplicas=20", "database.maxConnections=null"])
