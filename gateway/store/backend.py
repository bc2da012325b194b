"""Open the store, rate limiter and locks that `store.url` in gateway.yaml names.

``memory://`` (the default): Litestar's MemoryStore, an in-process limiter and locks; not
durable, not shared, and the gateway says so at start. ``redis://host:port/db``: Litestar's
RedisStore, the Lua rate limiter and locks on one redis-py pool, shared by every replica.
(The webhook queue is opened on the same connection by gateway.queue.backend.)
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from redis import Redis as SyncRedis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from gateway.store.locks import Locks, MemoryLocks, RedisLocks
from gateway.store.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter

__all__ = ["StoreBackend", "open_store", "shown_url", "unreachable"]

REDIS_CONNECTIONS = 64


@dataclass
class StoreBackend:
    kind: str
    namespace: str
    store: Store
    limiter: RateLimiter
    locks: Locks
    redis: Redis | None = None

    @property
    def durable(self) -> bool:
        return self.redis is not None

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def shown_url(url: str) -> str:
    """``url`` without its credentials (`redis://:secret@host` -> `redis://host`)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return url
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def unreachable(url: str) -> str | None:
    """Why the store at ``url`` cannot be used right now, or None (memory always can).

    A short-lived synchronous client: the serving loop's pool is not touched before start.
    """
    if url.startswith("memory:"):
        return None
    client = SyncRedis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except RedisError as exc:
        return str(exc) or type(exc).__name__
    finally:
        client.close()
    return None


def open_store(url: str, namespace: str) -> StoreBackend:
    if url.startswith("memory:"):
        return StoreBackend("memory", namespace, MemoryStore(), MemoryRateLimiter(), MemoryLocks())
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
    return StoreBackend(
        "redis",
        namespace,
        RedisStore(redis, namespace=namespace),
        RedisRateLimiter(redis, namespace),
        RedisLocks(redis, namespace),
        redis,
    )
