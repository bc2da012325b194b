"""What a served request ends in: an :class:`Answer`, or a :class:`Problem` raised on the way.

Also the pieces every handler kind shares: reading the body under its cap, rendering a
template (its failure is a problem, never a 500), and shaping a value under a route's cap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gateway.serve.shaping import cap_json, cap_text
from gateway.snapshot import CompiledTemplate
from gateway.snapshot.templates import TEMPLATE_ERRORS

__all__ = [
    "JSON",
    "TEXT",
    "Answer",
    "Headers",
    "Problem",
    "decode_json_body",
    "parse_answer",
    "read_body",
    "render",
    "send_response",
    "shaped",
]

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
Headers = list[tuple[bytes, bytes]]
_decode_json = msgspec.json.decode


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete answer: status, content type, body and extra headers."""

    status: int
    content_type: bytes
    body: bytes
    headers: Headers = field(default_factory=list)


class Problem(Exception):
    """An answer the gateway gives instead of the upstream's: status, slug, detail."""

    def __init__(self, status: int, slug: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.extra = extra
        self.headers: Headers = []


async def send_response(
    send: Any, status: int, content_type: bytes, body: bytes, headers: Headers
) -> None:
    """One complete ASGI answer with a known length."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Any, headers: Mapping[str, str], limit: int) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes with a 413 problem."""
    declared = headers.get("content-length")
    if declared is None and "transfer-encoding" not in headers:
        return b""  # no body framing: nothing to read (most GETs)
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "body-too-large", f"the request body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Problem(400, "client-disconnected", "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Problem(413, "body-too-large", f"the request body is over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def decode_json_body(raw: bytes, max_depth: int) -> tuple[Any, str | None]:
    """A caller's JSON body, or why it is refused: invalid JSON, invalid UTF-8, or nesting
    deeper than ``max_depth`` (checked without recursion: 2 KB can nest 1,000 levels)."""
    try:
        value = _decode_json(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        try:  # bad UTF-8: Python's words, as msgspec's differ by version (0.23: a DecodeError)
            raw.decode("utf-8")
        except UnicodeDecodeError as invalid:
            return None, f"is not valid JSON: {invalid}"
        return None, f"is not valid JSON: {exc}"
    except RecursionError:
        return None, f"nests deeper than {max_depth} levels"
    # Fewer brackets than the limit cannot nest deeper: the common case costs two counts.
    if raw.count(b"[") + raw.count(b"{") > max_depth and _depth(value) > max_depth:
        return None, f"nests deeper than {max_depth} levels"
    return value, None


def _depth(value: Any) -> int:
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in item)
    return deepest


def render(route_id: str, template: CompiledTemplate, context: Mapping[str, Any]) -> Any:
    """``template`` rendered; a template meeting data of an unexpected shape is a 502."""
    try:
        return template.render(context)
    except TEMPLATE_ERRORS as exc:
        raise Problem(
            502,
            "template-failed",
            f"route {route_id}: a template failed: {type(exc).__name__}: {exc}",
        ) from None


def parse_answer(text: str, content_type: bytes | None) -> Any:
    """An upstream answer as JSON when it says (or does not say) so; its text otherwise."""
    if content_type is None or b"json" in content_type:
        try:
            return _decode_json(text)
        except msgspec.DecodeError:
            return text
    return text


def shaped(status: int, value: Any, max_chars: int) -> Answer:
    """``value`` as text or JSON, cut to ``max_chars`` (marked, still valid JSON)."""
    if isinstance(value, str):
        return Answer(status, TEXT, cap_text(value, max_chars).encode())
    try:
        return Answer(status, JSON, cap_json(value, max_chars))
    except (TypeError, NotImplementedError) as exc:
        raise Problem(502, "template-failed", f"the answer is not JSON: {exc}") from None
