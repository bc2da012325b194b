"""Connection limits uvicorn does not have: idle sockets, slow and oversized headers.

uvicorn arms its keep-alive timeout only after a response, so a socket that never sends a
request stays open for ever, and a client sending its headers a byte a second holds a
connection as long as it likes. This protocol closes a connection that is idle (no request
begun) for ``idle_timeout`` seconds, first request included, and answers 408 to one whose
request head (request line and headers) is not complete ``header_timeout`` seconds after
its first byte. A request head that grows past ``server.max_header_bytes`` plus room for
the request line is answered 431 and closed while it is read, so the parser never holds
more than that (the app checks the exact header size again). Bodies are bounded by
``server.max_body_bytes`` and the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.serve.problems import PROBLEM_CONTENT_TYPE, problem_body

__all__ = ["REQUEST_LINE_ROOM", "guarded_protocol"]

REQUEST_LINE_ROOM = 16_384
"""Bytes of a request head allowed beyond the header limit: the request line, separators."""
LINGER_SECONDS = 2.0
"""After a refusal, how long what the client still sends is read and dropped before the
socket closes: closing with unread bytes would reset the connection, and the client would
lose the answer (nginx's lingering close)."""


def _refusal(status: int, reason: bytes, slug: str, detail: str) -> bytes:
    body = problem_body(status, slug, detail)
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % (status, reason, PROBLEM_CONTENT_TYPE, len(body))
    ) + body


class _GuardedProtocol(HttpToolsProtocol):
    idle_timeout: float = 5.0
    header_timeout: float = 10.0
    max_header_bytes: Callable[[], int] = staticmethod(lambda: 16_384)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.idle_timeout  # type: ignore[assignment]  # int there
        self._reading_head = True
        self._head_bytes = 0
        self._head_deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # The keep-alive timer, armed before the first request too; uvicorn cancels it
        # when bytes arrive and arms it again after each response.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered and closing: dropped, never parsed
        if self._reading_head and self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)
        super().data_received(data)
        if self._reading_head and not self.transport.is_closing():
            self._head_bytes += len(data)  # counted after feeding: a body in the chunk is fine
            limit = self.max_header_bytes()
            if self._head_bytes > limit + REQUEST_LINE_ROOM:
                self._refuse(
                    _refusal(
                        431,
                        b"Request Header Fields Too Large",
                        "headers-too-large",
                        f"the request headers are over {limit} bytes",
                    )
                )

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._cancel_head_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head, self._head_bytes = True, 0  # next bytes: the next request's head

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            detail = f"the request headers did not arrive within {self.header_timeout:g}s"
            self._refuse(_refusal(408, b"Request Timeout", "request-header-timeout", detail))

    def _refuse(self, answer: bytes) -> None:
        """Answer (unless a response is under way), then drop what comes and close."""
        self._cancel_head_deadline()
        self._refused = True
        self._unset_keepalive_if_required()
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()
            return
        self.transport.write(answer)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the answer, then sees the end
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def guarded_protocol(
    idle_timeout: float, header_timeout: float, max_header_bytes: Callable[[], int]
) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``; ``max_header_bytes`` reads the
    current limit (it may change on reload)."""
    limits = {
        "idle_timeout": idle_timeout,
        "header_timeout": header_timeout,
        "max_header_bytes": staticmethod(max_header_bytes),
    }
    return type("GuardedHttpToolsProtocol", (_GuardedProtocol,), limits)
