"""THE plugin contract: everything a plugin author sees, and nothing else.

A route, webhook or schedule names a handler as ``module:function``; the module lives in
``plugins/`` next to gateway.yaml (and may import helper modules that sit next to it)::

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
  when the store is Redis. ``acquire(key, ttl, renew=True)`` makes ``ttl`` a short lease
  that the lock itself extends (every ``ttl / 3``, only while it still holds the key) until
  ``release()``: a holder that dies frees the key within ``ttl`` seconds, one that works
  long keeps it. ``lock.lost`` turns true when a renewal found the key gone or taken
  (check it before a side effect that must happen once)::

      lock = await ctx.locks.acquire(f"order:{order_id}", 10, renew=True)
      if lock is None:
          raise RetrySoon(2, "order is being handled elsewhere")
      try:
          ...
      finally:
          await lock.release()
* ``ctx.clients[name].request(...)`` calls a declared upstream the way a declared route
  does: static credentials, the caller's passthrough token or the user's OAuth token (one
  refresh and one retry when an unexpired token is refused), timeouts and retries.
* Webhook handlers run from the queue: ``request.event_id`` is stable across retries (use it
  to make side effects idempotent) and ``request.attempt`` counts from 1. Returning means
  done; raising means "retry later" (a :class:`PluginError` with a 4xx status means "never":
  the event goes straight to the dead letters). ``raise RetrySoon(seconds)`` means "not
  now, nothing failed" (the resource is busy): the event comes back after ``seconds`` with
  the same ``attempt`` (bounded: an attempt put off for too long counts as failed). A route
  answers it with a 503. Schedules get an empty request whose ``route`` is the schedule id.

Implementations of the protocols below live in the plugin host (gateway.host); this module
imports nothing of the gateway but its exceptions and the template filters.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from litestar.stores.base import Store

from gateway.errors import (  # raised by UpstreamClient.request; re-exported
    UpstreamError,
    UpstreamTooLarge,
)
from gateway.filters import html_to_text  # the template filter, for plugins

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
    "RetrySoon",
    "Store",
    "UpstreamClient",
    "UpstreamError",
    "UpstreamNotConnected",
    "UpstreamResponse",
    "UpstreamTooLarge",
    "html_to_text",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginRequest:
    """The validated request: typed query and path values, parsed JSON body."""

    route: str
    """The route's id (a webhook's or schedule's id for those)."""
    request_id: str
    method: str = ""
    path: str = ""
    query: Mapping[str, Any] = field(default_factory=dict)
    path_params: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    auth_scheme: str = "none"
    user: str | None = None
    """Whose data this is: the user an api key or an OAuth token stands for."""
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
    """A deliberate error answer: ``raise PluginError(404, "App 'x' not found")``.

    ``headers`` go with a route's answer, e.g. ``{"Retry-After": "20"}`` on a 429.
    """

    def __init__(
        self, status: int, detail: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"PluginError status must be 4xx or 5xx, got {status}")
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers: Mapping[str, str] = dict(headers or {})


class RetrySoon(Exception):
    """Not now, and nothing failed: ``raise RetrySoon(2, "conversation 7 is busy")``.

    A webhook event is handed out again after ``seconds`` without spending an attempt; a
    route answers 503.
    """

    def __init__(self, seconds: float, detail: str = "busy: retry soon") -> None:
        if not seconds > 0:
            raise ValueError(f"RetrySoon needs a delay above 0 seconds, got {seconds}")
        super().__init__(detail)
        self.seconds = seconds
        self.detail = detail


class UpstreamNotConnected(Exception):
    """An upstream has no usable credential of this user (not connected, or refused by the
    upstream): a 401 telling them to (re)connect, at ``connect_url`` when they can (raised
    by UpstreamClient.request; let it propagate)."""

    def __init__(
        self, detail: str, connect_url: str | None = None, slug: str = "upstream-not-connected"
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.connect_url = connect_url
        self.slug = slug


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """An upstream's answer, read whole."""

    status: int
    headers_content_type: str | None
    body: bytes
    retry_after: str | None = None
    """The upstream's ``Retry-After`` on an error answer (429, 503), to pass on."""

    def json(self) -> Any:
        return msgspec.json.decode(self.body)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class OAuth2Connection(Protocol):
    """A user's connection to an `oauth2_authorization_code` upstream (Gmail)."""

    async def authorization_url(self) -> str:
        """Where this user goes to connect (the provider's consent page)."""
        ...

    async def complete(self, code: str, state: str) -> str:
        """The callback: exchange ``code``; returns the user who connected (PluginError 400
        for an unknown state or a refused code)."""
        ...

    async def finish(self, code: str, state: str) -> tuple[str, str | None]:
        """:meth:`complete`, also returning the gateway path the browser goes back to when
        the connection was started from the /connections page (else None)."""
        ...

    async def status(self) -> dict[str, Any]: ...


class UpstreamClient(Protocol):
    """A declared upstream, with its auth, timeout and retries already applied."""

    @property
    def connection(self) -> OAuth2Connection | None:
        """For `oauth2_authorization_code` upstreams: the user's connection."""
        ...

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
        """Call the upstream; UpstreamError when it cannot be reached in time,
        UpstreamNotConnected when the user must (re)connect."""
        ...


class Lock(Protocol):
    @property
    def lost(self) -> bool:
        """A renewed lock: a renewal found the key expired or taken by someone else."""
        ...

    async def release(self) -> None:
        """Stop renewing; free the key if this lock still holds it. A store that cannot be
        reached is logged, not raised (safe in a ``finally``): the key expires on its own."""
        ...


class Locks(Protocol):
    async def acquire(self, key: str, ttl: float, *, renew: bool = False) -> Lock | None:
        """The lock on ``key`` for ``ttl`` seconds, or None when someone holds it.

        ``renew``: ``ttl`` is a lease, extended while the lock is held (until release).
        """
        ...


class Decision(Protocol):
    """Allowed or not; requests left; seconds until one is allowed / the budget is full."""

    @property
    def allowed(self) -> bool: ...
    @property
    def remaining(self) -> int: ...
    @property
    def retry_after(self) -> float: ...
    @property
    def reset_after(self) -> float: ...


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, period: float) -> Decision: ...


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler gets besides the request."""

    settings: Any
    """The module's ``Settings`` Struct, decoded from the YAML `settings:` (or None)."""
    clients: Mapping[str, UpstreamClient]
    store: Store
    """Litestar's async key-value store API (get/set/delete/expires_in); in memory by default."""
    state: dict[str, Any]
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
    request_id: str
    locks: Locks
    """Expiring set-if-absent locks: ``await ctx.locks.acquire("key", ttl=60)``; a renewed
    lease with ``renew=True``."""
    limiter: RateLimiter
    """``(await ctx.limiter.hit("key", limit, period)).allowed``."""


Handler = Callable[[Context, PluginRequest], Awaitable[Any]]
