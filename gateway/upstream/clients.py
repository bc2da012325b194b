"""One long-lived connection pool per upstream, kept outside snapshots.

Calls go through gateway.upstream.h1 (keep-alive connections on asyncio.Protocol and
httptools' parser): by measurement (bench/RESULTS.md) its client side costs a third of
aiohttp's, and httpx 0.28's managed 0.008 of nginx's req/s. With traces on, calls go through
an aiohttp session instead, whose OpenTelemetry instrumentation makes each attempt a span.
A pool is keyed by its settings: a reload that leaves an upstream's settings unchanged
reuses it (and its warm connections); a changed or removed upstream's pool is retired and
closed once the requests still using it (started on the previous snapshot) have finished.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
import time
from collections import Counter
from collections.abc import Iterable

import aiohttp
import yarl

from gateway.snapshot import UpstreamSettings
from gateway.upstream.h1 import H1Pool

__all__ = ["ClientPool", "PoolState"]

RETIRE_GRACE = 5.0  # seconds beyond the upstream timeout a retired session may stay open


class PoolState(enum.Enum):
    OPEN = "open"  # sessions are created on first use
    CLOSED = "closed"  # close() was called; no new sessions


class ClientPool:
    """``pool.client(settings)`` returns the shared pool for those settings.

    The dispatcher brackets each call with ``acquire``/``release`` so that a retired session
    is closed only when idle.
    """

    def __init__(self) -> None:
        self._sessions: dict[UpstreamSettings, aiohttp.ClientSession | H1Pool] = {}
        self._in_flight: Counter[aiohttp.ClientSession | H1Pool] = Counter()
        self._closing: set[asyncio.Task[None]] = set()
        self._tls: ssl.SSLContext | None = None
        self.state = PoolState.OPEN
        self.traced = False
        """Set by gateway.tracing before the first call: upstream calls go through aiohttp
        sessions, whose instrumentation traces them."""

    def client(self, settings: UpstreamSettings) -> aiohttp.ClientSession | H1Pool:
        """The upstream's pool: an H1Pool, or an aiohttp session when traces are on."""
        found = self._sessions.get(settings)
        if found is not None:
            return found
        if self.traced:
            return self._session(settings)
        if self.state is PoolState.CLOSED:
            raise RuntimeError("Cannot send a request, as the client pool has been closed.")
        url = yarl.URL(settings.base_url)
        if url.scheme == "https" and self._tls is None:
            self._tls = ssl.create_default_context()  # one per process: loading CAs is slow
        pool = H1Pool(
            url.scheme,
            url.raw_host or "",
            url.port or 0,
            max_connections=settings.max_connections,
            keepalive=60.0,
            ssl_context=self._tls if url.scheme == "https" else None,
        )
        self._sessions[settings] = pool
        return pool

    def _session(self, settings: UpstreamSettings) -> aiohttp.ClientSession:
        """An aiohttp session for these settings (traced)."""
        session = self._sessions.get(settings)
        if isinstance(session, H1Pool):
            raise RuntimeError(f"upstream {settings.name} is served by an H1Pool")
        if session is None:
            if self.state is PoolState.CLOSED:
                raise RuntimeError("Cannot send a request, as the client pool has been closed.")
            connector = aiohttp.TCPConnector(
                limit=settings.max_connections, keepalive_timeout=60, ttl_dns_cache=300
            )
            timeout = aiohttp.ClientTimeout(
                total=settings.timeout, connect=settings.connect_timeout
            )
            session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",)
            )
            self._sessions[settings] = session
        return session

    def acquire(self, session: aiohttp.ClientSession | H1Pool) -> None:
        self._in_flight[session] += 1

    def release(self, session: aiohttp.ClientSession | H1Pool) -> None:
        self._in_flight[session] -= 1
        if self._in_flight[session] <= 0:
            del self._in_flight[session]

    def retain(self, keep: Iterable[UpstreamSettings]) -> list[str]:
        """Retire sessions whose settings are no longer used; return their upstream names."""
        wanted = set(keep)
        stale = [settings for settings in self._sessions if settings not in wanted]
        for settings in stale:
            session = self._sessions.pop(settings)
            task = asyncio.get_running_loop().create_task(
                self._close_when_idle(session, settings.timeout + RETIRE_GRACE)
            )
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return [settings.name for settings in stale]

    async def _close_when_idle(self, session: aiohttp.ClientSession | H1Pool, limit: float) -> None:
        deadline = time.monotonic() + limit
        # Polling keeps the per-request acquire/release to a counter bump (the hot path).
        while self._in_flight.get(session) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await session.close()

    async def close(self) -> None:
        self.state = PoolState.CLOSED
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(session.close() for session in sessions), *self._closing)
