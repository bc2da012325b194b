"""The process's state backend: the store (with its limiter and locks) and the webhook queue
on it, opened together once at start from `store.url`."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.stores.base import Store

from gateway.queue.backend import open_queue
from gateway.queue.events import EventQueue
from gateway.store.backend import StoreBackend, open_store
from gateway.store.client import RedisClient
from gateway.store.locks import Locks
from gateway.store.ratelimit import RateLimiter

__all__ = ["Backend", "open_backend"]


@dataclass
class Backend:
    """``open_backend("redis://127.0.0.1:6379/0", "gateway", 10_000, 10_000)``."""

    stores: StoreBackend
    queue: EventQueue

    @property
    def kind(self) -> str:
        return self.stores.kind

    @property
    def store(self) -> Store:
        return self.stores.store

    @property
    def limiter(self) -> RateLimiter:
        return self.stores.limiter

    @property
    def locks(self) -> Locks:
        return self.stores.locks

    @property
    def redis(self) -> RedisClient | None:
        return self.stores.redis

    @property
    def durable(self) -> bool:
        return self.stores.durable

    async def ping(self) -> None:
        """Raises when the store cannot be reached (memory always can)."""
        if self.stores.redis is not None:
            await self.stores.redis.ping()

    async def close(self) -> None:
        await self.stores.close()


def open_backend(url: str, namespace: str, dead_letters: int, memory_limit: int) -> Backend:
    stores = open_store(url, namespace)
    return Backend(stores, open_queue(stores, dead_letters, memory_limit))
