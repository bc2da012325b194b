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
from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler

from gateway.oauth.consent import browser_cookie, browser_id, new_browser_id, same_origin
from gateway.oauth.page import page
from gateway.oauth.runtime import LoginRefused, OAuthRuntime, basic_client_id
from gateway.oauth.server import GatewayAuthorizationServer, OAuthAnswer, form_request

__all__ = ["AUTHORIZE_PATHS", "TOKEN_PATHS", "oauth_handlers"]

AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a password)
AUTHORIZE_PATHS = (AUTHORIZE_PATH, "/chatgpt/oauth/authorize")
TOKEN_PATHS = (TOKEN_PATH, "/chatgpt/oauth/token")

EXPIRED = "This form expired: open the authorization link again."
CROSS_SITE = "This form was sent from another site."
WRONG_LOGIN = "Wrong username or password."


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

    async def consent(
        server: GatewayAuthorizationServer, request: Request[Any, Any, Any], values: dict[str, str]
    ) -> tuple[Any, Any] | Response[str]:
        """authlib's checked request and grant, or the error page (never a redirect: the
        client or its redirect_uri may be what is wrong)."""
        oauth_request = form_request(
            request.method, f"{server.spec.issuer}{AUTHORIZE_PATH}", values, request.headers
        )
        try:
            grant = await asyncio.to_thread(server.get_consent_grant, oauth_request)
        except OAuth2Error as error:
            return page(400, f"{error.error}: {error.description or ''}")
        return oauth_request, grant

    @get(list(AUTHORIZE_PATHS))
    async def authorize_page(request: Request[Any, Any, Any]) -> Response[str]:
        server = await require_server()
        values = {key: value for key, value in request.query_params.items()}
        checked = await consent(server, request, values)
        if isinstance(checked, Response):
            return checked
        _, grant = checked
        # The same id for every tab of this browser; a new one for a browser without it.
        browser = browser_id(request.cookies) or new_browser_id()
        values["csrf"] = await runtime.forms.issue(browser, values)
        action = _form_path(request)
        return page(
            200,
            spec=server.spec,
            client=grant.client.spec.id,
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
