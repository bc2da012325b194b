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
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    InsecureTransportError,
    InvalidRequestError,
    UnsupportedResponseTypeError,
)
from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler

from gateway.logs import logger
from gateway.oauth.accounts import (
    CONNECTIONS_PATH,
    connection_title,
    identity_start_url,
    locked_out,
    peer,
)
from gateway.oauth.answers import INSECURE, json_answer
from gateway.oauth.client_endpoints import REGISTER_PATH, REVOKE_PATH, client_form_endpoint
from gateway.oauth.consent import browser_cookie, browser_id, new_browser_id, same_origin
from gateway.oauth.page import ConnectionState, page
from gateway.oauth.registration import client_metadata_rules
from gateway.oauth.runtime import LoginRefused, OAuthRuntime
from gateway.oauth.server import GatewayAuthorizationServer, OAuthAnswer, form_request
from gateway.oauth.sessions import Session, session_cookie

__all__ = ["AUTHORIZE_PATHS", "TOKEN_PATHS", "ServerError", "oauth_handlers"]

AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a password)
AUTHORIZE_PATHS = (AUTHORIZE_PATH, "/chatgpt/oauth/authorize")
TOKEN_PATHS = (TOKEN_PATH, "/chatgpt/oauth/token")

EXPIRED = "This form expired: open the authorization link again."
CROSS_SITE = "This form was sent from another site."
WRONG_LOGIN = "Wrong username or password."
SIGN_IN_FIRST = "Sign in first."
_FORM_ONLY = ("csrf", "username", "password", "decision")


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


def _form_path(request: Request[Any, Any, Any]) -> str:
    """Where the consent form posts: the authorize path the page was opened at."""
    path = request.scope["path"]
    return path if path in AUTHORIZE_PATHS else AUTHORIZE_PATH


def _authorize_url(request: Request[Any, Any, Any], values: dict[str, str]) -> str:
    """The authorization request as a GET of this page (to come back to after signing in
    or connecting an upstream)."""
    query = {key: value for key, value in values.items() if key not in _FORM_ONLY}
    return f"{_form_path(request)}?{urlencode(query)}"


def _redirect(answer: OAuthAnswer, server: GatewayAuthorizationServer) -> Response[bytes]:
    """An authorization response, with `iss` (RFC 9207) on its redirect: a client talking
    to several servers can tell which one answered (mix-up attacks)."""
    headers = [
        (name, add_params_to_uri(value, [("iss", server.spec.issuer)]))
        if name.lower() == "location"
        else (name, value)
        for name, value in answer.headers
    ]
    return json_answer(OAuthAnswer(answer.status, answer.body, headers))


def oauth_handlers(runtime: OAuthRuntime) -> list[HTTPRouteHandler]:
    async def require_server() -> GatewayAuthorizationServer:
        server = await runtime.server()
        if server is None:
            raise NotFoundException("this gateway has no `oauth:` section")
        return server

    def service() -> str:
        """What the consent page says the user signs in to: the gateway's `info.title`."""
        return str(runtime.current().openapi.get("info", {}).get("title") or "this service")

    async def needed_connections(
        server: GatewayAuthorizationServer, user: str, values: dict[str, str], back: str
    ) -> list[ConnectionState]:
        """The upstreams the asked scopes call with the user's own account, and whether
        ``user`` has connected each."""
        snapshot = runtime.current()
        scopes = values.get("scope", "").split() or list(server.spec.scopes)
        names = dict.fromkeys(
            name for scope in scopes for name in snapshot.scope_connections.get(scope, ())
        )
        states = []
        for name in names:
            spec = snapshot.connections[name]
            connected = await runtime.connections.connected_at(spec, user) is not None
            link = f"{CONNECTIONS_PATH}/{name}?{urlencode({'next': back})}"
            states.append(ConnectionState(name, connection_title(spec), connected, link))
        return states

    async def consent_page(
        status: int,
        server: GatewayAuthorizationServer,
        request: Request[Any, Any, Any],
        grant: Any,
        values: dict[str, str],
        session: Session | None,
        error: str | None = None,
        cookies: list[Any] | None = None,
        headers: dict[str, str] | None = None,
        user: tuple[str, str] | None = None,
    ) -> Response[Any]:
        """The form: sign-in fields (or who is signed in), the scopes, the connections.
        ``user``: (user id, name) signed in by this very request."""
        back = _authorize_url(request, values)
        signed_in = user or ((session.user, session.name) if session else None)
        connections = (
            await needed_connections(server, signed_in[0], values, back) if signed_in else []
        )
        return page(
            status,
            error,
            spec=server.spec,
            client=grant.client.title,
            service=service(),
            values=values,
            action=_form_path(request),
            cookies=cookies or [],
            headers=headers,
            signed_in=signed_in[1] if signed_in else None,
            connections=connections,
            identity_url=identity_start_url(back),
        )

    async def consent(
        server: GatewayAuthorizationServer, request: Request[Any, Any, Any], values: dict[str, str]
    ) -> tuple[Any, Any] | Response[Any]:
        """authlib's checked request and grant, or the error (RFC 6749 4.1.2.1): a page when
        the client is unknown or the redirect_uri missing or not registered (never a
        redirect there), else a redirect to the client with `error`, `error_description`
        and `state`. authlib sets the error's redirect_uri only once both were checked."""
        try:
            oauth_request = form_request(
                request.method, f"{server.spec.issuer}{AUTHORIZE_PATH}", values, request.headers
            )
        except InsecureTransportError:
            return page(503, INSECURE)
        try:
            grant = await asyncio.to_thread(server.get_consent_grant, oauth_request)
        except OAuth2Error as raised:
            error = _described(raised, values)
            if error.redirect_uri:
                return _redirect(server.handle_error_response(oauth_request, error), server)
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
        return _redirect(server.handle_error_response(oauth_request, error), server)

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
        try:
            session = await runtime.sessions.get(request.cookies)
            return await consent_page(
                200,
                server,
                request,
                grant,
                values,
                session,
                cookies=[browser_cookie(browser, server.spec.issuer, action)],
            )
        except Exception:
            return server_error(server, oauth_request, grant)

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
        """The checked form: its token, then Allow (signed in already, or signing in with
        the form's password) or Deny. A password sign-in also starts a session; when the
        asked scopes need upstreams the user has not connected, the page comes back
        signed in, listing them, before anything is granted."""
        browser = browser_id(request.cookies)
        if browser is None or not await runtime.forms.take(values.get("csrf", ""), browser, values):
            return page(400, EXPIRED)
        # For the page shown again on a mistake: the same browser, the same request.
        values["csrf"] = await runtime.forms.issue(browser, values)
        session = await runtime.sessions.get(request.cookies)
        user_id = None
        if values.get("decision") != "deny":
            username, password = values.get("username", ""), values.get("password", "")
            if session is not None and not username:
                user_id = session.user
            elif not username and not password:
                return await consent_page(401, server, request, grant, values, None, SIGN_IN_FIRST)
            else:
                try:
                    user_id = await runtime.sign_in(username, password, peer(request))
                except LoginRefused as refused:
                    wait = refused.retry_after
                    return await consent_page(
                        401 if wait is None else 429,
                        server,
                        request,
                        grant,
                        values,
                        None,
                        WRONG_LOGIN if wait is None else locked_out(wait),
                        headers={} if wait is None else {"Retry-After": str(wait)},
                    )
                spec = server.spec
                started = await runtime.sessions.start(user_id, username, spec.session_ttl)
                cookie = session_cookie(started, spec.issuer, int(spec.session_ttl))
                back = _authorize_url(request, values)
                missing = [
                    state
                    for state in await needed_connections(server, user_id, values, back)
                    if not state.connected
                ]
                if missing:
                    return await consent_page(
                        200,
                        server,
                        request,
                        grant,
                        values,
                        None,
                        cookies=[cookie],
                        user=(user_id, username),
                    )
                answer = await asyncio.to_thread(
                    server.create_authorization_response, oauth_request, user_id, grant
                )
                response = _redirect(answer, server)
                response.cookies.append(cookie)
                return response
        # grant_user None: the user said no; authlib redirects with error=access_denied.
        answer = await asyncio.to_thread(
            server.create_authorization_response, oauth_request, user_id, grant
        )
        return _redirect(answer, server)

    @post(list(TOKEN_PATHS), status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[bytes]:
        server = await require_server()
        return await client_form_endpoint(
            runtime, request, f"{server.spec.issuer}{TOKEN_PATH}", server.create_token_response
        )

    @get("/.well-known/oauth-authorization-server")
    async def metadata() -> dict[str, Any]:
        server = await require_server()
        issuer = server.spec.issuer
        registration = server.spec.registration
        rules = client_metadata_rules(server.spec)
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}{AUTHORIZE_PATH}",
            "token_endpoint": f"{issuer}{TOKEN_PATH}",
            **(
                {"registration_endpoint": f"{issuer}{REGISTER_PATH}"}
                if registration.dynamic
                else {}
            ),
            "revocation_endpoint": f"{issuer}{REVOKE_PATH}",
            "response_types_supported": rules["response_types_supported"],
            "grant_types_supported": rules["grant_types_supported"],
            "token_endpoint_auth_methods_supported": rules["token_endpoint_auth_methods_supported"],
            "revocation_endpoint_auth_methods_supported": rules[
                "token_endpoint_auth_methods_supported"
            ],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": registration.metadata_documents,
            "scopes_supported": rules["scopes_supported"],
        }

    return [authorize_page, authorize, token, metadata]
