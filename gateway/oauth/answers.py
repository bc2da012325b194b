"""The JSON answers the OAuth endpoints share (RFC 6749 5.2 error bodies, never cached)."""

from __future__ import annotations

import msgspec
from litestar import Response

from gateway.oauth.server import OAuthAnswer

__all__ = ["INSECURE", "insecure_answer", "json_answer", "oauth_error", "too_many_client_failures"]

INSECURE = (
    "OAuth needs this gateway's public URL to be https (set server.public_url, "
    "GATEWAY_PUBLIC_URL); only a loopback address may use http."
)


def oauth_error(status: int, error: str, description: str, **headers: str) -> Response[bytes]:
    body = {"error": error, "error_description": description}
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        headers={"Content-Type": "application/json", "Cache-Control": "no-store", **headers},
    )


def insecure_answer() -> Response[bytes]:
    return oauth_error(503, "server_error", INSECURE)


def too_many_client_failures(seconds: int) -> Response[bytes]:
    description = f"too many failed client authentications; retry in {seconds}s"
    return oauth_error(429, "invalid_client", description, **{"Retry-After": str(seconds)})


def json_answer(answer: OAuthAnswer) -> Response[bytes]:
    headers = dict(answer.headers)
    body = answer.body
    if isinstance(body, dict):
        encoded = msgspec.json.encode(body)
        headers.setdefault("Content-Type", "application/json")
    else:
        encoded = (body or "").encode() if isinstance(body, str) else (body or b"")
    return Response(encoded, status_code=answer.status, headers=headers)
