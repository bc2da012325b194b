"""The endpoints a client uses to manage itself: `POST /oauth/register` (Dynamic Client
Registration, RFC 7591, rate-limited per address) and `POST /oauth/revoke` (RFC 7009,
throttled like the token endpoint). authlib does the protocol (registration.py)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import msgspec
from authlib.oauth2.rfc6749 import InsecureTransportError, OAuth2Request
from litestar import Request, Response, post
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler

from gateway.oauth.accounts import peer
from gateway.oauth.answers import (
    insecure_answer,
    json_answer,
    oauth_error,
    too_many_client_failures,
)
from gateway.oauth.runtime import OAuthRuntime, basic_client_id
from gateway.oauth.server import (
    GatewayAuthorizationServer,
    OAuthAnswer,
    form_request,
    json_request,
)

__all__ = ["REGISTER_PATH", "REVOKE_PATH", "client_form_endpoint", "client_handlers"]

REGISTER_PATH = "/oauth/register"
REVOKE_PATH = "/oauth/revoke"
MAX_REGISTRATION_BYTES = 16 * 1024
HOUR = 3600.0


async def client_form_endpoint(
    runtime: OAuthRuntime,
    request: Request[Any, Any, Any],
    uri: str,
    respond: Callable[[OAuth2Request], OAuthAnswer],
) -> Response[bytes]:
    """A form endpoint where the client authenticates (token, revocation): refused while
    this address or client id is locked out, and a failed client authentication counted
    as a guess. ``respond`` is authlib's, run in a worker thread."""
    form = await request.form()
    values = {key: str(value) for key, value in form.items()}
    ip = peer(request)
    client_id = basic_client_id(request.headers.get("authorization")) or values.get("client_id")
    if (wait := await runtime.client_blocked(ip, client_id)) is not None:
        return too_many_client_failures(wait)
    try:
        oauth_request = form_request("POST", uri, values, request.headers)
    except InsecureTransportError:
        return insecure_answer()
    answer = await asyncio.to_thread(respond, oauth_request)
    # A wrong client secret (or an unknown client) is a guess: counted.
    guessed = isinstance(answer.body, dict) and answer.body.get("error") == "invalid_client"
    if guessed and (lockout := await runtime.client_failed(ip, client_id)) is not None:
        return too_many_client_failures(lockout)
    return json_answer(answer)


def client_handlers(runtime: OAuthRuntime) -> list[HTTPRouteHandler]:
    async def require_server() -> GatewayAuthorizationServer:
        server = await runtime.server()
        if server is None:
            raise NotFoundException("this gateway has no `oauth:` section")
        return server

    @post(REGISTER_PATH, status_code=201)
    async def register(request: Request[Any, Any, Any]) -> Response[bytes]:
        server = await require_server()
        if not server.spec.registration.dynamic:
            raise NotFoundException("dynamic client registration is off on this gateway")
        per_hour = server.spec.registration.per_hour
        decision = await runtime.throttle.limiter.hit(
            f"oauth-register:{peer(request)}", per_hour, HOUR
        )
        if not decision.allowed:
            wait = max(1, math.ceil(decision.retry_after))
            return oauth_error(
                429,
                "invalid_request",
                f"too many client registrations from this address; retry in {wait}s",
                **{"Retry-After": str(wait)},
            )
        body = await request.body()
        if len(body) > MAX_REGISTRATION_BYTES:
            return oauth_error(
                400, "invalid_client_metadata", "the registration is larger than 16 KiB"
            )
        try:
            metadata = msgspec.json.decode(body)
        except msgspec.DecodeError:
            metadata = None
        if not isinstance(metadata, dict):
            return oauth_error(
                400, "invalid_client_metadata", "the registration must be a JSON object"
            )
        uri = f"{server.spec.issuer}{REGISTER_PATH}"
        try:
            InsecureTransportError.check(uri)
        except InsecureTransportError:
            return insecure_answer()
        oauth_request = json_request(uri, metadata, request.headers)
        answer = await asyncio.to_thread(
            server.create_endpoint_response, "client_registration", oauth_request
        )
        return json_answer(answer)

    @post(REVOKE_PATH, status_code=200)
    async def revoke(request: Request[Any, Any, Any]) -> Response[bytes]:
        server = await require_server()
        return await client_form_endpoint(
            runtime,
            request,
            f"{server.spec.issuer}{REVOKE_PATH}",
            lambda oauth_request: server.create_endpoint_response("revocation", oauth_request),
        )

    return [register, revoke]
