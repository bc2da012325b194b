"""The HTTP/1.1 pool against real loopback servers: aiohttp for well-behaved answers, a raw
TCP server for malformed, cut short and never finished ones."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.upstream.h1 import H1Error, H1Pool, H1Response, H1TooLarge
from tests.upstreams.items import items_app
from tests.upstreams.raw_http import (
    RawConnection,
    RawRequest,
    answer,
    keep_answering,
    serve_raw,
)
from tests.upstreams.server import Recorder, free_port, serve_upstream
from tests.upstreams.tls import certificates

LIMITS: dict[str, Any] = {"timeout": 5.0, "connect_timeout": 2.0, "max_body": 1_000_000}

PoolFactory = Callable[..., H1Pool]


@pytest.fixture
async def pools() -> AsyncIterator[PoolFactory]:
    """``pools(port, **options)``: a pool to 127.0.0.1:port, closed after the test."""
    made: list[H1Pool] = []

    def make(port: int, *, host: str = "127.0.0.1", scheme: str = "http", **options: Any) -> H1Pool:
        options.setdefault("max_connections", 10)
        pool = H1Pool(scheme, host, port, **options)
        made.append(pool)
        return pool

    yield make
    for pool in made:
        await pool.close()


async def fetch(
    pool: H1Pool, method: str = "GET", target: str = "/", **overrides: Any
) -> H1Response:
    headers = overrides.pop("headers", {})
    body = overrides.pop("body", None)
    return await pool.request(method, target, headers, body, **{**LIMITS, **overrides})


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def echo_app() -> tuple[web.Application, Recorder, dict[str, Any]]:
    """Answers with what it received; counts connections and concurrent requests."""
    recorder = Recorder()
    app = web.Application(middlewares=[recorder.middleware])
    stats: dict[str, Any] = {"peers": set(), "now": 0, "most": 0}

    async def echo(request: web.Request) -> web.Response:
        assert request.transport is not None
        stats["peers"].add(request.transport.get_extra_info("peername"))
        stats["now"] += 1
        stats["most"] = max(stats["most"], stats["now"])
        try:
            await asyncio.sleep(float(request.query.get("sleep", "0")))
        finally:
            stats["now"] -= 1
        body = await request.read()
        return web.json_response({"method": request.method, "body": body.decode()})

    app.router.add_route("*", "/echo", echo)
    return app, recorder, stats


# Well-behaved answers (aiohttp)


async def test_get_sends_the_host_and_the_given_headers_only(pools: PoolFactory) -> None:
    app, recorder = items_app()
    async with serve_upstream(app, recorder) as upstream:
        port = port_of(upstream.url)
        pool = pools(port)
        headers = {"Accept": "application/json", "X-Trace": "abc"}
        response = await fetch(pool, target="/v1/items?limit=2", headers=headers)
    assert response.status == 200
    assert response.headers.get("content-type") == "application/json; charset=utf-8"
    assert json.loads(response.body)["total"] == 2
    [seen] = upstream.seen
    assert seen.raw_path == "/v1/items?limit=2"
    assert seen.headers == {
        "Accept": "application/json",
        "X-Trace": "abc",
        "Host": f"127.0.0.1:{port}",
    }


async def test_post_body_is_sent_with_its_length(pools: PoolFactory) -> None:
    app, recorder, _ = echo_app()
    async with serve_upstream(app, recorder) as upstream:
        port = port_of(upstream.url)
        headers = {"Content-Type": "application/json"}
        response = await fetch(pools(port), "POST", "/echo", headers=headers, body=b'{"a": "b"}')
    assert json.loads(response.body) == {"method": "POST", "body": '{"a": "b"}'}
    assert upstream.seen[0].headers == {
        "Content-Type": "application/json",
        "Host": f"127.0.0.1:{port}",
        "Content-Length": "10",
    }


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_a_body_method_without_body_sends_length_zero(
    pools: PoolFactory, method: str
) -> None:
    app, recorder, _ = echo_app()
    async with serve_upstream(app, recorder) as upstream:
        port = port_of(upstream.url)
        response = await fetch(pools(port), method, "/echo")
    assert json.loads(response.body) == {"method": method, "body": ""}
    assert upstream.seen[0].headers == {"Host": f"127.0.0.1:{port}", "Content-Length": "0"}


async def test_sequential_requests_share_one_connection(pools: PoolFactory) -> None:
    app, recorder, stats = echo_app()
    async with serve_upstream(app, recorder) as upstream:
        pool = pools(port_of(upstream.url))
        statuses = [(await fetch(pool, target="/echo")).status for _ in range(10)]
    assert statuses == [200] * 10
    assert len(stats["peers"]) == 1


async def test_concurrent_requests_stay_within_max_connections(pools: PoolFactory) -> None:
    app, recorder, stats = echo_app()
    async with serve_upstream(app, recorder) as upstream:
        pool = pools(port_of(upstream.url), max_connections=3)
        calls = [fetch(pool, target="/echo?sleep=0.05") for _ in range(20)]
        responses = await asyncio.gather(*calls)
    assert [response.status for response in responses] == [200] * 20
    assert stats["most"] == 3
    assert len(stats["peers"]) == 3


async def test_a_host_name_is_resolved(pools: PoolFactory) -> None:
    app, recorder, _ = echo_app()
    async with serve_upstream(app, recorder) as upstream:
        port = port_of(upstream.url)
        response = await fetch(pools(port, host="localhost"), target="/echo")
    assert response.status == 200
    assert upstream.seen[0].headers["Host"] == f"localhost:{port}"


async def test_the_addresses_are_tried_in_order(pools: PoolFactory) -> None:
    app, recorder, _ = echo_app()
    async with serve_upstream(app, recorder) as upstream:
        pool = pools(port_of(upstream.url))
        # The DNS cache, as if the name had two addresses of which the first refuses.
        live = pool._addresses[0]
        pool._addresses = [(*live[:4], ("127.0.0.1", free_port())), live]
        response = await fetch(pool, target="/echo")
    assert response.status == 200


async def test_https_with_the_test_ca(pools: PoolFactory, tmp_path: Path) -> None:
    ca, cert, key = certificates(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    app, recorder, _ = echo_app()
    async with serve_tls(app, server_context) as port:
        trusted = ssl.create_default_context(cafile=ca)
        pool = pools(port, scheme="https", ssl_context=trusted)
        first = await fetch(pool, "POST", "/echo", body=b"secret")
        second = await fetch(pool, target="/echo")
        untrusted = pools(port, scheme="https", ssl_context=ssl.create_default_context())
        with pytest.raises(H1Error) as refused:
            await fetch(untrusted, target="/echo")
    assert json.loads(first.body) == {"method": "POST", "body": "secret"}
    assert second.status == 200
    assert recorder.seen[0].headers["Host"] == f"127.0.0.1:{port}"
    assert str(refused.value) == (
        f"TLS handshake with 127.0.0.1:{port} failed: "
        "certificate verify failed: unable to get local issuer certificate"
    )


@asynccontextmanager
async def serve_tls(app: web.Application, context: ssl.SSLContext) -> AsyncIterator[int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


# Edge cases (raw server)


async def test_a_chunked_answer(pools: PoolFactory) -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    async with serve_raw(keep_answering(lambda _: chunked)) as raw:
        pool = pools(raw.port)
        first, second = await fetch(pool), await fetch(pool)
    assert first.body == second.body == b"hello world"
    assert raw.connections == 1


async def test_an_answer_delimited_by_the_close(pools: PoolFactory) -> None:
    async def script(conn: RawConnection) -> None:
        await conn.request()
        await conn.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ")
        await conn.write(b"world")
        conn.close()

    async with serve_raw(script) as raw:
        pool = pools(raw.port)
        first, second = await fetch(pool), await fetch(pool)
    assert first.body == second.body == b"hello world"
    assert first.headers.get("Content-Type") == "text/plain"
    assert raw.connections == 2  # such a connection is not reused


async def test_204_has_no_body_and_keeps_the_connection(pools: PoolFactory) -> None:
    answers = iter([b"HTTP/1.1 204 No Content\r\n\r\n", answer(body=b"next")])
    async with serve_raw(keep_answering(lambda _: next(answers))) as raw:
        pool = pools(raw.port)
        empty, after = await fetch(pool, "DELETE"), await fetch(pool)
    assert (empty.status, empty.body) == (204, b"")
    assert after.body == b"next"
    assert raw.connections == 1


async def test_a_head_answer_has_no_body_despite_its_length(pools: PoolFactory) -> None:
    def make(request: RawRequest) -> bytes:
        if request.method == "HEAD":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n"
        return answer(body=b"after the head")

    async with serve_raw(keep_answering(make)) as raw:
        pool = pools(raw.port)
        head = await fetch(pool, "HEAD")
        after = await fetch(pool)
        head_again = await fetch(pool, "HEAD")
    assert (head.status, head.body, head.headers.get("Content-Length")) == (200, b"", "1234")
    assert after.body == b"after the head"
    assert head_again.body == b""
    assert raw.connections == 1


async def test_interim_answers_are_skipped(pools: PoolFactory) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
    final = answer("201 Created", b"made", "Location: /items/1")
    async with serve_raw(keep_answering(lambda _: interim + final)) as raw:
        pool = pools(raw.port)
        response = await fetch(pool, "POST", body=b"x")
        again = await fetch(pool, "POST", body=b"y")
    assert (response.status, response.body) == (201, b"made")
    assert list(response.headers.items()) == [("Location", "/items/1"), ("Content-Length", "4")]
    assert again.status == 201
    assert raw.connections == 1


async def test_a_declared_length_above_max_body_is_refused_before_the_body(
    pools: PoolFactory,
) -> None:
    dropped = asyncio.Event()

    async def script(conn: RawConnection) -> None:
        await conn.request()
        await conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")
        if await conn.closed_by_client():
            dropped.set()

    async with serve_raw(script) as raw:
        with pytest.raises(H1TooLarge) as refused:
            await fetch(pools(raw.port), max_body=1000)
        await asyncio.wait_for(dropped.wait(), 2)
    assert str(refused.value) == "the answer declares 10000000 bytes, more than the 1000-byte limit"


async def test_a_streamed_body_stops_at_max_body(pools: PoolFactory) -> None:
    dropped = asyncio.Event()

    async def script(conn: RawConnection) -> None:
        await conn.request()
        await conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            await conn.write(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
        # Never finished: the client must stop on the bytes alone.
        if await conn.closed_by_client():
            dropped.set()

    async with serve_raw(script) as raw:
        with pytest.raises(H1TooLarge) as refused:
            await fetch(pools(raw.port), max_body=2500)
        await asyncio.wait_for(dropped.wait(), 2)
    assert str(refused.value) == "the answer is larger than the 2500-byte limit"


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),  # raw deflate
    ],
)
async def test_a_compressed_answer_is_decompressed(
    pools: PoolFactory, coding: str, compress: Callable[[bytes], bytes]
) -> None:
    text = b'{"data": "' + b"abc" * 1000 + b'"}'
    made = answer(
        "200 OK", compress(text), "Content-Type: application/json", f"Content-Encoding: {coding}"
    )
    async with serve_raw(keep_answering(lambda _: made)) as raw:
        response = await fetch(pools(raw.port))
    assert response.body == text
    assert list(response.headers.items()) == [("Content-Type", "application/json")]


async def test_a_gzip_bomb_is_refused(pools: PoolFactory) -> None:
    bomb = gzip.compress(b"\0" * 10_000_000)
    assert len(bomb) < 100_000
    made = answer("200 OK", bomb, "Content-Encoding: gzip")
    async with serve_raw(keep_answering(lambda _: made)) as raw:
        with pytest.raises(H1TooLarge) as refused:
            await fetch(pools(raw.port), max_body=100_000)
    assert str(refused.value) == "the answer decompresses to more than the 100000-byte limit"


async def test_a_malformed_gzip_answer(pools: PoolFactory) -> None:
    made = answer("200 OK", b"not gzip at all", "Content-Encoding: gzip")
    async with serve_raw(keep_answering(lambda _: made)) as raw:
        with pytest.raises(H1Error) as refused:
            await fetch(pools(raw.port))
    assert str(refused.value) == (
        "malformed gzip answer: Error -3 while decompressing data: incorrect header check"
    )


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "malformed answer: Invalid status code"),
        (b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", "malformed answer: Invalid header token"),
        (b"SMTP ready\r\n\r\n", "malformed answer: Expected HTTP/, RTSP/ or ICE/"),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "the upstream switched protocols, which is not supported",
        ),
    ],
)
async def test_a_malformed_answer_fails_and_drops_the_connection(
    pools: PoolFactory, wire: bytes, message: str
) -> None:
    dropped = asyncio.Event()

    async def script(conn: RawConnection) -> None:
        await conn.request()
        await conn.write(wire)
        if await conn.closed_by_client():
            dropped.set()

    async with serve_raw(script) as raw:
        with pytest.raises(H1Error) as failed:
            await fetch(pools(raw.port))
        await asyncio.wait_for(dropped.wait(), 2)
    assert str(failed.value) == message


@pytest.mark.parametrize(
    ("wire", "where"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "body"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "headers"),
    ],
)
async def test_an_answer_cut_short_fails(pools: PoolFactory, wire: bytes, where: str) -> None:
    async def script(conn: RawConnection) -> None:
        await conn.request()
        await conn.write(wire)
        conn.close()

    async with serve_raw(script) as raw:
        with pytest.raises(H1Error) as failed:
            await fetch(pools(raw.port))
    assert str(failed.value) == (
        f"the upstream closed the connection before the end of the answer's {where}"
    )


async def closes_its_kept_connection(conn: RawConnection) -> None:
    """The first connection answers once, then reads the next request and closes."""
    if conn.index == 0:
        await conn.request()
        await conn.write(answer(body=b"first"))
        await conn.request()
        conn.close()
        return
    await keep_answering(lambda request: answer(body=request.method.encode()))(conn)


async def test_a_get_is_retried_once_when_a_kept_connection_was_closed(
    pools: PoolFactory,
) -> None:
    async with serve_raw(closes_its_kept_connection) as raw:
        pool = pools(raw.port)
        first, second = await fetch(pool), await fetch(pool)
    assert (first.body, second.body) == (b"first", b"GET")
    assert [request.connection for request in raw.requests] == [0, 0, 1]


async def test_a_post_is_not_sent_again_when_a_kept_connection_was_closed(
    pools: PoolFactory,
) -> None:
    async with serve_raw(closes_its_kept_connection) as raw:
        pool = pools(raw.port)
        await fetch(pool)
        with pytest.raises(H1Error) as failed:
            await fetch(pool, "POST", body=b"once")
    assert str(failed.value) == "the upstream closed the connection without answering"
    assert [(request.method, request.connection) for request in raw.requests] == [
        ("GET", 0),
        ("POST", 0),
    ]


async def test_the_retry_happens_once(pools: PoolFactory) -> None:
    async def script(conn: RawConnection) -> None:
        await conn.request()
        if conn.index == 0:
            await conn.write(answer(body=b"first"))
            await conn.request()
        conn.close()  # the fresh connection too: no second retry

    async with serve_raw(script) as raw:
        pool = pools(raw.port)
        await fetch(pool)
        with pytest.raises(H1Error) as failed:
            await fetch(pool)
    assert str(failed.value) == "the upstream closed the connection without answering"
    assert [request.connection for request in raw.requests] == [0, 0, 1]


async def test_a_timeout_drops_the_connection(pools: PoolFactory) -> None:
    dropped = asyncio.Event()

    async def script(conn: RawConnection) -> None:
        if conn.index == 0:
            await conn.request()  # and never answers
            if await conn.closed_by_client():
                dropped.set()
            return
        await keep_answering(lambda _: answer(body=b"on time"))(conn)

    async with serve_raw(script) as raw:
        pool = pools(raw.port)
        started = time.monotonic()
        with pytest.raises(TimeoutError) as late:
            await fetch(pool, timeout=0.2)
        assert 0.2 <= time.monotonic() - started < 1
        await asyncio.wait_for(dropped.wait(), 2)
        response = await fetch(pool)
    assert str(late.value) == "no complete answer within 0.2s"
    assert response.body == b"on time"
    assert raw.connections == 2


async def test_waiting_for_a_free_connection_is_bounded(pools: PoolFactory) -> None:
    async def script(conn: RawConnection) -> None:
        await conn.request()
        await conn.closed_by_client()

    async with serve_raw(script) as raw:
        pool = pools(raw.port, max_connections=1)
        busy = asyncio.create_task(fetch(pool))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError) as late:
            await fetch(pool, timeout=0.2)
        busy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await busy
    assert str(late.value) == "no free connection within 0.2s"
    assert raw.connections == 1


async def test_connect_timeout_bounds_the_tls_handshake(pools: PoolFactory) -> None:
    async def script(conn: RawConnection) -> None:
        await asyncio.sleep(10)  # a TCP server that never speaks TLS

    async with serve_raw(script) as raw:
        pool = pools(raw.port, scheme="https")
        with pytest.raises(TimeoutError) as late:
            await fetch(pool, connect_timeout=0.2)
    assert str(late.value) == f"could not connect to 127.0.0.1:{raw.port} within 0.2s"


async def test_connecting_to_a_closed_port(pools: PoolFactory) -> None:
    port = free_port()
    with pytest.raises(H1Error) as failed:
        await fetch(pools(port))
    assert str(failed.value) == f"cannot connect to 127.0.0.1:{port}: Connection refused"


async def test_cancelling_mid_answer_leaves_the_pool_usable(pools: PoolFactory) -> None:
    halfway, dropped = asyncio.Event(), asyncio.Event()

    async def script(conn: RawConnection) -> None:
        if conn.index == 0:
            await conn.request()
            await conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")
            halfway.set()
            if await conn.closed_by_client():
                dropped.set()
            return
        await keep_answering(lambda _: answer(body=b"whole"))(conn)

    async with serve_raw(script) as raw:
        pool = pools(raw.port, max_connections=1)
        task = asyncio.create_task(fetch(pool))
        await halfway.wait()
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(dropped.wait(), 2)
        response = await fetch(pool)  # the one slot was given back
    assert response.body == b"whole"
    assert raw.connections == 2


async def test_idle_connections_close_after_keepalive(pools: PoolFactory) -> None:
    dropped = asyncio.Event()

    async def script(conn: RawConnection) -> None:
        await conn.request()
        await conn.write(answer(body=b"ok"))
        if await conn.closed_by_client():
            dropped.set()

    async with serve_raw(script) as raw:
        pool = pools(raw.port, keepalive=0.1)
        await fetch(pool)
        await asyncio.wait_for(dropped.wait(), 2)
        await fetch(pool)
    assert raw.connections == 2


async def test_the_callers_host_replaces_the_pools(pools: PoolFactory) -> None:
    async with serve_raw(keep_answering(lambda _: answer())) as raw:
        await fetch(pools(raw.port), headers={"Host": "api.example.com", "X-A": "1"})
    assert raw.requests[0].headers == [("Host", "api.example.com"), ("X-A", "1")]


@pytest.mark.parametrize(
    ("headers", "target", "message"),
    [
        ({"X-A": "a\r\nX-B: b"}, "/", "the header 'X-A' has a CR, LF or NUL character"),
        ({"X-A": "a\nb"}, "/", "the header 'X-A' has a CR, LF or NUL character"),
        ({"X-A\r\nX-B": "b"}, "/", "the header 'X-A\\r\\nX-B' has a CR, LF or NUL character"),
        ({"X-A": "a\0"}, "/", "the header 'X-A' has a CR, LF or NUL character"),
        ({}, "/a\r\nX-B:b", "the request line GET '/a\\r\\nX-B:b' has a CR, LF or NUL character"),
        ({}, "/a HTTP/1.0", "invalid request target '/a HTTP/1.0'"),
        (
            {"content-length": "5"},
            "/",
            "the header 'content-length' is set by the pool from the body",
        ),
        (
            {"Transfer-Encoding": "chunked"},
            "/",
            "the header 'Transfer-Encoding' is set by the pool from the body",
        ),
    ],
)
async def test_unsafe_request_heads_are_refused(
    pools: PoolFactory, headers: dict[str, str], target: str, message: str
) -> None:
    async with serve_raw(keep_answering(lambda _: answer())) as raw:
        with pytest.raises(ValueError, match=re.escape(message)) as refused:
            await fetch(pools(raw.port), target=target, headers=headers)
    assert str(refused.value) == message
    assert raw.connections == 0


async def test_close_fails_requests_in_flight_and_later_ones(pools: PoolFactory) -> None:
    dropped = asyncio.Event()

    async def script(conn: RawConnection) -> None:
        await conn.request()
        if await conn.closed_by_client():
            dropped.set()

    async with serve_raw(script) as raw:
        pool = pools(raw.port)
        in_flight = asyncio.create_task(fetch(pool))
        while not raw.requests:
            await asyncio.sleep(0.01)
        await pool.close()
        with pytest.raises(H1Error) as failed:
            await in_flight
        await asyncio.wait_for(dropped.wait(), 2)
        with pytest.raises(H1Error) as later:
            await fetch(pool)
    assert str(failed.value) == str(later.value) == "the pool is closed"


async def test_unasked_bytes_on_an_idle_connection_drop_it(pools: PoolFactory) -> None:
    async def script(conn: RawConnection) -> None:
        while await conn.request() is not None:
            await conn.write(answer(body=b"ok") + b"HTTP/1.1 200 OK\r\n")

    async with serve_raw(script) as raw:
        pool = pools(raw.port)
        first = await fetch(pool)
        await asyncio.sleep(0.05)
        second = await fetch(pool)
    assert first.body == second.body == b"ok"
    assert raw.connections == 2
