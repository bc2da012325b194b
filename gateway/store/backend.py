"""Open the store, rate limiter and locks that `store.url` in gateway.yaml names.

``memory://`` (the default): Litestar's MemoryStore, an in-process limiter and locks; not
durable, not shared, and the gateway says so at start. A Redis URL (one server, TLS,
Sentinel or Cluster: see gateway.store.client): Litestar's RedisStore, the Lua rate limiter
and locks on one redis-py client, shared by every replica. (The webhook queue is opened on
the same connection by gateway.queue.backend.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from redis.asyncio import Redis

from gateway.store.client import (
    REDIS_CONNECTIONS,
    RedisClient,
    key_prefix,
    open_client,
    probe,
    shown_url,
    store_namespace,
    url_kind,
)
from gateway.store.locks import Locks, MemoryLocks, RedisLocks
from gateway.store.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter

__all__ = ["REDIS_CONNECTIONS", "StoreBackend", "open_store", "shown_url", "unreachable"]


@dataclass
class StoreBackend:
    kind: str
    namespace: str
    store: Store
    limiter: RateLimiter
    locks: Locks
    redis: RedisClient | None = None
    prefix: str = ""
    """What every Redis key of this gateway starts with: `namespace:`, on a cluster
    `{namespace}:` (one hash slot)."""
    others: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def durable(self) -> bool:
        return self.redis is not None

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
        for close in self.others:
            await close()


def unreachable(url: str) -> str | None:
    """Why the store at ``url`` cannot be used right now, or None (memory always can).

    A short-lived synchronous client: the serving loop's pool is not touched before start.
    """
    return probe(url)


def open_store(url: str, namespace: str) -> StoreBackend:
    if url_kind(url) == "memory":
        return StoreBackend("memory", namespace, MemoryStore(), MemoryRateLimiter(), MemoryLocks())
    opened = open_client(url)
    cluster = opened.kind == "cluster"
    client = opened.client
    # Litestar's RedisStore is typed for Redis; it only calls commands RedisCluster has too
    # (GET/SET/DEL/EXISTS/PTTL and one-key scripts), its keys under the same hash tag.
    store = RedisStore(_as_redis(client), namespace=store_namespace(namespace, cluster))
    return StoreBackend(
        opened.kind,
        namespace,
        store,
        RedisRateLimiter(client, namespace, cluster=cluster),
        RedisLocks(client, namespace, cluster=cluster),
        client,
        key_prefix(namespace, cluster),
        opened.others,
    )


def _as_redis(client: RedisClient) -> Redis:
    return client  # type: ignore[return-value]
