"""RFC 9457 problem responses: the only place that formats the gateway's own error bodies.

A route with `response.error_body` answers its errors in its own shape instead (a template
over the problem's fields, see :func:`templated_error`), with the same status and headers.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec

from gateway.logs import logger
from gateway.snapshot import CompiledTemplate

__all__ = ["PROBLEM_CONTENT_TYPE", "problem_body", "problem_fields", "templated_error"]

PROBLEM_CONTENT_TYPE = b"application/problem+json"
_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"
_encoder = msgspec.json.Encoder()


def problem_fields(
    status: int,
    slug: str,
    detail: str,
    *,
    route: str | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """``{"type", "title", "status", "detail", "route", "request_id", ...extra}``."""
    fields: dict[str, Any] = {
        "type": f"urn:problem:gateway:{slug}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if route is not None:
        fields["route"] = route
    if request_id is not None:
        fields["request_id"] = request_id
    fields.update(extra)
    return fields


def problem_body(
    status: int,
    slug: str,
    detail: str,
    *,
    route: str | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> bytes:
    """:func:`problem_fields` as JSON bytes."""
    fields = problem_fields(status, slug, detail, route=route, request_id=request_id, **extra)
    return _encoder.encode(fields)


def templated_error(template: CompiledTemplate, fields: dict[str, Any]) -> tuple[bytes, bytes]:
    """``(content type, body)`` of a route's own error shape, rendered over ``problem``;
    the problem itself when the template fails on it (logged once)."""
    try:
        value = template.render({"problem": fields})
        if isinstance(value, str):
            return _TEXT, value.encode()
        return _JSON, _encoder.encode(value)
    except Exception as exc:  # the last answer of a request: it must not fail (1 / 0 too)
        logger.error(
            "route %s: its error_body failed (%s: %s); answered a problem instead",
            fields.get("route"),
            type(exc).__name__,
            exc,
        )
        return PROBLEM_CONTENT_TYPE, _encoder.encode(fields)
