"""Shared fixtures: loopback upstreams and an in-process gateway on a real port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import uvicorn

from gateway.boot import boot
from gateway.serve.app import GatewayState
from tests.upstreams.ambivo import ambivo_app
from tests.upstreams.server import Upstream, free_port, serve_upstream

REPO = Path(__file__).resolve().parent.parent


class RunningGateway:
    def __init__(self, url: str, state: GatewayState, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.state = state
        self.http = session


@asynccontextmanager
async def run_gateway(
    config_dir: Path, environ: Mapping[str, str], port: int | None = None
) -> AsyncIterator[RunningGateway]:
    """The real ASGI app under uvicorn on a free loopback port (or on ``port``)."""
    # The watcher is off: tests call reload() themselves; the watcher has its e2e test.
    booted = boot(config_dir, environ=environ, watch=False)
    state = booted.state
    port = port or free_port()
    config = uvicorn.Config(
        booted.app,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        loop="asyncio",
        proxy_headers=False,  # as `gateway serve`: server.trusted_proxies decides
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):  # bounded: 10 s
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    if not server.started:
        server.should_exit = True
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)
        raise AssertionError(f"gateway did not start on port {port}")
    try:
        async with aiohttp.ClientSession() as session:
            yield RunningGateway(f"http://127.0.0.1:{port}", state, session)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) until ``check()`` holds: for work done in the background."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


GatewayFactory = Callable[[Path, Mapping[str, str]], AbstractAsyncContextManager[RunningGateway]]


@pytest.fixture
def gateway() -> GatewayFactory:
    return run_gateway


@pytest.fixture
async def ambivo() -> AsyncIterator[Upstream]:
    app, recorder = ambivo_app()
    async with serve_upstream(app, recorder) as upstream:
        yield upstream


def write_config(folder: Path, gateway_yaml: str, routes: Mapping[str, str]) -> Path:
    """A config folder in ``folder``: gateway.yaml and routes.d/<name>.yaml files."""
    (folder / "routes.d").mkdir(parents=True, exist_ok=True)
    (folder / "gateway.yaml").write_text(gateway_yaml)
    for name, text in routes.items():
        (folder / "routes.d" / f"{name}.yaml").write_text(text)
    return folder


REDIS_URL = "redis://127.0.0.1:6379/0"
TEST_ENCRYPTION_KEY = "9Dm1qF7hO0b7k3u8YF6yH0t7xU2xJc6mQ9yqJYqk3nU="
"""A Fernet key for `store.encryption_keys` in tests (GATEWAY_ENCRYPTION_KEYS): connections
kept in Redis need one."""


@pytest.fixture
async def redis_namespace() -> AsyncIterator[str]:
    """A fresh key namespace on the real Redis; never skipped in CI."""
    import os
    import uuid

    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except OSError as exc:
        await client.aclose()
        if os.environ.get("CI"):
            raise AssertionError(f"Redis must run for CI at {REDIS_URL}: {exc}") from exc
        pytest.skip(f"no Redis at {REDIS_URL}")
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    try:
        yield namespace
    finally:
        keys = [key async for key in client.scan_iter(f"{namespace}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
