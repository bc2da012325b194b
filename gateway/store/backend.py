"""Build the store and rate limiter that `store.url` in gateway.yaml names.

``memory://`` (the default): Litestar's MemoryStore, an in-process limiter, locks and webhook
queue; not durable, not shared, and the gateway says so at start. ``redis://host:port/db``:
Litestar's RedisStore, the Lua rate limiter, locks and the Streams queue on one redis-py
pool, shared by every replica.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from redis.asyncio import BlockingConnectionPool, Redis

from gateway.queue.events import EventQueue
from gateway.queue.memory import MemoryQueue
from gateway.queue.redis import RedisQueue
from gateway.store.locks import Locks, MemoryLocks, RedisLocks
from gateway.store.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter

__all__ = ["Backend", "open_backend"]

REDIS_CONNECTIONS = 64


@dataclass
class Backend:
    kind: str
    store: Store
    limiter: RateLimiter
    locks: Locks
    queue: EventQueue
    redis: Redis | None = None

    @property
    def durable(self) -> bool:
        return self.redis is not None

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def open_backend(url: str, namespace: str, dead_letters: int = 10_000) -> Backend:
    if url.startswith("memory:"):
        return Backend(
            "memory", MemoryStore(), MemoryRateLimiter(), MemoryLocks(), MemoryQueue(dead_letters)
        )
    # Blocking pool: a burst waits for a free connection instead of failing the request.
    # Socket timeouts bound every call (the queue's blocking reads wait 1 s at most), so a
    # Redis that stops answering fails requests instead of hanging them.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_CONNECTIONS,
        timeout=5,
        socket_timeout=10,
        socket_connect_timeout=5,
    )
    redis = Redis.from_pool(pool)  # the client owns the pool and closes it
    store = RedisStore(redis, namespace=namespace)
    return Backend(
        "redis",
        store,
        RedisRateLimiter(redis, namespace),
        RedisLocks(redis, namespace),
        RedisQueue(redis, namespace, dead_letters),
        redis,
    )
