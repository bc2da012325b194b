"""OpenTelemetry traces, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-only
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set.

Imported only then: gateway.run and gateway.asgi look at the variables first, so with tracing
off this module is not imported, nothing is set up and no request pays for anything (when the
`otel` extra is installed, Litestar and redis-py import parts of OpenTelemetry on their own:
modules only, nothing they run per request). On:

- each request is a SERVER span of the official ASGI middleware; a caller's W3C
  ``traceparent`` is its parent. It is named by what answered, never by the raw path: a
  declared route's ``METHOD /template`` (``http.route``; its id in ``gateway.route``), a
  webhook's path (``gateway.webhook``), the Litestar route template of the gateway's own
  endpoints (``GET /health``), else the bare method (a 404); ``gateway.request_id`` is the
  answer's ``X-Request-ID``, the id on its log lines;
- each upstream attempt is a CLIENT span of the aiohttp-client instrumentation, which sends
  ``traceparent`` upstream (the caller's trace id, the CLIENT span's id);
- no query string value reaches a span (an API key may be one): ``?api_key=REDACTED``.

Spans leave in batches (BatchSpanProcessor) over OTLP/HTTP. The standard ``OTEL_*``
variables configure the exporter (headers, timeout, compression, certificates), batching,
sampling, propagators and the resource; the folder's ``.env`` may set them too (all but
``OTEL_PROPAGATORS``, read when Litestar first imports OpenTelemetry).

    tracing = Tracing.start(environ, booted)   # then serve tracing.app
    tracing.shutdown()                         # when the server has stopped: flushes
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import yarl

from gateway.lean import allow_opentelemetry

allow_opentelemetry()  # first: the OTLP exporter imports OpenTelemetry's metrics API

from opentelemetry import trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor  # noqa: E402
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware  # noqa: E402
from opentelemetry.sdk.resources import (  # noqa: E402
    SERVICE_INSTANCE_ID,
    SERVICE_NAME,
    SERVICE_VERSION,
    OTELResourceDetector,
    Resource,
)
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402
from opentelemetry.util.http import get_excluded_urls  # noqa: E402

from gateway.logs import logger  # noqa: E402
from gateway.store.backend import shown_url  # noqa: E402

if TYPE_CHECKING:
    from gateway.boot import Booted
    from gateway.snapshot import Snapshot

__all__ = ["DEFAULT_SERVICE_NAME", "Tracing", "redacted_query", "redacted_url", "span_details"]

DEFAULT_SERVICE_NAME = "yaml-gateway"
"""``service.name`` unless ``OTEL_SERVICE_NAME`` (or ``OTEL_RESOURCE_ATTRIBUTES``) says."""

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
# The span attributes that carry the caller's query string: the old HTTP conventions' and the
# stable ones' (OTEL_SEMCONV_STABILITY_OPT_IN=http).
_HTTP_URL, _URL_QUERY = "http.url", "url.query"


class Tracing:
    """One process's tracer provider and its instrumented app (see the module docstring)."""

    def __init__(self, provider: TracerProvider, app: ASGIApp, endpoint: str) -> None:
        self.provider = provider
        self.app = app
        """The gateway's app inside the ASGI middleware: serve this one."""
        self.endpoint = endpoint
        """Where spans go (credentials and query left out): what the start line says."""

    @classmethod
    def start(cls, environ: Mapping[str, str], booted: Booted) -> Tracing:
        """Before the first request: the upstream sessions are created later, traced."""
        # The SDK reads its settings from the process environment when its objects are built:
        # the `.env` ones go there too (the environment still wins).
        from_dotenv = [key for key in environ if key.startswith("OTEL_") and key not in os.environ]
        for key in from_dotenv:
            os.environ[key] = environ[key]
        if "OTEL_PROPAGATORS" in from_dotenv:
            # Read when opentelemetry.propagate was imported (Litestar imports it at boot).
            logger.warning(
                "traces: OTEL_PROPAGATORS from .env is ignored: set it in the environment"
            )
        ours = {
            SERVICE_NAME: DEFAULT_SERVICE_NAME,
            SERVICE_VERSION: _version(),
            SERVICE_INSTANCE_ID: socket.gethostname(),  # as /health's `instance`
        }
        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES over ours.
        resource = Resource.create(ours).merge(OTELResourceDetector().detect())
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)  # plugins' own spans (trace.get_tracer) join in
        # Every aiohttp session created from now on: the pool's (routes and plugins' clients),
        # which serves every upstream through aiohttp while traced.
        booted.state.pool.traced = True
        AioHttpClientInstrumentor().instrument(tracer_provider=provider, url_filter=_url_filter)
        current = booted.state.switch.get
        app = OpenTelemetryMiddleware(
            _ResponseStart(booted.app),
            excluded_urls=get_excluded_urls("ASGI"),  # OTEL_PYTHON_(ASGI_)EXCLUDED_URLS
            default_span_details=lambda scope: span_details(current(), scope),
            server_request_hook=_redact_query,
            tracer_provider=provider,
            exclude_spans=["receive", "send"],  # one span per ASGI message: noise
        )
        endpoint = _endpoint(os.environ)
        service = resource.attributes.get(SERVICE_NAME)
        logger.info("traces: OTLP/HTTP to %s (service.name %s)", endpoint, service)
        return cls(provider, app, endpoint)

    def shutdown(self) -> None:
        """Export the spans still queued, then stop: a collector that does not answer holds
        this up to OTEL_EXPORTER_OTLP_TIMEOUT (10 s), the SDK gives up after 30 s."""
        self.provider.shutdown()


def span_details(snapshot: Snapshot, scope: Scope) -> tuple[str, dict[str, Any]]:
    """The server span's name and attributes, from what will answer: never the raw path.

    ``("GET /items/{item_id}", {"http.route": "/items/{item_id}", "gateway.route": "getItem"})``
    """
    method = scope.get("method", "")
    method = method if method in _METHODS else "HTTP"
    path = scope.get("path", "")
    webhook = snapshot.webhook_paths.get(path)
    if webhook is not None:
        return f"{method} {path}", {"http.route": path, "gateway.webhook": webhook.id}
    match = snapshot.table.match(method, path)
    if match is not None:
        route = match.route
        return f"{method} {route.path}", {"http.route": route.path, "gateway.route": route.id}
    return method, {}  # the gateway's own endpoints: named by _ResponseStart, else a 404


class _ResponseStart:
    """At the answer's start, on the middleware's server span: the route template of a request
    Litestar answered (the gateway's own endpoints: ``GET /actions/{profile}/openapi.json``)
    and the answer's ``X-Request-ID`` (``gateway.request_id``: the id on its log lines)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        span = trace.get_current_span()
        if scope["type"] != "http" or not span.is_recording():
            await self.app(scope, receive, send)
            return

        async def annotated(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                template = scope.get("path_template")  # set by Litestar's router only
                if template:
                    method = scope["method"] if scope["method"] in _METHODS else "HTTP"
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
                for key, value in message.get("headers", ()):
                    if key.lower() == b"x-request-id":
                        span.set_attribute("gateway.request_id", value.decode("latin-1"))
                        break
            await send(message)

        await self.app(scope, receive, annotated)


def _redact_query(span: trace.Span, scope: Scope) -> None:
    """The middleware put the caller's query string in the span: keep its names only."""
    if not scope.get("query_string") or not span.is_recording():
        return
    attributes: Mapping[str, Any] = getattr(span, "attributes", None) or {}
    url, query = attributes.get(_HTTP_URL), attributes.get(_URL_QUERY)
    if isinstance(url, str):
        span.set_attribute(_HTTP_URL, redacted_url(url))
    if isinstance(query, str):
        span.set_attribute(_URL_QUERY, redacted_query(query))


def _url_filter(url: yarl.URL) -> str:
    """The upstream URL on a CLIENT span: a configured query value may be a secret."""
    return redacted_url(str(url))


def redacted_query(query: str) -> str:
    """``a=1&b`` -> ``a=REDACTED&b``: the names stay, no value does."""
    parts = (part.partition("=") for part in query.split("&"))
    return "&".join(f"{name}=REDACTED" if sep else name for name, sep, _ in parts)


def redacted_url(url: str) -> str:
    """``url`` with its query's values redacted (``redacted_query``)."""
    base, sep, query = url.partition("?")
    return f"{base}?{redacted_query(query)}" if sep and query else base


def _endpoint(environ: Mapping[str, str]) -> str:
    """Where the OTLP/HTTP exporter sends spans (as it resolves it), for the start line."""
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not endpoint:
        base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318"
        endpoint = f"{base.removesuffix('/')}/v1/traces"
    return shown_url(endpoint)


def _version() -> str:
    try:
        return importlib.metadata.version("yaml-gateway")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree not installed
        return "unknown"
