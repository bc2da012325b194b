"""CORS for every path, with Litestar's CORSConfig deciding what is allowed.

The gateway answers preflights itself (the declared routes do not go through Litestar's
router) and adds the simple-response headers to every answer whose Origin is allowed.
"""

from __future__ import annotations

from litestar.config.cors import CORSConfig

__all__ = ["preflight_headers", "response_headers"]


def response_headers(cors: CORSConfig, origin: str | None) -> list[tuple[bytes, bytes]]:
    if origin is None or not cors.is_origin_allowed(origin):
        return []
    headers = [(key.lower().encode(), value.encode()) for key, value in cors.simple_headers.items()]
    if not cors.is_allow_all_origins:
        headers += [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin")]
    return headers


def preflight_headers(
    cors: CORSConfig, origin: str, requested_headers: str | None
) -> list[tuple[bytes, bytes]] | None:
    """Headers of a 204 preflight answer, or None when the origin is not allowed."""
    if not cors.is_origin_allowed(origin):
        return None
    headers = {key.lower(): value for key, value in cors.preflight_headers.items()}
    if not cors.is_allow_all_origins:
        headers["access-control-allow-origin"] = origin
    if cors.is_allow_all_headers and requested_headers:
        headers["access-control-allow-headers"] = requested_headers
    return [(key.encode(), value.encode()) for key, value in headers.items()]
