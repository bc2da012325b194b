"""Where the MCP endpoints are, which one a request is for, and a replayed body (no SDK
needed: gateway.serve.mcp uses these before the SDK is loaded)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = [
    "AUDIENCE",
    "MCP_PATH",
    "PRM_PREFIX",
    "endpoint_key",
    "endpoint_path",
    "full_path",
    "replay",
    "resource_metadata_url",
]

MCP_PATH = "/mcp"
AUDIENCE = "gateway.audience"
"""The ASGI scope key of a tool call's route: the MCP endpoint (RFC 8707 resource) its
token must have been issued for; absent over HTTP."""
PRM_PREFIX = "/.well-known/oauth-protected-resource"


def endpoint_key(scope: Mapping[str, Any]) -> str | None:
    """None for /mcp, the profile for /mcp/<profile>; "" for anything else below /mcp."""
    path = full_path(scope).rstrip("/")
    if path == MCP_PATH:
        return None
    rest = path[len(MCP_PATH) + 1 :] if path.startswith(MCP_PATH + "/") else ""
    return rest if rest and "/" not in rest else ""


def endpoint_path(key: str | None) -> str:
    return MCP_PATH if key is None else f"{MCP_PATH}/{key}"


def resource_metadata_url(public_url: str, key: str | None) -> str:
    """Where an MCP endpoint's Protected Resource Metadata is (RFC 9728 section 3.1)."""
    return f"{public_url}{PRM_PREFIX}{endpoint_path(key)}"


def replay(body: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An ASGI `receive` handing over ``body`` (already read), then a disconnect."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def full_path(scope: Mapping[str, Any]) -> str:
    """The request's path as sent (a mount shortens `path`; `raw_path` stays whole)."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.decode("latin-1").split("?", 1)[0]
    return str(scope.get("root_path", "")) + str(scope.get("path", ""))
