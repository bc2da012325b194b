"""Lock leases, in memory and on the real Redis: a lease not renewed expires, a renewed one
stays, and a renewal after someone else took the key changes nothing of theirs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from gateway.store.locks import Locks, MemoryLocks, RedisLocks
from tests.conftest import REDIS_URL, eventually

LEASE = 0.3


@dataclass
class Backend:
    locks: Locks
    holder: Callable[[str], Awaitable[str | None]]
    """The token the key holds now (None: free)."""


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest, redis_namespace: str) -> AsyncIterator[Backend]:
    if request.param == "memory":
        memory = MemoryLocks()

        async def memory_holder(key: str) -> str | None:
            held = memory._held.get(key)
            return held[0] if held is not None and held[1] > time.monotonic() else None

        yield Backend(memory, memory_holder)
        return
    namespace = redis_namespace
    # Socket timeouts as the gateway's own clients have: a stalled read fails, never hangs.
    redis = Redis.from_url(REDIS_URL, socket_timeout=10, socket_connect_timeout=5)
    locks = RedisLocks(redis, namespace)

    async def redis_holder(key: str) -> str | None:
        value = await redis.get(f"{namespace}:lock:{key}")
        return value.decode() if value is not None else None

    try:
        yield Backend(locks, redis_holder)
    finally:
        await redis.aclose()


async def until_free(backend: Backend, key: str, timeout: float = 5.0) -> None:
    """Polls (bounded) until ``key`` can be taken; takes and frees it."""
    deadline = time.monotonic() + timeout
    while (lock := await backend.locks.acquire(key, 1)) is None:
        assert time.monotonic() < deadline, f"{key} was not freed"
        await asyncio.sleep(0.02)
    await lock.release()


async def test_a_lease_not_renewed_expires(backend: Backend) -> None:
    lock = await backend.locks.acquire("k", LEASE, renew=True)
    assert lock is not None
    assert lock.lease is not None
    assert await backend.locks.acquire("k", LEASE) is None
    await lock.lease.stop()  # what a killed process does: no more renewals
    await until_free(backend, "k")
    assert lock.lost is False  # it did not find out: it stopped renewing


async def test_a_plain_lock_expires_after_its_ttl(backend: Backend) -> None:
    lock = await backend.locks.acquire("plain", LEASE)
    assert lock is not None
    assert lock.lease is None
    await until_free(backend, "plain")


async def test_a_renewed_lease_stays_until_released(backend: Backend) -> None:
    lock = await backend.locks.acquire("k", LEASE, renew=True)
    assert lock is not None
    for _ in range(8):  # 8 * LEASE / 2: four leases long, held throughout
        await asyncio.sleep(LEASE / 2)
        assert await backend.holder("k") == lock.token
        assert await backend.locks.acquire("k", LEASE) is None
    assert lock.lost is False
    await lock.release()
    assert await backend.holder("k") is None
    other = await backend.locks.acquire("k", LEASE)
    assert other is not None
    await asyncio.sleep(LEASE)  # the released lease's heartbeat is stopped: it extends nothing
    assert await backend.locks.extend(lock, 10) is False
    await other.release()


async def test_a_renewal_after_someone_else_took_the_key_does_nothing(backend: Backend) -> None:
    first = await backend.locks.acquire("k", LEASE, renew=True)
    assert first is not None
    time.sleep(LEASE * 1.5)  # the loop stalls: no renewal runs, the lease runs out
    second = await backend.locks.acquire("k", 2.0)
    assert second is not None  # taken by another holder while the first still thinks it holds
    await eventually(lambda: first.lost, timeout=5)  # its next renewal found out
    assert await backend.holder("k") == second.token
    assert await backend.locks.extend(first, 60) is False
    await first.release()  # releasing a lost lock frees nothing of the new holder's
    assert await backend.holder("k") == second.token
    assert await backend.locks.acquire("k", LEASE) is None
    await until_free(backend, "k")  # freed on the second holder's own schedule (2 s)


async def test_extend_prolongs_only_the_holders_lock(backend: Backend) -> None:
    lock = await backend.locks.acquire("k", LEASE)
    assert lock is not None
    assert await backend.locks.extend(lock, 60) is True
    await asyncio.sleep(LEASE * 2)
    assert await backend.holder("k") == lock.token  # the extension held it past LEASE
    await lock.release()
    assert await backend.locks.extend(lock, 60) is False
    assert await backend.holder("k") is None
