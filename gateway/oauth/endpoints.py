"""The authorization server's HTTP surface on Litestar: authorize (login + consent page),
token, and RFC 8414 metadata. authlib does the protocol; this is the glue."""

from __future__ import annotations

import asyncio
from typing import Any

import jinja2
import msgspec
from authlib.oauth2 import OAuth2Error
from litestar import MediaType, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler

from gateway.oauth.runtime import OAuthRuntime
from gateway.oauth.server import GatewayAuthorizationServer, OAuthAnswer, form_request

__all__ = ["oauth_handlers"]

_PAGE = jinja2.Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Sign in</title>
<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}
input,button{width:100%;padding:.5rem;margin:.25rem 0;box-sizing:border-box}
.error{color:#b00020}</style></head>
<body>
<h1>Sign in</h1>
{% if error %}<p class="error">{{ error }}</p>{% endif %}
{% if client %}<p><b>{{ client }}</b> asks to:</p>
<ul>{% for scope, text in scopes %}<li>{{ text }} <small>({{ scope }})</small></li>{% endfor %}</ul>
<form method="post" action="/oauth/authorize">
{% for name, value in hidden %}
<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
<input name="username" placeholder="Username" required>
<input name="password" type="password" placeholder="Password" required>
<button name="decision" value="allow">Allow</button>
<button name="decision" value="deny" formnovalidate>Deny</button>
</form>{% endif %}
</body></html>
"""
)
_LOGIN_FIELDS = ("username", "password", "decision")


def _page(
    status: int,
    values: dict[str, str],
    server: GatewayAuthorizationServer | None,
    client: str | None,
    error: str | None,
) -> Response[str]:
    scopes: list[tuple[str, str]] = []
    if server is not None:
        asked = values.get("scope", "").split() or list(server.spec.scopes)
        scopes = [(scope, server.spec.scopes.get(scope, scope)) for scope in asked]
    hidden = [(name, value) for name, value in values.items() if name not in _LOGIN_FIELDS]
    html = _PAGE.render(client=client, scopes=scopes, hidden=hidden, error=error)
    return Response(
        html,
        status_code=status,
        media_type=MediaType.HTML,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
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
            request.method, f"{server.spec.issuer}/oauth/authorize", values, request.headers
        )
        try:
            grant = await asyncio.to_thread(server.get_consent_grant, oauth_request)
        except OAuth2Error as error:
            return _page(400, values, None, None, f"{error.error}: {error.description or ''}")
        return oauth_request, grant

    @get("/oauth/authorize")
    async def authorize_page(request: Request[Any, Any, Any]) -> Response[str]:
        server = await require_server()
        values = {key: value for key, value in request.query_params.items()}
        checked = await consent(server, request, values)
        if isinstance(checked, Response):
            return checked
        _, grant = checked
        # A one-time form token: a login form posted from elsewhere (login CSRF) is refused.
        values["csrf"] = await runtime.form_token()
        return _page(200, values, server, grant.client.spec.id, None)

    @post("/oauth/authorize", status_code=302)
    async def authorize(request: Request[Any, Any, Any]) -> Response[Any]:
        server = await require_server()
        form = await request.form()
        values = {key: str(value) for key, value in form.items()}
        checked = await consent(server, request, values)
        if isinstance(checked, Response):
            return checked
        oauth_request, grant = checked
        if not await runtime.take_form_token(values.get("csrf", "")):
            return _page(
                400, {}, None, None, "This form expired: open the authorization link again."
            )
        values["csrf"] = await runtime.form_token()  # for the page shown again on a mistake
        user_id = None
        if values.get("decision") != "deny":
            user_id = await runtime.login(values.get("username", ""), values.get("password", ""))
            if user_id is None:
                return _page(
                    401, values, server, grant.client.spec.id, "Wrong username or password."
                )
        # grant_user None: the user said no; authlib redirects with error=access_denied.
        answer = await asyncio.to_thread(
            server.create_authorization_response, oauth_request, user_id, grant
        )
        return _answer(answer)

    @post("/oauth/token", status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[bytes]:
        server = await require_server()
        form = await request.form()
        values = {key: str(value) for key, value in form.items()}
        oauth_request = form_request(
            "POST", f"{server.spec.issuer}/oauth/token", values, request.headers
        )
        answer = await asyncio.to_thread(server.create_token_response, oauth_request)
        return _answer(answer)

    @get("/.well-known/oauth-authorization-server")
    async def metadata() -> dict[str, Any]:
        server = await require_server()
        issuer = server.spec.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oauth/authorize",
            "token_endpoint": f"{issuer}/oauth/token",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "scopes_supported": list(server.spec.scopes),
        }

    return [authorize_page, authorize, token, metadata]
