"""ChatBETO's signed webhook `POST /webhook/chatgpt` (routes.d/openai.yaml `chatbetoEvents`).

The gateway has verified the signature (`X-Webhook-Signature: sha256=<hex HMAC-SHA256 of
"<X-Webhook-Timestamp>.<raw body>">`), refused stale timestamps, dropped duplicate event
ids and queued the event durably; this handler runs from the queue and records it:

    X-Event-Type: conversation.created
    {"id": "evt_1", "type": "conversation.created",
     "data": {"conversation": {"id": "chat_1", "projectId": "p1", "title": "Launch"}}}

    X-Event-Type: message.created
    {"id": "evt_2", "type": "message.created",
     "data": {"conversationId": "chat_1",
              "message": {"id": "m1", "role": "user", "content": "Hi"}}}

The type is `X-Event-Type` (else the body's `type`); other types are acknowledged and
ignored. Recording is idempotent by id: a conversation or message already stored is not
stored again (a message without an `id` is named after the event id). A recorded message
makes the conversation's OpenAI conversation stale (the model did not see it), so the
conversation is recreated upstream with its full history on its next message (or sync).
A message for a conversation not recorded yet is retried (events may arrive out of order);
a malformed event is a 422 (never retried: a dead letter).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec
from chatbeto_store import Conversation, Message, Records, Role, now_iso

from gateway.plugin import Context, PluginError, PluginRequest

_T = TypeVar("_T")
Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,128}$")]


class _Conversation(msgspec.Struct, frozen=True, rename={"project_id": "projectId"}):
    id: Id
    project_id: Id
    title: Annotated[str, msgspec.Meta(max_length=500)] = ""
    created_at: str | None = None


class _Message(msgspec.Struct, frozen=True):
    role: Role
    content: Annotated[str, msgspec.Meta(max_length=100_000)]
    id: Id | None = None
    created_at: str | None = None


class _ConversationCreated(msgspec.Struct, frozen=True):
    conversation: _Conversation


class _MessageCreated(msgspec.Struct, frozen=True, rename={"conversation_id": "conversationId"}):
    conversation_id: Id
    message: _Message


def _decode(kind: str, data: Any, shape: type[_T]) -> _T:
    try:
        return msgspec.convert(data, shape)
    except msgspec.ValidationError as exc:
        raise PluginError(422, f"a {kind} event needs {exc}") from None


async def on_event(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    """Webhook handler (from the queue): record a conversation or a message."""
    body = request.body
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise PluginError(422, "a ChatBETO event is a JSON object with a `data` object")
    kind = request.headers.get("x-event-type") or body.get("type")
    event_id = str(body.get("id") or request.event_id)
    records = Records(ctx)
    if kind == "conversation.created":
        created = _decode(kind, body["data"], _ConversationCreated).conversation
        async with records.locked(f"chatbeto:conversation:{created.id}"):
            if await records.conversation(created.id) is not None:
                return {"recorded": False, "conversation": created.id}
            at = created.created_at or now_iso()
            conversation = Conversation(
                id=created.id,
                project_id=created.project_id,
                title=created.title or "New conversation",
                created_at=at,
                updated_at=at,
            )
            await records.add(conversation)
        ctx.logger.info("event %s: conversation %s recorded", event_id, created.id)
        return {"recorded": True, "conversation": created.id}
    if kind == "message.created":
        added = _decode(kind, body["data"], _MessageCreated)
        message_id = added.message.id or f"msg_{event_id}"
        async with records.locked(f"chatbeto:conversation:{added.conversation_id}"):
            known = await records.conversation(added.conversation_id)
            if known is None:  # retried: its conversation.created may come later
                raise RuntimeError(f"conversation {added.conversation_id} is not recorded yet")
            if any(message.id == message_id for message in known.messages):
                return {"recorded": False, "message": message_id}
            message = Message(
                id=message_id,
                role=added.message.role,
                content=added.message.content,
                created_at=added.message.created_at or now_iso(),
            )
            stale = msgspec.structs.replace(known.adding(message), openai_id=None)
            await records.save(stale)
        ctx.logger.info("event %s: message %s recorded", event_id, message_id)
        return {"recorded": True, "message": message_id}
    ctx.logger.info("event %s of type %r ignored", event_id, kind)
    return {"ignored": kind}
