"""The upstream clients plugins get (the contract's ``UpstreamClient``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.plugin import OAuth2Connection, UpstreamResponse
from gateway.snapshot import UpstreamBinding
from gateway.upstream.auth import Caller, OutboundRequest
from gateway.upstream.outbound import Upstreams

__all__ = ["PluginClient"]


@dataclass(frozen=True, slots=True)
class PluginClient:
    """``await ctx.clients["crm"].request("GET", "/v1/me")``: the upstream's auth flow,
    timeout and retries, exactly as a declared route to it gets them."""

    binding: UpstreamBinding
    upstreams: Upstreams
    caller: Caller
    request_id: str
    connection: OAuth2Connection | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | Sequence[str]] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        merged = {**self.binding.headers, "X-Request-ID": self.request_id, **(headers or {})}
        if json is not None:
            data = msgspec.json.encode(json)
            merged.setdefault("Content-Type", "application/json")
        outgoing = OutboundRequest(
            method=method,
            path=path if path.startswith("/") else "/" + path,
            headers=merged,
            timeout=self.binding.settings.timeout,
            params=dict(query) if query else None,
            data=data,
        )
        answer = await self.upstreams.send(self.binding, outgoing, self.caller)
        content_type = answer.content_type.decode() if answer.content_type else None
        return UpstreamResponse(answer.status, content_type, answer.body, answer.retry_after)
