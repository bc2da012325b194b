"""Minimal raw-ASGI proxy with one long-lived httpx client (client-choice benchmark)."""

from __future__ import annotations

import os
from typing import Any

import httpx

UPSTREAM = os.environ.get("UPSTREAM", "http://127.0.0.1:18081")
_client: httpx.AsyncClient | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _client
    if scope["type"] != "http":
        return
    if _client is None:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        _client = httpx.AsyncClient(limits=limits)
    response = await _client.get(
        UPSTREAM + scope["path"], headers={"Authorization": "Bearer bench-token"}
    )
    content_type = response.headers.get("content-type", "application/json").encode()
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": [(b"content-type", content_type)],
        }
    )
    await send({"type": "http.response.body", "body": response.content})
