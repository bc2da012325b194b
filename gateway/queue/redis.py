"""The durable queue: a Redis Stream with a consumer group, shared by every replica.

Keys (under the store's key prefix, ``namespace:``, on a cluster ``{namespace}:`` so that
every script and transaction below touches one hash slot): ``wq`` the stream,
``wq:delayed`` a sorted set of retries by due time, ``wq:dead`` the dead-letter stream,
``wq:seen:<key>`` dedupe markers.

* Enqueue and dedupe are one script: an event is either queued with its marker or not at
  all, so two replicas receiving the same delivery queue it once. Enqueues arriving in the
  same event-loop turn share one pipelined round trip (group commit); each request is
  still answered only after Redis confirmed its own event.
* An entry is acknowledged (and deleted) only after its handler succeeded; a failure moves
  it to ``wq:delayed`` or ``wq:dead`` in the same transaction as the acknowledgement.
* A worker refreshes the idle time of its entries while handlers run (``XCLAIM`` to
  itself); entries of a process that died stop being refreshed and are taken over by any
  replica with ``XAUTOCLAIM`` once idle for the visibility timeout.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from gateway.queue.events import (
    Delivery,
    QueuedEvent,
    decode_event,
    encode_event,
    first_attempt,
)
from gateway.store.batching import TurnBatcher
from gateway.store.client import RedisClient, key_prefix

__all__ = ["GROUP", "RedisQueue"]

GROUP = "gateway"

# KEYS: the stream [, the dedupe marker] (no empty key name: on a cluster every key counts).
_ENQUEUE = """
if #KEYS > 1 then
  local seen = redis.call('GET', KEYS[2])
  if seen then return {0, seen} end
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
redis.call('XADD', KEYS[1], '*', 'event', ARGV[1])
return {1, ARGV[2]}
"""

_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'event', member)
  redis.call('ZREM', KEYS[1], member)
end
return #due
"""


class RedisQueue:
    kind = "redis"

    def __init__(
        self, redis: RedisClient, namespace: str, dead_letters: int, *, cluster: bool = False
    ) -> None:
        self.redis = redis
        self.cluster = cluster
        prefix = key_prefix(namespace, cluster)
        self.stream = f"{prefix}wq"
        self.delayed = f"{prefix}wq:delayed"
        self.dead_stream = f"{prefix}wq:dead"
        self.seen_prefix = f"{prefix}wq:seen:"
        self.dead_letters = dead_letters
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._enqueue = redis.register_script(_ENQUEUE)
        self._promote = redis.register_script(_PROMOTE)
        self._group_ready = False
        self._enqueue_sha: str | None = None
        self._enqueues: TurnBatcher[tuple[list[str], list[Any]], tuple[bool, str]] = TurnBatcher(
            self._enqueue_batch
        )
        self._acks: TurnBatcher[str, None] = TurnBatcher(self._ack_batch)

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From the start of the stream: entries queued before any worker existed count.
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def enqueue(
        self, event: QueuedEvent, dedupe_key: str | None, dedupe_ttl: float
    ) -> tuple[bool, str]:
        keys = [self.stream]
        if dedupe_key is not None:
            keys.append(self.seen_prefix + dedupe_key)
        args = [encode_event(event), event.id, max(1, int(dedupe_ttl * 1000))]
        return await self._enqueues.submit((keys, args))

    async def _enqueue_batch(
        self, batch: list[tuple[list[str], list[Any]]]
    ) -> list[tuple[bool, str] | BaseException]:
        if self.cluster:  # redis-py refuses EVALSHA in a cluster pipeline: concurrent calls
            found = await asyncio.gather(
                *(self._enqueue(keys=keys, args=args) for keys, args in batch),
                return_exceptions=True,
            )
            return [_enqueued(answer) for answer in found]
        if self._enqueue_sha is None:
            self._enqueue_sha = await self.redis.script_load(_ENQUEUE)
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args in batch:
                pipe.evalsha(self._enqueue_sha, len(keys), *keys, *args)
            answers = await pipe.execute(raise_on_error=False)
        results: list[tuple[bool, str] | BaseException] = []
        for (keys, args), answer in zip(batch, answers, strict=True):
            if isinstance(answer, NoScriptError):  # Redis restarted: the script loads again
                self._enqueue_sha = None
                try:
                    answer = await self._enqueue(keys=keys, args=args)
                except Exception as exc:
                    answer = exc
            results.append(_enqueued(answer))
        return results

    async def read(self, count: int, block: float) -> list[Delivery]:
        await self._ensure_group()
        try:
            answer: Any = await self.redis.xreadgroup(
                GROUP,
                self.consumer,
                {self.stream: ">"},
                count=count,
                block=max(1, int(block * 1000)),
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._group_ready = False  # the stream was deleted (FLUSHDB): create it again
            return []
        return [_delivery(ref, fields) for _, entries in answer or [] for ref, fields in entries]

    async def ack(self, delivery: Delivery) -> None:
        await self._acks.submit(delivery.ref)

    async def _ack_batch(self, refs: list[str]) -> list[BaseException | None]:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, *refs)
            pipe.xdel(self.stream, *refs)
            await pipe.execute()
        return [None] * len(refs)

    async def retry(self, delivery: Delivery, event: QueuedEvent, delay: float) -> None:
        due_ms = int((time.time() + delay) * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.delayed, {encode_event(event): due_ms})
            pipe.xack(self.stream, GROUP, delivery.ref)
            pipe.xdel(self.stream, delivery.ref)
            await pipe.execute()

    async def bury(self, delivery: Delivery, event: QueuedEvent) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.dead_stream,
                {"event": encode_event(event), "id": event.id},
                maxlen=self.dead_letters,
                approximate=True,
            )
            pipe.xack(self.stream, GROUP, delivery.ref)
            pipe.xdel(self.stream, delivery.ref)
            await pipe.execute()

    async def heartbeat(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            await self.redis.xclaim(
                self.stream,
                GROUP,
                self.consumer,
                min_idle_time=0,
                message_ids=[delivery.ref for delivery in deliveries],
                justid=True,
            )

    async def reclaim(self, idle: float, count: int) -> list[Delivery]:
        await self._ensure_group()
        answer: Any = await self.redis.xautoclaim(
            self.stream, GROUP, self.consumer, min_idle_time=int(idle * 1000), count=count
        )
        entries = answer[1] if answer else []
        return [_delivery(ref, fields) for ref, fields in entries if fields]

    async def promote(self) -> int:
        moved: int = await self._promote(
            keys=[self.delayed, self.stream], args=[int(time.time() * 1000), 100]
        )
        return moved

    async def dead(self, count: int) -> list[QueuedEvent]:
        entries: Any = await self.redis.xrevrange(self.dead_stream, count=count)
        return [decode_event(fields[b"event"]) for _, fields in entries]

    async def replay(self, event_id: str) -> bool:
        last = "+"
        while True:
            entries: Any = await self.redis.xrevrange(self.dead_stream, max=last, count=500)
            for ref, fields in entries:
                if fields.get(b"id", b"").decode() == event_id:
                    event = first_attempt(decode_event(fields[b"event"]))
                    async with self.redis.pipeline(transaction=True) as pipe:
                        pipe.xadd(self.stream, {"event": encode_event(event)})
                        pipe.xdel(self.dead_stream, ref)
                        await pipe.execute()
                    return True
            if len(entries) < 500:
                return False
            last = "(" + entries[-1][0].decode()

    async def pending(self) -> int:
        await self._ensure_group()
        length = await self.redis.xlen(self.stream)
        delayed = await self.redis.zcard(self.delayed)
        return int(length) + int(delayed)


def _enqueued(answer: Any) -> tuple[bool, str] | BaseException:
    if isinstance(answer, BaseException):
        return answer
    queued, event_id = answer
    text = event_id.decode() if isinstance(event_id, bytes) else event_id
    return bool(queued), text


def _delivery(ref: bytes | str, fields: dict[bytes, bytes]) -> Delivery:
    ref_text = ref.decode() if isinstance(ref, bytes) else ref
    return Delivery(ref_text, decode_event(fields[b"event"]))
