"""Outbound auth as flows, one per kind (the shape of httpx's ``Auth.auth_flow``).

A flow receives the request, ``yield``s it to be sent, and is sent the answer back; a flow
that wants another try yields the request again. Static credentials (bearer, header) are
already in the upstream's headers and need no flow, so a route without per-call auth pays
nothing. The kinds:

* :class:`~gateway.snapshot.PassthroughAuth`: the caller's own credential is copied from its
  inbound header.
* :class:`~gateway.snapshot.OAuth2ClientSpec`: the user's access token (refreshed before
  expiry); a 401 for an unexpired token refreshes it once and sends once more.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass

from gateway.snapshot import OAuth2ClientSpec, OutboundAuth, PassthroughAuth
from gateway.upstream.call import UpstreamAnswer
from gateway.upstream.tokens import UpstreamTokens

__all__ = ["AuthFlow", "Caller", "OutboundRequest", "auth_flow"]

DEFAULT_USER = "default"
"""Whose connection a call uses when the caller stands for no user (the operator's)."""


@dataclass(slots=True)
class OutboundRequest:
    """One upstream request under construction: flows add their headers to it."""

    method: str
    path: str
    headers: dict[str, str]
    timeout: float
    params: Mapping[str, str | Sequence[str]] | None = None
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """On whose behalf a call is made: the user, and the inbound headers (lower-case)."""

    user: str | None = None
    headers: Mapping[str, str] | None = None


AuthFlow = AsyncGenerator[OutboundRequest, UpstreamAnswer]


def auth_flow(
    auth: OutboundAuth, request: OutboundRequest, caller: Caller, tokens: UpstreamTokens
) -> AuthFlow:
    """The flow of ``auth``'s kind for one call."""
    if isinstance(auth, PassthroughAuth):
        return _passthrough(auth, request, caller)
    return _user_token(auth, request, caller, tokens)


async def _passthrough(auth: PassthroughAuth, request: OutboundRequest, caller: Caller) -> AuthFlow:
    value = (caller.headers or {}).get(auth.header.lower())
    if value is not None:
        request.headers[auth.header] = value
    yield request


async def _user_token(
    spec: OAuth2ClientSpec, request: OutboundRequest, caller: Caller, tokens: UpstreamTokens
) -> AuthFlow:
    user = caller.user or DEFAULT_USER
    token = await tokens.access_token(spec, user)
    request.headers["Authorization"] = f"Bearer {token}"
    answer = yield request
    if answer.status != 401:
        return
    # Refused before its expiry (revoked, rotated): refresh once, send once more.
    fresh = await tokens.access_token(spec, user, stale=token)
    request.headers["Authorization"] = f"Bearer {fresh}"
    yield request
