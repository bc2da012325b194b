"""Idle connections, slow and oversized headers are cut off (the real `gateway serve`): a socket
that sends nothing, or nothing more after an answer, is closed after `server.idle_timeout`;
a request head still incomplete `server.header_timeout` after its first byte gets a 408
problem and the connection is closed. A slow upstream answer is not an idle connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import write_config
from tests.e2e.helpers import CLEAN_ENV, serving
from tests.upstreams.server import Recorder, serve_upstream

GATEWAY = """\
server: {access_log: false, idle_timeout: 1s, header_timeout: 1.5s}
defaults: {auth: none}
"""
ROUTES = """\
upstream: {name: slow, base_url: "${SLOW_URL}", timeout: 10s}
routes:
  - {id: slow, path: /slow, upstream: {path: /slow}}
  - {id: hello, path: /hello, static: true, response: {body: '{{ {"hi": 1} }}'}}
"""
HELLO = b"GET /hello HTTP/1.1\r\nHost: gateway\r\n\r\n"


@pytest.fixture
async def gateway_url(tmp_path: Path) -> AsyncIterator[str]:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2.5)  # longer than the idle timeout
        return web.json_response({"slow": True})

    app = web.Application()
    app.router.add_get("/slow", slow)
    recorder = Recorder()
    app.middlewares.append(recorder.middleware)
    async with serve_upstream(app, recorder) as upstream:
        folder = write_config(tmp_path, GATEWAY, {"r": ROUTES})
        env = {**CLEAN_ENV, "SLOW_URL": upstream.url}
        async with serving(folder, env, tmp_path / "gateway.log") as (url, _):
            yield url


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sent until it closed; fails if it is still open after
    ``seconds``."""
    return await asyncio.wait_for(reader.read(), seconds)


async def test_sockets_that_send_nothing_are_closed(gateway_url: str) -> None:
    sockets = [await connect(gateway_url) for _ in range(200)]
    received = await asyncio.gather(*(closed_within(reader, 5) for reader, _ in sockets))
    assert received == [b""] * 200  # closed without a word
    for _, writer in sockets:
        writer.close()


async def test_a_kept_alive_connection_is_closed_when_idle(gateway_url: str) -> None:
    reader, writer = await connect(gateway_url)
    writer.write(HELLO)
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert json.loads(await reader.readexactly(length)) == {"hi": 1}
    # The same connection carries a second request: it is kept alive...
    writer.write(HELLO)
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 OK\r\n")
    await reader.readexactly(length)
    # ...and closed once idle.
    assert await closed_within(reader, 5) == b""
    writer.close()


async def test_headers_sent_a_byte_at_a_time_get_a_408(gateway_url: str) -> None:
    reader, writer = await connect(gateway_url)
    writer.write(b"GET /hello HTTP/1.1\r\n")
    answer = b""

    async def dribble() -> None:
        for _ in range(100):  # a header byte every 0.1 s, for ever (10 s)
            writer.write(b"X")
            await asyncio.sleep(0.1)

    trickle = asyncio.create_task(dribble())
    try:
        answer = await closed_within(reader, 5)
    finally:
        trickle.cancel()
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 408 Request Timeout"
    assert b"content-type: application/problem+json" in head
    assert json.loads(body) == {
        "type": "urn:problem:gateway:request-header-timeout",
        "title": "Request Timeout",
        "status": 408,
        "detail": "the request headers did not arrive within 1.5s",
    }


async def test_a_head_in_two_parts_within_the_timeout_is_served(gateway_url: str) -> None:
    reader, writer = await connect(gateway_url)
    writer.write(HELLO[:20])
    await asyncio.sleep(0.5)
    writer.write(HELLO[20:])
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 OK\r\n")
    writer.close()


async def test_a_slow_upstream_answer_is_not_cut_off(gateway_url: str) -> None:
    reader, writer = await connect(gateway_url)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: gateway\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 8)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert json.loads(await reader.readexactly(length)) == {"slow": True}
    writer.close()


async def test_a_head_over_the_header_limit_is_refused_while_it_is_read(
    gateway_url: str,
) -> None:
    """The head never ends: the 431 comes while it is being sent, so no parser buffers it."""
    reader, writer = await connect(gateway_url)
    writer.write(b"GET /hello HTTP/1.1\r\nX-Big: ")
    try:
        for _ in range(64):  # 64 x 16 KiB = 1 MiB, never finished by a blank line
            writer.write(b"a" * 16_384)
            await writer.drain()
    except ConnectionError:
        pass  # closed under us: what is checked is the answer
    answer = await closed_within(reader, 5)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert json.loads(body) == {
        "type": "urn:problem:gateway:headers-too-large",
        "title": "Request Header Fields Too Large",
        "status": 431,
        "detail": "the request headers are over 16384 bytes",
    }
