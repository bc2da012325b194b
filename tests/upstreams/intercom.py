"""A loopback Intercom REST API v2.14 and its webhook envelopes, for the bridge tests.

Wire facts: shared/UPSTREAMS.md sections 4.1 and 4.2, and the official spec
shared/specs/intercom-api-2.14.yaml (its schemas, vendored in specs/, loaded once). Request bodies of reply and update
are validated against the spec's schemas; every endpoint wants ``Authorization: Bearer <token>``.
Unknown paths, such as the bridge's ``PUT /conversations/{id}/read``, answer 404 error.list.

For crash tests: ``reply_hold`` (an unset event) makes ``POST /conversations/{id}/reply``
store the part, set ``reply_stored``, and answer only once the hold is set, so a test can
kill the caller after the reply exists but before the caller learned it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import functools
import hashlib
import hmac
import itertools
import json
import math
import operator
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from jsonschema import Draft4Validator
from jsonschema.exceptions import best_match

from tests.upstreams.server import Recorder

# The spec's schemas (their $ref closure), extracted by specs/extract_intercom.py.
SPEC = Path(__file__).resolve().parent / "specs" / "intercom-2.14-schemas.json"
APP_ID = "i6wc9ipe"
ADMIN_NAME, ADMIN_EMAIL = "Ciaran1 Lee", "admin1@email.com"
USER = {"type": "user", "id": "u1", "name": "Ada", "email": "ada@example.com"}


# --- the spec, loaded once ----------------------------------------------------------------


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` as JSON Schema: ``anyOf [schema, null]``, recursively."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _nullable(value) for key, value in node.items() if key != "nullable"}
    return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") is True else out


@functools.cache
def _components() -> dict[str, Any]:
    spec = json.loads(SPEC.read_text())
    components: dict[str, Any] = _nullable(spec["components"])
    return components


@functools.cache
def _validator(schema: str) -> Draft4Validator:
    root = {"$ref": f"#/components/schemas/{schema}", "components": _components()}
    return Draft4Validator(root)


def schema_errors(schema: str, instance: Any) -> list[str]:
    """Why ``instance`` does not match ``#/components/schemas/<schema>`` (empty: it does)."""
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in _validator(schema).iter_errors(instance)
    ]


# --- state --------------------------------------------------------------------------------


def _now(after: int = 0) -> int:
    """Epoch seconds, strictly after ``after`` so that successive events keep their order."""
    return max(int(time.time()), after + 1)


@dataclass
class IntercomState:
    """The workspace: one admin and its conversations (id -> full 2.x ``conversation``)."""

    token: str
    admin_id: str = "991267459"
    conversations: dict[str, dict[str, Any]] = field(default_factory=dict)
    reply_hold: asyncio.Event | None = None
    """Set: a reply is stored at once but answered only when this event is set."""
    reply_stored: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a reply was stored (before ``reply_hold``)."""
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000), repr=False)

    def add_conversation(
        self, conversation_id: str, user_html: str, *, created_at: int | None = None
    ) -> dict[str, Any]:
        """An open, unread conversation started by user ``u1`` with ``user_html``; no parts."""
        at = created_at if created_at is not None else int(time.time())
        conversation: dict[str, Any] = {
            "type": "conversation",
            "id": conversation_id,
            "title": None,
            "created_at": at,
            "updated_at": at,
            "waiting_since": at,
            "snoozed_until": None,
            "open": True,
            "state": "open",
            "read": False,
            "priority": "not_priority",
            "admin_assignee_id": None,
            "team_assignee_id": None,
            "tags": {"type": "tag.list", "tags": []},
            "source": {
                "type": "conversation",
                "id": conversation_id,
                "delivered_as": "customer_initiated",
                "subject": "",
                "body": user_html,
                "author": dict(USER),
                "attachments": [],
                "url": None,
                "redacted": False,
            },
            "contacts": {
                "type": "contact.list",
                "contacts": [{"type": "contact", "id": USER["id"], "external_id": None}],
            },
            "teammates": None,
            "custom_attributes": {},
            "first_contact_reply": None,
            "sla_applied": None,
            "statistics": None,
            "conversation_rating": None,
            "linked_objects": {"type": "list", "data": [], "total_count": 0, "has_more": False},
            "ai_agent_participated": False,
            "ai_agent": None,
            "conversation_parts": {
                "type": "conversation_part.list",
                "conversation_parts": [],
                "total_count": 0,
            },
        }
        self.conversations[conversation_id] = conversation
        return conversation

    def _append(
        self, conversation_id: str, author: dict[str, Any], part_type: str, body: str, at: int
    ) -> dict[str, Any]:
        conversation = self.conversations[conversation_id]
        part = {
            "type": "conversation_part",
            "id": str(next(self._ids)),
            "part_type": part_type,
            "body": body,
            "created_at": at,
            "updated_at": at,
            "notified_at": at,
            "assigned_to": None,
            "author": {**author, "from_ai_agent": False, "is_ai_answer": False},
            "attachments": [],
            "external_id": None,
            "redacted": False,
        }
        parts = conversation["conversation_parts"]
        parts["conversation_parts"].append(part)
        parts["total_count"] = len(parts["conversation_parts"])
        conversation["updated_at"] = max(conversation["updated_at"], at)
        return part

    def add_user_reply(self, conversation_id: str, user_html: str) -> dict[str, Any]:
        """The user answers: a ``comment`` part by ``u1``; the conversation is unread again."""
        conversation = self.conversations[conversation_id]
        at = _now(conversation["updated_at"])
        part = self._append(conversation_id, dict(USER), "comment", user_html, at)
        conversation.update(read=False, waiting_since=at)
        return part

    def add_admin_reply(
        self,
        conversation_id: str,
        body: str,
        *,
        admin_id: str | None = None,
        part_type: str = "comment",
        created_at: int | None = None,
    ) -> dict[str, Any]:
        """An admin part, as ``POST /conversations/{id}/reply`` adds it (or a human teammate)."""
        conversation = self.conversations[conversation_id]
        author = {
            "type": "admin",
            "id": admin_id or self.admin_id,
            "name": ADMIN_NAME,
            "email": ADMIN_EMAIL,
        }
        at = created_at if created_at is not None else _now(conversation["updated_at"])
        part = self._append(conversation_id, author, part_type, body, at)
        conversation["waiting_since"] = None
        return part

    def admin_replies(self, conversation_id: str) -> list[dict[str, Any]]:
        """The parts authored by an admin, oldest first."""
        parts = self.conversations[conversation_id]["conversation_parts"]["conversation_parts"]
        return [part for part in parts if part["author"]["type"] == "admin"]

    def me(self) -> dict[str, Any]:
        """``GET /me``: the admin behind the token (shape of the spec's example)."""
        return {
            "type": "admin",
            "id": self.admin_id,
            "email": ADMIN_EMAIL,
            "name": ADMIN_NAME,
            "email_verified": True,
            "app": {
                "type": "app",
                "id_code": APP_ID,
                "name": "MyApp 1",
                "created_at": 1734537243,
                "secure": False,
                "identity_verification": False,
                "timezone": "America/Los_Angeles",
                "region": "US",
            },
            "avatar": {
                "type": "avatar",
                "image_url": "https://static.intercomassets.com/assets/default-avatars/admins/128.png",
            },
            "has_inbox_seat": True,
        }


# --- the app ------------------------------------------------------------------------------


def error_list(status: int, code: str, message: str) -> web.Response:
    """Intercom's error envelope: ``{"type":"error.list","request_id",errors:[{code,message}]}``."""
    body = {
        "type": "error.list",
        "request_id": str(uuid.uuid4()),
        "errors": [{"code": code, "message": message}],
    }
    return web.json_response(body, status=status)


class _Invalid(Exception):
    """A request parameter is invalid: answered 400 ``parameter_invalid``."""


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
    "IN": lambda actual, value: actual in value,
    "NIN": lambda actual, value: actual not in value,
}
SEARCH_FIELDS = {"id", "open", "state", "read", "created_at", "updated_at", "waiting_since"}


def matches(conversation: dict[str, Any], query: dict[str, Any], depth: int = 0) -> bool:
    """Whether ``conversation`` satisfies a search ``query`` (AND/OR groups, nested 2 deep)."""
    op = query.get("operator")
    if op in ("AND", "OR"):
        filters = query.get("value")
        if depth >= 2 or not isinstance(filters, list) or not filters:
            raise _Invalid(f"{op} needs a list of filters (at most 2 levels of nesting)")
        hits = [matches(conversation, item, depth + 1) for item in filters]
        return all(hits) if op == "AND" else any(hits)
    name = query.get("field")
    if name not in SEARCH_FIELDS or op not in OPERATORS:
        raise _Invalid(f"unsupported field or operator: {name!r} {op!r}")
    try:
        return OPERATORS[op](conversation[name], query.get("value"))
    except TypeError as exc:
        raise _Invalid(f"{name}: {exc}") from exc


def _listed(conversation: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in conversation.items() if key != "conversation_parts"}


def _page(items: list[dict[str, Any]], per_page: Any, cursor: Any) -> dict[str, Any]:
    """A ``conversation.list`` page of ``items``; the cursor is an opaque encoded offset."""
    try:
        per_page = int(per_page)
    except (TypeError, ValueError):
        raise _Invalid("per_page must be an integer") from None
    if not 1 <= per_page <= 150:
        raise _Invalid("per_page must be between 1 and 150")
    try:
        offset = int(base64.urlsafe_b64decode(str(cursor)).decode()) if cursor else 0
    except (ValueError, binascii.Error):
        raise _Invalid("starting_after is not a valid cursor") from None
    pages: dict[str, Any] = {
        "type": "pages",
        "page": offset // per_page + 1,
        "per_page": per_page,
        "total_pages": math.ceil(len(items) / per_page),
    }
    if offset + per_page < len(items):
        token = base64.urlsafe_b64encode(str(offset + per_page).encode()).decode()
        pages["next"] = {"per_page": per_page, "starting_after": token}
    return {
        "type": "conversation.list",
        "pages": pages,
        "total_count": len(items),
        "conversations": [_listed(item) for item in items[offset : offset + per_page]],
    }


def _plaintext(conversation: dict[str, Any]) -> dict[str, Any]:
    """``display_as=plaintext``: bodies without their HTML tags."""
    plain = copy.deepcopy(conversation)
    for holder in [plain["source"], *plain["conversation_parts"]["conversation_parts"]]:
        if holder.get("body"):
            holder["body"] = re.sub(r"<[^>]+>", "", holder["body"])
    return plain


def intercom_app(state: IntercomState) -> tuple[web.Application, Recorder]:
    """The app: /me, list, search, retrieve, reply and update conversations."""
    recorder = Recorder()

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {state.token}":
            return error_list(401, "unauthorized", "Access Token Invalid")
        try:
            response: web.StreamResponse = await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            return error_list(404, "not_found", "Resource Not Found")
        except _Invalid as exc:
            return error_list(400, "parameter_invalid", str(exc))
        return response

    app = web.Application(middlewares=[recorder.middleware, guard])

    def ordered() -> list[dict[str, Any]]:
        return sorted(
            state.conversations.values(),
            key=lambda item: (item["updated_at"], item["id"]),
            reverse=True,
        )

    def conversation_of(request: web.Request) -> dict[str, Any]:
        conversation = state.conversations.get(request.match_info["conversation_id"])
        if conversation is None:
            raise web.HTTPNotFound()
        return conversation

    async def json_body(request: web.Request, schema: str | None = None) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise _Invalid("the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _Invalid("the body must be a JSON object")
        if schema is not None:
            error = best_match(_validator(schema).iter_errors(body))
            if error is not None:
                where = "/".join(map(str, error.absolute_path))
                raise _Invalid(f"{where}: {error.message}" if where else error.message)
        return body

    async def me(request: web.Request) -> web.Response:
        return web.json_response(state.me())

    async def list_conversations(request: web.Request) -> web.Response:
        query = request.query
        page = _page(ordered(), query.get("per_page", "20"), query.get("starting_after"))
        return web.json_response(page)

    async def search(request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body.get("query"), dict):
            raise _Invalid("query is required")
        pagination = body.get("pagination") or {}
        if not isinstance(pagination, dict):
            raise _Invalid("pagination must be an object")
        hits = [item for item in ordered() if matches(item, body["query"])]
        page = _page(hits, pagination.get("per_page", 20), pagination.get("starting_after"))
        return web.json_response(page)

    async def retrieve(request: web.Request) -> web.Response:
        conversation = conversation_of(request)
        if request.query.get("display_as") == "plaintext":
            conversation = _plaintext(conversation)
        return web.json_response(conversation)

    async def reply(request: web.Request) -> web.Response:
        conversation = conversation_of(request)
        body = await json_body(request, "admin_reply_conversation_request")
        if body["message_type"] in ("comment", "note") and not body.get("body"):
            raise _Invalid("body is required for comment and note replies")
        state.add_admin_reply(
            conversation["id"],
            body.get("body", ""),
            admin_id=body["admin_id"],
            part_type=body["message_type"],
            created_at=body.get("created_at"),
        )
        state.reply_stored.set()
        if state.reply_hold is not None:
            await state.reply_hold.wait()
        return web.json_response(conversation)

    async def update(request: web.Request) -> web.Response:
        conversation = conversation_of(request)
        body = await json_body(request, "update_conversation_request")
        for key in ("read", "title"):
            if key in body:
                conversation[key] = body[key]
        conversation["custom_attributes"].update(body.get("custom_attributes") or {})
        return web.json_response(conversation)

    app.router.add_get("/me", me)
    app.router.add_get("/conversations", list_conversations)
    app.router.add_post("/conversations/search", search)
    app.router.add_get("/conversations/{conversation_id}", retrieve)
    app.router.add_put("/conversations/{conversation_id}", update)
    app.router.add_post("/conversations/{conversation_id}/reply", reply)
    return app, recorder


# --- webhooks (Intercom -> us) ------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value: ``sha1=`` + hex HMAC-SHA1 of the raw body."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def notification(
    topic: str,
    conversation: dict[str, Any],
    *,
    notification_id: str,
    app_id: str = APP_ID,
    created_at: int | None = None,
) -> dict[str, Any]:
    """A webhook envelope carrying ``conversation`` (e.g. topic ``conversation.user.replied``)."""
    at = created_at if created_at is not None else int(time.time())
    return {
        "type": "notification_event",
        "app_id": app_id,
        "id": notification_id,
        "topic": topic,
        "delivery_status": "pending",
        "delivery_attempts": 1,
        "delivered_at": 0,
        "first_sent_at": at,
        "created_at": at,
        "self": None,
        "links": {},
        "data": {"type": "notification_event_data", "item": conversation},
    }


PING: dict[str, Any] = notification(
    "ping", {"type": "ping", "message": "hi"}, notification_id="", created_at=1553291308
) | {"id": None}
"""The Developer Hub's "send test" envelope (the bridge answers ``{"status": "pong"}``)."""
