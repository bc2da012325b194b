"""One long-lived, pooled aiohttp session per upstream, kept outside snapshots.

aiohttp was chosen by measurement (bench/RESULTS.md): through the same minimal proxy, httpx
0.28 managed 0.008 of nginx's req/s and aiohttp 0.111. A session is keyed by its settings: a
reload that leaves an upstream's settings unchanged reuses its session (and its warm
connections); a changed or removed upstream's session is retired and closed once the
requests still using it (started on the previous snapshot) have finished.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import Counter
from collections.abc import Iterable

import aiohttp

from gateway.snapshot import UpstreamSettings

__all__ = ["ClientPool", "PoolState"]

RETIRE_GRACE = 5.0  # seconds beyond the upstream timeout a retired session may stay open


class PoolState(enum.Enum):
    OPEN = "open"  # sessions are created on first use
    CLOSED = "closed"  # close() was called; no new sessions


class ClientPool:
    """``pool.session(settings)`` returns the shared session for those settings.

    The dispatcher brackets each call with ``acquire``/``release`` so that a retired session
    is closed only when idle.
    """

    def __init__(self) -> None:
        self._sessions: dict[UpstreamSettings, aiohttp.ClientSession] = {}
        self._in_flight: Counter[aiohttp.ClientSession] = Counter()
        self._closing: set[asyncio.Task[None]] = set()
        self.state = PoolState.OPEN

    def session(self, settings: UpstreamSettings) -> aiohttp.ClientSession:
        session = self._sessions.get(settings)
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

    def acquire(self, session: aiohttp.ClientSession) -> None:
        self._in_flight[session] += 1

    def release(self, session: aiohttp.ClientSession) -> None:
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

    async def _close_when_idle(self, session: aiohttp.ClientSession, limit: float) -> None:
        deadline = time.monotonic() + limit
        # Polling keeps the per-request acquire/release to a counter bump (the hot path).
        while self._in_flight.get(session) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await session.close()

    async def close(self) -> None:
        self.state = PoolState.CLOSED
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(session.close() for session in sessions), *self._closing)
