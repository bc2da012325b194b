"""Untrusted input never reaches an upstream as structure, and every failure is a clean
problem: path values as one encoded segment, no escape from the base path, full-match
patterns, string bodies as strings, omitted optional parameters, line breaks in headers,
deep or invalid JSON, upstream answers of unexpected shape, upstream errors the caller can
act on, and a store that is down.

A loopback upstream under a base path (`/base`) records the raw request line it got.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import GatewayFactory, write_config
from tests.upstreams.server import Recorder, Upstream, free_port, serve_upstream

PROBLEM = "application/problem+json"
GATEWAY = "server: {access_log: true}\n"
ROUTES = """\
upstream: {name: hostile, base_url: "${HOSTILE_URL}/base"}
routes:
  - {id: getThing, path: "/things/{thing_id}"}
  - id: search
    path: /search
    query: [{name: q}, {name: userId}]
    upstream: {path: "/search/{{ query.q }}", query: {userId: "{{ query.userId }}"}}
  - id: noted
    path: /noted
    query: [{name: note}]
    upstream: {path: /echo, headers: {X-Note: "{{ query.note }}"}}
  - id: textBody
    method: POST
    path: /text
    upstream: {method: POST, path: /echo, body: "{{ body.note }}"}
  - id: digits
    path: /digits
    query: [{name: n, pattern: "^[0-9]+$"}]
    upstream: {path: /echo}
  - id: shaped
    path: /shaped
    query: [{name: mode, required: true}]
    upstream: {path: /shape, query: {mode: "{{ query.mode }}"}}
    response:
      body: '{{ {"id": body.item.id, "count": body.count} }}'
  - id: jsonBody
    method: POST
    path: /json
    body: {schema: {type: object}}
    upstream: {method: POST, path: /echo}
  - {id: missing, path: /missing, upstream: {path: /status/404}}
  - {id: busy, path: /busy, upstream: {path: /status/429}}
  - {id: failing, path: /failing, upstream: {path: /status/500}}
"""
PASSTHROUGH = """\
upstream:
  name: mine
  base_url: "${HOSTILE_URL}/base"
  auth: {type: passthrough, header: Authorization}
routes:
  - {id: mine, path: /mine, upstream: {path: /status/401}}
  - {id: mineForbidden, path: /mine-forbidden, upstream: {path: /status/403}}
"""


def hostile_app() -> tuple[web.Application, Recorder]:
    recorder = Recorder()
    app = web.Application(middlewares=[recorder.middleware])

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "raw_path": request.raw_path,
                "content_type": request.headers.get("Content-Type"),
                "note": request.headers.get("X-Note"),
                "body": (await request.read()).decode(),
            }
        )

    async def shape(request: web.Request) -> web.Response:
        if request.query["mode"] == "empty":
            return web.json_response({})
        return web.Response(text="<html>not json</html>", content_type="application/json")

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        headers = {"Retry-After": "7"} if code == 429 else {}
        return web.json_response({"error": f"status {code}"}, status=code, headers=headers)

    app.router.add_get("/base/status/{code}", status)
    app.router.add_get("/base/shape", shape)
    app.router.add_route("*", "/base/{tail:.*}", echo)
    return app, recorder


@pytest.fixture
async def hostile() -> AsyncIterator[Upstream]:
    app, recorder = hostile_app()
    async with serve_upstream(app, recorder) as upstream:
        yield upstream


def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, GATEWAY, {"hostile": ROUTES, "mine": PASSTHROUGH})


async def call(gw: Any, path: str, **kwargs: Any) -> tuple[int, str, Any]:
    method = "POST" if "data" in kwargs or "json" in kwargs else "GET"
    async with gw.http.request(method, f"{gw.url}{path}", **kwargs) as response:
        return response.status, response.content_type, await response.json(content_type=None)


async def test_path_values_are_one_encoded_segment(
    gateway: GatewayFactory, hostile: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), {"HOSTILE_URL": hostile.url}) as gw:
        for sent, received in [
            ("/things/a%3Fadmin=true", "/base/things/a%3Fadmin=true"),
            ("/things/a%23frag", "/base/things/a%23frag"),
            ("/things/%252e%252e", "/base/things/%252e%252e"),
            ("/things/a%20b%25", "/base/things/a%20b%25"),
            ("/search?q=../admin", "/base/search/..%2Fadmin"),
        ]:
            status, _, answer = await call(gw, sent)
            assert (status, answer["raw_path"]) == (200, received), sent
        assert all(not seen.query for seen in hostile.seen)  # no value became a query
        for sent in ("/search?q=..", "/search?q=.", "/search?q=%2E%2E"):
            status, content_type, problem = await call(gw, sent)
            assert (status, content_type) == (400, PROBLEM), sent
            assert problem["detail"] == (
                "the upstream path would leave the upstream's base path (a `.` or `..` segment)"
            )
        assert len(hostile.seen) == 5  # the refused ones reached nobody


async def test_optional_parameters_left_out_are_not_sent(
    gateway: GatewayFactory, hostile: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), {"HOSTILE_URL": hostile.url}) as gw:
        assert (await call(gw, "/search?q=x"))[0] == 200
        assert (await call(gw, "/search?q=x&userId=u1"))[0] == 200
    assert [seen.raw_path for seen in hostile.seen] == [
        "/base/search/x",
        "/base/search/x?userId=u1",
    ]


async def test_a_line_break_in_a_templated_header_is_a_400(
    gateway: GatewayFactory, hostile: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), {"HOSTILE_URL": hostile.url}) as gw:
        status, content_type, problem = await call(gw, "/noted?note=a%0D%0AX-Evil:%201")
        assert (status, content_type) == (400, PROBLEM)
        assert problem["detail"] == (
            "the value for the upstream header X-Note contains a line break or control character"
        )
        assert problem["request_id"]
        status, _, answer = await call(gw, "/noted?note=fine%20note")
        assert (status, answer["note"]) == (200, "fine note")
    assert len(hostile.seen) == 1


async def test_pattern_must_match_the_whole_value(
    gateway: GatewayFactory, hostile: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), {"HOSTILE_URL": hostile.url}) as gw:
        status, _, problem = await call(gw, "/digits?n=123%0A")
        assert status == 400
        assert problem["errors"] == [
            {"in": "query", "field": "n", "message": "must match '^[0-9]+$'"}
        ]
        assert (await call(gw, "/digits?n=123"))[0] == 200


async def test_a_string_body_template_sends_the_string(
    gateway: GatewayFactory, hostile: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), {"HOSTILE_URL": hostile.url}) as gw:
        status, _, answer = await call(gw, "/text", json={"note": '{"admin": true}'})
    assert status == 200
    assert (answer["content_type"], answer["body"]) == (
        "text/plain; charset=utf-8",
        '{"admin": true}',
    )


async def test_deep_or_invalid_json_bodies_are_400_problems(
    gateway: GatewayFactory, hostile: Upstream, tmp_path: Path
) -> None:
    headers = {"Content-Type": "application/json"}
    async with gateway(config(tmp_path), {"HOSTILE_URL": hostile.url}) as gw:
        for body, message in [
            (b"[" * 1000 + b"]" * 1000, "nests deeper than 64 levels"),
            (b"[" * 65 + b"]" * 65, "nests deeper than 64 levels"),
            (b'{"a": "\xff"}', "is not valid JSON: 'utf-8' codec can't decode byte 0xff"),
        ]:
            status, content_type, problem = await call(gw, "/json", data=body, headers=headers)
            assert (status, content_type) == (400, PROBLEM)
            assert problem["errors"][0]["message"].startswith(message)
        status, _, _ = await call(gw, "/json", data=b"[" * 30 + b"{}" + b"]" * 30, headers=headers)
        assert status == 400  # deep enough to pass the limit, but not an object
        assert (await call(gw, "/json", json={"a": [[[1]]]}))[0] == 200
    assert len(hostile.seen) == 1


async def test_upstream_answers_of_unexpected_shape(
    gateway: GatewayFactory, hostile: Upstream, tmp_path: Path
) -> None:
    """A template reading fields the answer lacks gives nulls, never a 500."""
    async with gateway(config(tmp_path), {"HOSTILE_URL": hostile.url}) as gw:
        assert await call(gw, "/shaped?mode=empty") == (
            200,
            "application/json",
            {"id": None, "count": None},
        )
        assert await call(gw, "/shaped?mode=html") == (
            200,
            "application/json",
            {"id": None, "count": None},
        )


async def test_upstream_errors_the_caller_can_act_on(
    gateway: GatewayFactory, hostile: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), {"HOSTILE_URL": hostile.url}) as gw:
        status, _, problem = await call(gw, "/missing")
        assert (status, problem["detail"], problem["type"]) == (
            404,
            'upstream "hostile" answered 404',
            "urn:problem:gateway:upstream-not-found",
        )
        async with gw.http.get(f"{gw.url}/busy") as response:
            assert (response.status, response.headers["Retry-After"]) == (429, "7")
            assert (await response.json())["detail"] == 'upstream "hostile": retry in 7s'
        status, _, problem = await call(gw, "/failing")
        assert (status, problem["detail"]) == (502, 'upstream "hostile" answered 500')
        for path, upstream_status in (("/mine", 401), ("/mine-forbidden", 403)):
            async with gw.http.get(
                f"{gw.url}{path}", headers={"Authorization": "Bearer expired"}
            ) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'
                problem = await response.json()
            assert problem["detail"] == (
                f'upstream "mine" refused the credential you sent ({upstream_status}): '
                "send a valid token (it may have expired)"
            )
            assert problem["upstream_status"] == upstream_status


@pytest.fixture
def own_redis() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A Redis of this test's own, which the test stops while the gateway runs."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):  # bounded: 5 s
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port, process
    finally:
        process.kill()
        process.wait(10)


async def test_rate_limited_and_oauth_routes_answer_503_while_the_store_is_down(
    gateway: GatewayFactory,
    hostile: Upstream,
    tmp_path: Path,
    own_redis: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, redis_process = own_redis
    gateway_yaml = (
        f"store: {{url: 'redis://127.0.0.1:{port}/0'}}\n"
        "auth:\n  - {id: token, type: oauth}\n"
        "oauth:\n  scopes: {read: Read}\n  clients: [{id: gpt}]\n"
    )
    routes = ROUTES + (
        "  - {id: limited, path: /limited, upstream: {path: /echo},"
        " rate_limit: {limit: 5, per: 1s, key: ip}}\n"
        "  - {id: guarded, path: /guarded, auth: token, upstream: {path: /echo}}\n"
    )
    folder = write_config(tmp_path, gateway_yaml, {"hostile": routes})
    async with gateway(folder, {"HOSTILE_URL": hostile.url}) as gw:
        async with gw.http.get(f"{gw.url}/ready") as response:
            assert response.status == 200
        redis_process.kill()
        redis_process.wait(10)
        async with gw.http.get(f"{gw.url}/ready") as response:
            assert (response.status, response.content_type) == (503, PROBLEM)
            assert (await response.json())["detail"] == (
                "the store is unreachable: ConnectionError"
            )
        async with gw.http.get(f"{gw.url}/health") as response:
            assert response.status == 200  # alive, and it says the queue cannot be read
            assert (await response.json())["webhooks"]["pending"] is None
        for path, headers in (("/limited", {}), ("/guarded", {"Authorization": "Bearer t"})):
            async with gw.http.get(f"{gw.url}{path}", headers=headers) as response:
                assert (response.status, response.content_type) == (503, PROBLEM)
                assert response.headers["Retry-After"] == "5"
                problem = await response.json()
            assert problem["detail"] == "the gateway's store is unreachable; retry shortly"
            assert problem["request_id"]
    assert hostile.seen == []


async def test_oversized_headers_are_a_431(
    gateway: GatewayFactory, hostile: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), {"HOSTILE_URL": hostile.url}) as gw:
        headers = {f"X-Filler-{n}": "y" * 4000 for n in range(5)}  # 20 KB > 16 KiB
        async with gw.http.get(f"{gw.url}/things/a", headers=headers) as response:
            assert (response.status, response.content_type) == (431, PROBLEM)
            assert (await response.json())["detail"] == "the request headers are over 16384 bytes"
        async with gw.http.get(f"{gw.url}/health", headers=headers) as response:
            assert response.status == 431  # the fixed surface too
        assert (await call(gw, "/things/a"))[0] == 200
    assert len(hostile.seen) == 1
