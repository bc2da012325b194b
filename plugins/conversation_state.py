"""Intercom <-> GPT Trainer: answer each user message in a support conversation once.

Webhook `conversation.user.created` / `conversation.user.replied` (routes.d/intercom.yaml),
run from the durable queue, or the polling schedule as the fallback:

    user message -> HTML to text -> the conversation's GPT Trainer session (created once)
    -> POST /session/{uuid}/message/stream (streamed plain text) -> reply in Intercom as
    the configured admin -> mark the conversation read.

Each conversation has a state in the store: READY_FOR_RESPONSE (a user message waits for
its answer) or AWAITING_USER_REPLY (answered; waiting for the user). At most one AI reply
per user message, also when Intercom retries the webhook, the poller sees the same
message, or two replicas get it: the conversation is answered under a lock, the message
id is checked again under that lock, and it is recorded as answered right after the reply
is posted (before anything else can fail). A per-conversation rate limit caps the replies.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.plugin import Context, PluginError, PluginRequest, UpstreamClient, html_to_text

READY_FOR_RESPONSE = "READY_FOR_RESPONSE"
AWAITING_USER_REPLY = "AWAITING_USER_REPLY"
USER_TOPICS = frozenset({"conversation.user.created", "conversation.user.replied"})
USER_AUTHORS = frozenset({"user", "lead", "contact"})
ANSWER_KEYS = ("response", "text", "message", "answer", "content")


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    chatbot_uuid: str
    """The GPT Trainer chatbot that answers."""
    admin_id: str
    """The Intercom admin the replies are posted as."""
    replies_per_conversation: int = 10
    reply_period_seconds: float = 3600.0
    """At most `replies_per_conversation` AI replies per conversation in this period."""
    lock_seconds: float = 300.0
    """How long one worker may hold a conversation (longer than a GPT Trainer answer)."""
    max_query_chars: int = 4000
    poll_per_page: int = 25
    intercom: str = "intercom"
    gpt_trainer: str = "gpt_trainer"


class ConversationBusy(Exception):
    """Another worker is answering this conversation: the queue retries later."""


@dataclass(frozen=True)
class UserMessage:
    id: str
    html: str


def latest_user_message(conversation: dict[str, Any]) -> UserMessage | None:
    """The newest part written by the user, unless an admin commented after it.

    Intercom 2.x puts the first message in `source`, 1.x in `conversation_message`; later
    messages are `conversation_parts` (oldest first).
    """
    container = conversation.get("conversation_parts") or {}
    parts = container.get("conversation_parts") or [] if isinstance(container, dict) else []
    for part in reversed(parts):
        author = (part.get("author") or {}).get("type")
        if author in USER_AUTHORS and part.get("body"):
            return UserMessage(str(part.get("id")), str(part["body"]))
        if author == "admin" and part.get("part_type") == "comment":
            return None  # answered already (by us or by a human)
    source = conversation.get("source") or conversation.get("conversation_message") or {}
    if (source.get("author") or {}).get("type") in USER_AUTHORS and source.get("body"):
        return UserMessage(f"source-{source.get('id') or conversation.get('id')}", source["body"])
    return None


# --- state ---------------------------------------------------------------------------------


class ConversationState(msgspec.Struct):
    state: str = AWAITING_USER_REPLY
    session: str | None = None
    """The GPT Trainer session uuid of this conversation."""
    pending_message: str | None = None
    answered_message: str | None = None
    replies: int = 0
    updated_at: float = 0.0


def _state_key(conversation_id: str) -> str:
    return f"intercom:conversation:{conversation_id}"


async def load_state(ctx: Context, conversation_id: str) -> ConversationState:
    raw = await ctx.store.get(_state_key(conversation_id))
    return msgspec.json.decode(raw, type=ConversationState) if raw else ConversationState()


async def _save(ctx: Context, conversation_id: str, state: ConversationState) -> None:
    state.updated_at = time.time()
    await ctx.store.set(
        _state_key(conversation_id), msgspec.json.encode(state), expires_in=30 * 86400
    )


# --- the answer ----------------------------------------------------------------------------


async def answer_message(
    ctx: Context, conversation_id: str, message: UserMessage
) -> dict[str, Any]:
    """Answer ``message`` once; raises ConversationBusy when another worker holds it."""
    settings: Settings = ctx.settings
    if (await load_state(ctx, conversation_id)).answered_message == message.id:
        return {"status": "skipped", "reason": "already answered"}
    lock = await ctx.locks.acquire(f"intercom:{conversation_id}", settings.lock_seconds)
    if lock is None:
        raise ConversationBusy(f"conversation {conversation_id} is being answered elsewhere")
    try:
        state = await load_state(ctx, conversation_id)  # again, under the lock
        if state.answered_message == message.id:
            return {"status": "skipped", "reason": "already answered"}
        state.state, state.pending_message = READY_FOR_RESPONSE, message.id
        await _save(ctx, conversation_id, state)

        query = html_to_text(message.html)[: settings.max_query_chars]
        if not query:
            return {"status": "skipped", "reason": "empty message"}
        decision = await ctx.limiter.hit(
            f"intercom-replies:{conversation_id}",
            settings.replies_per_conversation,
            settings.reply_period_seconds,
        )
        if not decision.allowed:
            ctx.logger.warning(
                "conversation %s: reply limit of %d per %gs reached; not answering",
                conversation_id,
                settings.replies_per_conversation,
                settings.reply_period_seconds,
            )
            return {"status": "skipped", "reason": "rate limited"}

        trainer = ctx.clients[settings.gpt_trainer]
        if state.session is None:
            state.session = await _create_session(trainer, settings.chatbot_uuid)
            await _save(ctx, conversation_id, state)
        text = await _ask(trainer, state.session, query)

        intercom = ctx.clients[settings.intercom]
        await _reply(intercom, conversation_id, settings.admin_id, text)
        # Recorded at once: a failure after this point must not post a second reply.
        state.state, state.answered_message = AWAITING_USER_REPLY, message.id
        state.pending_message = None
        state.replies += 1
        await _save(ctx, conversation_id, state)
        read = await intercom.request(
            "PUT", f"/conversations/{conversation_id}", json={"read": True}
        )
        if not read.ok:
            ctx.logger.warning(
                "conversation %s: mark read answered %d", conversation_id, read.status
            )
        ctx.logger.info("conversation %s: answered message %s", conversation_id, message.id)
        return {"status": "answered", "session": state.session}
    finally:
        await lock.release()


async def _create_session(trainer: UpstreamClient, chatbot_uuid: str) -> str:
    answer = await trainer.request("POST", f"/chatbot/{chatbot_uuid}/session/create")
    if not answer.ok:
        raise RuntimeError(f"GPT Trainer session/create answered {answer.status}")
    body = answer.json()
    session = body.get("uuid") or body.get("session_id")
    if not session:
        raise RuntimeError("GPT Trainer session/create answered no uuid")
    return str(session)


async def _ask(trainer: UpstreamClient, session: str, query: str) -> str:
    """The answer text; the stream is plain text, read whole (some builds send JSON)."""
    answer = await trainer.request(
        "POST", f"/session/{session}/message/stream", json={"query": query}
    )
    if not answer.ok:
        raise RuntimeError(f"GPT Trainer message/stream answered {answer.status}")
    text = answer.body.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            parsed = msgspec.json.decode(text)
        except msgspec.DecodeError:
            parsed = None
        if isinstance(parsed, dict):
            for key in ANSWER_KEYS:
                value = parsed.get(key)
                if isinstance(value, str):
                    return value.strip()
    if not text:
        raise RuntimeError("GPT Trainer answered an empty message")
    return text


async def _reply(intercom: UpstreamClient, conversation_id: str, admin_id: str, text: str) -> None:
    paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in text.split("\n") if line.strip())
    answer = await intercom.request(
        "POST",
        f"/conversations/{conversation_id}/reply",
        json={"message_type": "comment", "type": "admin", "admin_id": admin_id, "body": paragraphs},
    )
    if not answer.ok:
        raise RuntimeError(f"Intercom reply answered {answer.status}")


# --- handlers ------------------------------------------------------------------------------


async def on_intercom_event(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    """Webhook handler: a user wrote in a conversation."""
    envelope = request.body
    if not isinstance(envelope, dict):
        raise PluginError(422, "an Intercom notification is a JSON object")
    topic = envelope.get("topic")
    if topic not in USER_TOPICS:
        return {"status": "ignored", "topic": topic}
    item = (envelope.get("data") or {}).get("item") or {}
    conversation_id = str(item.get("id") or "")
    message = latest_user_message(item)
    if not conversation_id or message is None:
        return {"status": "ignored", "reason": "no user message to answer"}
    return await answer_message(ctx, conversation_id, message)


async def poll_intercom(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    """Schedule handler: answer open conversations updated since the last poll."""
    settings: Settings = ctx.settings
    intercom = ctx.clients[settings.intercom]
    since_raw = await ctx.store.get("intercom:poll:since")
    since = int(since_raw) if since_raw else int(time.time()) - 3600
    started = int(time.time())
    search = {
        "query": {
            "operator": "AND",
            "value": [
                {"field": "open", "operator": "=", "value": True},
                {"field": "updated_at", "operator": ">", "value": since},
            ],
        },
        "pagination": {"per_page": settings.poll_per_page},
    }
    found = await intercom.request("POST", "/conversations/search", json=search)
    if not found.ok:
        raise RuntimeError(f"Intercom search answered {found.status}")
    answered = busy = 0
    for summary in found.json().get("conversations") or []:
        conversation_id = str(summary["id"])
        full = await intercom.request(
            "GET", f"/conversations/{conversation_id}", query={"display_as": "plaintext"}
        )
        if not full.ok:
            continue
        message = latest_user_message(full.json())
        if message is None:
            continue
        try:
            outcome = await answer_message(ctx, conversation_id, message)
        except ConversationBusy:
            busy += 1
            continue
        answered += outcome["status"] == "answered"
    # Only move forward when nothing was left for later.
    if not busy:
        await ctx.store.set("intercom:poll:since", str(started).encode())
    return {"answered": answered, "busy": busy}
