"""A loopback OpenID Connect provider: discovery, JWKS, authorize, token and userinfo.

    async with oidc_provider(client_id="gw", client_secret="s3cret", redirect_uri=CB) as provider:
        provider.sign_in_as("1042", "ada@example.com", name="Ada Lovelace")
        # discovery at f"{provider.url}/.well-known/openid-configuration"

Wire facts (OpenID Connect Core 1.0 and Discovery 1.0, RFC 6749): the issuer is the
provider's own base URL. ``GET /authorize`` checks ``client_id`` and ``redirect_uri`` (a
mismatch is a 400 page, never a redirect), signs in "the current account" (chosen with
``sign_in_as``) and answers 302 to ``redirect_uri`` with ``code`` and ``state``, or with
``error=access_denied`` when no account is chosen. ``POST /token`` takes
``grant_type=authorization_code``; the client authenticates with ``client_secret_post`` or
HTTP Basic (form-encoded id and secret, RFC 6749 2.3.1), not both; a code works once, for
the client and ``redirect_uri`` it was issued to, for ``code_ttl`` seconds. The ID token is
RS256 with the key's ``kid``, and carries ``at_hash``. ``GET /userinfo`` wants the access
token as a Bearer token.

The knobs tests turn are plain attributes (``audience``, ``token_issuer``,
``discovery_issuer``, ``wrong_key``, ``unknown_key``, ``expired``, ``extra_claims``, ``discovery_status``,
``discovery_extra``) and two methods (``sign_in_as``, ``rotate_key``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlencode

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.upstreams.server import Recorder, Seen, serve_upstream

ALGORITHM = "RS256"
CLAIMS = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "email",
    "email_verified",
    "name",
]


@dataclass(frozen=True)
class Account:
    """The person signed in at the provider."""

    sub: str
    email: str | None
    email_verified: bool
    name: str | None


@dataclass(frozen=True)
class _Grant:
    """What an authorization code stands for."""

    account: Account
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    auth_time: int
    expires_at: float


def _new_key() -> RSAKey:
    kid = f"key-{secrets.token_hex(6)}"
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": ALGORITHM})


def _at_hash(access_token: str) -> str:
    """OpenID Connect Core 3.1.3.6: the left half of SHA-256 of the token, base64url."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def oauth_error(status: int, error: str, description: str, **headers: str) -> web.Response:
    body = {"error": error, "error_description": description}
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store", **headers})


class OidcProvider:
    """One provider with one registered client (see the module docstring for the wire)."""

    def __init__(self, *, client_id: str, client_secret: str, redirect_uri: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.url = ""
        """The base URL and issuer, ``http://127.0.0.1:<port>``, once serving."""
        self.recorder = Recorder()
        self.account: Account | None = None
        """Who ``/authorize`` signs in (None: ``error=access_denied``)."""
        self.keys: list[RSAKey] = [_new_key()]
        """Published in ``/jwks``; the first one signs."""
        self.code_ttl = 60
        self.id_token_ttl = 300
        # Knobs.
        self.discovery_issuer: str | None = None
        """``issuer`` of the discovery document (None: ``url``)."""
        self.discovery_status = 200
        """Any other status: discovery answers it with an error body."""
        self.discovery_extra: dict[str, Any] = {}
        """Extra (or replacing) fields of the discovery document."""
        self.token_issuer: str | None = None
        """``iss`` of ID tokens (None: ``url``)."""
        self.audience: str | list[str] | None = None
        """``aud`` of ID tokens (None: the client id)."""
        self.wrong_key = False
        """Sign ID tokens with a key that is not published, under the published ``kid``."""
        self.unknown_key = False
        """Sign ID tokens with a key that is not published, under its own (unknown) ``kid``."""
        self.expired = False
        """Issue ID tokens that expired half an hour ago (issued an hour ago)."""
        self.extra_claims: dict[str, Any] = {}
        """Merged into ID tokens last; a None value removes the claim."""
        # What happened.
        self.codes: dict[str, _Grant] = {}
        self.access_tokens: dict[str, Account] = {}
        self.client_auth_methods: list[str] = []
        """How each ``/token`` call authenticated: ``client_secret_post`` or ``_basic``."""
        self._stray_key = _new_key()
        self.app = self._build_app()

    @property
    def seen(self) -> list[Seen]:
        return self.recorder.seen

    def calls(self, path: str) -> int:
        """How many requests ``path`` received."""
        return sum(1 for seen in self.seen if seen.path == path)

    def sign_in_as(
        self,
        sub: str,
        email: str | None = None,
        *,
        email_verified: bool = True,
        name: str | None = None,
    ) -> Account:
        """Make this account "the current account" that ``/authorize`` signs in."""
        self.account = Account(sub, email, email_verified, name)
        return self.account

    def sign_out(self) -> None:
        self.account = None

    def rotate_key(self, keep_old: bool = False) -> str:
        """Sign with a new key (a new ``kid``) from now on; returns its kid. The old key
        leaves ``/jwks`` unless ``keep_old``."""
        key = _new_key()
        self.keys = [key, *self.keys] if keep_old else [key]
        return str(key.kid)

    def discovery(self) -> dict[str, Any]:
        url = self.url
        document: dict[str, Any] = {
            "issuer": self.discovery_issuer or url,
            "authorization_endpoint": f"{url}/authorize",
            "token_endpoint": f"{url}/token",
            "jwks_uri": f"{url}/jwks",
            "userinfo_endpoint": f"{url}/userinfo",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "grant_types_supported": ["authorization_code"],
            "claims_supported": CLAIMS,
        }
        return {**document, **self.discovery_extra}

    def id_token(self, grant: _Grant, access_token: str) -> str:
        now = int(time.time())
        issued = now - 3600 if self.expired else now
        expires = now - 1800 if self.expired else now + self.id_token_ttl
        account = grant.account
        claims: dict[str, Any] = {
            "iss": self.token_issuer or self.url,
            "sub": account.sub,
            "aud": self.audience if self.audience is not None else grant.client_id,
            "exp": expires,
            "iat": issued,
            "auth_time": grant.auth_time,
            "at_hash": _at_hash(access_token),
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        scopes = grant.scope.split()
        if "email" in scopes and account.email is not None:
            claims["email"] = account.email
            claims["email_verified"] = account.email_verified
        if "profile" in scopes and account.name is not None:
            claims["name"] = account.name
        for claim, value in self.extra_claims.items():
            if value is None:
                claims.pop(claim, None)
            else:
                claims[claim] = value
        key = self._stray_key if self.unknown_key else self.keys[0]
        signer = self._stray_key if self.wrong_key else key
        return jwt.encode({"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"}, claims, signer)

    def _client_of(self, request: web.Request, form: Any) -> tuple[str, str, str] | web.Response:
        """``(method, client_id, client_secret)``, or the error answer."""
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        in_form = "client_secret" in form
        if scheme.lower() == "basic":
            if in_form:
                return oauth_error(400, "invalid_request", "Use one client authentication method.")
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            client_id, _, client_secret = decoded.partition(":")
            return "client_secret_basic", unquote_plus(client_id), unquote_plus(client_secret)
        if in_form:
            return "client_secret_post", str(form.get("client_id", "")), str(form["client_secret"])
        return oauth_error(401, "invalid_client", "Client authentication is required.")

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self.recorder.middleware])

        async def discovery(request: web.Request) -> web.Response:
            if self.discovery_status != 200:
                return web.json_response({"error": "unavailable"}, status=self.discovery_status)
            return web.json_response(self.discovery())

        async def jwks(request: web.Request) -> web.Response:
            keys = [key.as_dict(private=False) for key in self.keys]
            return web.json_response({"keys": keys})

        async def authorize(request: web.Request) -> web.Response:
            query = request.query
            if query.get("client_id") != self.client_id:
                return web.Response(status=400, text="Unknown client_id.")
            if query.get("redirect_uri") != self.redirect_uri:
                return web.Response(status=400, text="redirect_uri is not registered.")
            answer: dict[str, str] = {}
            scope = query.get("scope", "")
            if query.get("response_type") != "code":
                answer["error"] = "unsupported_response_type"
            elif "openid" not in scope.split():
                answer["error"] = "invalid_scope"
            elif self.account is None:
                answer["error"] = "access_denied"
            else:
                code = secrets.token_urlsafe(32)
                self.codes[code] = _Grant(
                    account=self.account,
                    client_id=self.client_id,
                    redirect_uri=self.redirect_uri,
                    scope=scope,
                    nonce=query.get("nonce"),
                    auth_time=int(time.time()),
                    expires_at=time.time() + self.code_ttl,
                )
                answer["code"] = code
            if "state" in query:
                answer["state"] = query["state"]
            joiner = "&" if "?" in self.redirect_uri else "?"
            location = f"{self.redirect_uri}{joiner}{urlencode(answer)}"
            return web.Response(status=302, headers={"Location": location})

        async def token(request: web.Request) -> web.Response:
            form = await request.post()
            client = self._client_of(request, form)
            if isinstance(client, web.Response):
                return client
            method, client_id, client_secret = client
            self.client_auth_methods.append(method)
            if not (
                secrets.compare_digest(client_id.encode(), self.client_id.encode())
                and secrets.compare_digest(client_secret.encode(), self.client_secret.encode())
            ):
                challenge = {"WWW-Authenticate": 'Basic realm="oidc"'} if "basic" in method else {}
                return oauth_error(
                    401, "invalid_client", "Client authentication failed.", **challenge
                )
            grant_type = str(form.get("grant_type", ""))
            if grant_type != "authorization_code":
                return oauth_error(400, "unsupported_grant_type", f"Not supported: {grant_type}")
            grant = self.codes.pop(str(form.get("code", "")), None)  # a code works once
            if grant is None or grant.expires_at < time.time():
                return oauth_error(400, "invalid_grant", "The code is unknown, used or expired.")
            if grant.client_id != client_id or form.get("redirect_uri") != grant.redirect_uri:
                return oauth_error(400, "invalid_grant", "The code was issued to another client.")
            access_token = secrets.token_urlsafe(32)
            self.access_tokens[access_token] = grant.account
            body = {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": grant.scope,
                "id_token": self.id_token(grant, access_token),
            }
            return web.json_response(body, headers={"Cache-Control": "no-store"})

        async def userinfo(request: web.Request) -> web.Response:
            scheme, _, access_token = request.headers.get("Authorization", "").partition(" ")
            account = self.access_tokens.get(access_token.strip())
            if scheme.lower() != "bearer" or account is None:
                return web.Response(
                    status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
                )
            body: dict[str, Any] = {"sub": account.sub}
            if account.email is not None:
                body |= {"email": account.email, "email_verified": account.email_verified}
            if account.name is not None:
                body["name"] = account.name
            return web.json_response(body)

        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/jwks", jwks)
        app.router.add_get("/authorize", authorize)
        app.router.add_post("/token", token)
        app.router.add_get("/userinfo", userinfo)
        app.router.add_post("/userinfo", userinfo)
        return app


@asynccontextmanager
async def oidc_provider(
    *, client_id: str, client_secret: str, redirect_uri: str
) -> AsyncIterator[OidcProvider]:
    """An ``OidcProvider`` serving on 127.0.0.1 (a port the kernel picks); its issuer is
    ``provider.url``."""
    provider = OidcProvider(
        client_id=client_id, client_secret=client_secret, redirect_uri=redirect_uri
    )
    async with serve_upstream(provider.app, provider.recorder) as upstream:
        provider.url = upstream.url
        yield provider
