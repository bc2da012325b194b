"""GCRA rate limits: exact budgets, rejected requests cost nothing, one budget per key."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from gateway.store.backend import open_store
from gateway.store.ratelimit import Decision, MemoryRateLimiter, RateLimiter, RedisRateLimiter
from tests.conftest import REDIS_URL


async def exercise(limiter: RateLimiter) -> None:
    decisions = [await limiter.hit("k", 3, 60) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert 19 < decisions[3].retry_after <= 20  # one request every 60 / 3 s
    assert (await limiter.hit("other", 3, 60)).allowed  # another caller, another budget


async def test_memory_limiter() -> None:
    await exercise(MemoryRateLimiter())


async def test_redis_limiter(redis_namespace: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        await exercise(RedisRateLimiter(redis, redis_namespace))
    finally:
        await redis.aclose()


async def test_redis_limiter_is_atomic_under_concurrency(redis_namespace: str) -> None:
    backend = open_store(REDIS_URL, redis_namespace)  # the gateway's own pool (64 connections)
    try:
        decisions = await asyncio.gather(
            *(backend.limiter.hit("burst", 10, 3600) for _ in range(200))
        )
    finally:
        await backend.close()
    assert sum(d.allowed for d in decisions) == 10


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        (
            Decision(True, 100, 99, 0, 36.2),
            [
                (b"ratelimit-limit", b"100"),
                (b"ratelimit-remaining", b"99"),
                (b"ratelimit-reset", b"37"),
            ],
        ),
        (
            Decision(False, 100, 0, 35.1, 3600),
            [
                (b"ratelimit-limit", b"100"),
                (b"ratelimit-remaining", b"0"),
                (b"ratelimit-reset", b"3600"),
                (b"retry-after", b"36"),
            ],
        ),
    ],
)
def test_headers(decision: Decision, expected: list[tuple[bytes, bytes]]) -> None:
    assert decision.headers() == expected


async def replicas(namespace: str) -> tuple[list[Redis], list[RedisRateLimiter]]:
    """Two limiters on two connections: two replicas sharing one Redis."""
    clients = [Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)]
    return clients, [RedisRateLimiter(client, namespace) for client in clients]


async def redis_now(client: Redis) -> float:
    seconds, micros = await client.time()
    return float(seconds) + micros / 1e6


@pytest.mark.parametrize("which", ["memory", "redis"])
async def test_more_requests_than_milliseconds_are_limited_exactly(
    which: str, redis_namespace: str
) -> None:
    """2,000 a second is a share of 0.5 ms: all of the burst, then only what the time
    since allows (the Redis limiter once let 6,000 of 6,000 through)."""
    clients, limiters = await replicas(redis_namespace)
    memory = MemoryRateLimiter()
    try:
        started = await redis_now(clients[0])
        decisions = []
        for index in range(6000):
            limiter = memory if which == "memory" else limiters[index % 2]
            decisions.append(await limiter.hit("fast", 2000, 1))
        elapsed = await redis_now(clients[0]) - started
    finally:
        for client in clients:
            await client.aclose()
    allowed = sum(d.allowed for d in decisions)
    assert 2000 <= allowed <= 2000 + int(elapsed * 2000) + 1
    assert all(0 <= d.remaining <= 2000 for d in decisions)
    assert decisions[0].remaining == 1999


@pytest.mark.parametrize("which", ["memory", "redis"])
async def test_a_share_that_is_not_a_whole_number_of_units_is_exact(
    which: str, redis_namespace: str
) -> None:
    """7 per 3 s: one request every 428,571.43 µs, across two replicas."""
    clients, limiters = await replicas(redis_namespace)
    memory = MemoryRateLimiter()
    try:
        decisions = []
        for index in range(20):
            limiter = memory if which == "memory" else limiters[index % 2]
            decisions.append(await limiter.hit("odd", 7, 3))
    finally:
        for client in clients:
            await client.aclose()
    assert [d.allowed for d in decisions] == [True] * 7 + [False] * 13
    assert [d.remaining for d in decisions[:7]] == [6, 5, 4, 3, 2, 1, 0]
    refused = decisions[7]
    assert 0.40 < refused.retry_after <= 3 / 7
    assert 2.9 < refused.reset_after <= 3.0


async def evalsha_calls(client: Redis) -> int:
    stats = await client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


async def test_a_high_limit_is_served_from_leases(redis_namespace: str) -> None:
    """1,000,000 a second: one call leases 1 % of it (what 50 ms earn, at most), so 3,000
    requests cost Redis one call, not 3,000."""
    clients, limiters = await replicas(redis_namespace)
    try:
        before = await evalsha_calls(clients[0])
        decisions = [await limiters[0].hit("high", 1_000_000, 1) for _ in range(3000)]
        calls = await evalsha_calls(clients[0]) - before
    finally:
        for client in clients:
            await client.aclose()
    assert all(d.allowed for d in decisions)
    assert 1 <= calls < 30  # a lease covers 10 ms of the limit: a slow machine takes a few
