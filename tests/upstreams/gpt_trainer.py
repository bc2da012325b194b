"""A loopback GPT Trainer API (base ``/api/v1`` left out): sessions and streamed answers.

Wire facts (shared/UPSTREAMS.md section 4.3): ``Authorization: Bearer <api key>``;
``POST /chatbot/{uuid}/session/create`` (no body) gives a session with a 32-hex uuid;
``POST /session/{uuid}/message/stream`` with ``{"query"}`` streams the answer as plain text in
chunks (not SSE, not JSON); ``GET /session/{uuid}/messages`` lists the finished messages.
The error bodies (``{"error": ...}``) are invented: GPT Trainer documents none.

For crash tests: ``hold`` (an unset event) makes every streamed answer wait for it, and
``asked`` is set once a question arrived, so a test can kill the caller mid-call;
``forget(uuid)`` drops a session (its calls answer 404 from then on).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.upstreams.server import Recorder


def default_answer(query: str) -> str:
    return f"AI answer to: {query}"


def timestamp() -> str:
    """ISO 8601 with milliseconds and ``Z``, as GPT Trainer's session filters take."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class TrainerState:
    """One chatbot; ``sessions`` maps a session uuid to its finished messages."""

    api_key: str
    chatbot_uuid: str
    sessions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    answer: Callable[[str], str] = field(default=default_answer)
    chunks: int = 3
    """How many writes a streamed answer takes (fewer if the answer is shorter)."""
    chunk_delay: float = 0.02
    """Seconds between writes, so the chunks arrive apart."""
    hold: asyncio.Event | None = None
    """Set: a streamed answer starts only once this event is set."""
    asked: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a message/stream request reached the session (before ``hold``)."""

    def forget(self, session: str) -> None:
        """GPT Trainer loses ``session`` (expired, deleted): 404 from now on."""
        del self.sessions[session]


def gpt_trainer_app(state: TrainerState) -> tuple[web.Application, Recorder]:
    """The app: create a session, stream a message, list a session's messages."""
    recorder = Recorder()

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {state.api_key}":
            return web.json_response({"error": "Invalid API key"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application(middlewares=[recorder.middleware, guard])

    def messages_of(request: web.Request) -> list[dict[str, Any]]:
        messages = state.sessions.get(request.match_info["session_uuid"])
        if messages is None:
            raise web.HTTPNotFound(
                text='{"error": "Session not found"}', content_type="application/json"
            )
        return messages

    async def create_session(request: web.Request) -> web.Response:
        if request.match_info["chatbot_uuid"] != state.chatbot_uuid:
            return web.json_response({"error": "Chatbot not found"}, status=404)
        session = uuid.uuid4().hex
        state.sessions[session] = []
        now = timestamp()
        return web.json_response({"created_at": now, "modified_at": now, "uuid": session})

    async def stream_message(request: web.Request) -> web.StreamResponse:
        messages = messages_of(request)
        try:
            body = await request.json()
        except ValueError:
            body = None
        query = body.get("query") if isinstance(body, dict) else None
        if not isinstance(query, str) or not query:
            return web.json_response({"error": "query is required"}, status=400)
        state.asked.set()
        if state.hold is not None:
            await state.hold.wait()
        text = state.answer(query)
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        size = max(1, math.ceil(len(text) / state.chunks))
        for start in range(0, len(text), size):
            if start:
                await asyncio.sleep(state.chunk_delay)
            await response.write(text[start : start + size].encode())
        now = timestamp()
        messages.append(
            {
                "uuid": uuid.uuid4().hex,
                "created_at": now,
                "modified_at": now,
                "query": query,
                "response": text,
                "finish_reason": "stop",
                "cite_data_json": "{}",
                "meta_json": "{}",
            }
        )
        await response.write_eof()
        return response

    async def list_messages(request: web.Request) -> web.Response:
        return web.json_response(messages_of(request))

    app.router.add_post("/chatbot/{chatbot_uuid}/session/create", create_session)
    app.router.add_post("/session/{session_uuid}/message/stream", stream_message)
    app.router.add_get("/session/{session_uuid}/messages", list_messages)
    return app, recorder
