"""The ASGI application: declared routes through the dispatcher, the fixed surface on Litestar.

``GatewayApp`` looks the request up in the current snapshot's route table first (on the
original path; a Litestar mount at `/` would shadow parameterised paths and rewrite
``scope["path"]``). Anything that is not a declared route goes to one Litestar app, built
once, whose handlers read the current snapshot: health, OpenAPI documents, docs.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from gateway import metrics
from gateway.host.runtime import PluginHost
from gateway.logs import REQUEST_ID, UPSTREAM_TIMING, UpstreamTiming, log_access
from gateway.oauth.runtime import OAuthRuntime
from gateway.queue.scheduler import Scheduler
from gateway.queue.worker import Worker
from gateway.serve.answers import send_response
from gateway.serve.cors import preflight_headers, response_headers
from gateway.serve.dispatch import Dispatcher
from gateway.serve.exchange import client_ip
from gateway.serve.forwarded import TrustedProxies
from gateway.serve.mcp import McpEndpoint
from gateway.serve.problems import PROBLEM_CONTENT_TYPE, problem_body
from gateway.serve.state import GatewayState
from gateway.serve.surface import fixed_surface
from gateway.serve.webhook_guards import WebhookGuards
from gateway.serve.webhooks import WebhookReceiver
from gateway.store.throttle import Throttle
from gateway.upstream.call import UpstreamCaller
from gateway.upstream.credentials import UserCredentials
from gateway.upstream.outbound import Upstreams
from gateway.upstream.tokens import UpstreamTokens

__all__ = ["GatewayApp", "GatewayState", "build_app"]

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
PREFLIGHT = "_preflight"
"""The route label of a CORS preflight answered here."""
SURFACE_PREFIX = "_gateway:"
"""The route label of the gateway's own endpoints: this and the path template."""


class GatewayApp:
    """ASGI entry point: ``uvicorn.run(build_app(state))`` (see gateway.boot)."""

    def __init__(self, state: GatewayState, dispatcher: Dispatcher, fallback: ASGIApp) -> None:
        self.state = state
        backend = state.backend
        self.dispatcher = dispatcher
        guards = WebhookGuards(Throttle(backend.store, backend.limiter), backend.limiter)
        self.webhooks = WebhookReceiver(backend.queue, guards)
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        snapshot = self.state.switch.current  # read once: this request keeps this snapshot
        if snapshot.trusted_proxies:  # off: nothing to pay
            TrustedProxies(snapshot.trusted_proxies).apply(scope)
        origin = request_id = preflight_method = preflight_headers_asked = None
        header_bytes = 0
        for key, value in scope["headers"]:
            header_bytes += len(key) + len(value)
            if key == b"origin":
                origin = value.decode("latin-1")
            elif key == b"x-request-id":
                request_id = value.decode("latin-1")
            elif key == b"access-control-request-method":
                preflight_method = value.decode("latin-1")
            elif key == b"access-control-request-headers":
                preflight_headers_asked = value.decode("latin-1")
        if request_id is None or not _REQUEST_ID.match(request_id):
            request_id = os.urandom(16).hex()  # a uuid4's 32 hex digits, a fifth of its cost
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        method = scope["method"]
        label, status = metrics.NOT_ROUTED, 500  # what an exception escaping here counts as
        try:
            if header_bytes > snapshot.max_header_bytes:
                status = 431
                body = problem_body(
                    431,
                    "headers-too-large",
                    f"the request headers are over {snapshot.max_header_bytes} bytes",
                    request_id=request_id,
                )
                await send_response(
                    send, 431, PROBLEM_CONTENT_TYPE, body, [(b"x-request-id", request_id.encode())]
                )
                return
            path = scope["path"]
            if method == "OPTIONS" and origin and preflight_method:
                label = PREFLIGHT
                status = await self._preflight(
                    snapshot.cors, origin, preflight_headers_asked, request_id, send
                )
                return
            cors = response_headers(snapshot.cors, origin)
            webhook = snapshot.webhook_paths.get(path)
            if webhook is not None:
                label = f"webhook:{webhook.id}"
                status = await self.webhooks(
                    snapshot, webhook, scope, receive, send, request_id, cors
                )
                if snapshot.access_log:
                    access = {"method": method, "path": path, "status": status}
                    access |= {"webhook": webhook.id, "duration_ms": _ms_since(started)}
                    access["client_ip"] = client_ip(scope)
                    log_access("%s %s %d webhook=%s", (method, path, status, webhook.id), access)
                return
            match = snapshot.table.match(method, path)
            if match is not None:
                label = match.route.id
                if not snapshot.access_log:
                    status = await self.dispatcher(
                        snapshot, match, scope, receive, send, request_id, cors
                    )
                    return
                upstream = UpstreamTiming()  # what the route's upstream calls took
                timing = UPSTREAM_TIMING.set(upstream)
                try:
                    status = await self.dispatcher(
                        snapshot, match, scope, receive, send, request_id, cors
                    )
                finally:
                    UPSTREAM_TIMING.reset(timing)
                _log_route(method, path, status, started, match.route.id, upstream, scope)
                return
            allowed = snapshot.table.allowed_methods(path)
            if allowed:
                status = 405
                body = problem_body(
                    405,
                    "method-not-allowed",
                    f"{method} is not allowed here; use {', '.join(sorted(allowed))}",
                    request_id=request_id,
                )
                await send_response(
                    send,
                    405,
                    PROBLEM_CONTENT_TYPE,
                    body,
                    [
                        (b"allow", ", ".join(sorted(allowed)).encode()),
                        (b"x-request-id", request_id.encode()),
                        *cors,
                    ],
                )
                return
            extra = [(b"x-request-id", request_id.encode()), *cors]
            answered: list[int] = []

            async def send_with_headers(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    answered.append(message["status"])
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
                await send(message)

            try:
                await self.fallback(scope, receive, send_with_headers)
            finally:
                # Litestar's own handlers are labelled by their path template (bounded).
                template = scope.get("path_template")
                label = f"{SURFACE_PREFIX}{template}" if template else metrics.NOT_ROUTED
                status = answered[0] if answered else 500
        finally:
            metrics.request_done(label, method, status, time.perf_counter() - started)
            REQUEST_ID.reset(token)

    @staticmethod
    async def _preflight(
        cors: Any, origin: str, asked: str | None, request_id: str, send: Any
    ) -> int:
        headers = preflight_headers(cors, origin, asked)
        if headers is None:
            body = problem_body(
                400, "cors-origin-denied", f"origin {origin} is not allowed", request_id=request_id
            )
            await send_response(
                send, 400, PROBLEM_CONTENT_TYPE, body, [(b"x-request-id", request_id.encode())]
            )
            return 400
        await send_response(
            send, 204, b"text/plain", b"", [*headers, (b"x-request-id", request_id.encode())]
        )
        return 204


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _log_route(
    method: str,
    path: str,
    status: int,
    started: float,
    route_id: str,
    upstream: UpstreamTiming,
    scope: Scope,
) -> None:
    """The access line of a declared route, with its upstream's status and time if called."""
    elapsed = _ms_since(started)
    access: dict[str, Any] = {"method": method, "path": path, "status": status}
    access |= {"duration_ms": elapsed, "route": route_id}
    if upstream.calls:
        access["upstream_status"] = upstream.status
        access["upstream_duration_ms"] = round(upstream.seconds * 1000, 1)
    access["client_ip"] = client_ip(scope)
    log_access("%s %s %d %.1fms route=%s", (method, path, status, elapsed, route_id), access)


def build_app(state: GatewayState) -> GatewayApp:
    """The whole ASGI app for ``state``; the Litestar part is built once per process.

    Its lifespan also runs the webhook worker and the scheduler of this process.
    """
    backend = state.backend
    tokens = UpstreamTokens(backend.store, backend.locks)
    credentials = UserCredentials(backend.store)
    host = PluginHost(Upstreams(UpstreamCaller(state.pool), tokens, credentials), backend.stores)
    current = state.switch.get
    state.worker = Worker(backend.queue, host, current)
    state.scheduler = Scheduler(host, backend.locks, current)
    oauth = OAuthRuntime(host, current)
    dispatcher = Dispatcher(host, backend.limiter, oauth)
    mcp = McpEndpoint(current, dispatcher, _version(), oauth)
    return GatewayApp(state, dispatcher, cast(ASGIApp, fixed_surface(state, oauth, mcp)))


def _version() -> str:
    try:
        return importlib.metadata.version("yaml-gateway")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "0"
