"""The image and the compose stack, run with podman as an operator would run them.

- one container: `/health`, a route file edited on the host goes live through the bind mount,
  `podman stop` (SIGTERM) ends it with exit code 0 before the stop timeout;
- compose: three replicas behind nginx on one Redis are one gateway: a rate limit of L over N
  requests accepts exactly L, answered by more than one replica; one OAuth client; an edit
  reaches every replica.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from tests.container.conftest import Images
from tests.container.podman import (
    COMPOSE_DIR,
    PODMAN_COMPOSE,
    REPO,
    Podman,
    get,
    poll,
    require,
    unique,
)
from tests.upstreams.server import free_port

PROBE_ROUTE = """\
routes:
  - id: containerProbe
    path: /container-probe
    auth: none
    static: true
    response: {body: '{{ {"live": true} }}'}
"""


def _readable(folder: Path) -> Path:
    """The container's user (10001) reads the mounted files; pytest's tmp folders are 0700."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


@contextmanager
def _container(podman: Podman, *args: str) -> Iterator[str]:
    name = unique("gateway-test")
    podman.run("run", "-d", "--name", name, *args)
    try:
        yield name
    finally:
        podman.run("rm", "-f", "-t", "0", name, check=False)


def test_image_serves_reloads_through_a_bind_mount_and_stops_on_sigterm(
    podman: Podman, images: Images, tmp_path: Path
) -> None:
    routes = tmp_path / "routes.d"
    shutil.copytree(REPO / "routes.d", routes)
    _readable(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    with _container(
        podman, "-p", f"127.0.0.1:{port}:8080", "-v", f"{routes}:/app/routes.d:ro", images.gateway
    ) as name:
        try:
            poll(f"{url}/health", until=60)
        except AssertionError:
            raise AssertionError(podman.logs(name)) from None
        first_health = time.monotonic() - start
        status, _, body = get(f"{url}/health")
        assert status == 200
        assert json.loads(body)["status"] == "ok"
        assert podman.run("exec", name, "id", "-u").stdout.strip() == "10001"
        # The image's HEALTHCHECK (python, no curl) passes.
        assert podman.run("healthcheck", "run", name, check=False).returncode == 0

        assert get(f"{url}/container-probe")[0] == 404
        (routes / "container_probe.yaml").write_text(PROBE_ROUTE)
        (routes / "container_probe.yaml").chmod(0o644)
        live_after = poll(f"{url}/container-probe", until=20)
        assert json.loads(get(f"{url}/container-probe")[2]) == {"live": True}

        stop_start = time.monotonic()
        podman.run("stop", "-t", "30", name, timeout=60)
        stopped_in = time.monotonic() - stop_start
        state = podman.run("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        logs = podman.logs(name)
        # 0, not 137: it ended itself after SIGTERM, before podman's 30 s timeout.
        assert state == "0", logs
        assert "stopping (SIGTERM)" in logs
    size = podman.run("image", "inspect", "--format", "{{.Size}}", images.gateway).stdout.strip()
    print(
        f"\nmeasured: build {images.build_seconds:.1f} s, image {int(size) / 1e6:.0f} MB, "
        f"run to first /health 200 {first_health:.2f} s, edit live after {live_after:.2f} s, "
        f"stopped in {stopped_in:.2f} s"
    )


def test_image_listens_on_port(podman: Podman, images: Images) -> None:
    """`PORT` (what hosting platforms set) moves the listener; GATEWAY_HOST=0.0.0.0 is baked in."""
    port = free_port()
    with _container(podman, "-e", "PORT=9000", "-p", f"127.0.0.1:{port}:9000", images.gateway):
        poll(f"http://127.0.0.1:{port}/health", until=60)


COMPOSE_GATEWAY = """\
server: {access_log: false}
store: {url: "${GATEWAY_STORE_URL}", namespace: "${GATEWAY_STORE_NAMESPACE}"}
defaults: {auth: none}
oauth:
  clients: [{id: chatgpt}]
  scopes: {read: Read things}
"""
LIMIT = 20
REQUESTS = 60
LIMITED_ROUTE = f"""\
routes:
  - id: limited
    path: /limited
    static: true
    rate_limit: {{limit: {LIMIT}, per: 1h, key: '{{{{ "everyone" }}}}'}}
    response: {{body: '{{{{ {{"ok": true}} }}}}'}}
"""
ADDED_ROUTE = """\
routes:
  - id: added
    path: /added
    static: true
    response: {body: '{{ {"added": true} }}'}
"""


def _replica(headers: dict[str, str]) -> str:
    """The replica that answered: the last address nginx tried (X-Upstream, nginx.conf)."""
    return headers.get("X-Upstream", "").split(",")[-1].strip()


def _replicas_answering(url: str, until: float, want: int = 3) -> set[str]:
    """Poll ``url`` through the balancer until ``want`` replicas answered 200 (bounded)."""
    seen: set[str] = set()
    deadline = time.monotonic() + until
    while time.monotonic() < deadline and len(seen) < want:
        status, headers, _ = get(url)
        if status == 200:
            seen.add(_replica(headers))
        else:
            time.sleep(0.1)
    return seen


def test_compose_replicas_behind_nginx_are_one_gateway(
    podman: Podman, images: Images, redis_image: str, nginx_image: str, tmp_path: Path
) -> None:
    compose = require("podman-compose", str(PODMAN_COMPOSE))
    config = tmp_path / "config"
    for folder in ("routes.d", "plugins", "schemas"):
        (config / folder).mkdir(parents=True)
    (config / "gateway.yaml").write_text(COMPOSE_GATEWAY)
    (config / "routes.d" / "limited.yaml").write_text(LIMITED_ROUTE)
    _readable(config)
    project = unique("gwtest").replace("-", "")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "CONFIG_DIR": str(config),
        "LB_PORT": str(port),
        "GATEWAY_IMAGE": images.gateway,
        "REDIS_IMAGE": redis_image,
        "NGINX_IMAGE": nginx_image,
        "GATEWAY_STORE_NAMESPACE": project,
        "GATEWAY_ENV_FILE": str(tmp_path / "no.env"),
    }
    files = ["-p", project, "-f", "compose.yaml", "-f", str(COMPOSE_DIR / "local-images.yaml")]

    def compose_run(*args: str, timeout: float = 300) -> None:
        podman.run(*files, *args, program=(compose,), cwd=REPO, env=env, timeout=timeout)

    try:
        start = time.monotonic()
        compose_run("up", "-d")
        gateways = podman.run(
            "ps", "-a", "--format", "{{.Names}}",
            "--filter", f"label=io.podman.compose.project={project}",
            "--filter", "label=io.podman.compose.service=gateway",
        ).stdout.split()  # fmt: skip
        assert len(gateways) == 3, gateways
        seen = _replicas_answering(f"{url}/health", until=90)
        assert len(seen) == 3, (seen, *(podman.logs(name) for name in gateways))
        up_seconds = time.monotonic() - start

        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(lambda _: get(f"{url}/limited", 10), range(REQUESTS)))
        statuses = Counter(status for status, _, _ in answers)
        assert statuses == {200: LIMIT, 429: REQUESTS - LIMIT}, (
            statuses,
            podman.logs(f"{project}_nginx_1")[-3000:],
        )
        replicas = Counter(_replica(headers) for _, headers, _ in answers)
        assert len(replicas) >= 2, replicas

        # One OAuth client for all: the first replica made it, the others read it from Redis.
        client_ids = {
            match.group(1)
            for name in gateways
            for match in re.finditer(r"oauth client chatgpt: client_id (\S+),", podman.logs(name))
        }
        assert len(client_ids) == 1, client_ids
        for name in gateways:
            assert "store: redis" in podman.logs(name)

        # An edit on the host reaches every replica through the bind mount.
        (config / "routes.d" / "added.yaml").write_text(ADDED_ROUTE)
        (config / "routes.d" / "added.yaml").chmod(0o644)
        assert len(_replicas_answering(f"{url}/added", until=30)) == 3

        # Stopped as `docker compose down` does, dependents first (podman-compose 1.6 stops
        # every service at once): each replica drains and exits 0 on SIGTERM.
        stop = time.monotonic()
        compose_run("stop", "-t", "35", "nginx", timeout=120)
        compose_run("stop", "-t", "35", "gateway", timeout=120)
        stop_seconds = time.monotonic() - stop
        codes = [
            podman.run("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
            for name in gateways
        ]
        assert codes == ["0", "0", "0"], (codes, *(podman.logs(name) for name in gateways))
        print(
            f"\nmeasured: compose up to 3 replicas answering {up_seconds:.1f} s, "
            f"{dict(statuses)} from {dict(replicas)}, nginx + replicas stopped in "
            f"{stop_seconds:.1f} s"
        )
    finally:
        podman.run(
            *files, "down", "-v", "-t", "35",
            program=(compose,), cwd=REPO, env=env, timeout=300, check=False,
        )  # fmt: skip
        leftover = podman.run(
            "ps", "-aq", "--filter", f"label=io.podman.compose.project={project}", check=False
        ).stdout.split()
        if leftover:
            podman.run("rm", "-f", "-t", "0", *leftover, check=False)
        podman.run("pod", "rm", "-f", f"pod_{project}", check=False)
        podman.run("volume", "rm", "-f", f"{project}_redis-data", check=False)
        podman.run("network", "rm", "-f", f"{project}_default", check=False)
