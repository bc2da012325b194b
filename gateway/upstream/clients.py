"""One long-lived, pooled aiohttp session per upstream, kept outside snapshots.

aiohttp was chosen by measurement (bench/RESULTS.md): through the same proxy, httpx 0.28's
pool collapses as requests in flight grow. A session is keyed by its settings: a reload that
leaves an upstream's settings unchanged reuses its session (and its warm connections); a
changed or removed upstream's session is closed once the new snapshot serves.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable

import aiohttp

from gateway.snapshot import UpstreamSettings

__all__ = ["ClientPool", "PoolState"]


class PoolState(enum.Enum):
    OPEN = "open"  # sessions are created on first use
    CLOSED = "closed"  # close() was called; no new sessions


class ClientPool:
    """``pool.session(settings)`` returns the shared session for those settings."""

    def __init__(self) -> None:
        self._sessions: dict[UpstreamSettings, aiohttp.ClientSession] = {}
        self.state = PoolState.OPEN

    def session(self, settings: UpstreamSettings) -> aiohttp.ClientSession:
        session = self._sessions.get(settings)
        if session is None:
            if self.state is PoolState.CLOSED:
                raise RuntimeError("Cannot send a request, as the client pool has been closed.")
            connector = aiohttp.TCPConnector(
                limit=settings.max_connections,
                keepalive_timeout=60,
                ttl_dns_cache=300,
                enable_cleanup_closed=False,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=settings.timeout, connect=settings.connect_timeout
                ),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
            self._sessions[settings] = session
        return session

    async def retain(self, keep: Iterable[UpstreamSettings]) -> list[str]:
        """Close sessions whose settings are no longer used; return their upstream names."""
        wanted = set(keep)
        stale = [settings for settings in self._sessions if settings not in wanted]
        for settings in stale:
            await self._sessions.pop(settings).close()
        return [settings.name for settings in stale]

    async def close(self) -> None:
        self.state = PoolState.CLOSED
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(session.close() for session in sessions))

    def __len__(self) -> int:
        return len(self._sessions)
