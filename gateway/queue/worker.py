"""Run webhook handlers from the queue: ack on success, retry with backoff, then dead-letter.

Every process runs one Worker. It reads up to ``queue.concurrency`` events at a time, keeps
the ones it is working on alive (heartbeat), takes over those of dead processes (reclaim),
and makes due retries deliverable again (promote). Handlers run with the snapshot current
when the event is taken, so an edited plugin applies to the next event.

A handler that raises ``RetrySoon`` (busy, nothing failed) gets its event back after the
delay it asked for, with the same attempt number; for at most ``BUSY_WINDOW`` seconds per
attempt, after which a busy answer fails the attempt like any error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import msgspec

from gateway import metrics
from gateway.host.invoke import Crashed, Deferred, Refused, invoke
from gateway.host.runtime import PluginHost
from gateway.logs import REQUEST_ID, logger
from gateway.plugin import PluginRequest
from gateway.queue.events import Delivery, EventQueue
from gateway.snapshot import Snapshot

__all__ = ["Worker"]

PROMOTE_EVERY = 0.5
BUSY_WINDOW = 600.0
"""Seconds after an attempt fell due during which ``RetrySoon`` may put it off."""
DEFER_BOUNDS = (0.5, 60.0)
"""The delay a handler asks for, clamped: no hot loop, no event parked for long."""
STOP_GRACE = 10.0
"""Seconds the handlers in flight may still take after ``stop()`` (unless it says)."""
CANCEL_WAIT = 2.0
"""Seconds a cancelled handler may take to unwind (its ``finally``) before ``run`` returns."""


class Worker:
    def __init__(
        self, queue: EventQueue, host: PluginHost, current: Callable[[], Snapshot]
    ) -> None:
        self.queue = queue
        self.host = host
        self.current = current
        self.in_flight: dict[str, Delivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        self._stopping = False
        self._grace = STOP_GRACE
        self.processed = 0
        self.failed = 0
        self.deferred = 0

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Read no more; ``run`` returns once the handlers in flight are done, or ``grace``
        seconds later with the rest cancelled (unacknowledged: another process takes them
        over), so none outlives the store's close.

        A flag rather than only a cancel: on Python 3.11 ``asyncio.wait_for`` (inside
        redis-py) can swallow a cancellation that arrives as its wait completes.
        """
        self._grace = grace
        self._stopping = True
        self._room.set()

    async def run(self) -> None:
        """Until stopped (or cancelled); then waits (bounded) for handlers already running."""
        maintenance = asyncio.create_task(self._maintain())
        try:
            await self._read_forever()
        finally:
            self._stopping = True
            await asyncio.gather(maintenance, return_exceptions=True)  # ends within a tick
            if self._tasks:
                _, stuck = await asyncio.wait(self._tasks, timeout=self._grace)
                for task in stuck:
                    task.cancel()
                if stuck:  # bounded: a handler that swallows the cancellation is left behind
                    await asyncio.wait(stuck, timeout=CANCEL_WAIT)

    async def _read_forever(self) -> None:
        while not self._stopping:
            room = self.current().queue.concurrency - len(self.in_flight)
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                deliveries = await self.queue.read(room, block=1.0)
            except Exception as exc:  # the store is away: wait, then read again
                logger.error("webhook queue: read failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if self._stopping:
                return  # read after the stop: unacknowledged, they go to another process
            for delivery in deliveries:
                self._start(delivery)

    def _start(self, delivery: Delivery) -> None:
        if delivery.ref in self.in_flight:
            return
        self.in_flight[delivery.ref] = delivery
        task = asyncio.create_task(self._process(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _maintain(self) -> None:
        last_heartbeat = last_reclaim = time.monotonic()
        while not self._stopping:
            await asyncio.sleep(PROMOTE_EVERY)
            visibility = self.current().queue.visibility_timeout
            now = time.monotonic()
            try:
                await self.queue.promote()
                if now - last_heartbeat >= visibility / 3:
                    last_heartbeat = now
                    await self.queue.heartbeat(list(self.in_flight.values()))
                if now - last_reclaim >= visibility / 2:
                    last_reclaim = now
                    room = self.current().queue.concurrency - len(self.in_flight)
                    if room > 0:
                        for delivery in await self.queue.reclaim(visibility, room):
                            logger.warning(
                                "webhook queue: took over event %s (its process stopped)",
                                delivery.event.id,
                            )
                            self._start(delivery)
            except Exception as exc:
                logger.error("webhook queue: maintenance failed: %s", exc)

    async def _process(self, delivery: Delivery) -> None:
        event = delivery.event
        token = REQUEST_ID.set(event.request_id)
        try:
            outcome = await self._run_handler(delivery)
            if isinstance(outcome, Deferred):
                if await self._defer(delivery, outcome):
                    return
                outcome = f"still busy after {BUSY_WINDOW:g}s: {outcome.detail}", False
            if outcome is None:
                await self.queue.ack(delivery)
                self.processed += 1
                metrics.webhook_processed(event.webhook)
                logger.info(
                    "webhook %s: event %s processed (attempt %d)",
                    event.webhook,
                    event.id,
                    event.attempt,
                )
                return
            error, permanent = outcome
            self.failed += 1
            metrics.webhook_failed(event.webhook)
            webhook = self.current().webhooks.get(event.webhook)
            failed = msgspec.structs.replace(event, error=error, failed_at=time.time())
            if permanent or webhook is None or event.attempt >= webhook.attempts:
                await self.queue.bury(delivery, failed)
                metrics.webhook_dead_lettered(event.webhook)
                logger.error(
                    "webhook %s: event %s is a dead letter after %d attempt(s): %s",
                    event.webhook,
                    event.id,
                    event.attempt,
                    error,
                )
            else:
                delay = webhook.delay_before(event.attempt + 1)
                await self.queue.retry(
                    delivery, msgspec.structs.replace(failed, attempt=event.attempt + 1), delay
                )
                logger.warning(
                    "webhook %s: event %s failed (attempt %d of %d), retry in %gs: %s",
                    event.webhook,
                    event.id,
                    event.attempt,
                    webhook.attempts,
                    delay,
                    error,
                )
        except Exception as exc:  # ack/retry did not reach the store: it will be reclaimed
            logger.error("webhook queue: could not record event %s: %s", event.id, exc)
        finally:
            REQUEST_ID.reset(token)
            self.in_flight.pop(delivery.ref, None)
            self._room.set()

    async def _defer(self, delivery: Delivery, deferred: Deferred) -> bool:
        """Hand the event out again after the handler's delay, with the same attempt; False
        when this attempt was put off for ``BUSY_WINDOW`` already (it then counts as failed).

        The bound is a deadline from the event's own times (received, or failed + backoff),
        so it holds across processes and restarts without a counter: a lock that never frees
        costs each attempt one window, and ``attempts`` ends it as a dead letter. (A replayed
        dead letter keeps its receipt time: its first busy answer fails attempt 1.)
        """
        event = delivery.event
        webhook = self.current().webhooks.get(event.webhook)
        if webhook is None:
            return False
        due = event.received_at
        if event.failed_at is not None and event.attempt > 1:
            due = event.failed_at + webhook.delay_before(event.attempt)
        if time.time() > due + BUSY_WINDOW:
            return False
        low, high = DEFER_BOUNDS
        delay = min(max(deferred.delay, low), high)
        await self.queue.retry(delivery, event, delay)
        self.deferred += 1
        logger.info(
            "webhook %s: event %s deferred (attempt %d kept), again in %gs: %s",
            event.webhook,
            event.id,
            event.attempt,
            delay,
            deferred.detail,
        )
        return True

    async def _run_handler(self, delivery: Delivery) -> Deferred | tuple[str, bool] | None:
        """None on success, Deferred for "busy, retry soon", else (error, permanent?)."""
        event = delivery.event
        snapshot = self.current()
        webhook = snapshot.webhooks.get(event.webhook)
        if webhook is None:
            return f"webhook {event.webhook} is not configured any more", True
        if webhook.unconfigured is not None:
            return webhook.unconfigured, False  # an operator may set it: retry
        if webhook.plugin is None:
            return f"webhook {event.webhook} has no handler", True
        body: Any = None
        if event.body:
            try:
                body = msgspec.json.decode(event.body)
            except msgspec.DecodeError:
                body = event.body.decode("utf-8", "replace")
        request = PluginRequest(
            method=webhook.method,
            path=webhook.path,
            route=webhook.id,
            query=event.query,
            headers=event.headers,
            body=body,
            request_id=event.request_id,
            auth_scheme="hmac" if webhook.hmac is not None else "none",
            event_id=event.id,
            attempt=event.attempt,
        )
        ctx = self.host.context(webhook.plugin, webhook.clients, event.request_id)
        outcome = await invoke(webhook.plugin, ctx, request)
        if isinstance(outcome, Deferred):
            return dataclasses.replace(outcome, detail=snapshot.redact(outcome.detail))
        if isinstance(outcome, Refused):
            # Only a handler's own 4xx means "never"; an upstream away or a user not
            # connected yet may pass: retry.
            permanent = outcome.slug == "plugin-refused" and outcome.status < 500
            return snapshot.redact(f"{outcome.status}: {outcome.detail}"), permanent
        if isinstance(outcome, Crashed):
            return snapshot.redact(outcome.error), False
        return None
