"""The deployment files hang together: Kubernetes manifests, compose, the Dockerfile.

No cluster here: the manifests are parsed and their required fields and cross-references
checked, and the ConfigMap's configuration is loaded by `gateway check` as a pod would see it.
The images themselves run in tests/container.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.helpers import CLEAN_ENV, GATEWAY_BIN

REPO = Path(__file__).resolve().parents[2]
KUBE = REPO / "deploy" / "kubernetes"
COMPOSE = REPO / "deploy" / "compose"
LABELS = {"app.kubernetes.io/name": "yaml-gateway"}


def _manifests() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path.name
            assert doc["metadata"].get("name"), path.name
            found[doc["kind"], doc["metadata"]["name"]] = doc
    return found


@pytest.fixture(scope="module")
def kube() -> dict[tuple[str, str], dict[str, Any]]:
    return _manifests()


def _pod(kube: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = kube["Deployment", "gateway"]["spec"]["template"]["spec"]
    return spec


def test_kustomization_is_the_workload_without_the_operators_data() -> None:
    """`kubectl apply -k` never overwrites the config or the secrets the operator made."""
    listed = yaml.safe_load((KUBE / "kustomization.yaml").read_text())["resources"]
    data = {"kustomization.yaml", "secret.yaml", "configmap.yaml"}
    assert sorted(listed) == sorted({p.name for p in KUBE.glob("*.yaml")} - data)


def test_deployment_probes_drain_and_security(kube: dict[tuple[str, str], Any]) -> None:
    deployment = kube["Deployment", "gateway"]
    assert deployment["apiVersion"] == "apps/v1"
    assert deployment["spec"]["replicas"] >= 2
    template = deployment["spec"]["template"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= template["metadata"]["labels"].items()
    )
    pod = _pod(kube)
    # The gateway's own 5 s drain + 25 s for requests in flight + margin; no preStop sleep
    # on top (it would add to the drain and eat the margin).
    assert pod["terminationGracePeriodSeconds"] == 35
    # A Service named `gateway` would otherwise set GATEWAY_PORT=tcp://... in every pod.
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"]
    assert {"name": "http", "containerPort": 8080} in container["ports"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert "lifecycle" not in container
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["GATEWAY_HOST"] == "0.0.0.0"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_deployment_uses_the_dockerfiles_user() -> None:
    user = re.search(r"^USER (\d+):(\d+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert user is not None
    pod = _pod(_manifests())
    assert pod["securityContext"]["runAsUser"] == int(user.group(1))
    assert pod["securityContext"]["runAsGroup"] == int(user.group(2))


def test_deployment_references_exist(kube: dict[tuple[str, str], Any]) -> None:
    pod = _pod(kube)
    (container,) = pod["containers"]
    (source,) = container["envFrom"]
    secret = kube["Secret", source["secretRef"]["name"]]
    # Redis is external: its URL comes from the Secret, never from the Deployment itself.
    assert secret["stringData"]["GATEWAY_STORE_URL"].startswith("redis://")
    assert "GATEWAY_STORE_URL" not in {item["name"] for item in container["env"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    for mount in mounts.values():
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            assert ("ConfigMap", volume["configMap"]["name"]) in kube
    config = volumes[mounts["/app/gateway.yaml"]["name"]]["configMap"]["name"]
    assert mounts["/app/gateway.yaml"]["subPath"] in kube["ConfigMap", config]["data"]
    # A folder mount: a ConfigMap update arrives as a `..data` swap the reloader watches.
    assert "subPath" not in mounts["/app/routes.d"]


def test_service_and_budget_select_the_pods(kube: dict[tuple[str, str], Any]) -> None:
    labels = kube["Deployment", "gateway"]["spec"]["template"]["metadata"]["labels"]
    service = kube["Service", "gateway"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]
    budget = kube["PodDisruptionBudget", "gateway"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] < kube["Deployment", "gateway"]["spec"]["replicas"]


def test_configmap_is_a_valid_config_folder(
    kube: dict[tuple[str, str], Any], tmp_path: Path
) -> None:
    """The pod's /app: gateway.yaml and routes.d/ from the ConfigMaps, plugins/ and schemas/
    from the image; `gateway check` accepts it."""
    (tmp_path / "gateway.yaml").write_text(
        kube["ConfigMap", "gateway-config"]["data"]["gateway.yaml"]
    )
    routes = tmp_path / "routes.d"
    routes.mkdir()
    for name, text in kube["ConfigMap", "gateway-routes"]["data"].items():
        (routes / name).write_text(text)
    for folder in ("plugins", "schemas"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    env = {**CLEAN_ENV, "GATEWAY_STORE_URL": "redis://redis:6379/0"}
    done = subprocess.run(
        [GATEWAY_BIN, "check", "--config-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_three_replicas_on_one_redis() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "gateway", "nginx"}
    gateway = services["gateway"]
    assert gateway["deploy"] == {"mode": "replicated", "replicas": 3}
    assert gateway["environment"]["GATEWAY_STORE_URL"] == "redis://redis:6379/0"
    # Pinned over the env file (a local .env may set PORT): nginx expects gateway:8080.
    assert gateway["environment"]["GATEWAY_PORT"] == "8080"
    targets = {volume.rsplit(":", 2)[1] for volume in gateway["volumes"]}  # SRC:DST:ro
    assert targets == {"/app/gateway.yaml", "/app/routes.d", "/app/plugins", "/app/schemas"}
    redis = services["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert any(volume.startswith("redis-data:") for volume in redis["volumes"])
    assert "redis-data" in compose["volumes"]
    (conf,) = services["nginx"]["volumes"]
    assert (REPO / conf.split(":")[0]).resolve() == COMPOSE / "nginx.conf"
    nginx = (COMPOSE / "nginx.conf").read_text()
    assert "server gateway:8080" in nginx
    assert "add_header X-Upstream $upstream_addr" in nginx


def test_local_images_override_builds_from_files_that_exist() -> None:
    override = yaml.safe_load((COMPOSE / "local-images.yaml").read_text())
    for name in ("redis", "nginx"):
        build = override["services"][name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()
        assert build["args"]["BASE"]


def test_dockerfile_contract() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "ARG BASE=python:3.11-slim" in text
    assert text.count("FROM ${BASE}") == 2  # build stage + runtime stage
    assert "COPY --from=build /opt/venv /opt/venv" in text
    assert re.search(r"^ENV .*GATEWAY_HOST=0\.0\.0\.0", text, re.M | re.S)
    assert re.search(r"^\s+PORT=8080$", text, re.M)
    assert re.search(r'^HEALTHCHECK .*\n\s+CMD \["python3"', text, re.M)
    assert re.search(r'^ENTRYPOINT \["gateway"\]$', text, re.M)
    assert re.search(r'^CMD \["serve"\]$', text, re.M)
    for folder in ("routes.d", "plugins", "schemas"):
        assert f"COPY {folder} ./{folder}" in text
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", "tests"} <= set(ignored)
