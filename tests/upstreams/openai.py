"""A loopback OpenAI API (base ``/v1`` left out): models, Conversations, Responses, chat.

Wire facts: shared/UPSTREAMS.md section 5 and the official spec
shared/specs/openai-openapi.yaml, whose operations and schemas are vendored in
specs/openai-2.3.0-schemas.json (specs/extract_openai.py). Every request body is validated
against its operation's request schema (a mismatch is OpenAI's 400 with ``param``), and
answers have the spec's response shapes (tests/unit/test_loopback_openai.py checks them
against the response schemas). Errors are the spec's ``ErrorResponse``:
``{"error": {"message", "type", "param", "code"}}``.

The model is deterministic: ``AI answer to: <last user text> (history: N items)``, where N
is how many items it saw before this turn (the conversation's items for ``/responses`` with
``conversation``, the earlier ``messages`` for ``/chat/completions``). A response made in a
conversation appends its input items and its output message to that conversation.

Failures on demand: ``forget(id)`` (a conversation is gone: 404 from then on),
``throttle(n, retry_after)`` (the next ``n`` requests get 429 with ``Retry-After``),
``outage`` (set: every request is that 5xx), a wrong or missing key (401) and ``hold``
(an unset event: every request waits for it).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from tests.upstreams.server import Recorder

SPEC = Path(__file__).resolve().parent / "specs" / "openai-2.3.0-schemas.json"
MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")


# --- the spec, loaded once ----------------------------------------------------------------


@functools.cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(SPEC.read_text())
    return spec


@functools.cache
def _validator(operation: str, part: str) -> Draft202012Validator:
    """The validator of ``operation``'s (``"POST /responses"``) ``request`` or ``response``."""
    spec = _spec()
    schema = spec["operations"][operation][part]
    return Draft202012Validator({**schema, "components": spec["components"]})


@functools.cache
def _component(name: str) -> Draft202012Validator:
    spec = _spec()
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    )


def schema_errors(operation: str, part: str, instance: Any) -> list[str]:
    """Why ``instance`` is not ``operation``'s ``part`` (``request``/``response``; empty: it is)."""
    validator = _validator(operation, part)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def component_errors(name: str, instance: Any) -> list[str]:
    """Why ``instance`` is not ``#/components/schemas/<name>`` (empty: it is)."""
    return [error.message for error in _component(name).iter_errors(instance)]


# --- state --------------------------------------------------------------------------------


def default_answer(text: str, history: int) -> str:
    return f"AI answer to: {text} (history: {history} items)"


class _Refusal(Exception):
    """An OpenAI error answer: status, message, type, param, code (and headers)."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        self.headers = headers or {}


@dataclass
class OpenAIState:
    """One project's key; ``conversations`` maps an id to its resource and items."""

    api_key: str
    organization: str = "org-loopback"
    """The only `OpenAI-Organization` the key belongs to (another one: 401)."""
    models: tuple[str, ...] = MODELS
    conversations: dict[str, dict[str, Any]] = field(default_factory=dict)
    answer: Callable[[str, int], str] = field(default=default_answer)
    outage: int | None = None
    """Set (500, 502, 503): every request answers this status."""
    hold: asyncio.Event | None = None
    """Set: every request waits for this event before it is answered."""
    _throttled: int = 0
    _retry_after: int = 1
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}{int(time.time() * 1000) % 1_000_000:06d}"

    def forget(self, conversation_id: str) -> None:
        """The conversation is gone (deleted, expired): 404 from now on."""
        del self.conversations[conversation_id]

    def throttle(self, requests: int, retry_after: int = 7) -> None:
        """The next ``requests`` requests get 429 with ``Retry-After: retry_after``."""
        self._throttled, self._retry_after = requests, retry_after

    def items(self, conversation_id: str) -> list[dict[str, Any]]:
        """A conversation's items, oldest first."""
        items: list[dict[str, Any]] = self.conversations[conversation_id]["items"]
        return items

    def texts(self, conversation_id: str) -> list[tuple[str, str]]:
        """``(role, text)`` of each message item, oldest first."""
        return [
            (item["role"], "".join(part.get("text", "") for part in item["content"]))
            for item in self.items(conversation_id)
        ]

    def _gate(self, request: web.Request) -> None:
        """Key, organization, outages and rate limits, as OpenAI checks them."""
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not presented:
                raise _Refusal(401, "You didn't provide an API key.", code=None)
            masked = presented[:3] + "*" * max(0, len(presented) - 7) + presented[-4:]
            raise _Refusal(
                401,
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        organization = request.headers.get("OpenAI-Organization")
        if organization is not None and organization != self.organization:
            raise _Refusal(
                401,
                "The OpenAI-Organization header should match organization for API key",
                code="mismatched_organization",
            )
        if self.outage is not None:
            raise _Refusal(
                self.outage,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
            )
        if self._throttled > 0:
            self._throttled -= 1
            raise _Refusal(
                429,
                f"Rate limit reached for requests. Please try again in {self._retry_after}s.",
                "requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(self._retry_after)},
            )


# --- items --------------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    return "".join(
        part.get("text", "") for part in content if isinstance(part, dict) and "text" in part
    )


def _message_item(state: OpenAIState, role: str, text: str) -> dict[str, Any]:
    """A stored ``Message`` item (the spec's ``ConversationItem`` of type ``message``)."""
    if role == "assistant":
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    else:
        part = {"type": "input_text", "text": text}
    return {
        "type": "message",
        "id": state.new_id("msg"),
        "status": "completed",
        "role": role,
        "content": [part],
    }


def _input_items(state: OpenAIState, items: list[Any]) -> list[dict[str, Any]]:
    """Input messages as stored items (other item types are not used by the gateway)."""
    stored = []
    for item in items:
        if item.get("type", "message") != "message":
            raise _Refusal(400, f"item type {item['type']!r} is not served here", param="items")
        stored.append(_message_item(state, item["role"], _text_of(item["content"])))
    return stored


def _page(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``ConversationItemList``."""
    return {
        "object": "list",
        "data": items,
        "has_more": False,
        "first_id": items[0]["id"] if items else "",
        "last_id": items[-1]["id"] if items else "",
    }


# --- the app ------------------------------------------------------------------------------


def openai_app(state: OpenAIState) -> tuple[web.Application, Recorder]:
    """The app: models, conversations and their items, responses, chat completions."""
    recorder = Recorder()

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if state.hold is not None:
            await state.hold.wait()
        try:
            state._gate(request)
            response: web.StreamResponse = await handler(request)
        except _Refusal as refusal:
            return web.json_response(refusal.body, status=refusal.status, headers=refusal.headers)
        except web.HTTPNotFound:
            return web.json_response(
                _Refusal(404, f"Invalid URL ({request.method} {request.path})").body, status=404
            )
        return response

    app = web.Application(middlewares=[recorder.middleware, guard])

    async def body_of(request: web.Request, operation: str) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise _Refusal(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise _Refusal(400, "The body of your request must be a JSON object.")
        error = best_match(_validator(operation, "request").iter_errors(body))
        if error is not None:
            param = ".".join(map(str, error.absolute_path)) or None
            raise _Refusal(400, f"Invalid request: {error.message}", param=param)
        if body.get("stream"):
            raise _Refusal(400, "this loopback does not stream", param="stream")
        return body

    def conversation_of(conversation_id: str) -> dict[str, Any]:
        found = state.conversations.get(conversation_id)
        if found is None:
            raise _Refusal(404, f"Conversation with id '{conversation_id}' not found.")
        return found

    def model_of(body: dict[str, Any]) -> str:
        model = body.get("model")
        if model not in state.models:
            raise _Refusal(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        return str(model)

    async def list_models(request: web.Request) -> web.Response:
        data = [
            {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
            for model in state.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def create_conversation(request: web.Request) -> web.Response:
        body = await body_of(request, "POST /conversations")
        conversation_id = state.new_id("conv")
        resource = {
            "id": conversation_id,
            "object": "conversation",
            "created_at": int(time.time()),
            "metadata": body.get("metadata") or {},
        }
        items = _input_items(state, body.get("items") or [])
        state.conversations[conversation_id] = {"resource": resource, "items": items}
        return web.json_response(resource)

    async def get_conversation(request: web.Request) -> web.Response:
        return web.json_response(conversation_of(request.match_info["id"])["resource"])

    async def list_items(request: web.Request) -> web.Response:
        items = list(conversation_of(request.match_info["id"])["items"])
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            raise _Refusal(400, "limit must be an integer", param="limit") from None
        if not 1 <= limit <= 100:
            raise _Refusal(400, "limit must be between 1 and 100", param="limit")
        order = request.query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise _Refusal(400, "order must be asc or desc", param="order")
        if order == "desc":
            items.reverse()
        after = request.query.get("after")
        if after:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = _page(items[:limit])
        page["has_more"] = len(items) > limit
        return web.json_response(page)

    async def add_items(request: web.Request) -> web.Response:
        conversation = conversation_of(request.match_info["id"])
        body = await body_of(request, "POST /conversations/{conversation_id}/items")
        added = _input_items(state, body["items"])
        conversation["items"].extend(added)
        return web.json_response(_page(added))

    async def create_response(request: web.Request) -> web.Response:
        body = await body_of(request, "POST /responses")
        model = model_of(body)
        reference = body.get("conversation")
        conversation = None
        if reference is not None:
            conversation_id = reference if isinstance(reference, str) else reference["id"]
            conversation = conversation_of(conversation_id)
        raw_input = body.get("input") or []
        given = (
            [{"role": "user", "content": raw_input}] if isinstance(raw_input, str) else raw_input
        )
        inputs = _input_items(state, given)
        history = conversation["items"] if conversation is not None else []
        seen = [*history, *inputs]
        users = [_text_of(item["content"]) for item in seen if item["role"] == "user"]
        text = state.answer(users[-1] if users else "", len(history))
        output = _message_item(state, "assistant", text)
        output["phase"] = None
        if conversation is not None:
            conversation["items"].extend([*inputs, output])
        now = int(time.time())
        input_tokens = sum(len(_text_of(item["content"]).split()) for item in seen)
        output_tokens = len(text.split())
        response = {
            "id": state.new_id("resp"),
            "object": "response",
            "created_at": now,
            "completed_at": now,
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": model,
            "output": [output],
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "conversation": {"id": conversation["resource"]["id"]} if conversation else None,
            "reasoning": None,
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
            "metadata": body.get("metadata") or {},
        }
        return web.json_response(response)

    async def chat_completion(request: web.Request) -> web.Response:
        body = await body_of(request, "POST /chat/completions")
        model = model_of(body)
        messages = body["messages"]
        users = [_text_of(m.get("content") or "") for m in messages if m["role"] == "user"]
        text = state.answer(users[-1] if users else "", len(messages) - 1)
        prompt_tokens = sum(len(_text_of(m.get("content") or "").split()) for m in messages)
        completion_tokens = len(text.split())
        return web.json_response(
            {
                "id": state.new_id("chatcmpl"),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": text,
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
                "service_tier": "default",
            }
        )

    app.router.add_get("/models", list_models)
    app.router.add_post("/conversations", create_conversation)
    app.router.add_get("/conversations/{id}", get_conversation)
    app.router.add_get("/conversations/{id}/items", list_items)
    app.router.add_post("/conversations/{id}/items", add_items)
    app.router.add_post("/responses", create_response)
    app.router.add_post("/chat/completions", chat_completion)
    return app, recorder
