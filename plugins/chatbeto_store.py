"""ChatBETO's records in the gateway store (a helper of plugins/chatbeto.py).

Each conversation is one frozen record under `chatbeto:conversation:<id>` (its project,
title, OpenAI conversation id and every message with its role and time), so listing and
reading never call OpenAI. Two id lists find them: `chatbeto:project:<project id>`
(newest first) and `chatbeto:conversations` (all, oldest first: what a sync walks). Sync
jobs live under `chatbeto:sync:job:<id>` for a week. With a Redis store all of it
survives restarts and is shared by replicas.

A record is read, changed and written back under the lock of what it belongs to (the
conversation, the indexes), so two replicas never lose each other's message.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from gateway.plugin import Context, RetrySoon

Role = Literal["user", "assistant", "system"]
JobStatus = Literal["running", "completed", "failed", "interrupted"]
JOB_SECONDS = 7 * 24 * 3600


SCAN_LIMIT = 2_000
"""Conversations of a project read at most to list one user's."""


def now_iso() -> str:
    """`2026-08-27T10:15:30.123Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One message of a conversation, as ChatBETO shows it."""

    id: str
    role: Role
    content: str
    created_at: str
    model: str | None = None
    """The model that wrote it (assistant messages)."""

    def public(self) -> dict[str, Any]:
        shown: dict[str, Any] = msgspec.structs.asdict(self)
        if self.model is None:
            del shown["model"]
        return shown


class Conversation(msgspec.Struct, frozen=True, kw_only=True):
    """A conversation: the gateway's id, its project and title, its OpenAI conversation."""

    id: str
    project_id: str
    title: str
    created_at: str
    updated_at: str
    openai_id: str | None = None
    """The OpenAI conversation (`conv_...`); None until it exists upstream."""
    messages: tuple[Message, ...] = ()
    owner: str | None = None
    """The signed-in user who created it, who alone sees it; None: the operator's (API-key
    callers, the bots' webhook), seen by the operator's callers only."""

    def visible_to(self, user: str | None) -> bool:
        """Whether a caller standing for ``user`` (None: the operator) may see it."""
        return user is None or self.owner == user

    @property
    def upstream(self) -> str:
        """The OpenAI conversation id (LookupError if there is none yet)."""
        if self.openai_id is None:
            raise LookupError(f"conversation {self.id} has no OpenAI conversation")
        return self.openai_id

    def public(self) -> dict[str, Any]:
        """The summary a list shows (`projectId` as the original API spells it)."""
        return {
            "id": self.id,
            "title": self.title,
            "projectId": self.project_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "message_count": len(self.messages),
        }

    def detail(self) -> dict[str, Any]:
        return {**self.public(), "messages": [message.public() for message in self.messages]}

    def adding(self, *messages: Message) -> Conversation:
        updated = messages[-1].created_at if messages else self.updated_at
        return msgspec.structs.replace(
            self, messages=(*self.messages, *messages), updated_at=updated
        )


class SyncFailure(
    msgspec.Struct, frozen=True, kw_only=True, rename={"conversation_id": "conversationId"}
):
    conversation_id: str
    message: str


class SyncJob(msgspec.Struct, frozen=True, kw_only=True, rename={"job_id": "jobId"}):
    """A sync's progress: every stored conversation checked, the gone ones recreated."""

    job_id: str
    status: JobStatus
    total: int
    processed: int = 0
    existing: int = 0
    """Conversations OpenAI still had."""
    recreated: int = 0
    """Conversations created again upstream with their history (gone, or never created)."""
    failed: int = 0
    errors: tuple[SyncFailure, ...] = ()
    started_at: str
    finished_at: str | None = None


_encode = msgspec.json.encode


class Records:
    """``Records(ctx)``: the conversations, indexes and sync jobs in ``ctx.store``."""

    def __init__(self, ctx: Context, lock_seconds: float = 10.0, wait_seconds: float = 30.0):
        self.store = ctx.store
        self.locks = ctx.locks
        self.lock_seconds = lock_seconds
        self.wait_seconds = wait_seconds

    async def conversation(self, conversation_id: str) -> Conversation | None:
        raw = await self.store.get(f"chatbeto:conversation:{conversation_id}")
        return None if raw is None else msgspec.json.decode(raw, type=Conversation)

    async def save(self, conversation: Conversation) -> None:
        await self.store.set(f"chatbeto:conversation:{conversation.id}", _encode(conversation))

    async def add(self, conversation: Conversation) -> None:
        """Store a new conversation and list it in its project and in the sync index."""
        await self.save(conversation)
        async with self.locked("chatbeto:index"):
            project_key = f"chatbeto:project:{conversation.project_id}"
            await self.store.set(
                project_key, _encode([conversation.id, *await self._ids(project_key)])
            )
            everything = await self._ids("chatbeto:conversations")
            await self.store.set("chatbeto:conversations", _encode([*everything, conversation.id]))

    async def in_project(
        self, project_id: str, limit: int, user: str | None = None
    ) -> list[Conversation]:
        """The project's conversations ``user`` may see (None: the operator, all of them),
        newest first; at most ``SCAN_LIMIT`` are read to find them."""
        ids = (await self._ids(f"chatbeto:project:{project_id}"))[:SCAN_LIMIT]
        seen: list[Conversation] = []
        for start in range(0, len(ids), limit):
            batch = ids[start : start + limit]
            found = await asyncio.gather(*(self.conversation(item) for item in batch))
            seen += [item for item in found if item is not None and item.visible_to(user)]
            if len(seen) >= limit:
                break
        return seen[:limit]

    async def all_ids(self) -> list[str]:
        return await self._ids("chatbeto:conversations")

    async def _ids(self, key: str) -> list[str]:
        raw = await self.store.get(key)
        return [] if raw is None else msgspec.json.decode(raw, type=list[str])

    async def job(self, job_id: str) -> SyncJob | None:
        raw = await self.store.get(f"chatbeto:sync:job:{job_id}")
        return None if raw is None else msgspec.json.decode(raw, type=SyncJob)

    async def save_job(self, job: SyncJob) -> None:
        await self.store.set(f"chatbeto:sync:job:{job.job_id}", _encode(job), JOB_SECONDS)

    @asynccontextmanager
    async def locked(self, key: str) -> AsyncIterator[None]:
        """Hold ``key`` (a lease renewed while held); wait for it up to ``wait_seconds``,
        then RetrySoon (a route answers 503, a webhook event comes back later)."""
        deadline = time.monotonic() + self.wait_seconds
        while (lock := await self.locks.acquire(key, self.lock_seconds, renew=True)) is None:
            if time.monotonic() > deadline:
                raise RetrySoon(2, f"{key} is busy; retry soon")
            await asyncio.sleep(0.05)
        try:
            yield
        finally:
            await lock.release()


def metadata(conversation: Conversation) -> dict[str, str]:
    """What the OpenAI conversation carries of ours (values: at most 512 characters)."""
    return {
        "gateway_id": conversation.id,
        "project_id": conversation.project_id,
        "title": conversation.title[:512],
    }


def history_items(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as OpenAI conversation items (``EasyInputMessage``), oldest first."""
    return [
        {"type": "message", "role": message.role, "content": message.content}
        for message in messages
    ]
