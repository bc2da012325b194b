"""Run each enabled schedule every `every` seconds, on one replica per period.

Each process ticks once a second; a due schedule runs only where ``locks.acquire`` wins the
key ``schedule:<id>`` for one period, so N replicas run it once per period between them.
The lock is not released after the run: it marks the period as done.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.host.invoke import Crashed, Refused, invoke
from gateway.host.runtime import PluginHost
from gateway.logs import REQUEST_ID, logger
from gateway.plugin import PluginRequest
from gateway.snapshot import CompiledSchedule, Snapshot
from gateway.store.locks import Locks

__all__ = ["Scheduler"]

TICK = 1.0


class Scheduler:
    def __init__(self, host: PluginHost, locks: Locks, current: Callable[[], Snapshot]) -> None:
        self.host = host
        self.locks = locks
        self.current = current
        self.runs: dict[str, int] = {}
        self._next: dict[tuple[str, float], float] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    def stop(self) -> None:
        """Start no more runs; ``run`` returns within a tick (runs in progress are cancelled).

        A flag rather than a cancel: see Worker.stop.
        """
        self._stopping = True

    async def run(self) -> None:
        try:
            while not self._stopping:
                await self.tick()
                await asyncio.sleep(TICK)
        finally:
            for task in self._running.values():
                task.cancel()
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def tick(self) -> None:
        now = time.monotonic()
        for schedule in self.current().schedules:
            if not schedule.enabled or schedule.plugin is None or schedule.unconfigured:
                continue
            key = (schedule.id, schedule.every)
            if self._next.get(key, 0.0) > now or schedule.id in self._running:
                continue
            self._next[key] = now + schedule.every
            try:
                lock = await self.locks.acquire(f"schedule:{schedule.id}", schedule.every)
            except Exception as exc:
                logger.error("schedule %s: could not take its lock: %s", schedule.id, exc)
                continue
            if lock is None:
                continue  # another replica runs it this period
            task = asyncio.create_task(self._run(schedule))
            self._running[schedule.id] = task
            task.add_done_callback(self._finished(schedule.id))

    def _finished(self, schedule_id: str) -> Callable[[asyncio.Task[None]], None]:
        def forget(_: asyncio.Task[None]) -> None:
            self._running.pop(schedule_id, None)

        return forget

    async def _run(self, schedule: CompiledSchedule) -> None:
        target = schedule.plugin
        if target is None:  # unconfigured: tick() does not start it
            return
        request_id = f"schedule-{schedule.id}-{int(time.time())}"
        token = REQUEST_ID.set(request_id)
        request = PluginRequest(route=schedule.id, request_id=request_id, method="SCHEDULE")
        ctx = self.host.context(target, schedule.clients, request_id)
        started = time.perf_counter()
        try:
            outcome = await invoke(target, ctx, request)
            if isinstance(outcome, Refused | Crashed):
                detail = outcome.detail if isinstance(outcome, Refused) else outcome.error
                logger.error("schedule %s failed: %s", schedule.id, detail)
            else:
                elapsed = (time.perf_counter() - started) * 1000
                logger.info("schedule %s ran in %.0fms", schedule.id, elapsed)
        finally:
            self.runs[schedule.id] = self.runs.get(schedule.id, 0) + 1
            REQUEST_ID.reset(token)
