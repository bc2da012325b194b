"""The in-process queue: the memory store's queue. Not durable; the gateway says so at start."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from gateway.queue.events import Delivery, QueuedEvent, QueueFull, first_attempt

__all__ = ["MemoryQueue"]


class MemoryQueue:
    kind = "memory"

    def __init__(self, dead_letters: int, limit: int) -> None:
        self.limit = limit
        """Unfinished events held at most (queued, running, waiting to retry)."""
        self._ready: asyncio.Queue[QueuedEvent] = asyncio.Queue()
        self._delayed: set[asyncio.TimerHandle] = set()
        self._unfinished = 0  # queued, being handled or waiting to retry
        self._dead: deque[QueuedEvent] = deque(maxlen=dead_letters)
        self._seen: dict[str, tuple[str, float]] = {}  # dedupe key -> (event id, expiry)

    async def enqueue(
        self, event: QueuedEvent, dedupe_key: str | None, dedupe_ttl: float
    ) -> tuple[bool, str]:
        if self._unfinished >= self.limit:
            raise QueueFull(f"the queue holds its limit of {self.limit} events")
        now = time.monotonic()
        if dedupe_key is not None:
            seen = self._seen.get(dedupe_key)
            if seen is not None and seen[1] > now:
                return False, seen[0]
            if len(self._seen) > 100_000:  # keep memory bounded: drop expired keys
                self._seen = {k: v for k, v in self._seen.items() if v[1] > now}
            self._seen[dedupe_key] = (event.id, now + dedupe_ttl)
        self._ready.put_nowait(event)
        self._unfinished += 1
        return True, event.id

    async def read(self, count: int, block: float) -> list[Delivery]:
        try:
            first = await asyncio.wait_for(self._ready.get(), block)
        except TimeoutError:
            return []
        found = [first]
        while len(found) < count and not self._ready.empty():
            found.append(self._ready.get_nowait())
        return [Delivery(event.id, event) for event in found]

    async def ack(self, delivery: Delivery) -> None:
        self._unfinished -= 1

    async def retry(self, delivery: Delivery, event: QueuedEvent, delay: float) -> None:
        loop = asyncio.get_running_loop()

        def release() -> None:
            self._delayed.discard(handle)
            self._ready.put_nowait(event)

        handle = loop.call_later(delay, release)
        self._delayed.add(handle)

    async def bury(self, delivery: Delivery, event: QueuedEvent) -> None:
        self._unfinished -= 1
        self._dead.append(event)

    async def heartbeat(self, deliveries: list[Delivery]) -> None:
        return None  # one process: nobody else could take them over

    async def reclaim(self, idle: float, count: int) -> list[Delivery]:
        return []

    async def promote(self) -> int:
        return 0  # delayed events are released by their timers

    async def dead(self, count: int) -> list[QueuedEvent]:
        return list(reversed(self._dead))[:count]

    async def replay(self, event_id: str) -> bool:
        for letter in self._dead:
            if letter.id == event_id:
                self._dead.remove(letter)
                self._ready.put_nowait(first_attempt(letter))
                self._unfinished += 1
                return True
        return False

    async def pending(self) -> int:
        return self._unfinished
