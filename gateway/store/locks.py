"""Expiring locks (set-if-absent with a time to live), shared by replicas on Redis.

Litestar's ``Store`` has no atomic set-if-absent, and "at most once" needs one: a schedule
runs on one replica per period, a conversation is answered by one worker at a time.
``acquire`` returns a :class:`Lock` (or None when someone else holds the key); only its
holder can release or extend it, so a lock that expired and was taken by another is never
freed or prolonged by the first holder.

``acquire(key, ttl, renew=True)`` makes ``ttl`` a lease: a background task extends it every
``ttl / 3`` while the holder works, and stops on release. A process that dies stops renewing,
so its key is free ``ttl`` seconds later instead of after a worst-case hold time.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from gateway.logs import logger
from gateway.store.client import RedisClient, key_prefix

__all__ = ["Lease", "Lock", "Locks", "MemoryLocks", "RedisLocks"]

# Delete the key only if it still holds our token (compare-and-delete, atomic).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Prolong the key only if it still holds our token (compare-and-extend, atomic).
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class Lease:
    """The heartbeat of a renewed lock: ``extend()`` every ``ttl / 3`` until stopped or lost."""

    def __init__(self, key: str, extend: Callable[[], Awaitable[bool]], ttl: float) -> None:
        self.key = key
        self.lost = False
        self._stopped = False
        self._every = ttl / 3
        self._task = asyncio.create_task(self._renew(extend, self._every))

    async def _renew(self, extend: Callable[[], Awaitable[bool]], every: float) -> None:
        # The flag, not only the cancellation: on Python 3.11 redis-py's wait_for can swallow
        # a cancellation that lands during a call, and the loop would renew for ever.
        while not self._stopped:
            await asyncio.sleep(every)
            if self._stopped:
                return
            try:
                held = await extend()
            except Exception as exc:  # the store is away: try again; the lease may run out
                logger.warning("lock %s: renewal failed: %s", self.key, exc)
                continue
            if not held:  # expired (a stalled loop, the store away) and maybe taken since
                self.lost = True
                logger.warning("lock %s: lost (expired before it was renewed)", self.key)
                return

    async def stop(self) -> None:
        self._stopped = True
        self._task.cancel()
        # wait(), not await: a cancellation of our caller must not be swallowed here; bounded,
        # as a renewal in flight ends within its own socket timeout.
        await asyncio.wait({self._task}, timeout=max(1.0, self._every * 3))


@dataclass(frozen=True, slots=True)
class Lock:
    key: str
    token: str
    owner: Locks
    lease: Lease | None = None
    """Set for renewed locks."""

    @property
    def lost(self) -> bool:
        return self.lease is not None and self.lease.lost

    async def release(self) -> None:
        """Best effort: a store that cannot be reached is logged, not raised. The key expires
        by itself, and a release in a ``finally`` must not replace what is propagating (a
        cancellation at shutdown, the handler's own error) with the store's error."""
        if self.lease is not None:
            await self.lease.stop()
        try:
            await self.owner.release(self)
        except Exception as exc:
            logger.warning("lock %s: release failed (it expires by itself): %s", self.key, exc)


class Locks(Protocol):
    async def acquire(self, key: str, ttl: float, *, renew: bool = False) -> Lock | None:
        """The lock on ``key`` for ``ttl`` seconds (a renewed lease with ``renew``), or None
        when it is held."""
        ...

    async def extend(self, lock: Lock, ttl: float) -> bool:
        """``ttl`` seconds from now, if ``lock`` still holds its key; False if it does not."""
        ...

    async def release(self, lock: Lock) -> None: ...


class _Leasing:
    """``acquire`` and ``extend`` over a backend's take / extend / release primitives."""

    async def _take(self, key: str, token: str, ttl: float) -> bool:
        raise NotImplementedError

    async def _extend(self, key: str, token: str, ttl: float) -> bool:
        raise NotImplementedError

    async def release(self, lock: Lock) -> None:
        raise NotImplementedError

    async def acquire(self, key: str, ttl: float, *, renew: bool = False) -> Lock | None:
        token = secrets.token_hex(8)
        if not await self._take(key, token, ttl):
            return None
        lease = Lease(key, partial(self._extend, key, token, ttl), ttl) if renew else None
        return Lock(key, token, self, lease)

    async def extend(self, lock: Lock, ttl: float) -> bool:
        return await self._extend(lock.key, lock.token, ttl)


class MemoryLocks(_Leasing):
    """One process: a dict of key -> (token, expiry on the monotonic clock)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}

    async def _take(self, key: str, token: str, ttl: float) -> bool:
        now = time.monotonic()
        held = self._held.get(key)
        if held is not None and held[1] > now:
            return False
        self._held[key] = (token, now + ttl)
        return True

    async def _extend(self, key: str, token: str, ttl: float) -> bool:
        now = time.monotonic()
        held = self._held.get(key)
        if held is None or held[0] != token or held[1] <= now:
            return False  # expired counts as lost, as on Redis where the key is gone
        self._held[key] = (token, now + ttl)
        return True

    async def release(self, lock: Lock) -> None:
        held = self._held.get(lock.key)
        if held is not None and held[0] == lock.token:
            del self._held[lock.key]


class RedisLocks(_Leasing):
    """`SET key token NX PX ttl`; extend and release compare the token in one script."""

    def __init__(self, redis: RedisClient, namespace: str, *, cluster: bool = False) -> None:
        self.redis = redis
        self.prefix = f"{key_prefix(namespace, cluster)}lock:"
        self._release = redis.register_script(_RELEASE)
        self._extend_script = redis.register_script(_EXTEND)

    async def _take(self, key: str, token: str, ttl: float) -> bool:
        taken = await self.redis.set(self.prefix + key, token, nx=True, px=_ms(ttl))
        return bool(taken)

    async def _extend(self, key: str, token: str, ttl: float) -> bool:
        extended = await self._extend_script(keys=[self.prefix + key], args=[token, _ms(ttl)])
        return bool(extended)

    async def release(self, lock: Lock) -> None:
        await self._release(keys=[self.prefix + lock.key], args=[lock.token])


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
