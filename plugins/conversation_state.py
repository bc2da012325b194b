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

Crashes: the lock is a short lease renewed while a worker answers, so a killed worker frees
the conversation within seconds; a busy conversation is ``RetrySoon`` (the queue hands the
event back without spending an attempt). A worker killed between posting a reply and
recording it leaves the message pending: the next worker to take the conversation reads it
back from Intercom and finds its reply (recorded, not posted again): each reply carries an
invisible marker naming the message it answers (an HTML comment); since Intercom's spec does
not promise that a comment's HTML survives as sent, a comment by our admin after that
message counts too. A GPT Trainer session that is gone (404) is replaced by a new one.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from gateway.plugin import (
    Context,
    PluginError,
    PluginRequest,
    RetrySoon,
    UpstreamClient,
    html_to_text,
)

READY_FOR_RESPONSE = "READY_FOR_RESPONSE"
AWAITING_USER_REPLY = "AWAITING_USER_REPLY"
USER_TOPICS = frozenset({"conversation.user.created", "conversation.user.replied"})
USER_AUTHORS = frozenset({"user", "lead", "contact"})
ANSWER_KEYS = ("response", "text", "message", "answer", "content")
RECENT_ANSWERS = 20
POLL_CURSOR = "intercom:poll:since"
POLL_LISTED_MAX = 5000
"""Conversation summaries one poll reads at most (the search's pages are read whole, so
that the oldest updates are handled first)."""


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    chatbot_uuid: str
    """The GPT Trainer chatbot that answers."""
    admin_id: str
    """The Intercom admin the replies are posted as."""
    replies_per_conversation: int = 10
    reply_period_seconds: float = 3600.0
    """At most `replies_per_conversation` AI replies per conversation in this period."""
    lock_lease_seconds: float = 10.0
    """The conversation lock's lease, renewed while a worker answers: a worker that dies
    frees the conversation this many seconds later."""
    busy_retry_seconds: float = 2.0
    """A conversation being answered elsewhere: look again this much later."""
    max_query_chars: int = 4000
    max_conversations: Annotated[int, msgspec.Meta(ge=1)] = 25
    """The poller handles at most this many conversations per run, the oldest updates
    first; the others wait for the next run (none is skipped)."""
    poll_per_page: Annotated[int, msgspec.Meta(ge=1, le=150)] = 150
    """The page size of the poller's search (Intercom allows at most 150)."""
    intercom: str = "intercom"
    gpt_trainer: str = "gpt_trainer"


class ConversationBusy(RetrySoon):
    """Another worker is answering this conversation: the queue hands the event back soon,
    without spending an attempt."""


class SessionGone(RuntimeError):
    """GPT Trainer no longer knows the conversation's session (404)."""


@dataclass(frozen=True)
class UserMessage:
    id: str
    html: str


def _parts(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    container = conversation.get("conversation_parts") or {}
    parts = container.get("conversation_parts") or [] if isinstance(container, dict) else []
    return [part for part in parts if isinstance(part, dict)]


def latest_user_message(conversation: dict[str, Any]) -> UserMessage | None:
    """The newest part written by the user, unless an admin commented after it.

    Intercom 2.x puts the first message in `source`, 1.x in `conversation_message`; later
    messages are `conversation_parts` (oldest first).
    """
    parts = _parts(conversation)
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


def reply_marker(message_id: str) -> str:
    """The invisible tag a reply carries: which user message it answers."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", message_id)  # no "--" inside an HTML comment
    return f"<!-- gateway-reply-to:{safe} -->"


def replied_after(conversation: dict[str, Any], message_id: str, admin_id: str) -> bool:
    """Whether ``conversation`` holds our reply to the user message ``message_id``: a part
    carrying its marker, or (should Intercom strip the marker from the HTML) a comment by
    ``admin_id`` after that message (a ``source-`` id: the first message, before every part).

    A message that is not among the parts (Intercom keeps the newest 500) and no marker
    found: not known to be answered.
    """
    parts = _parts(conversation)
    marker = reply_marker(message_id)
    if any(marker in str(part.get("body") or "") for part in parts):
        return True
    start = 0
    if not message_id.startswith("source-"):
        ids = [str(part.get("id")) for part in parts]
        if message_id not in ids:
            return False
        start = ids.index(message_id) + 1
    return any(
        (part.get("author") or {}).get("type") == "admin"
        and str((part.get("author") or {}).get("id")) == admin_id
        and part.get("part_type") == "comment"
        for part in parts[start:]
    )


# --- state ---------------------------------------------------------------------------------


class ConversationState(msgspec.Struct):
    state: str = AWAITING_USER_REPLY
    session: str | None = None
    """The GPT Trainer session uuid of this conversation."""
    pending_message: str | None = None
    """The message an attempt is working on; still set after a crash."""
    answered_message: str | None = None
    answered_recently: list[str] = msgspec.field(default_factory=list)
    """The last RECENT_ANSWERS answered ids: a late redelivery of one of them is skipped."""
    replies: int = 0
    updated_at: float = 0.0

    def has_answered(self, message_id: str) -> bool:
        return message_id == self.answered_message or message_id in self.answered_recently

    def record_answer(self, message_id: str) -> None:
        self.answered_message = message_id
        self.answered_recently = [*self.answered_recently, message_id][-RECENT_ANSWERS:]
        if self.pending_message == message_id:
            self.state, self.pending_message = AWAITING_USER_REPLY, None
        self.replies += 1


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
    if (await load_state(ctx, conversation_id)).has_answered(message.id):
        return {"status": "skipped", "reason": "already answered"}
    lock = await ctx.locks.acquire(
        f"intercom:{conversation_id}", settings.lock_lease_seconds, renew=True
    )
    if lock is None:
        raise ConversationBusy(
            settings.busy_retry_seconds,
            f"conversation {conversation_id} is being answered elsewhere",
        )
    try:
        state = await load_state(ctx, conversation_id)  # again, under the lock
        intercom = ctx.clients[settings.intercom]
        if state.pending_message is not None:
            await _settle_unfinished(ctx, intercom, conversation_id, state)
        if state.has_answered(message.id):
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

        text = await _answer(ctx, conversation_id, state, query)
        if lock.lost:  # another worker may have taken the conversation: let it, look later
            raise ConversationBusy(
                settings.busy_retry_seconds, f"conversation {conversation_id}: lock lost"
            )
        await _reply(intercom, conversation_id, settings.admin_id, text, message.id)
        # Recorded at once: a failure after this point must not post a second reply.
        state.record_answer(message.id)
        await _save(ctx, conversation_id, state)
        await _mark_read(ctx, intercom, conversation_id)
        ctx.logger.info("conversation %s: answered message %s", conversation_id, message.id)
        return {"status": "answered", "session": state.session}
    finally:
        await lock.release()


async def _settle_unfinished(
    ctx: Context, intercom: UpstreamClient, conversation_id: str, state: ConversationState
) -> None:
    """An attempt at ``state.pending_message`` did not finish. If it died after posting (our
    admin commented after that message), record the reply; else the message stays pending."""
    settings: Settings = ctx.settings
    pending = str(state.pending_message)
    found = await intercom.request("GET", f"/conversations/{conversation_id}")
    if not found.ok:  # not knowing could mean a second reply: try again later
        raise RuntimeError(f"Intercom conversation {conversation_id} answered {found.status}")
    if not replied_after(found.json(), pending, settings.admin_id):
        return
    state.record_answer(pending)
    await _save(ctx, conversation_id, state)
    await _mark_read(ctx, intercom, conversation_id)
    ctx.logger.info(
        "conversation %s: message %s was answered before a crash; recorded",
        conversation_id,
        pending,
    )


async def _mark_read(ctx: Context, intercom: UpstreamClient, conversation_id: str) -> None:
    read = await intercom.request("PUT", f"/conversations/{conversation_id}", json={"read": True})
    if not read.ok:
        ctx.logger.warning("conversation %s: mark read answered %d", conversation_id, read.status)


async def _answer(ctx: Context, conversation_id: str, state: ConversationState, query: str) -> str:
    """GPT Trainer's answer in the conversation's session, created when there is none or
    when GPT Trainer forgot it."""
    settings: Settings = ctx.settings
    trainer = ctx.clients[settings.gpt_trainer]
    if state.session is not None:
        try:
            return await _ask(trainer, state.session, query)
        except SessionGone:
            ctx.logger.warning(
                "conversation %s: GPT Trainer session %s is gone; starting a new one",
                conversation_id,
                state.session,
            )
    state.session = await _create_session(trainer, settings.chatbot_uuid)
    await _save(ctx, conversation_id, state)
    return await _ask(trainer, state.session, query)


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
    if answer.status == 404:
        raise SessionGone(f"GPT Trainer has no session {session}")
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


async def _reply(
    intercom: UpstreamClient, conversation_id: str, admin_id: str, text: str, message_id: str
) -> None:
    paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in text.split("\n") if line.strip())
    paragraphs += reply_marker(message_id)
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


class PollCursor(msgspec.Struct, frozen=True):
    """Where the poller goes on: conversations updated after ``updated_at``, or at it with
    an id after ``id`` (a poll cut short by `max_conversations` stops in the middle of a
    second)."""

    updated_at: int
    id: str = ""

    def before(self, summary: dict[str, Any]) -> bool:
        return (self.updated_at, self.id) < _updated(summary)


def _updated(summary: dict[str, Any]) -> tuple[int, str]:
    return int(summary.get("updated_at") or 0), str(summary.get("id"))


async def _poll_cursor(ctx: Context) -> PollCursor:
    raw = await ctx.store.get(POLL_CURSOR)
    if not raw:
        return PollCursor(int(time.time()) - 3600)
    if raw.isdigit():  # written by an older version: a time alone
        return PollCursor(int(raw))
    return msgspec.json.decode(raw, type=PollCursor)


async def _updated_since(
    ctx: Context, intercom: UpstreamClient, cursor: PollCursor
) -> list[dict[str, Any]]:
    """The open conversations updated since ``cursor`` (every page, at most
    POLL_LISTED_MAX summaries), oldest update first."""
    settings: Settings = ctx.settings
    # At the cursor's second too when it stopped inside one (the ids tell them apart).
    after = cursor.updated_at - 1 if cursor.id else cursor.updated_at
    query = {
        "operator": "AND",
        "value": [
            {"field": "open", "operator": "=", "value": True},
            {"field": "updated_at", "operator": ">", "value": after},
        ],
    }
    listed: list[dict[str, Any]] = []
    pagination: dict[str, Any] = {"per_page": settings.poll_per_page}
    while True:
        found = await intercom.request(
            "POST", "/conversations/search", json={"query": query, "pagination": pagination}
        )
        if not found.ok:
            raise RuntimeError(f"Intercom search answered {found.status}")
        page = found.json()
        listed += [item for item in page.get("conversations") or [] if isinstance(item, dict)]
        following = ((page.get("pages") or {}).get("next") or {}).get("starting_after")
        if not following:
            break
        if len(listed) >= POLL_LISTED_MAX:
            ctx.logger.warning(
                "poll: more than %d conversations updated since %d; the oldest wait",
                POLL_LISTED_MAX,
                after,
            )
            break
        pagination = {"per_page": settings.poll_per_page, "starting_after": following}
    return sorted((item for item in listed if cursor.before(item)), key=_updated)


async def poll_intercom(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    """Schedule handler: answer open conversations updated since the last poll, at most
    `max_conversations` of them (the oldest updates first; the rest at the next poll)."""
    settings: Settings = ctx.settings
    intercom = ctx.clients[settings.intercom]
    cursor = await _poll_cursor(ctx)
    started = int(time.time())
    due = await _updated_since(ctx, intercom, cursor)
    handled = due[: settings.max_conversations]
    answered = busy = 0
    for summary in handled:
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
    left = len(due) - len(handled)
    # Only move forward when nothing was put off; past what was handled when more wait.
    if not busy:
        after = PollCursor(*_updated(handled[-1])) if left else PollCursor(started)
        await ctx.store.set(POLL_CURSOR, msgspec.json.encode(after))
    return {"answered": answered, "busy": busy, "left": left}
