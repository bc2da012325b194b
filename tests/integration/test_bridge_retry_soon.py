"""``RetrySoon``: a busy handler gets its event back soon with the same attempt number, for a
bounded time; a route that raises it answers 503. Memory store and the real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.queue import worker
from tests.conftest import REDIS_URL, GatewayFactory, RunningGateway, eventually, write_config

GATEWAY = """\
store: {url: "${STORE_URL:-memory://}", namespace: "${STORE_NS:-gateway}"}
queue: {visibility_timeout: 1s}
"""
HOOKS = """\
webhooks:
  - id: busy
    path: /hooks/busy
    handler: hooks:busy_three_times
    retry: {attempts: 1}          # one attempt: a busy answer must not spend it
  - id: stuck
    path: /hooks/stuck
    handler: hooks:always_busy
    retry: {attempts: 2, backoff: [100ms]}
routes:
  - id: busyRoute
    path: /busy
    handler: hooks:always_busy
"""
PLUGIN = """\
import json

from gateway.plugin import RetrySoon


async def _calls(ctx, name, attempt):
    raw = await ctx.store.get(f"calls:{name}")
    calls = [*json.loads(raw or b"[]"), attempt]
    await ctx.store.set(f"calls:{name}", json.dumps(calls).encode())
    return calls


async def busy_three_times(ctx, request):
    calls = await _calls(ctx, "busy", request.attempt)
    if len(calls) <= 3:
        raise RetrySoon(0.1, f"busy ({len(calls)})")
    return {"done": True}


async def always_busy(ctx, request):
    if request.event_id is not None:
        await _calls(ctx, "stuck", request.attempt)
    raise RetrySoon(0.1, "always busy")
"""


@pytest.fixture(params=["memory", "redis"])
async def env(
    request: pytest.FixtureRequest, redis_namespace: str
) -> AsyncIterator[dict[str, str]]:
    if request.param == "memory":
        yield {}
    else:
        yield {"STORE_URL": REDIS_URL, "STORE_NS": redis_namespace}


def config(tmp_path: Path) -> Path:
    folder = write_config(tmp_path, GATEWAY, {"hooks": HOOKS})
    (folder / "plugins").mkdir(exist_ok=True)
    (folder / "plugins" / "hooks.py").write_text(PLUGIN)
    return folder


async def calls(gw: RunningGateway, name: str) -> list[int]:
    raw = await gw.state.backend.store.get(f"calls:{name}")
    found: list[int] = json.loads(raw or b"[]")
    return found


async def test_a_busy_handler_is_retried_soon_without_spending_its_attempt(
    gateway: GatewayFactory, tmp_path: Path, env: dict[str, str]
) -> None:
    async with gateway(config(tmp_path), env) as gw:
        assert gw.state.worker is not None
        async with gw.http.post(f"{gw.url}/hooks/busy", json={"n": 1}) as response:
            assert response.status == 200
        await eventually(lambda: gw.state.worker is not None and gw.state.worker.processed == 1)
        assert await calls(gw, "busy") == [1, 1, 1, 1]  # the same attempt every time
        assert (gw.state.worker.deferred, gw.state.worker.failed) == (3, 0)
        assert await gw.state.backend.queue.dead(10) == []


async def test_a_handler_busy_for_too_long_fails_its_attempts_then_is_a_dead_letter(
    gateway: GatewayFactory, tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "BUSY_WINDOW", 1.0)
    monkeypatch.setattr(worker, "DEFER_BOUNDS", (0.1, 60.0))
    async with gateway(config(tmp_path), env) as gw:
        assert gw.state.worker is not None
        async with gw.http.post(f"{gw.url}/hooks/stuck", json={"n": 1}) as response:
            event_id = (await response.json())["id"]
        queue = gw.state.backend.queue
        deadline = time.monotonic() + 10
        while not (letters := await queue.dead(10)):
            assert time.monotonic() < deadline, "no dead letter in time"
            await asyncio.sleep(0.05)
        assert [(x.id, x.attempt, x.error) for x in letters] == [
            (event_id, 2, "still busy after 1s: always busy")
        ]
        seen = await calls(gw, "stuck")
        assert seen == sorted(seen)
        assert set(seen) == {1, 2}  # each attempt put off a few times, then failed
        assert gw.state.worker.failed == 2


async def test_a_route_that_raises_retry_soon_answers_503(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), {}) as gw:
        async with gw.http.get(f"{gw.url}/busy") as response:
            assert response.status == 503
            problem = await response.json()
    assert (problem["type"], problem["detail"]) == ("urn:problem:gateway:retry-soon", "always busy")
