"""Webhooks through the real gateway, with the memory store and with the real Redis.

Signed events are verified over the raw bytes, answered 2xx once queued, processed by the
plugin from the queue (posting to a loopback sink), retried, dead-lettered and replayed.
Refused requests (forged, replayed, re-serialised, unsigned) queue nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.queue.events import QueuedEvent
from gateway.queue.redis import RedisQueue
from tests.conftest import REDIS_URL, GatewayFactory, RunningGateway, eventually, write_config
from tests.upstreams.server import Recorder, Upstream, serve_upstream

SECRET_NEW, SECRET_OLD = "whsec-new-0123456789", "whsec-old-9876543210"
ADMIN = {"X-Admin-Key": "admin-key-123"}

GATEWAY = """\
store: {url: "${STORE_URL:-memory://}", namespace: "${STORE_NS:-gateway}"}
queue: {visibility_timeout: 1s}
admin: {keys: [admin-key-123]}
"""
HOOKS = f"""\
upstream:
  name: sink
  base_url: ${{SINK_URL}}
webhooks:
  - id: signed
    path: /hooks/signed
    verify:
      type: hmac
      algorithm: sha256
      header: X-Signature
      prefix: "sha256="
      secrets: [{SECRET_NEW}, {SECRET_OLD}]
      timestamp_header: X-Timestamp
      tolerance: 60s
    ping: {{when: '{{{{ body.type == "ping" }}}}'}}
    dedupe_key: "{{{{ body.id }}}}"
    handler: sink:record
  - id: flaky
    path: /hooks/flaky
    handler: sink:flaky
    retry: {{attempts: 3, backoff: [100ms]}}
  - id: doomed
    path: /hooks/doomed
    handler: sink:doomed
    retry: {{attempts: 2, backoff: [100ms]}}
"""
PLUGIN = """\
from gateway.plugin import PluginError


async def record(ctx, request):
    await ctx.clients["sink"].request(
        "POST",
        "/events",
        json={"event_id": request.event_id, "attempt": request.attempt, "body": request.body,
              "query": dict(request.query), "webhook": request.route},
    )


async def flaky(ctx, request):
    if request.attempt < request.body["succeed_on"]:
        raise RuntimeError(f"attempt {request.attempt} fails on purpose")
    await record(ctx, request)


async def doomed(ctx, request):
    if await ctx.store.get("doomed:allow") is None:
        raise PluginError(503, "not today")
    await record(ctx, request)
"""


def sink_app() -> tuple[web.Application, Recorder]:
    recorder = Recorder()
    app = web.Application(middlewares=[recorder.middleware])

    async def events(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_post("/events", events)
    return app, recorder


@pytest.fixture
async def sink() -> AsyncIterator[Upstream]:
    app, recorder = sink_app()
    async with serve_upstream(app, recorder) as upstream:
        yield upstream


def config(tmp_path: Path) -> Path:
    folder = write_config(tmp_path, GATEWAY, {"hooks": HOOKS})
    (folder / "plugins").mkdir(exist_ok=True)
    (folder / "plugins" / "sink.py").write_text(PLUGIN)
    return folder


def signed_request(
    body: dict[str, Any] | bytes, *, secret: str = SECRET_NEW, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    timestamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256)
    headers = {
        "Content-Type": "application/json",
        "X-Timestamp": timestamp,
        "X-Signature": "sha256=" + digest.hexdigest(),
    }
    return raw, headers


def recorded(sink: Upstream) -> list[dict[str, Any]]:
    return [seen.json() for seen in sink.seen if seen.path == "/events"]


async def post(gw: RunningGateway, path: str, raw: bytes, headers: dict[str, str]) -> Any:
    async with gw.http.post(f"{gw.url}{path}", data=raw, headers=headers) as response:
        return response.status, response.headers, await response.read()


async def check_webhooks(gw: RunningGateway, sink: Upstream) -> None:
    queue = gw.state.backend.queue

    # A valid event: 200 once queued, processed once by the plugin.
    raw, headers = signed_request({"id": "evt_1", "type": "invoice.paid", "amount": 10})
    status, _, body = await post(gw, "/hooks/signed?source=test", raw, headers)
    assert status == 200
    answer = json.loads(body)
    assert answer["status"] == "queued"
    await eventually(lambda: len(recorded(sink)) == 1)
    first = recorded(sink)[0]
    assert first == {
        "event_id": answer["id"],
        "attempt": 1,
        "body": {"id": "evt_1", "type": "invoice.paid", "amount": 10},
        "query": {"source": "test"},
        "webhook": "signed",
    }

    # The same event again (the sender retried), signed anew: answered 2xx, not processed.
    raw, headers = signed_request({"id": "evt_1", "type": "invoice.paid", "amount": 10})
    status, _, body = await post(gw, "/hooks/signed", raw, headers)
    assert (status, json.loads(body)) == (200, {"status": "duplicate", "id": answer["id"]})

    # The previous secret still works (rotation).
    raw, headers = signed_request({"id": "evt_2"}, secret=SECRET_OLD)
    status, _, _ = await post(gw, "/hooks/signed", raw, headers)
    assert status == 200
    await eventually(lambda: len(recorded(sink)) == 2)

    # Refusals: each a problem, nothing queued, the dedupe key not spent.
    refusals: list[tuple[bytes, dict[str, str], int, str]] = []
    raw, headers = signed_request({"id": "evt_3"}, secret="not-the-secret")
    refusals.append((raw, headers, 401, "the signature does not match the body"))
    raw, headers = signed_request({"id": "evt_3"}, at=time.time() - 3600)
    refusals.append(
        (
            raw,
            headers,
            401,
            "the request timestamp is more than 60s from now (a replay, or a wrong clock)",
        )
    )
    raw, headers = signed_request({"id": "evt_3", "n": 1})
    reserialised = json.dumps(json.loads(raw), indent=2).encode()  # same JSON, other bytes
    refusals.append((reserialised, headers, 401, "the signature does not match the body"))
    raw, headers = signed_request({"id": "evt_3"})
    unsigned = {key: value for key, value in headers.items() if key != "X-Signature"}
    refusals.append((raw, unsigned, 401, "missing signature: send the x-signature header"))
    wrong_prefix = {**headers, "X-Signature": headers["X-Signature"].replace("sha256=", "")}
    refusals.append((raw, wrong_prefix, 401, "the signature must start with `sha256=`"))
    bad_time = {**headers, "X-Timestamp": "yesterday"}
    refusals.append((raw, bad_time, 400, "the x-timestamp header is not a number"))
    for raw, headers, expected_status, detail in refusals:
        status, response_headers, body = await post(gw, "/hooks/signed", raw, headers)
        problem = json.loads(body)
        assert (status, problem["detail"]) == (expected_status, detail)
        assert response_headers["Content-Type"] == "application/problem+json"
        assert problem["route"] == "signed"
    assert await queue.pending() == 0
    raw, headers = signed_request({"id": "evt_3"})
    status, _, body = await post(gw, "/hooks/signed", raw, headers)
    assert (status, json.loads(body)["status"]) == (200, "queued")
    await eventually(lambda: len(recorded(sink)) == 3)

    # A signed body that is not JSON: 400, nothing queued.
    raw, headers = signed_request(b"{not json")
    status, _, body = await post(gw, "/hooks/signed", raw, headers)
    assert status == 400
    assert json.loads(body)["errors"][0]["field"] == "$"

    # Handshakes: HEAD and the ping topic are answered without entering the queue.
    async with gw.http.head(f"{gw.url}/hooks/signed") as response:
        assert response.status == 200
    raw, headers = signed_request({"type": "ping"})
    status, _, body = await post(gw, "/hooks/signed", raw, headers)
    assert (status, json.loads(body)) == (200, {"status": "pong"})
    async with gw.http.get(f"{gw.url}/hooks/signed") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST, HEAD"
    assert await queue.pending() == 0
    assert len(recorded(sink)) == 3

    # Retries: fails twice, succeeds on the third attempt, same event id throughout.
    status, _, body = await post(
        gw, "/hooks/flaky", b'{"succeed_on": 3}', {"Content-Type": "application/json"}
    )
    assert status == 200
    flaky_id = json.loads(body)["id"]
    await eventually(lambda: len(recorded(sink)) == 4)
    assert recorded(sink)[3]["attempt"] == 3
    assert recorded(sink)[3]["event_id"] == flaky_id

    # Dead letters: two failed attempts, listed by the admin API, replayed once allowed.
    status, _, body = await post(
        gw, "/hooks/doomed", b'{"n": 7}', {"Content-Type": "application/json"}
    )
    doomed_id = json.loads(body)["id"]

    async def dead_letters() -> list[dict[str, Any]]:
        async with gw.http.get(f"{gw.url}/admin/webhooks/dead", headers=ADMIN) as response:
            assert response.status == 200
            letters: list[dict[str, Any]] = (await response.json())["dead_letters"]
            return letters

    for _ in range(200):
        letters = await dead_letters()
        if letters:
            break
        await asyncio.sleep(0.05)
    assert [(x["id"], x["webhook"], x["attempts"], x["error"]) for x in letters] == [
        (doomed_id, "doomed", 2, "503: not today")
    ]
    async with gw.http.get(f"{gw.url}/admin/webhooks/dead") as response:
        assert response.status == 401
    await gw.state.backend.store.set("doomed:allow", b"1")
    async with gw.http.post(
        f"{gw.url}/admin/webhooks/dead/{doomed_id}/replay", headers=ADMIN
    ) as response:
        assert (response.status, await response.json()) == (
            200,
            {"status": "queued", "id": doomed_id},
        )
    await eventually(lambda: len(recorded(sink)) == 5)
    assert recorded(sink)[4]["event_id"] == doomed_id
    assert recorded(sink)[4]["attempt"] == 1
    assert await dead_letters() == []
    async with gw.http.post(
        f"{gw.url}/admin/webhooks/dead/{doomed_id}/replay", headers=ADMIN
    ) as response:
        assert response.status == 404
    await eventually(lambda: gw.state.worker is not None and not gw.state.worker.in_flight)
    assert await queue.pending() == 0


async def test_webhooks_with_the_memory_store(
    gateway: GatewayFactory, sink: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), {"SINK_URL": sink.url}) as gw:
        assert gw.state.backend.kind == "memory"
        await check_webhooks(gw, sink)


async def test_webhooks_with_redis(
    gateway: GatewayFactory, sink: Upstream, tmp_path: Path, redis_namespace: str
) -> None:
    env = {"SINK_URL": sink.url, "STORE_URL": REDIS_URL, "STORE_NS": redis_namespace}
    async with gateway(config(tmp_path), env) as gw:
        assert gw.state.backend.kind == "redis"
        await check_webhooks(gw, sink)


async def test_two_replicas_process_a_redelivered_event_once(
    gateway: GatewayFactory, sink: Upstream, tmp_path: Path, redis_namespace: str
) -> None:
    env = {"SINK_URL": sink.url, "STORE_URL": REDIS_URL, "STORE_NS": redis_namespace}
    folder = config(tmp_path)
    async with gateway(folder, env) as one, gateway(folder, env) as two:
        answers = []
        for replica in (one, two, one, two):
            raw, headers = signed_request({"id": "evt_same"})
            status, _, body = await post(replica, "/hooks/signed", raw, headers)
            answers.append((status, json.loads(body)["status"]))
        assert answers == [(200, "queued")] + [(200, "duplicate")] * 3
        await eventually(lambda: len(recorded(sink)) == 1)
        await asyncio.sleep(0.5)  # time for a wrong second processing to show up
        assert len(recorded(sink)) == 1


async def test_events_held_by_a_dead_process_are_taken_over(
    gateway: GatewayFactory, sink: Upstream, tmp_path: Path, redis_namespace: str
) -> None:
    """A consumer that read an event and died: its pending entry is reclaimed and processed."""
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    try:
        dead_process = RedisQueue(redis, redis_namespace, 10_000)
        event = QueuedEvent(
            id="evt-orphan",
            webhook="signed",
            received_at=time.time(),
            request_id="r-1",
            query={},
            headers={},
            body=b'{"id": "orphan"}',
        )
        assert await dead_process.enqueue(event, None, 60) == (True, "evt-orphan")
        taken = await dead_process.read(10, block=1)
        assert [delivery.event.id for delivery in taken] == ["evt-orphan"]
        # ... and the process dies here, without acknowledging.
        env = {"SINK_URL": sink.url, "STORE_URL": REDIS_URL, "STORE_NS": redis_namespace}
        async with gateway(config(tmp_path), env) as gw:
            await eventually(lambda: len(recorded(sink)) == 1)
            assert recorded(sink)[0]["event_id"] == "evt-orphan"
            assert recorded(sink)[0]["body"] == {"id": "orphan"}
            await eventually(lambda: gw.state.worker is not None and not gw.state.worker.in_flight)
            assert await gw.state.backend.queue.pending() == 0
    finally:
        await redis.aclose()
