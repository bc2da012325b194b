"""Nothing is lost: a webhook answered 2xx survives `kill -9` (Redis store), processed once.

Also the dead-letter CLI: `gateway webhooks dead` lists, `gateway webhooks replay ID` requeues.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import REDIS_URL, eventually, write_config
from tests.e2e.helpers import CLEAN_ENV, GATEWAY_BIN, serving
from tests.upstreams.server import Recorder, Upstream, serve_upstream

SECRET = "durable-secret-123"
GATEWAY = """\
server: {access_log: false}
store: {url: "${STORE_URL}", namespace: "${STORE_NS}"}
queue: {visibility_timeout: 1s}
"""
ROUTES = f"""\
upstream: {{name: sink, base_url: "${{SINK_URL}}"}}
webhooks:
  - id: orders
    path: /hooks/orders
    verify: {{type: hmac, algorithm: sha256, header: X-Signature, secret: {SECRET}}}
    dedupe_key: "{{{{ body.id }}}}"
    handler: sink:slow_record
  - id: fragile
    path: /hooks/fragile
    handler: sink:fragile
    retry: {{attempts: 2, backoff: [100ms]}}
"""
PLUGIN = """\
import asyncio
from pathlib import Path


async def slow_record(ctx, request):
    await asyncio.sleep(1.0)  # the process is killed while this waits (or before it starts)
    await ctx.clients["sink"].request(
        "POST", "/events", json={"event_id": request.event_id, "body": request.body}
    )


async def fragile(ctx, request):
    if not (Path(__file__).parent / "allow").exists():
        raise RuntimeError("not allowed yet")
    await ctx.clients["sink"].request(
        "POST", "/events", json={"event_id": request.event_id, "body": request.body}
    )
"""


@pytest.fixture
async def sink() -> AsyncIterator[Upstream]:
    recorder = Recorder()
    app = web.Application(middlewares=[recorder.middleware])

    async def events(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_post("/events", events)
    async with serve_upstream(app, recorder) as upstream:
        yield upstream


def config(tmp_path: Path) -> Path:
    folder = write_config(tmp_path / "config", GATEWAY, {"hooks": ROUTES})
    (folder / "plugins").mkdir()
    (folder / "plugins" / "sink.py").write_text(PLUGIN)
    return folder


def redis_env(sink: Upstream, namespace: str) -> dict[str, str]:
    return {**CLEAN_ENV, "STORE_URL": REDIS_URL, "STORE_NS": namespace, "SINK_URL": sink.url}


def events(sink: Upstream) -> list[dict[str, object]]:
    return [seen.json() for seen in sink.seen if seen.path == "/events"]


async def test_a_2xx_webhook_survives_kill_9_and_is_processed_once(
    tmp_path: Path, sink: Upstream, redis_namespace: str
) -> None:
    folder = config(tmp_path)
    env = redis_env(sink, redis_namespace)
    raw = b'{"id": "order-1", "total": 42}'
    signature = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    async with serving(folder, env, tmp_path / "first.log", killed=True) as (url, pid):
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{url}/hooks/orders", data=raw, headers={"X-Signature": signature}
            ) as response:
                assert response.status == 200
                event_id = (await response.json())["id"]
        os.kill(pid, signal.SIGKILL)  # right after the 2xx
    assert events(sink) == []  # it died before the handler got to the sink

    async with serving(folder, env, tmp_path / "second.log"):
        await eventually(lambda: len(events(sink)) == 1, 15)
        await asyncio.sleep(3)  # several reclaim rounds: a second processing would show
    assert events(sink) == [{"event_id": event_id, "body": {"id": "order-1", "total": 42}}]


def cli(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GATEWAY_BIN, "webhooks", *args, "--config-dir", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_dead_letters_are_listed_and_replayed_from_the_cli(
    tmp_path: Path, sink: Upstream, redis_namespace: str
) -> None:
    folder = config(tmp_path)
    env = redis_env(sink, redis_namespace)
    async with serving(folder, env, tmp_path / "gateway.log") as (url, _):
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/hooks/fragile", json={"n": 1}) as response:
                event_id = (await response.json())["id"]
        letters: list[dict[str, object]] = []
        deadline = time.monotonic() + 15
        while not letters and time.monotonic() < deadline:
            listed = await asyncio.to_thread(cli, folder, env, "dead")
            assert listed.returncode == 0, listed.stderr
            letters = [json.loads(line) for line in listed.stdout.splitlines()]
            await asyncio.sleep(0.2)
        assert [(x["id"], x["webhook"], x["attempts"]) for x in letters] == [
            (event_id, "fragile", 2)
        ]
        assert letters[0]["error"] == "RuntimeError: not allowed yet"

        (folder / "plugins" / "allow").touch()
        replayed = await asyncio.to_thread(cli, folder, env, "replay", event_id)
        assert (replayed.returncode, replayed.stdout) == (0, f"queued {event_id} again\n")
        await eventually(lambda: len(events(sink)) == 1, 15)
        assert events(sink)[0]["event_id"] == event_id
        missing = await asyncio.to_thread(cli, folder, env, "replay", event_id)
        assert (missing.returncode, missing.stderr) == (1, f"no dead letter with id {event_id}\n")
        listed = await asyncio.to_thread(cli, folder, env, "dead")
        assert listed.stdout == ""


def test_the_cli_explains_dead_letters_of_the_memory_store(tmp_path: Path) -> None:
    folder = config(tmp_path)
    env = {**CLEAN_ENV, "STORE_URL": "memory://", "STORE_NS": "x", "SINK_URL": "http://127.0.0.1:9"}
    result = cli(folder, env, "dead")
    assert result.returncode == 2
    assert result.stderr == (
        "the store is memory://: dead letters live inside the running gateway; "
        "use GET /admin/webhooks/dead and POST /admin/webhooks/dead/{id}/replay\n"
    )
