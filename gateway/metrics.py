"""The process's Prometheus metrics (prometheus-client), served at `/metrics`.

One registry per process, as Prometheus scrapes each replica on its own. The hot path
records through small functions that keep the labelled children in dicts: a counter's
``labels()`` costs about 2 µs, a cached child's ``inc()`` under 0.5 µs. Labels are bounded
by the configuration: route, webhook and upstream ids, methods, status codes and fixed
kinds; never a path, a user or a credential.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.exposition import choose_encoder

__all__ = [
    "NOT_ROUTED",
    "REGISTRY",
    "auth_failed",
    "config_loaded",
    "exposition",
    "oauth_token_issued",
    "queue_depth",
    "rate_limited",
    "reloaded",
    "request_done",
    "store_up",
    "tool_called",
    "upstream_answered",
    "upstream_failed",
    "webhook_dead_lettered",
    "webhook_failed",
    "webhook_processed",
    "webhook_received",
]

REGISTRY: Final = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):  # process_*, python_*
    REGISTRY.register(_collector)
NOT_ROUTED: Final = "_unmatched"
"""The route label of a request that matched nothing (404, 405): paths are never labels."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
# Fast answers are the point of a gateway: the buckets start at a millisecond.
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_requests = Counter(
    "gateway_requests",
    "Requests answered, by route id (webhook:<id> for webhooks, _gateway.<name> for the "
    "gateway's own endpoints, _unmatched for none), method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
_request_seconds = Histogram(
    "gateway_request_duration_seconds",
    "Time from the request's arrival to the end of its answer, by route id.",
    ["route"],
    buckets=_SECONDS,
    registry=REGISTRY,
)
_upstream_requests = Counter(
    "gateway_upstream_requests",
    "Upstream answers received (each attempt of a retried call), by upstream and status.",
    ["upstream", "status"],
    registry=REGISTRY,
)
_upstream_seconds = Histogram(
    "gateway_upstream_duration_seconds",
    "Time of one upstream attempt, from sending to the whole answer read, by upstream.",
    ["upstream"],
    buckets=_SECONDS,
    registry=REGISTRY,
)
_upstream_errors = Counter(
    "gateway_upstream_errors",
    "Upstream attempts without a usable answer, by upstream and kind "
    "(timeout, unreachable, too_large).",
    ["upstream", "kind"],
    registry=REGISTRY,
)
_rate_limited = Counter(
    "gateway_rate_limited",
    "Requests refused with 429 by a route's or webhook's rate limit, by route id.",
    ["route"],
    registry=REGISTRY,
)
_auth_failures = Counter(
    "gateway_auth_failures",
    "Failed credential checks, by kind (api_key, bearer, oauth_token, admin, metrics, login, "
    "client, webhook_secret, webhook_signature).",
    ["kind"],
    registry=REGISTRY,
)
_webhook_received = Counter(
    "gateway_webhook_events_received",
    "Webhook events accepted and queued (answered 2xx), by webhook id.",
    ["webhook"],
    registry=REGISTRY,
)
_webhook_processed = Counter(
    "gateway_webhook_events_processed",
    "Webhook events whose handler succeeded (acknowledged), by webhook id.",
    ["webhook"],
    registry=REGISTRY,
)
_webhook_failed = Counter(
    "gateway_webhook_events_failed",
    "Webhook handler attempts that failed (retried or dead-lettered), by webhook id.",
    ["webhook"],
    registry=REGISTRY,
)
_webhook_dead = Counter(
    "gateway_webhook_events_dead_lettered",
    "Webhook events moved to the dead letters, by webhook id.",
    ["webhook"],
    registry=REGISTRY,
)
_queue_depth = Gauge(
    "gateway_webhook_queue_depth",
    "Webhook events waiting or in flight in the queue (read from the store at scrape time; "
    "NaN while the store is unreachable).",
    registry=REGISTRY,
)
_store_up = Gauge(
    "gateway_store_up",
    "1 when the store answered at scrape time, else 0.",
    registry=REGISTRY,
)
_reloads = Counter(
    "gateway_reloads",
    "Configuration reloads, by outcome (ok: a new version serves; refused: the previous "
    "version keeps serving; unchanged).",
    ["outcome"],
    registry=REGISTRY,
)
_config = Gauge(
    "gateway_config_info",
    "1 for the configuration version being served.",
    ["version"],
    registry=REGISTRY,
)
_oauth_tokens = Counter(
    "gateway_oauth_tokens_issued",
    "Access tokens the gateway's authorization server issued, by grant type.",
    ["grant_type"],
    registry=REGISTRY,
)
_tool_calls = Counter(
    "gateway_mcp_tool_calls",
    "MCP tool calls, by tool (a compiled name) and outcome: ok, error (the route answered an "
    "error: isError), invalid (a malformed call: a JSON-RPC error).",
    ["tool", "outcome"],
    registry=REGISTRY,
)

for _outcome in ("ok", "refused", "unchanged"):  # present from the start: rate() needs a zero
    _reloads.labels(_outcome)
for _grant in ("authorization_code", "refresh_token"):
    _oauth_tokens.labels(_grant)

_request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
_upstream_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
_served_version: list[str] = []


def request_done(route: str, method: str, status: int, seconds: float) -> None:
    """One answered request (the hot path: two cached children). A method outside HTTP's
    own is counted as `OTHER`: a caller cannot mint series."""
    if method not in _METHODS:
        method = "OTHER"
    key = (route, method, status)
    children = _request_children.get(key)
    if children is None:
        children = _request_children[key] = (
            _requests.labels(route, method, str(status)),
            _request_seconds.labels(route),
        )
    counter, histogram = children
    counter.inc()
    histogram.observe(seconds)


def upstream_answered(upstream: str, status: int, seconds: float) -> None:
    """One upstream attempt that got an answer."""
    key = (upstream, status)
    children = _upstream_children.get(key)
    if children is None:
        children = _upstream_children[key] = (
            _upstream_requests.labels(upstream, str(status)),
            _upstream_seconds.labels(upstream),
        )
    counter, histogram = children
    counter.inc()
    histogram.observe(seconds)


def upstream_failed(upstream: str, kind: str, seconds: float) -> None:
    """One upstream attempt without a usable answer (``kind``: timeout, unreachable,
    too_large); its time counts in the upstream's histogram too."""
    _upstream_errors.labels(upstream, kind).inc()
    _upstream_seconds.labels(upstream).observe(seconds)


def rate_limited(route: str) -> None:
    _rate_limited.labels(route).inc()


def auth_failed(kind: str) -> None:
    _auth_failures.labels(kind).inc()


def webhook_received(webhook: str) -> None:
    _webhook_received.labels(webhook).inc()


def webhook_processed(webhook: str) -> None:
    _webhook_processed.labels(webhook).inc()


def webhook_failed(webhook: str) -> None:
    _webhook_failed.labels(webhook).inc()


def webhook_dead_lettered(webhook: str) -> None:
    _webhook_dead.labels(webhook).inc()


def reloaded(outcome: str) -> None:
    _reloads.labels(outcome).inc()


def oauth_token_issued(grant_type: str) -> None:
    _oauth_tokens.labels(grant_type).inc()


def tool_called(tool: str, outcome: str) -> None:
    """``tool``: a name the snapshot compiled (an unknown one is counted as `_unknown`)."""
    _tool_calls.labels(tool, outcome).inc()


def config_loaded(version: str) -> None:
    """``version`` is now served: its info series is 1, the previous one is dropped."""
    if _served_version == [version]:
        return
    for previous in _served_version:
        _config.remove(previous)
    _served_version[:] = [version]
    _config.labels(version).set(1)


def queue_depth(pending: int | None) -> None:
    _queue_depth.set(float("nan") if pending is None else pending)


def store_up(up: bool) -> None:
    _store_up.set(1 if up else 0)


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The registry in the format the scraper's ``Accept`` asks for: OpenMetrics when it
    says so (Prometheus does), else the text format 0.0.4; and its content type."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(REGISTRY), content_type
