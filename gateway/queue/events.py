"""What travels through the webhook queue, and the interface both queues implement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import msgspec

__all__ = [
    "Delivery",
    "EventQueue",
    "QueueFull",
    "QueuedEvent",
    "dead_letter_summary",
    "decode_event",
    "encode_event",
    "first_attempt",
]


class QueueFull(Exception):
    """The in-process queue holds its limit of unfinished events: the sender retries later."""


class QueuedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One verified webhook request, as received (raw body: it is what was signed)."""

    id: str
    """Stable across retries and replays: the handler's idempotency key."""
    webhook: str
    received_at: float
    request_id: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    attempt: int = 1
    error: str | None = None
    """Why the last attempt failed (on retries and dead letters)."""
    failed_at: float | None = None


encode_event = msgspec.json.Encoder().encode
decode_event = msgspec.json.Decoder(QueuedEvent).decode


def dead_letter_summary(event: QueuedEvent) -> dict[str, object]:
    """What `gateway webhooks dead` and the admin API show of a dead letter."""
    return {
        "id": event.id,
        "webhook": event.webhook,
        "attempts": event.attempt,
        "error": event.error,
        "received_at": event.received_at,
        "failed_at": event.failed_at,
        "request_id": event.request_id,
        "body_bytes": len(event.body),
    }


def first_attempt(event: QueuedEvent) -> QueuedEvent:
    """``event`` as new again (a replayed dead letter)."""
    return msgspec.structs.replace(event, attempt=1, error=None, failed_at=None)


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event handed to this process; ``ref`` is the queue's own handle (a stream id)."""

    ref: str
    event: QueuedEvent


class EventQueue(Protocol):
    kind: str

    async def enqueue(
        self, event: QueuedEvent, dedupe_key: str | None, dedupe_ttl: float
    ) -> tuple[bool, str]:
        """Queue ``event`` unless ``dedupe_key`` was seen: (queued?, the event id it is under)."""
        ...

    async def read(self, count: int, block: float) -> list[Delivery]:
        """Up to ``count`` new deliveries, waiting at most ``block`` seconds for the first."""
        ...

    async def ack(self, delivery: Delivery) -> None:
        """The handler succeeded: forget the event."""
        ...

    async def retry(self, delivery: Delivery, event: QueuedEvent, delay: float) -> None:
        """Hand ``event`` (the next attempt) out again after ``delay`` seconds."""
        ...

    async def bury(self, delivery: Delivery, event: QueuedEvent) -> None:
        """Move ``event`` to the dead letters."""
        ...

    async def heartbeat(self, deliveries: list[Delivery]) -> None:
        """Tell other processes these deliveries are still being worked on."""
        ...

    async def reclaim(self, idle: float, count: int) -> list[Delivery]:
        """Deliveries of processes that stopped heart-beating for ``idle`` seconds."""
        ...

    async def promote(self) -> int:
        """Make retries whose delay has passed deliverable; how many."""
        ...

    async def dead(self, count: int) -> list[QueuedEvent]:
        """The newest dead letters first."""
        ...

    async def replay(self, event_id: str) -> bool:
        """Queue a dead letter again as a first attempt; False if there is no such letter."""
        ...

    async def pending(self) -> int:
        """Events queued or being worked on (for /health and tests)."""
        ...
