"""A user's account on the gateway, on Litestar: sign in (a password, or an OpenID
Connect provider), sign out, and /connections (see, connect and disconnect the upstreams
that take the user's own credentials).

Every page that changes something is a POST from this origin carrying the session's form
token. A provider's redirect back is accepted only by the browser that started it (its
state rides in a cookie too), so nobody can sign a victim in to the attacker's account.
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.handlers import HTTPRouteHandler
from litestar.response import Redirect

from gateway.logs import logger
from gateway.oauth.consent import origin_of, same_origin
from gateway.oauth.identity import IdentityRefused
from gateway.oauth.runtime import LoginRefused, OAuthRuntime
from gateway.oauth.sessions import Session, safe_next, session_cookie
from gateway.oauth.tokens import digest
from gateway.oauth.views import (
    ConnectionRow,
    connect_page,
    connections_page,
    message_page,
    signin_page,
)
from gateway.snapshot import ConnectableAuth, OAuthSpec, UserTokenSpec
from gateway.upstream.credentials import CredentialRejected

__all__ = [
    "CONNECTIONS_PATH",
    "IDENTITY_CALLBACK_PATH",
    "IDENTITY_START_PATH",
    "SIGNIN_PATH",
    "account_handlers",
    "connection_title",
    "identity_start_url",
    "locked_out",
    "peer",
]

SIGNIN_PATH = "/oauth/signin"
SIGNOUT_PATH = "/oauth/signout"
IDENTITY_START_PATH = "/oauth/identity/start"
IDENTITY_CALLBACK_PATH = "/oauth/identity/callback"
CONNECTIONS_PATH = "/connections"
STATE_COOKIE = "gateway_signin_state"
STATE_TTL = 600

WRONG_LOGIN = "Wrong username or password."
CROSS_SITE = "This form was sent from another site."
EXPIRED = "This form expired: open the page again."
OTHER_BROWSER = "This sign-in was started in another browser, or it expired: start again."


def peer(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def locked_out(seconds: int) -> str:
    return f"Too many failed sign-ins. Try again in {seconds} seconds."


def identity_start_url(next_path: str) -> str:
    return f"{IDENTITY_START_PATH}?{urlencode({'next': next_path})}"


def connection_title(spec: ConnectableAuth) -> str:
    """How pages name an upstream's connection."""
    if isinstance(spec, UserTokenSpec):
        return spec.title
    return spec.upstream.replace("_", " ").title() if spec.upstream.islower() else spec.upstream


def _since(timestamp: float | None) -> str | None:
    return None if timestamp is None else time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def _here(request: Request[Any, Any, Any]) -> str:
    """The path and query the request was made to (to come back to after signing in)."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    return request.scope["path"] + (f"?{query}" if query else "")


def account_handlers(runtime: OAuthRuntime) -> list[HTTPRouteHandler]:
    def spec_or_none() -> OAuthSpec | None:
        return runtime.current().oauth

    def service() -> str:
        return str(runtime.current().openapi.get("info", {}).get("title") or "this service")

    def foreign(request: Request[Any, Any, Any], spec: OAuthSpec) -> bool:
        origin = request.headers.get("origin")
        return origin is not None and not same_origin(origin, spec.issuer)

    async def start_session(spec: OAuthSpec, user: str, name: str) -> Cookie:
        session_id = await runtime.sessions.start(user, name, spec.session_ttl)
        return session_cookie(session_id, spec.issuer, int(spec.session_ttl))

    def to_signin(request: Request[Any, Any, Any]) -> Response[Any]:
        return Redirect(f"{SIGNIN_PATH}?{urlencode({'next': _here(request)})}", status_code=303)

    async def signed_in_form(
        request: Request[Any, Any, Any], spec: OAuthSpec
    ) -> tuple[Session, dict[str, str]] | Response[Any]:
        """The session and the form of a POST that is allowed to change something."""
        if foreign(request, spec):
            return message_page(403, "Not allowed", CROSS_SITE)
        session = await runtime.sessions.get(request.cookies)
        if session is None:
            return message_page(401, "Sign in first", "Your sign-in expired: sign in again.")
        form = await request.form()
        values = {key: str(value) for key, value in form.items()}
        if not session.form_token_matches(values.get("csrf", "")):
            return message_page(400, "This form expired", EXPIRED)
        return session, values

    def no_oauth() -> Response[Any]:
        return message_page(404, "Not found", "This gateway has no sign-in (`oauth:`).")

    # --- signing in and out ----------------------------------------------------------------

    @get(SIGNIN_PATH)
    async def signin_form(request: Request[Any, Any, Any]) -> Response[Any]:
        spec = spec_or_none()
        if spec is None:
            return no_oauth()
        next_path = safe_next(request.query_params.get("next"), CONNECTIONS_PATH)
        if await runtime.sessions.get(request.cookies) is not None:
            return Redirect(next_path, status_code=303)
        return signin_page(
            200,
            service(),
            next_path,
            identity=spec.identity.name if spec.identity else None,
            identity_url=identity_start_url(next_path),
            passwords=bool(spec.users or spec.login),
        )

    @post(SIGNIN_PATH, status_code=303)
    async def signin(request: Request[Any, Any, Any]) -> Response[Any]:
        spec = spec_or_none()
        if spec is None:
            return no_oauth()
        if foreign(request, spec):
            return message_page(403, "Not allowed", CROSS_SITE)
        form = await request.form()
        next_path = safe_next(str(form.get("next") or ""), CONNECTIONS_PATH)
        username, password = str(form.get("username") or ""), str(form.get("password") or "")
        try:
            user = await runtime.sign_in(username, password, peer(request))
        except LoginRefused as refused:
            wait = refused.retry_after
            return signin_page(
                401 if wait is None else 429,
                service(),
                next_path,
                identity=spec.identity.name if spec.identity else None,
                identity_url=identity_start_url(next_path),
                passwords=bool(spec.users or spec.login),
                error=WRONG_LOGIN if wait is None else locked_out(wait),
                headers={} if wait is None else {"Retry-After": str(wait)},
            )
        cookie = await start_session(spec, user, username)
        return Redirect(next_path, status_code=303, cookies=[cookie])

    @post(SIGNOUT_PATH, status_code=303)
    async def signout(request: Request[Any, Any, Any]) -> Response[Any]:
        spec = spec_or_none()
        if spec is None:
            return no_oauth()
        checked = await signed_in_form(request, spec)
        if isinstance(checked, Response):
            return checked
        await runtime.sessions.end(request.cookies)
        return message_page(
            200,
            "Signed out",
            notice="You are signed out of this gateway.",
            next_path=SIGNIN_PATH,
            cookies=[session_cookie("", spec.issuer, 0)],
        )

    @get(IDENTITY_START_PATH)
    async def identity_start(request: Request[Any, Any, Any]) -> Response[Any]:
        oidc = runtime.identity()
        spec = spec_or_none()
        if oidc is None or spec is None:
            return message_page(404, "Not found", "Sign-in with a provider is not set up here.")
        next_path = safe_next(request.query_params.get("next"), CONNECTIONS_PATH)
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        pending = msgspec.json.encode({"nonce": nonce, "next": next_path})
        await runtime.sessions.store.set(
            f"oidc:state:{digest(state)}", pending, expires_in=STATE_TTL
        )
        try:
            url = await oidc.start(state, nonce)
        except IdentityRefused as refused:
            return message_page(502, "Sign-in failed", refused.detail)
        cookie = Cookie(
            key=STATE_COOKIE,
            value=state,
            path=IDENTITY_CALLBACK_PATH,
            max_age=STATE_TTL,
            httponly=True,
            samesite="lax",
            secure=spec.issuer.startswith("https://"),
        )
        return Redirect(url, status_code=302, cookies=[cookie])

    @get(IDENTITY_CALLBACK_PATH)
    async def identity_callback(request: Request[Any, Any, Any]) -> Response[Any]:
        oidc = runtime.identity()
        spec = spec_or_none()
        if oidc is None or spec is None:
            return message_page(404, "Not found", "Sign-in with a provider is not set up here.")
        query = request.query_params
        state = str(query.get("state") or "")
        expected = request.cookies.get(STATE_COOKIE, "")
        forget = session_cookie("", spec.issuer, 0)
        forget.key, forget.path = STATE_COOKIE, IDENTITY_CALLBACK_PATH
        if not state or not expected or not hmac.compare_digest(state, expected):
            return message_page(400, "Sign-in failed", OTHER_BROWSER, cookies=[forget])
        key = f"oidc:state:{digest(state)}"
        pending = await runtime.sessions.store.get(key)
        await runtime.sessions.store.delete(key)  # a state works once
        if pending is None:
            return message_page(400, "Sign-in failed", OTHER_BROWSER, cookies=[forget])
        started = msgspec.json.decode(pending)
        if query.get("error"):
            detail = f"The provider did not sign you in ({str(query['error'])[:100]})."
            return message_page(403, "Sign-in failed", detail, cookies=[forget])
        try:
            signed = await oidc.finish(str(query.get("code") or ""), started["nonce"])
        except IdentityRefused as refused:
            logger.info("oauth: an OpenID sign-in was refused: %s", refused.detail)
            return message_page(403, "Sign-in failed", refused.detail, cookies=[forget])
        name = signed.email or signed.name or signed.user_id
        cookie = await start_session(spec, signed.user_id, name)
        return Redirect(str(started["next"]), status_code=303, cookies=[cookie, forget])

    # --- connections -----------------------------------------------------------------------

    def connectable(name: str) -> ConnectableAuth | None:
        return runtime.current().connections.get(name)

    def not_found(name: str) -> Response[Any]:
        return message_page(
            404,
            "Not found",
            f"No upstream called {name[:64]!r} takes your own account here.",
            next_path=CONNECTIONS_PATH,
        )

    def unconfigured(name: str) -> str | None:
        return runtime.current().unconfigured_connections.get(name)

    @get(CONNECTIONS_PATH)
    async def connections(request: Request[Any, Any, Any]) -> Response[Any]:
        if spec_or_none() is None:
            return no_oauth()
        session = await runtime.sessions.get(request.cookies)
        if session is None:
            return to_signin(request)
        snapshot = runtime.current()
        rows = [
            ConnectionRow(
                name,
                connection_title(spec),
                _since(await runtime.connections.connected_at(spec, session.user))
                if name not in snapshot.unconfigured_connections
                else None,
                available=name not in snapshot.unconfigured_connections,
            )
            for name, spec in snapshot.connections.items()
        ]
        notice = None
        for verb in ("connected", "disconnected"):
            done = snapshot.connections.get(str(request.query_params.get(verb) or ""))
            if done is not None:
                notice = f"{connection_title(done)} is {verb}."
        return connections_page(rows, session.name, session.csrf, notice)

    @get(f"{CONNECTIONS_PATH}/{{upstream:str}}")
    async def connect_form(request: Request[Any, Any, Any]) -> Response[Any]:
        upstream = str(request.path_params["upstream"])
        if spec_or_none() is None:
            return no_oauth()
        spec = connectable(upstream)
        if spec is None:
            return not_found(upstream)
        session = await runtime.sessions.get(request.cookies)
        if session is None:
            return to_signin(request)
        next_path = safe_next(request.query_params.get("next"), CONNECTIONS_PATH)
        if (problem := unconfigured(upstream)) is not None:
            return message_page(503, "Not available", problem, next_path=next_path)
        return _connect_form(200, spec, next_path, session)

    def _connect_form(
        status: int,
        spec: ConnectableAuth,
        next_path: str,
        session: Session,
        error: str | None = None,
    ) -> Response[Any]:
        title = connection_title(spec)
        if isinstance(spec, UserTokenSpec):
            return connect_page(
                status,
                spec.upstream,
                title,
                next_path,
                session.name,
                session.csrf,
                paste=True,
                instructions=spec.instructions,
                max_length=spec.max_length,
                error=error,
            )
        return connect_page(
            status,
            spec.upstream,
            title,
            next_path,
            session.name,
            session.csrf,
            paste=False,
            provider=origin_of(spec.authorize_url),
            error=error,
        )

    async def connection_form(
        request: Request[Any, Any, Any],
    ) -> tuple[str, ConnectableAuth, Session, dict[str, str]] | Response[Any]:
        """A POST about one of the user's connections: the upstream's name and how it is
        connected, the session and the form (or the page saying why not)."""
        upstream = str(request.path_params["upstream"])
        oauth = spec_or_none()
        if oauth is None:
            return no_oauth()
        spec = connectable(upstream)
        if spec is None:
            return not_found(upstream)
        checked = await signed_in_form(request, oauth)
        if isinstance(checked, Response):
            return checked
        return (upstream, spec, *checked)

    @post(f"{CONNECTIONS_PATH}/{{upstream:str}}", status_code=303)
    async def connect(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await connection_form(request)
        if isinstance(form, Response):
            return form
        upstream, spec, session, values = form
        if (problem := unconfigured(upstream)) is not None:
            return message_page(503, "Not available", problem, next_path=CONNECTIONS_PATH)
        done = f"{CONNECTIONS_PATH}?{urlencode({'connected': upstream})}"
        next_path = safe_next(values.get("next"), CONNECTIONS_PATH)
        back = done if next_path == CONNECTIONS_PATH else next_path
        if isinstance(spec, UserTokenSpec):
            try:
                await runtime.connections.save_pasted(spec, session.user, values.get("token", ""))
            except CredentialRejected as rejected:
                return _connect_form(400, spec, next_path, session, str(rejected))
            return Redirect(back, status_code=303)
        url = await runtime.connections.start_oauth(spec, session.user, back)
        return Redirect(url, status_code=303)

    @post(f"{CONNECTIONS_PATH}/{{upstream:str}}/disconnect", status_code=303)
    async def disconnect(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await connection_form(request)
        if isinstance(form, Response):
            return form
        upstream, spec, session, _ = form
        await runtime.connections.disconnect(spec, session.user)
        return Redirect(
            f"{CONNECTIONS_PATH}?{urlencode({'disconnected': upstream})}", status_code=303
        )

    return [
        signin_form,
        signin,
        signout,
        identity_start,
        identity_callback,
        connections,
        connect_form,
        connect,
        disconnect,
    ]
