"""Per process: the authorization server for the current config, logins, token checks."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway import metrics
from gateway.host.invoke import Returned, invoke
from gateway.host.runtime import PluginHost
from gateway.logs import logger
from gateway.oauth.clients import Client, ClientRegistry
from gateway.oauth.consent import ConsentForms
from gateway.oauth.identity import OpenIdSignIn
from gateway.oauth.server import GatewayAuthorizationServer
from gateway.oauth.sessions import Sessions
from gateway.oauth.tokens import OAuthTokens, digest
from gateway.plugin import PluginRequest
from gateway.snapshot import IdentitySpec, OAuthSpec, Snapshot
from gateway.store.throttle import Throttle
from gateway.upstream.connections import Connections

__all__ = ["LoginRefused", "OAuthRuntime", "TokenGrant", "TokenRefused", "basic_client_id"]


class LoginRefused(Exception):
    """A sign-in that did not work: wrong credentials, or (``retry_after``) too many
    failures from this address or for this username."""

    def __init__(self, retry_after: int | None = None) -> None:
        super().__init__("locked out" if retry_after else "wrong credentials")
        self.retry_after = retry_after


def basic_client_id(authorization: str | None) -> str | None:
    """The client id of ``Authorization: Basic``, or None."""
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, separator, _ = decoded.partition(":")
    return client_id if separator else None


class TokenRefused(Exception):
    """A bearer token that does not open a route: 401 (invalid, expired) or 403 (scope)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail

    @property
    def challenge(self) -> str:
        return f'Bearer realm="gateway", error="{self.error}", error_description="{self.detail}"'


@dataclass(frozen=True)
class TokenGrant:
    user_id: str
    client_id: str
    scopes: frozenset[str]
    subject: str
    """The token's hash (for rate limits), never the token."""
    resource: str | None = None
    """What the token was issued for (RFC 8707); None: the HTTP routes."""


class OAuthRuntime:
    def __init__(self, host: PluginHost, current: Callable[[], Snapshot]) -> None:
        backend = host.backend
        self.tokens = OAuthTokens(backend.store, backend.locks)
        self.forms = ConsentForms(backend.store, backend.locks)
        self.sessions = Sessions(backend.store)
        upstreams = host.upstreams
        self.connections = Connections(upstreams.tokens, upstreams.credentials)
        self._identity: tuple[IdentitySpec, OpenIdSignIn] | None = None
        self.throttle = Throttle(backend.store, backend.limiter)
        self.host = host
        self.current = current
        self._server: tuple[OAuthSpec, GatewayAuthorizationServer] | None = None
        self._lock = asyncio.Lock()

    async def server(self) -> GatewayAuthorizationServer | None:
        """The server for the current `oauth:` settings (rebuilt when they change)."""
        spec = self.current().oauth
        if spec is None:
            return None
        if self._server is not None and self._server[0] is spec:
            return self._server[1]
        async with self._lock:
            if self._server is not None and self._server[0] is spec:
                return self._server[1]
            clients = {}
            for client in spec.clients:
                client_id, secret_sha256, new_secret = await self.tokens.client_credentials(client)
                clients[client_id] = Client(
                    client_id, client.id, client.scopes, secret_sha256, spec=client
                )
                self._announce(spec, client.id, client_id, new_secret)
            registry = ClientRegistry(spec, clients, self.host.backend.store)
            if not spec.users and spec.login is None:
                logger.warning("oauth: no users and no login_handler: nobody can log in yet")
            server = GatewayAuthorizationServer(
                spec, registry, self.tokens, asyncio.get_running_loop()
            )
            self._server = (spec, server)
            return server

    @staticmethod
    def _announce(spec: OAuthSpec, name: str, client_id: str, new_secret: str | None) -> None:
        logger.info(
            "oauth client %s: client_id %s, authorization URL %s/oauth/authorize, "
            "token URL %s/oauth/token, scopes: %s",
            name,
            client_id,
            spec.issuer,
            spec.issuer,
            " ".join(spec.scopes),
        )
        if new_secret is not None:
            # Shown once, when generated (as the OMI plugin does): paste it into ChatGPT.
            # Only its hash is kept; lose it and delete the client's key to get a new one.
            print(
                f"\n  OAuth client `{name}` created. Paste into the GPT's Action settings:\n"
                f"    Client ID:         {client_id}\n"
                f"    Client Secret:     {new_secret}\n"
                f"    Authorization URL: {spec.issuer}/oauth/authorize\n"
                f"    Token URL:         {spec.issuer}/oauth/token\n"
                f"    Scope:             {' '.join(spec.scopes)}\n"
                "  The secret is not shown again.\n",
                flush=True,
            )

    def identity(self) -> OpenIdSignIn | None:
        """The OpenID sign-in of the current `oauth.identity` (its discovery and keys
        cached until the settings change)."""
        spec = self.current().oauth
        if spec is None or spec.identity is None:
            return None
        if self._identity is None or self._identity[0] != spec.identity:
            self._identity = (spec.identity, OpenIdSignIn(spec.identity))
        return self._identity[1]

    async def sign_in(self, username: str, password: str, ip: str) -> str:
        """The user id for these credentials; failures are throttled per address and per
        username (raises :class:`LoginRefused`)."""
        if (wait := await self.throttle.blocked("login", ip, username)) is not None:
            raise LoginRefused(max(1, math.ceil(wait)))
        user_id = await self.login(username, password)
        if user_id is not None:
            return user_id
        metrics.auth_failed("login")
        limits = self.current().failed_auth
        lockout = await self.throttle.failed("login", ip, username, limits.failures, limits.window)
        raise LoginRefused(max(1, math.ceil(lockout)) if lockout is not None else None)

    async def client_blocked(self, ip: str, client_id: str | None) -> int | None:
        """Seconds until this address (or client id) may authenticate again, or None."""
        wait = await self.throttle.blocked("client", ip, client_id)
        return None if wait is None else max(1, math.ceil(wait))

    async def client_failed(self, ip: str, client_id: str | None) -> int | None:
        """Count a failed client authentication; the lockout in seconds if it starts now."""
        metrics.auth_failed("client")
        limits = self.current().failed_auth
        lockout = await self.throttle.failed(
            "client", ip, client_id, limits.failures, limits.window
        )
        return None if lockout is None else max(1, math.ceil(lockout))

    async def login(self, username: str, password: str) -> str | None:
        """The user id for these credentials, or None."""
        spec = self.current().oauth
        if spec is None:
            return None
        found = spec.users.get(username)
        if found is not None:
            if hmac.compare_digest(digest(password), digest(found[0])):
                return found[1]
            return None
        if spec.login is None:
            return None
        ctx = self.host.context(spec.login, {}, "oauth-login")
        request = PluginRequest(
            method="POST",
            path="/oauth/authorize",
            route="oauth-login",
            body={"username": username, "password": password},
            request_id="oauth-login",
        )
        outcome = await invoke(spec.login, ctx, request)
        if not isinstance(outcome, Returned) or not outcome.value:
            return None  # refused or failed: nobody logs in
        return str(outcome.value)

    async def verify(
        self, token: str, scopes: tuple[str, ...], resource: str | None = None
    ) -> TokenGrant:
        """The grant behind ``token`` if it is valid, unexpired, has ``scopes`` and was
        issued for ``resource`` (RFC 8707; None: the HTTP routes, where a token asked for
        no resource, or for the issuer, is good)."""
        record = await self.tokens.access(token)
        if record is None:
            raise TokenRefused(401, "invalid_token", "Invalid access token")
        if record["expires_at"] <= time.time():
            raise TokenRefused(401, "invalid_token", "Token has expired")
        if await self.tokens.family_revoked(record.get("family")):
            # Its code was used twice, or a refresh token of its family was replayed.
            raise TokenRefused(401, "invalid_token", "Token has been revoked")
        issued_for = record.get("resource")
        spec = self.current().oauth
        api = spec.issuer if spec is not None else None
        if resource is None and issued_for not in (None, api):
            raise TokenRefused(401, "invalid_token", f"the token is for {issued_for}")
        if resource is not None and issued_for not in (None, resource):
            raise TokenRefused(401, "invalid_token", f"the token is for {issued_for}")
        granted = frozenset(str(record.get("scope") or "").split())
        missing = [scope for scope in scopes if scope not in granted]
        if missing:
            raise TokenRefused(
                403, "insufficient_scope", f"the token lacks the scope {' '.join(missing)}"
            )
        return TokenGrant(
            record["user_id"], record["client_id"], granted, digest(token)[:16], issued_for
        )
