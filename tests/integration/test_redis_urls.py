"""The store on every Redis URL form, each against real servers started here.

A password-protected server (``redis://:pw@``), a TLS one (``rediss://...?ssl_ca_certs=``),
a Sentinel (``redis+sentinel://``, with master and Sentinel passwords) and a 3-master Cluster
(``redis+cluster://``). For each, the real gateway: a rate limit shared by two gateways
(200 then 429), webhooks queued, retried, dead-lettered and deduplicated through a plugin
that also writes ``ctx.store``, and locks. A wrong password is refused by the start-up probe
with a message that does not show it. Never skipped in CI; locally only without redis-server.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from gateway.store.backend import shown_url, unreachable
from gateway.store.client import StoreUrlError, url_kind
from tests.conftest import GatewayFactory, RunningGateway, eventually, write_config
from tests.integration.test_webhooks import recorded, sink_app
from tests.upstreams.server import Upstream, serve_upstream
from tests.upstreams.tls import certificates

PASSWORD = "s3cret-master-pw"
SENTINEL_PASSWORD = "s3cret-sentinel-pw"

GATEWAY = """\
store: {url: "${STORE_URL}", namespace: "${STORE_NS}"}
queue: {visibility_timeout: 1s}
auth:
  - {id: key, type: api_key, keys: [key-a]}
"""
ROUTES = """\
routes:
  - id: limited
    path: /limited
    static: true
    auth: key
    rate_limit: {limit: 1, per: 1h, key: api_key}
    response: {body: '{{ {"ok": true} }}'}
"""
HOOKS = """\
upstream:
  name: sink
  base_url: ${SINK_URL}
webhooks:
  - id: plain
    path: /hooks/plain
    dedupe_key: "{{ body.id }}"
    handler: sink:record
  - id: flaky
    path: /hooks/flaky
    handler: sink:flaky
    retry: {attempts: 3, backoff: [100ms]}
  - id: doomed
    path: /hooks/doomed
    handler: sink:doomed
    retry: {attempts: 2, backoff: [100ms]}
"""
PLUGIN = """\
from gateway.plugin import PluginError


async def record(ctx, request):
    await ctx.store.set("done:" + request.body["id"], str(request.attempt))
    await ctx.clients["sink"].request(
        "POST", "/events", json={"id": request.body["id"], "attempt": request.attempt}
    )


async def flaky(ctx, request):
    if request.attempt < 2:
        raise RuntimeError("the first attempt fails on purpose")
    await record(ctx, request)


async def doomed(ctx, request):
    raise PluginError(503, "not today")
"""


# --- servers ----------------------------------------------------------------------------


def _port_pair() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 30000)
        if all(_free(p) for p in (port, port + 10000)):
            return port
    raise AssertionError("no free port pair")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Servers:
    """redis-server processes started by this module; all killed at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> None:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            ["redis-server", *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
        )
        log.close()
        self.processes.append(process)

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait(10)


def _wait(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            answer = check()
            if answer:
                return answer
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready in time: {last}")


def _ping(**kwargs: Any) -> bool:
    client = redis.Redis(host="127.0.0.1", socket_timeout=2, **kwargs)
    try:
        return bool(client.ping())
    finally:
        client.close()


NO_DISK = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Start every server once for the module; the store URL of each kind."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        if os.environ.get("CI"):
            raise AssertionError("redis-server and redis-cli must be installed for CI")
        pytest.skip("redis-server is not installed")
    folder = tmp_path_factory.mktemp("redis-servers")
    servers = Servers(folder)
    try:
        found: dict[str, str] = {}

        # A password.
        port = _port_pair()
        servers.start("password", "--port", str(port), "--requirepass", PASSWORD, *NO_DISK)
        _wait(lambda: _ping(port=port, password=PASSWORD), "password server")
        found["password"] = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"

        # TLS only (no plain port), with a CA made here.
        ca, cert, key = certificates(folder)
        port = _port_pair()
        servers.start(
            "tls",
            *("--port", "0", "--tls-port", str(port)),
            *("--tls-cert-file", str(cert), "--tls-key-file", str(key)),
            *("--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"),
            *NO_DISK,
        )
        _wait(lambda: _ping(port=port, ssl=True, ssl_ca_certs=str(ca)), "TLS server")
        found["tls"] = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}&ssl_cert_reqs=required"

        # Sentinel: a master with a password, one Sentinel with its own.
        master = _port_pair()
        servers.start("master", "--port", str(master), "--requirepass", PASSWORD, *NO_DISK)
        _wait(lambda: _ping(port=master, password=PASSWORD), "sentinel's master")
        sentinel = _port_pair()
        conf = folder / "sentinel.conf"
        conf.write_text(
            f"port {sentinel}\nbind 127.0.0.1\n"
            f"requirepass {SENTINEL_PASSWORD}\n"
            f"sentinel monitor mymaster 127.0.0.1 {master} 1\n"
            f"sentinel auth-pass mymaster {PASSWORD}\n"
        )
        servers.start("sentinel", str(conf), "--sentinel")

        def master_known() -> bool:
            client = redis.Redis(port=sentinel, password=SENTINEL_PASSWORD, socket_timeout=2)
            try:
                address = client.execute_command("SENTINEL get-master-addr-by-name mymaster")
            finally:
                client.close()
            return bool(address) and int(address[1]) == master

        _wait(master_known, "Sentinel")
        found["sentinel"] = (
            f"redis+sentinel://:{PASSWORD}@127.0.0.1:{sentinel}/mymaster/0"
            f"?sentinel_password={SENTINEL_PASSWORD}"
        )

        # A cluster of three masters.
        ports = [_port_pair() for _ in range(3)]
        for port in ports:
            servers.start(
                f"cluster-{port}",
                *("--port", str(port), "--cluster-enabled", "yes"),
                *("--cluster-config-file", str(folder / f"nodes-{port}.conf"), *NO_DISK),
            )
        for port in ports:
            _wait(lambda port=port: _ping(port=port), f"cluster node {port}")
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

        def cluster_ok(port: int) -> bool:
            client = redis.Redis(port=port, socket_timeout=2)
            try:
                info = client.execute_command("CLUSTER INFO")
            finally:
                client.close()
            if isinstance(info, dict):  # redis-py parses `cluster_state:ok` lines
                return info.get("cluster_state") == "ok"
            return "cluster_state:ok" in (info.decode() if isinstance(info, bytes) else str(info))

        for port in ports:
            _wait(lambda port=port: cluster_ok(port), f"cluster state on {port}")
        found["cluster"] = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
        yield found
    finally:
        servers.stop()


# --- the gateway on each --------------------------------------------------------------


@pytest.fixture
async def sink() -> AsyncIterator[Upstream]:
    app, recorder = sink_app()
    async with serve_upstream(app, recorder) as upstream:
        yield upstream


async def post(gw: RunningGateway, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with gw.http.post(f"{gw.url}{path}", json=body) as response:
        return response.status, await response.json()


KINDS = ["password", "tls", "sentinel", "cluster"]


@pytest.mark.parametrize("kind", KINDS)
async def test_the_store_works_on_each_url(
    kind: str,
    urls: dict[str, str],
    gateway: GatewayFactory,
    sink: Upstream,
    tmp_path: Path,
) -> None:
    url = urls[kind]
    assert unreachable(url) is None  # what `gateway serve` probes before it starts
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    env = {"STORE_URL": url, "STORE_NS": namespace, "SINK_URL": sink.url}
    folder = write_config(tmp_path, GATEWAY, {"r": ROUTES, "hooks": HOOKS})
    (folder / "plugins").mkdir(exist_ok=True)
    (folder / "plugins" / "sink.py").write_text(PLUGIN)

    async with gateway(folder, env) as one, gateway(folder, env) as two:
        backend = one.state.backend
        assert backend.durable
        assert backend.kind == {"password": "redis", "tls": "redis"}.get(kind, kind)

        # One budget for both gateways: the second request, on the other one, is refused.
        headers = {"X-API-Key": "key-a"}
        async with one.http.get(f"{one.url}/limited", headers=headers) as response:
            assert response.status == 200
        async with two.http.get(f"{two.url}/limited", headers=headers) as response:
            assert response.status == 429

        # Queued, processed by the plugin (which writes the store), deduplicated.
        status, answer = await post(one, "/hooks/plain", {"id": "evt_1"})
        assert (status, answer["status"]) == (200, "queued")
        status, again = await post(two, "/hooks/plain", {"id": "evt_1"})
        assert (status, again) == (200, {"status": "duplicate", "id": answer["id"]})
        await eventually(lambda: {"id": "evt_1", "attempt": 1} in recorded(sink))
        assert await backend.store.get("done:evt_1") == b"1"

        # Retried (the delayed set and its promotion script), then done.
        status, _ = await post(one, "/hooks/flaky", {"id": "evt_2"})
        assert status == 200
        await eventually(lambda: {"id": "evt_2", "attempt": 2} in recorded(sink))

        # Dead-lettered (a transaction over the stream and the dead-letter stream).
        status, answer = await post(one, "/hooks/doomed", {"id": "evt_3"})
        assert status == 200
        queue = backend.queue

        async def dead_ids() -> list[str]:
            return [letter.id for letter in await queue.dead(10)]

        deadline = time.monotonic() + 10
        while answer["id"] not in await dead_ids() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert answer["id"] in await dead_ids()
        assert await queue.replay(answer["id"])

        # Locks: one holder at a time; the scripts compare the token.
        locks = backend.locks
        lock = await locks.acquire("job", 30)
        assert lock is not None
        assert await two.state.backend.locks.acquire("job", 30) is None
        assert await locks.extend(lock, 30)
        await lock.release()
        again_lock = await two.state.backend.locks.acquire("job", 30)
        assert again_lock is not None
        await again_lock.release()

        # Every key under the prefix; on a cluster `{namespace}:`, one hash slot for all.
        prefix = f"{{{namespace}}}:" if kind == "cluster" else f"{namespace}:"
        assert backend.redis is not None
        keys = [key.decode() async for key in backend.redis.scan_iter(match=f"{prefix}*")]
        assert f"{prefix}wq" in keys, keys
        assert f"{prefix}done:evt_1" in keys, keys
        assert any(key.startswith(f"{prefix}ratelimit:") for key in keys), keys
        assert any(key.startswith(f"{prefix}wq:seen:") for key in keys), keys
        if kind == "cluster":
            assert len({key_slot(key.encode()) for key in keys}) == 1


def _with_password(url: str, wrong: str) -> str:
    return url.replace(PASSWORD, wrong)


def test_a_wrong_password_is_refused_at_start_without_showing_it(urls: dict[str, str]) -> None:
    wrong = "wrong-pw-42"
    for url in (
        _with_password(urls["password"], wrong),
        _with_password(urls["sentinel"], wrong),
        urls["sentinel"].replace(SENTINEL_PASSWORD, wrong),
        urls["password"].replace(f":{PASSWORD}@", "@"),  # none at all
    ):
        reason = unreachable(url)
        assert reason is not None, url
        for secret in (wrong, PASSWORD, SENTINEL_PASSWORD):
            assert secret not in reason
        lowered = reason.lower()
        assert "password" in lowered or "auth" in lowered or "noauth" in lowered, reason
        shown = shown_url(url)
        for secret in (wrong, PASSWORD, SENTINEL_PASSWORD):
            assert secret not in shown


def test_an_unknown_scheme_is_refused_without_its_password() -> None:
    with pytest.raises(StoreUrlError) as refused:
        url_kind("postgres://user:hunter2@db:5432/x")
    assert "hunter2" not in str(refused.value)
    assert "'postgres://db:5432/x'" in str(refused.value)
    with pytest.raises(StoreUrlError):
        url_kind("redis+sentinel://:pw@127.0.0.1:26379")  # no service name
    with pytest.raises(StoreUrlError):
        url_kind("redis+cluster://")
    assert url_kind("rediss+cluster://a:1,b:2") == "cluster"
    assert shown_url("redis+sentinel://:pw@h1:1,h2:2/svc/0?sentinel_password=x") == (
        "redis+sentinel://h1:1,h2:2/svc/0"
    )
