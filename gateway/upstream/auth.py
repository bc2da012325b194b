"""Outbound auth as flows, one per kind (the shape of httpx's ``Auth.auth_flow``).

A flow receives the request, ``yield``s it to be sent, and is sent the answer back; a flow
that wants another try yields the request again. Static credentials (bearer, header) are
already in the upstream's headers and need no flow, so a route without per-call auth pays
nothing. The kinds:

* :class:`~gateway.snapshot.PassthroughAuth`: the caller's own credential is copied from its
  inbound header.
* :class:`~gateway.snapshot.OAuth2ClientSpec`: the user's access token (refreshed before
  expiry); a 401 for an unexpired token refreshes it once and sends once more.
* :class:`~gateway.snapshot.UserTokenSpec`: the caller's own passed-through token, else the
  signed-in user's saved one; a saved one the upstream refuses is a 401 that says where to
  connect again. Never another user's, never the operator's.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass

from gateway.plugin import UpstreamNotConnected
from gateway.snapshot import OAuth2ClientSpec, OutboundAuth, PassthroughAuth, UserTokenSpec
from gateway.upstream.call import UpstreamAnswer
from gateway.upstream.credentials import UserCredentials, not_connected, refused
from gateway.upstream.tokens import DEFAULT_USER, UpstreamTokens

__all__ = ["AuthFlow", "Caller", "OutboundRequest", "auth_flow"]


@dataclass(slots=True)
class OutboundRequest:
    """One upstream request under construction: flows add their headers to it."""

    method: str
    path: str
    headers: dict[str, str]
    timeout: float
    params: Mapping[str, str | Sequence[str]] | None = None
    data: bytes | None = None
    credential: str | None = None
    """The user's credential a flow added, so that error excerpts can be redacted of it."""


@dataclass(frozen=True, slots=True)
class Caller:
    """On whose behalf a call is made: the user, the inbound headers (lower-case), and the
    caller's own bearer token when its scheme passes it through."""

    user: str | None = None
    headers: Mapping[str, str] | None = None
    token: str | None = None


AuthFlow = AsyncGenerator[OutboundRequest, UpstreamAnswer]


def auth_flow(
    auth: OutboundAuth,
    request: OutboundRequest,
    caller: Caller,
    tokens: UpstreamTokens,
    credentials: UserCredentials,
) -> AuthFlow:
    """The flow of ``auth``'s kind for one call."""
    if isinstance(auth, PassthroughAuth):
        return _passthrough(auth, request, caller)
    if isinstance(auth, UserTokenSpec):
        return _user_credential(auth, request, caller, credentials)
    return _user_token(auth, request, caller, tokens)


async def _user_credential(
    spec: UserTokenSpec, request: OutboundRequest, caller: Caller, credentials: UserCredentials
) -> AuthFlow:
    if caller.token is not None:  # the caller's own token, passed through
        request.headers[spec.header] = spec.prefix + caller.token
        request.credential = caller.token
        yield request
        return
    if caller.user is None:
        raise UpstreamNotConnected(
            f"{spec.upstream} needs your own credential: send it as your bearer token, or "
            f"sign in and connect it at {spec.connect_url}",
            spec.connect_url,
        )
    saved = await credentials.get(spec, caller.user)
    if saved is None:
        raise not_connected(spec)
    request.headers[spec.header] = spec.prefix + saved.token
    request.credential = saved.token
    answer = yield request
    if answer.status in (401, 403):
        raise refused(spec, f"{answer.status}")


async def _passthrough(auth: PassthroughAuth, request: OutboundRequest, caller: Caller) -> AuthFlow:
    value = (caller.headers or {}).get(auth.header.lower())
    if value is not None:
        request.headers[auth.header] = value
        request.credential = caller.token or value
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
