"""ChatBETO's calls to OpenAI (a helper of plugins/chatbeto.py).

The Assistants API (threads, runs) was retired on 2026-08-26, so a conversation is an
OpenAI *conversation* (`POST /conversations`, its items) answered with the Responses API
(`POST /responses` with `conversation`: the model sees the conversation's items, and the
new input and the answer are appended to it). Direct completions are `POST
/chat/completions`. The client is the gateway's `openai` upstream: its key, the
`OpenAI-Organization` header when `OPENAI_ORG_ID` is set, its timeout and retries.

OpenAI's errors (`{"error": {"message", "type", "param", "code"}}`) become PluginErrors the
caller can act on: 429 stays a 429 with OpenAI's `Retry-After`; a refused key (401/403) is a
502 that does not quote OpenAI's message (it echoes part of the key); anything else is a
502 with OpenAI's status, code and message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.plugin import PluginError, UpstreamClient, UpstreamResponse

MAX_ITEMS = 20  # items per POST /conversations or /conversations/{id}/items (the spec's maxItems)
_MESSAGE_CHARS = 300


class ConversationGone(Exception):
    """OpenAI answered 404 for the conversation (deleted or expired)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The model's answer: its text, the model that wrote it, and token usage."""

    content: str
    model: str
    usage: dict[str, Any]
    finish: str
    """`stop`, or why the answer ended early (e.g. `max_output_tokens`)."""

    def public(self) -> dict[str, Any]:
        return {
            "role": "assistant",
            "content": self.content,
            "model": self.model,
            "finish_reason": self.finish,
            "usage": self.usage,
        }


def refusal(answer: UpstreamResponse) -> PluginError:
    """The caller's error for an OpenAI error answer."""
    error: dict[str, Any] = {}
    try:
        found = answer.json().get("error")
        error = found if isinstance(found, dict) else {}
    except (msgspec.DecodeError, AttributeError):
        pass
    code = error.get("code") or error.get("type") or "error"
    message = str(error.get("message") or "no message")[:_MESSAGE_CHARS]
    status = answer.status
    if status == 429:
        retry = {"Retry-After": answer.retry_after} if answer.retry_after else None
        return PluginError(429, f"OpenAI is rate limiting this gateway: {message}", headers=retry)
    if status in (401, 403):
        return PluginError(502, f"OpenAI refused the gateway's API key ({status} {code})")
    if status >= 500:
        return PluginError(502, f"OpenAI is unavailable ({status}): {message}")
    return PluginError(502, f"OpenAI refused the request ({status} {code}): {message}")


class OpenAI:
    """``OpenAI(ctx.clients["openai"], settings)``: the calls ChatBETO makes."""

    def __init__(self, client: UpstreamClient, output_limit: int, temperature: float | None):
        self.client = client
        self.output_limit = output_limit
        self.temperature = temperature

    async def _call(
        self, method: str, path: str, body: Any = None, *, gone_on_404: bool = False
    ) -> Any:
        answer = await self.client.request(method, path, json=body)
        if answer.ok:
            return answer.json()
        if answer.status == 404 and gone_on_404:
            raise ConversationGone(path)
        raise refusal(answer)

    async def check(self) -> None:
        """A cheap call that proves the key works (`GET /models`)."""
        await self._call("GET", "/models")

    async def create_conversation(
        self, metadata: dict[str, str], history: list[dict[str, Any]]
    ) -> str:
        """A new OpenAI conversation holding ``history`` (any length); its id."""
        body = {"metadata": metadata, "items": history[:MAX_ITEMS]}
        created = await self._call("POST", "/conversations", body)
        conversation_id = str(created["id"])
        for start in range(MAX_ITEMS, len(history), MAX_ITEMS):
            await self._call(
                "POST",
                f"/conversations/{conversation_id}/items",
                {"items": history[start : start + MAX_ITEMS]},
            )
        return conversation_id

    async def exists(self, conversation_id: str) -> bool:
        try:
            await self._call("GET", f"/conversations/{conversation_id}", gone_on_404=True)
        except ConversationGone:
            return False
        return True

    async def respond(self, conversation_id: str, role: str, text: str, model: str) -> Reply:
        """Add ``text`` to the conversation and return the model's answer (ConversationGone
        when OpenAI no longer has the conversation)."""
        body: dict[str, Any] = {
            "model": model,
            "conversation": conversation_id,
            "input": [{"type": "message", "role": role, "content": text}],
            "max_output_tokens": self.output_limit,
            "store": True,
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        answer = await self._call("POST", "/responses", body, gone_on_404=True)
        content = "".join(
            part.get("text", "")
            for item in answer.get("output") or []
            if item.get("type") == "message"
            for part in item.get("content") or []
            if part.get("type") == "output_text"
        )
        usage = answer.get("usage") or {}
        incomplete = answer.get("incomplete_details") or {}
        return Reply(
            content=content,
            model=str(answer.get("model") or model),
            usage={
                key: usage.get(key) for key in ("input_tokens", "output_tokens", "total_tokens")
            },
            finish=str(incomplete.get("reason") or "stop"),
        )

    async def complete(
        self, messages: list[dict[str, Any]], model: str, metadata: dict[str, str]
    ) -> Reply:
        """One chat completion over ``messages``."""
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "max_completion_tokens": self.output_limit,
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if metadata:
            body["metadata"] = metadata
        answer = await self._call("POST", "/chat/completions", body)
        choice = (answer.get("choices") or [{}])[0]
        usage = answer.get("usage") or {}
        return Reply(
            content=str((choice.get("message") or {}).get("content") or ""),
            model=str(answer.get("model") or model),
            usage={
                "input_tokens": usage.get("prompt_tokens"),
                "output_tokens": usage.get("completion_tokens"),
                "total_tokens": usage.get("total_tokens"),
            },
            finish=str(choice.get("finish_reason") or "stop"),
        )
