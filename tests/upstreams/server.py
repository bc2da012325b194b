"""Run an aiohttp.web application on a free 127.0.0.1 port, recording what it received."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Seen:
    """One request an upstream received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    raw_path: str = ""
    """Path and query string as sent, percent-encoding kept (``path`` is decoded)."""

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class Recorder:
    """Every request, in order; attach with ``app.middlewares.append(recorder.middleware)``."""

    seen: list[Seen] = field(default_factory=list)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                body,
                request.raw_path,
            )
        )
        response: web.StreamResponse = await handler(request)
        return response


@dataclass
class Upstream:
    url: str
    recorder: Recorder

    @property
    def seen(self) -> list[Seen]:
        return self.recorder.seen


@asynccontextmanager
async def serve_upstream(app: web.Application, recorder: Recorder) -> AsyncIterator[Upstream]:
    """``app`` on 127.0.0.1, on a port the kernel picks (no race with other tests)."""
    # handler_cancellation: a handler whose caller went away (a gateway timeout) stops, so
    # cleanup does not wait for slow handlers to finish.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield Upstream(f"http://127.0.0.1:{port}", recorder)
    finally:
        await runner.cleanup()
