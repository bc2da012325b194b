"""Group commit: calls made in the same event-loop turn share one store round trip.

Under load many requests are handled per loop turn; sending their Redis commands in one
pipeline saves a round trip and most of the client's per-command overhead. Each caller
still waits for, and gets, its own result (or exception), so nothing is acknowledged to
anyone before Redis confirmed it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["TurnBatcher"]

Item = TypeVar("Item")
Result = TypeVar("Result")


class TurnBatcher(Generic[Item, Result]):
    def __init__(
        self, run: Callable[[list[Item]], Awaitable[list[Result | BaseException]]]
    ) -> None:
        self._run = run
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, future))
        if len(self._waiting) == 1:
            loop.call_soon(self._flush_now)
        return await future

    def _flush_now(self) -> None:
        batch, self._waiting = self._waiting, []
        task = asyncio.get_running_loop().create_task(self._flush(batch))
        self._flushes.add(task)  # keep a reference until it is done
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as exc:  # the round trip failed: every call in it fails
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller went away (cancelled)
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
