"""Make stored ChatBETO conversations exist upstream (a helper of plugins/chatbeto.py).

:func:`recreate` gives a conversation a new OpenAI conversation holding its whole history
(used when OpenAI answers 404 for it, and for conversations a webhook recorded that were
never created upstream). :class:`SyncRun` is the background job behind
`POST /api/v1/openai/sync`: it walks every stored conversation, checks that its OpenAI
conversation exists (`GET /conversations/{id}`) and recreates those that are gone, writing
its progress to the store after each one, so any replica can report it.

One sync runs at a time across replicas (the `chatbeto:sync` lock, a lease renewed while
it runs). While it runs it refreshes `chatbeto:sync:alive:<job>` every few seconds; a job
still marked running whose key has expired was stopped with its process (`interrupted`);
a new sync checks everything again (each step is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec
from chatbeto_openai import OpenAI
from chatbeto_store import (
    Conversation,
    Records,
    SyncFailure,
    SyncJob,
    history_items,
    metadata,
    now_iso,
)

from gateway.plugin import Lock, PluginError, RetrySoon, UpstreamError

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

ALIVE_SECONDS = 15
_HEARTBEAT = 5.0
_MAX_ERRORS = 50
_MAX_RATE_WAIT = 30.0


def alive_key(job_id: str) -> str:
    return f"chatbeto:sync:alive:{job_id}"


async def recreate(records: Records, openai: OpenAI, conversation: Conversation) -> Conversation:
    """``conversation`` with a new OpenAI conversation holding its history (saved)."""
    history = history_items(conversation.messages)
    openai_id = await openai.create_conversation(metadata(conversation), history)
    updated = msgspec.structs.replace(conversation, openai_id=openai_id)
    await records.save(updated)
    return updated


class SyncRun:
    """``asyncio.create_task(SyncRun(records, openai, job, lock, logger).run())``."""

    def __init__(
        self, records: Records, openai: OpenAI, job: SyncJob, lock: Lock, logger: Logger
    ) -> None:
        self.records = records
        self.openai = openai
        self.job = job
        self.lock = lock
        self.logger = logger

    async def run(self) -> None:
        beat = asyncio.create_task(self._heartbeat())
        try:
            ids = await self.records.all_ids()
            await self._update(total=len(ids))
            for conversation_id in ids:
                outcome = await self._one(conversation_id)
                changes: dict[str, Any] = {"processed": self.job.processed + 1}
                if isinstance(outcome, str):
                    failure = SyncFailure(conversation_id=conversation_id, message=outcome)
                    changes["failed"] = self.job.failed + 1
                    changes["errors"] = (*self.job.errors, failure)[:_MAX_ERRORS]
                elif outcome is not None:
                    field = "recreated" if outcome else "existing"
                    changes[field] = getattr(self.job, field) + 1
                await self._update(**changes)
            await self._update(status="completed", finished_at=now_iso())
            self.logger.info(
                "sync %s: %d conversations, %d recreated, %d failed",
                self.job.job_id,
                self.job.total,
                self.job.recreated,
                self.job.failed,
            )
        except Exception as exc:  # the store went away, a bug: say so in the job, once
            self.logger.exception("sync %s failed", self.job.job_id)
            with contextlib.suppress(Exception):
                failure = SyncFailure(conversation_id="", message=f"{type(exc).__name__}: {exc}")
                await self._update(
                    status="failed", finished_at=now_iso(), errors=(*self.job.errors, failure)
                )
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            with contextlib.suppress(Exception):  # at shutdown the store may be gone
                await self.records.store.delete(alive_key(self.job.job_id))
                await self.lock.release()

    async def _one(self, conversation_id: str) -> bool | str | None:
        """True: recreated; False: it existed; None: no longer stored; str: why it failed."""
        for attempt in (1, 2):
            try:
                async with self.records.locked(f"chatbeto:conversation:{conversation_id}"):
                    conversation = await self.records.conversation(conversation_id)
                    if conversation is None:
                        return None
                    if conversation.openai_id and await self.openai.exists(conversation.openai_id):
                        return False
                    await recreate(self.records, self.openai, conversation)
                    return True
            except PluginError as exc:
                wait = exc.headers.get("Retry-After", "")
                if exc.status == 429 and attempt == 1 and wait.isdigit():
                    await asyncio.sleep(min(float(wait), _MAX_RATE_WAIT))
                    continue
                return exc.detail
            except (UpstreamError, RetrySoon) as exc:
                return str(exc)
        return "OpenAI kept rate limiting"

    async def _update(self, **changes: Any) -> None:
        self.job = msgspec.structs.replace(self.job, **changes)
        await self.records.save_job(self.job)

    async def _heartbeat(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat only risks `interrupted`
                await self.records.store.set(alive_key(self.job.job_id), b"1", ALIVE_SECONDS)
            await asyncio.sleep(_HEARTBEAT)
