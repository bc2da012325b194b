"""The authorization server's HTTP surface on Litestar: authorize (login + consent page),
token, and RFC 8414 metadata. authlib does the protocol; this is the glue.

`/chatgpt/oauth/authorize` and `/chatgpt/oauth/token` are aliases (the URLs the OMI server
printed, so that GPTs set up against it keep working): the same server, clients and consent
form. A consent page posts back to the path it was opened at, and its browser cookie is
scoped to that path's folder; the metadata names the canonical URLs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError, UnsupportedResponseTypeError
from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler

from gateway.logs import logger
from gateway.oauth.consent import browser_cookie, browser_id, new_browser_id, same_origin
from gateway.oauth.page import page
from gateway.oauth.runtime import LoginRefused, OAuthRuntime, basic_client_id
from gateway.oauth.server import GatewayAuthorizationServer, OAuthAnswer, form_request

__all__ = ["AUTHORIZE_PATHS", "TOKEN_PATHS", "ServerError", "oauth_handlers"]

AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a password)
AUTHORIZE_PATHS = (AUTHORIZE_PATH, "/chatgpt/oauth/authorize")
TOKEN_PATHS = (TOKEN_PATH, "/chatgpt/oauth/token")

EXPIRED = "This form expired: open the authorization link again."
CROSS_SITE = "This form was sent from another site."
WRONG_LOGIN = "Wrong username or password."


class ServerError(OAuth2Error):  # type: ignore[misc]
    """RFC 6749 4.1.2.1 `server_error` (authlib has no class for it): something failed
    after the client and its redirect_uri were checked, so the client hears of it."""

    error = "server_error"


def _described(error: OAuth2Error, values: dict[str, str]) -> OAuth2Error:
    """authlib's unsupported_response_type carries the response type as its description,
    and none when it is missing: a missing one is invalid_request (RFC 6749 4.1.2.1); any
    other gets a description that does not echo the request."""
    if not isinstance(error, UnsupportedResponseTypeError):
        return error
    if not values.get("response_type"):
        return InvalidRequestError(
            "Missing 'response_type' parameter.",
            state=error.state,
            redirect_uri=error.redirect_uri,
        )
    error.description = "Only response_type=code is supported."
    return error


def _locked_out(seconds: int) -> str:
    return f"Too many failed sign-ins. Try again in {seconds} seconds."


def _form_path(request: Request[Any, Any, Any]) -> str:
    """Where the consent form posts: the authorize path the page was opened at."""
    path = request.scope["path"]
    return path if path in AUTHORIZE_PATHS else AUTHORIZE_PATH


def _peer(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def _too_many_client_failures(seconds: int) -> Response[bytes]:
    body = {
        "error": "invalid_client",
        "error_description": f"too many failed client authentications; retry in {seconds}s",
    }
    return Response(
        msgspec.json.encode(body),
        status_code=429,
        headers={
            "Content-Type": "application/json",
            "Cache-Control": "no-store",
            "Retry-After": str(seconds),
        },
    )


def _answer(answer: OAuthAnswer) -> Response[bytes]:
    headers = dict(answer.headers)
    body = answer.body
    if isinstance(body, dict):
        encoded = msgspec.json.encode(body)
        headers.setdefault("Content-Type", "application/json")
    else:
        encoded = (body or "").encode() if isinstance(body, str) else (body or b"")
    return Response(encoded, status_code=answer.status, headers=headers)


def oauth_handlers(runtime: OAuthRuntime) -> list[HTTPRouteHandler]:
    async def require_server() -> GatewayAuthorizationServer:
        server = await runtime.server()
        if server is None:
            raise NotFoundException("this gateway has no `oauth:` section")
        return server

    def service() -> str:
        """What the consent page says the user signs in to: the gateway's `info.title`."""
        return str(runtime.current().openapi.get("info", {}).get("title") or "this service")

    async def consent(
        server: GatewayAuthorizationServer, request: Request[Any, Any, Any], values: dict[str, str]
    ) -> tuple[Any, Any] | Response[Any]:
        """authlib's checked request and grant, or the error (RFC 6749 4.1.2.1): a page when
        the client is unknown or the redirect_uri missing or not registered (never a
        redirect there), else a redirect to the client with `error`, `error_description`
        and `state`. authlib sets the error's redirect_uri only once both were checked."""
        oauth_request = form_request(
            request.method, f"{server.spec.issuer}{AUTHORIZE_PATH}", values, request.headers
        )
        try:
            grant = await asyncio.to_thread(server.get_consent_grant, oauth_request)
        except OAuth2Error as raised:
            error = _described(raised, values)
            if error.redirect_uri:
                return _answer(server.handle_error_response(oauth_request, error))
            return page(400, f"{error.error}: {error.description or ''}")
        return oauth_request, grant

    def server_error(
        server: GatewayAuthorizationServer, oauth_request: Any, grant: Any
    ) -> Response[bytes]:
        """The checked request failed on our side (the store, a login plugin): the client
        is told `server_error` at its redirect URI, with `state`."""
        logger.exception("oauth: the authorization request failed")
        error = ServerError(
            "The authorization server could not complete the request.",
            state=oauth_request.payload.state,
            redirect_uri=grant.redirect_uri,
        )
        return _answer(server.handle_error_response(oauth_request, error))

    @get(list(AUTHORIZE_PATHS))
    async def authorize_page(request: Request[Any, Any, Any]) -> Response[Any]:
        server = await require_server()
        values = {key: value for key, value in request.query_params.items()}
        checked = await consent(server, request, values)
        if isinstance(checked, Response):
            return checked
        oauth_request, grant = checked
        # The same id for every tab of this browser; a new one for a browser without it.
        browser = browser_id(request.cookies) or new_browser_id()
        try:
            values["csrf"] = await runtime.forms.issue(browser, values)
        except Exception:
            return server_error(server, oauth_request, grant)
        action = _form_path(request)
        return page(
            200,
            spec=server.spec,
            client=grant.client.spec.id,
            service=service(),
            values=values,
            action=action,
            cookies=[browser_cookie(browser, server.spec.issuer, action)],
        )

    @post(list(AUTHORIZE_PATHS), status_code=302)
    async def authorize(request: Request[Any, Any, Any]) -> Response[Any]:
        server = await require_server()
        origin = request.headers.get("origin")
        if origin is not None and not same_origin(origin, server.spec.issuer):
            return page(403, CROSS_SITE)
        form = await request.form()
        values = {key: str(value) for key, value in form.items()}
        checked = await consent(server, request, values)
        if isinstance(checked, Response):
            return checked
        oauth_request, grant = checked
        try:
            return await decide(server, request, values, oauth_request, grant)
        except Exception:
            return server_error(server, oauth_request, grant)

    async def decide(
        server: GatewayAuthorizationServer,
        request: Request[Any, Any, Any],
        values: dict[str, str],
        oauth_request: Any,
        grant: Any,
    ) -> Response[Any]:
        """The checked form: its token, then Allow (sign in) or Deny."""
        browser = browser_id(request.cookies)
        if browser is None or not await runtime.forms.take(values.get("csrf", ""), browser, values):
            return page(400, EXPIRED)
        # For the page shown again on a mistake: the same browser, the same request.
        values["csrf"] = await runtime.forms.issue(browser, values)
        user_id = None
        if values.get("decision") != "deny":
            username, password = values.get("username", ""), values.get("password", "")
            try:
                user_id = await runtime.sign_in(username, password, _peer(request))
            except LoginRefused as refused:
                wait = refused.retry_after
                return page(
                    401 if wait is None else 429,
                    WRONG_LOGIN if wait is None else _locked_out(wait),
                    spec=server.spec,
                    client=grant.client.spec.id,
                    service=service(),
                    values=values,
                    action=_form_path(request),
                    headers={} if wait is None else {"Retry-After": str(wait)},
                )
        # grant_user None: the user said no; authlib redirects with error=access_denied.
        answer = await asyncio.to_thread(
            server.create_authorization_response, oauth_request, user_id, grant
        )
        return _answer(answer)

    @post(list(TOKEN_PATHS), status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[bytes]:
        server = await require_server()
        form = await request.form()
        values = {key: str(value) for key, value in form.items()}
        ip = _peer(request)
        client_id = basic_client_id(request.headers.get("authorization")) or values.get("client_id")
        if (wait := await runtime.client_blocked(ip, client_id)) is not None:
            return _too_many_client_failures(wait)
        oauth_request = form_request(
            "POST", f"{server.spec.issuer}{TOKEN_PATH}", values, request.headers
        )
        answer = await asyncio.to_thread(server.create_token_response, oauth_request)
        # A wrong client secret (or an unknown client) is a guess: counted.
        guessed = isinstance(answer.body, dict) and answer.body.get("error") == "invalid_client"
        if guessed and (lockout := await runtime.client_failed(ip, client_id)) is not None:
            return _too_many_client_failures(lockout)
        return _answer(answer)

    @get("/.well-known/oauth-authorization-server")
    async def metadata() -> dict[str, Any]:
        server = await require_server()
        issuer = server.spec.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}{AUTHORIZE_PATH}",
            "token_endpoint": f"{issuer}{TOKEN_PATH}",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(server.spec.scopes),
        }

    return [authorize_page, authorize, token, metadata]
