"""THE plugin contract: small Python handlers for logic YAML should not hold.

A route (later: a webhook or a schedule) names a handler as ``module:function``; the module
lives in ``plugins/`` next to gateway.yaml::

    # plugins/hello.py
    import msgspec
    from gateway.plugin import Context, PluginRequest

    class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
        greeting: str = "hello"          # validated at compile time; errors carry file:line

    async def greet(ctx: Context, request: PluginRequest) -> dict:
        ctx.logger.info("greeting %s", request.query.get("name"))   # carries the request id
        answer = await ctx.clients["crm"].request("GET", "/v1/me")   # auth, retries applied
        return {"message": f"{ctx.settings.greeting}, {answer.json()['name']}"}

    # routes.d/hello.yaml
    routes:
      - id: greet
        path: /hello
        handler: hello:greet
        settings: {greeting: hi}
        upstreams: [crm]                 # the clients this handler may use

Rules:

* A handler is ``async def fn(ctx, request)``; it returns a dict or list (sent as JSON), a
  :class:`PluginResponse`, or raises :class:`PluginError` for a deliberate 4xx/5xx.
* Any other exception becomes a 502 problem with the request id; the gateway keeps serving.
* Missing modules, missing functions, wrong signatures and bad settings are compile errors.
* Plugins reload with the snapshot: an edited module is imported again; one that fails to
  import refuses the reload like any other broken file.
* ``ctx.state`` is a dict per plugin module that lives as long as the process (across
  reloads): the place for what a plugin must remember, such as the processes it started.
* ``ctx.store`` is the gateway's key-value store (Litestar's ``Store`` API: ``get``, ``set``
  with ``expires_in``, ``delete``): for what must be shared; in memory unless configured.
* ``ctx.locks.acquire(key, ttl)`` is an atomic set-if-absent (a :class:`Lock` or None), and
  ``ctx.limiter.hit(key, limit, per)`` a rate-limit decision; both are shared by replicas
  when the store is Redis.
* Webhook handlers run from the queue: ``request.event_id`` is stable across retries (use it
  to make side effects idempotent) and ``request.attempt`` counts from 1. Returning means
  done; raising means "retry later" (a :class:`PluginError` with a 4xx status means "never":
  the event goes straight to the dead letters). Schedules get an empty request whose
  ``route`` is the schedule id.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar.stores.base import Store

from gateway.compiler.templates import html_to_text  # the template filter, for plugins
from gateway.errors import UpstreamError  # raised by UpstreamClient.request; re-exported
from gateway.oauth.upstream_tokens import NotConnected, UpstreamTokens
from gateway.snapshot import OAuth2ClientSpec, RetryPolicy, UpstreamSettings
from gateway.store.locks import Lock, Locks
from gateway.store.ratelimit import Decision, RateLimiter

__all__ = [
    "Context",
    "Decision",
    "Handler",
    "Lock",
    "Locks",
    "OAuth2Connection",
    "PluginError",
    "PluginRequest",
    "PluginResponse",
    "RateLimiter",
    "UpstreamClient",
    "UpstreamError",
    "UpstreamNotConnected",
    "UpstreamResponse",
    "html_to_text",
]


@dataclass(frozen=True, slots=True)
class PluginRequest:
    """The validated request: typed query and path values, parsed JSON body."""

    method: str
    path: str
    route: str
    query: Mapping[str, Any]
    path_params: Mapping[str, Any]
    headers: Mapping[str, str]
    body: Any
    request_id: str
    auth_scheme: str
    user: str | None = None
    """Whose data this is: the user an api key maps to (later: the OAuth token's subject)."""
    event_id: str | None = None
    """Webhooks: the event's id, the same on every attempt and replay."""
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class PluginResponse:
    """A full answer: ``PluginResponse(201, {"id": 1}, {"Location": "/x/1"})``."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


class PluginError(Exception):
    """A deliberate error answer: ``raise PluginError(404, "App 'x' not found")``."""

    def __init__(self, status: int, detail: str) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"PluginError status must be 4xx or 5xx, got {status}")
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    headers_content_type: str | None
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


Sender = Callable[..., Awaitable[Any]]


class UpstreamNotConnected(Exception):
    """An `oauth2_authorization_code` upstream has no usable token for this user: a 401
    telling them to (re)connect (raised by UpstreamClient.request; let it propagate)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class OAuth2Connection:
    """A user's connection to an `oauth2_authorization_code` upstream."""

    def __init__(self, spec: OAuth2ClientSpec, tokens: UpstreamTokens, user: str) -> None:
        self.spec = spec
        self.tokens = tokens
        self.user = user

    async def authorization_url(self) -> str:
        """Where this user goes to connect (the provider's consent page)."""
        return await self.tokens.authorization_url(self.spec, self.user)

    async def complete(self, code: str, state: str) -> str:
        """The callback: exchange ``code``; returns the user who connected."""
        try:
            return await self.tokens.complete(self.spec, code, state)
        except NotConnected as exc:
            raise PluginError(400, exc.detail) from None

    async def status(self) -> dict[str, Any]:
        return await self.tokens.status(self.spec, self.user)

    async def access_token(self, stale: str | None = None) -> str:
        try:
            return await self.tokens.access_token(self.spec, self.user, stale)
        except NotConnected as exc:
            raise UpstreamNotConnected(exc.detail) from None


@dataclass(frozen=True, slots=True)
class UpstreamClient:
    """A declared upstream, with its auth headers, timeout and retries already applied."""

    settings: UpstreamSettings
    static_headers: Mapping[str, str]
    retry: RetryPolicy
    send: Sender
    request_id: str
    connection: OAuth2Connection | None = None
    """For `oauth2_authorization_code` upstreams: the user's token is added to each call."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | Sequence[str]] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        """Call the upstream; raises UpstreamError when it cannot be reached in time."""
        merged = {**self.static_headers, "X-Request-ID": self.request_id, **(headers or {})}
        token = None
        if self.connection is not None:
            token = await self.connection.access_token()
            merged["Authorization"] = f"Bearer {token}"
        if json is not None:
            data = msgspec.json.encode(json)
            merged.setdefault("Content-Type", "application/json")
        path = path if path.startswith("/") else "/" + path
        params = dict(query) if query else None

        async def send() -> Any:
            return await self.send(
                self.settings,
                method,
                path,
                retry=self.retry,
                timeout_seconds=self.settings.timeout,
                params=params,
                headers=merged,
                data=data,
            )

        answer = await send()
        if answer.status == 401 and self.connection is not None:
            # Refused before its expiry (revoked, rotated): refresh once, try once more.
            merged["Authorization"] = f"Bearer {await self.connection.access_token(stale=token)}"
            answer = await send()
        content_type = answer.content_type.decode() if answer.content_type else None
        return UpstreamResponse(answer.status, content_type, answer.body)


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler gets besides the request."""

    settings: Any
    clients: Mapping[str, UpstreamClient]
    store: Store
    """Litestar's async key-value store API (get/set/delete/expires_in); in memory by default."""
    state: dict[str, Any]
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
    request_id: str
    locks: Locks
    """Expiring set-if-absent locks: ``await ctx.locks.acquire("key", ttl=60)``."""
    limiter: RateLimiter
    """``(await ctx.limiter.hit("key", limit, period)).allowed``."""


Handler = Callable[[Context, PluginRequest], Awaitable[Any]]
