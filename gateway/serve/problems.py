"""RFC 9457 problem responses: the only place that formats the gateway's own error bodies."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec

__all__ = ["PROBLEM_CONTENT_TYPE", "problem_body"]

PROBLEM_CONTENT_TYPE = b"application/problem+json"
_encoder = msgspec.json.Encoder()


def problem_body(
    status: int,
    slug: str,
    detail: str,
    *,
    route: str | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> bytes:
    """``{"type", "title", "status", "detail", "route", "request_id", ...extra}`` as JSON bytes."""
    body: dict[str, Any] = {
        "type": f"urn:problem:gateway:{slug}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if route is not None:
        body["route"] = route
    if request_id is not None:
        body["request_id"] = request_id
    body.update(extra)
    return _encoder.encode(body)
