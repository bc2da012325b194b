"""Every call to an upstream, from a declared route or a plugin, goes through here.

``Upstreams.send(binding, request, caller)`` runs the binding's auth flow
(gateway.upstream.auth) and sends on the pooled client with the binding's retries. The
request's headers start from ``binding.headers`` (static headers and credentials).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from gateway.snapshot import UpstreamBinding
from gateway.upstream.auth import Caller, OutboundRequest, auth_flow
from gateway.upstream.call import UpstreamAnswer, UpstreamCaller
from gateway.upstream.credentials import UserCredentials
from gateway.upstream.tokens import UpstreamTokens

__all__ = ["Upstreams"]


class Upstreams:
    """One per process: ``await upstreams.send(binding, OutboundRequest(...), Caller(user))``."""

    def __init__(
        self, caller: UpstreamCaller, tokens: UpstreamTokens, credentials: UserCredentials
    ) -> None:
        self.caller = caller
        self.tokens = tokens
        self.credentials = credentials

    async def send(
        self, binding: UpstreamBinding, request: OutboundRequest, caller: Caller
    ) -> UpstreamAnswer:
        """The upstream's answer; UpstreamError/UpstreamTimeout when it cannot be had,
        UpstreamNotConnected when the user must (re)connect."""
        if binding.auth is None:  # static credentials only: no flow, no per-call cost
            return await self._send(binding, request)
        flow = auth_flow(binding.auth, request, caller, self.tokens, self.credentials)
        try:
            outgoing = await anext(flow)
            while True:
                answer = await self._send(binding, outgoing)
                try:
                    outgoing = await flow.asend(answer)
                except StopAsyncIteration:
                    return answer
        finally:
            await flow.aclose()

    def _send(
        self, binding: UpstreamBinding, request: OutboundRequest
    ) -> Coroutine[Any, Any, UpstreamAnswer]:
        # Returns the caller's coroutine itself: no extra frame on the hot path.
        return self.caller.send(
            binding.settings,
            request.method,
            request.path,
            retry=binding.retry,
            timeout_seconds=request.timeout,
            params=request.params,
            headers=request.headers,
            data=request.data,
        )
