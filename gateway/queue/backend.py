"""Open the webhook queue on the store's backend: in process for memory, Streams on Redis."""

from __future__ import annotations

from gateway.queue.events import EventQueue
from gateway.queue.memory import MemoryQueue
from gateway.queue.redis import RedisQueue
from gateway.store.backend import StoreBackend

__all__ = ["open_queue"]


def open_queue(backend: StoreBackend, dead_letters: int, memory_limit: int) -> EventQueue:
    """The queue for ``backend``, keeping at most ``dead_letters`` dead letters (and, in
    memory, at most ``memory_limit`` unfinished events)."""
    if backend.redis is None:
        return MemoryQueue(dead_letters, memory_limit)
    cluster = backend.kind == "cluster"
    return RedisQueue(backend.redis, backend.namespace, dead_letters, cluster=cluster)
