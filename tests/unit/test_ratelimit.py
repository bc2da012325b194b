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
