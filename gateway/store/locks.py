"""Expiring locks (set-if-absent with a time to live), shared by replicas on Redis.

Litestar's ``Store`` has no atomic set-if-absent, and "at most once" needs one: a schedule
runs on one replica per period, a conversation is answered by one worker at a time.
``acquire`` returns a :class:`Lock` (or None when someone else holds the key); only its
holder can release it, so a lock that expired and was taken by another is never freed by
the first holder.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

__all__ = ["Lock", "Locks", "MemoryLocks", "RedisLocks"]

# Delete the key only if it still holds our token (compare-and-delete, atomic).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Lock:
    key: str
    token: str
    owner: Locks

    async def release(self) -> None:
        await self.owner.release(self)


class Locks(Protocol):
    async def acquire(self, key: str, ttl: float) -> Lock | None:
        """The lock on ``key`` for ``ttl`` seconds, or None when it is held."""
        ...

    async def release(self, lock: Lock) -> None: ...


class MemoryLocks:
    """One process: a dict of key -> (token, expiry on the monotonic clock)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}

    async def acquire(self, key: str, ttl: float) -> Lock | None:
        now = time.monotonic()
        held = self._held.get(key)
        if held is not None and held[1] > now:
            return None
        token = secrets.token_hex(8)
        self._held[key] = (token, now + ttl)
        return Lock(key, token, self)

    async def release(self, lock: Lock) -> None:
        held = self._held.get(lock.key)
        if held is not None and held[0] == lock.token:
            del self._held[lock.key]


class RedisLocks:
    """`SET key token NX PX ttl`; release compares the token in one script."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self.redis = redis
        self.prefix = f"{namespace}:lock:"
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, key: str, ttl: float) -> Lock | None:
        token = secrets.token_hex(8)
        taken = await self.redis.set(self.prefix + key, token, nx=True, px=max(1, int(ttl * 1000)))
        return Lock(key, token, self) if taken else None

    async def release(self, lock: Lock) -> None:
        await self._release(keys=[self.prefix + lock.key], args=[lock.token])
