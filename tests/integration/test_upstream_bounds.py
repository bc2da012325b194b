"""Upstream answers are read under a cap, and retries fit one overall deadline, with jitter
and the upstream's Retry-After honoured."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import GatewayFactory, write_config
from tests.upstreams.server import Recorder, Upstream, serve_upstream

GATEWAY = "defaults: {deadline: 1s}\n"
ROUTES = """\
upstream:
  name: far
  base_url: "${FAR_URL}"
  max_answer_bytes: 1048576
  retry: {attempts: 10, on_status: [503], backoff: 10ms}
routes:
  - {id: huge, path: /huge, upstream: {path: /huge}}
  - {id: chunked, path: /chunked, upstream: {path: /chunked}}
  - {id: small, path: /small, upstream: {path: /small}}
  - {id: slow, path: /slow, timeout: 300ms, upstream: {path: /slow}}
  - {id: later, path: /later, upstream: {path: /later}}
"""


@pytest.fixture
async def far() -> AsyncIterator[tuple[Upstream, list[float]]]:
    recorder = Recorder()
    app = web.Application(middlewares=[recorder.middleware])
    arrivals: list[float] = []

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 20_000_000, content_type="application/octet-stream")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no Content-Length: the cap must stop the read
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(40):
            await response.write(b"y" * 65_536)
        await response.write_eof()
        return response

    async def small(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({"late": True})

    async def later(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            return web.json_response({"busy": True}, status=503, headers={"Retry-After": "1"})
        return web.json_response({"ok": True})

    for path, handler in (("/huge", huge), ("/chunked", chunked), ("/small", small)):
        app.router.add_get(path, handler)
    app.router.add_get("/slow", slow)
    app.router.add_get("/later", later)
    async with serve_upstream(app, recorder) as upstream:
        yield upstream, arrivals


async def test_an_answer_over_the_cap_is_a_502_and_the_read_stops(
    gateway: GatewayFactory, far: tuple[Upstream, list[float]], tmp_path: Path
) -> None:
    upstream, _ = far
    folder = write_config(tmp_path, GATEWAY, {"far": ROUTES})
    async with gateway(folder, {"FAR_URL": upstream.url}) as gw:
        for path in ("/huge", "/chunked"):
            async with gw.http.get(f"{gw.url}{path}") as response:
                assert response.status == 502
                problem = await response.json()
            assert problem["detail"] == 'upstream "far" answered more than 1048576 bytes'
            assert problem["type"] == "urn:problem:gateway:upstream-answer-too-large"
        async with gw.http.get(f"{gw.url}/small") as response:
            assert (response.status, await response.json()) == (200, {"ok": True})


async def test_retries_stop_at_the_deadline(
    gateway: GatewayFactory, far: tuple[Upstream, list[float]], tmp_path: Path
) -> None:
    """10 attempts of 300 ms do not fit a 1 s deadline: at most four are made."""
    upstream, _ = far
    folder = write_config(tmp_path, GATEWAY, {"far": ROUTES})
    async with gateway(folder, {"FAR_URL": upstream.url}) as gw:
        async with gw.http.get(f"{gw.url}/slow") as response:
            assert response.status == 504
            problem = await response.json()
    assert problem["detail"] in (
        'upstream "far" did not answer within 0.3s',
        'upstream "far" did not answer within the 1s deadline',
    )
    attempts = [seen for seen in upstream.seen if seen.path == "/slow"]
    assert 1 <= len(attempts) <= 4


async def test_retry_after_is_honoured(
    gateway: GatewayFactory, far: tuple[Upstream, list[float]], tmp_path: Path
) -> None:
    upstream, arrivals = far
    folder = write_config(tmp_path, "defaults: {deadline: 5s}\n", {"far": ROUTES})
    async with gateway(folder, {"FAR_URL": upstream.url}) as gw:
        async with gw.http.get(f"{gw.url}/later") as response:
            assert (response.status, await response.json()) == (200, {"ok": True})
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 0.95  # the upstream asked for 1 s, not the 10 ms backoff
