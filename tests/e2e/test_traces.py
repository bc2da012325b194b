"""OpenTelemetry traces of the real `gateway serve`, received by a loopback OTLP/HTTP collector
(tests/upstreams/otlp.py); and with tracing off, nothing of OpenTelemetry is even imported."""

from __future__ import annotations

import importlib.metadata
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import eventually, write_config
from tests.e2e.helpers import CLEAN_ENV, serving
from tests.upstreams.items import items_app
from tests.upstreams.otlp import CollectedSpan, Collector, collector_app
from tests.upstreams.server import Upstream, serve_upstream

GATEWAY = """\
auth:
  - {id: qkey, type: api_key, header: null, query: api_key, keys: ["${SHOP_KEY}"]}
defaults: {auth: qkey}
"""
SHOP = """\
upstream:
  name: shop
  base_url: ${SHOP_URL}
routes:
  - id: getItem
    path: /items/{item_id}
    upstream: {path: "/v1/items/{{ path.item_id }}", query: {sig: "${SHOP_SIG}"}}
"""
KEY = "caller-key-7f3a9c"  # the caller's API key, in the query string
SIG = "upstream-sig-51d2e8"  # a configured query value sent upstream
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@asynccontextmanager
async def traced_gateway(
    tmp_path: Path, **otel: str
) -> AsyncIterator[tuple[str, Upstream, Collector]]:
    """The gateway in front of the items upstream, exporting to a fresh collector."""
    folder = write_config(tmp_path, GATEWAY, {"shop": SHOP})
    collector_web, collector, received = collector_app()
    items_web, items = items_app()
    async with (
        serve_upstream(collector_web, received) as sink,
        serve_upstream(items_web, items) as shop,
    ):
        env = {
            **CLEAN_ENV,
            "SHOP_URL": shop.url,
            "SHOP_KEY": KEY,
            "SHOP_SIG": SIG,
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            **otel,
        }
        log = tmp_path / "gateway.log"
        async with serving(folder, env, log) as (url, _pid):
            yield url, shop, collector
        assert collector.refused == 0
        assert f"traces: OTLP/HTTP to {sink.url}/v1/traces (service.name " in log.read_text()


def _traceparent(value: str) -> tuple[str, str, str, str]:
    version, trace_id, parent_id, flags = value.split("-")
    return version, trace_id, parent_id, flags


def _of_trace(collector: Collector, trace_id: str) -> list[CollectedSpan]:
    return [span for span in collector.spans() if span.trace_id == trace_id]


def _one(spans: list[CollectedSpan], kind: str) -> CollectedSpan:
    found = [span for span in spans if span.kind == kind]
    assert len(found) == 1, spans
    return found[0]


async def test_a_request_is_traced_from_the_caller_to_the_upstream(tmp_path: Path) -> None:
    async with traced_gateway(tmp_path) as (url, shop, collector):
        async with aiohttp.ClientSession() as http:
            traceparent = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
            async with http.get(
                f"{url}/items/42?api_key={KEY}", headers={"traceparent": traceparent}
            ) as response:
                assert response.status == 200
                request_id = response.headers["X-Request-ID"]
            async with http.get(f"{url}/items/43?api_key={KEY}") as response:
                assert response.status == 200

            # The upstream got the caller's trace, with the gateway's span as the parent.
            first, second = shop.seen
            assert first.path == "/v1/items/42"
            version, trace_id, parent_id, flags = _traceparent(first.headers["traceparent"])
            assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
            assert parent_id != CALLER_SPAN
            assert len(parent_id) == 16

            # The collector received both spans of that trace.
            await eventually(lambda: len(_of_trace(collector, TRACE_ID)) == 2)
            spans = _of_trace(collector, TRACE_ID)
            server, client = _one(spans, "SERVER"), _one(spans, "CLIENT")
            assert server.parent_span_id == CALLER_SPAN
            assert server.name == "GET /items/{item_id}"  # the route, not /items/42
            assert server.attributes["http.route"] == "/items/{item_id}"
            assert server.attributes["gateway.route"] == "getItem"
            assert server.attributes["http.method"] == "GET"
            assert server.attributes["http.status_code"] == 200
            assert server.attributes["http.target"] == "/items/42"
            assert server.attributes["gateway.request_id"] == request_id  # as on its log lines
            # No query value in a span: the caller's API key is redacted.
            assert server.attributes["http.url"].endswith("/items/42?api_key=REDACTED")
            assert client.parent_span_id == server.span_id
            assert client.span_id == parent_id  # the span id sent upstream is the CLIENT span's
            assert client.name == "GET"
            assert client.attributes["http.method"] == "GET"
            assert client.attributes["http.status_code"] == 200
            assert client.attributes["http.url"] == f"{shop.url}/v1/items/42?sig=REDACTED"
            resource = server.resource
            assert resource["service.name"] == "yaml-gateway"
            assert resource["service.version"] == importlib.metadata.version("yaml-gateway")
            assert resource["service.instance.id"] == socket.gethostname()
            assert client.resource == resource

            # Without a traceparent a request starts a trace of its own.
            _, other_trace, other_parent, _ = _traceparent(second.headers["traceparent"])
            assert other_trace != TRACE_ID
            await eventually(lambda: len(_of_trace(collector, other_trace)) == 2)
            other = _of_trace(collector, other_trace)
            root, call = _one(other, "SERVER"), _one(other, "CLIENT")
            assert (root.parent_span_id, root.name) == ("", "GET /items/{item_id}")
            assert (call.parent_span_id, call.span_id) == (root.span_id, other_parent)

            # The gateway's own endpoints are named by their route template.
            health = [span for span in collector.spans() if span.name == "GET /health"]
            assert health, sorted({span.name for span in collector.spans()})
            assert health[0].attributes["http.route"] == "/health"
            assert health[0].attributes["http.status_code"] == 200
    exported = b"".join(collector.raw)
    assert KEY.encode() not in exported
    assert SIG.encode() not in exported


async def test_queued_spans_are_exported_when_the_gateway_stops(tmp_path: Path) -> None:
    # Batches every 10 minutes: what the collector gets, it gets from the shutdown's flush.
    async with traced_gateway(tmp_path, OTEL_BSP_SCHEDULE_DELAY="600000") as (url, _, collector):
        async with aiohttp.ClientSession() as http:
            headers = {"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"}
            async with http.get(f"{url}/items/7?api_key={KEY}", headers=headers) as response:
                assert response.status == 200
        assert collector.spans() == []
    spans = _of_trace(collector, TRACE_ID)
    assert sorted(span.kind for span in spans) == ["CLIENT", "SERVER"]


# Boots the app as `gateway serve` does (uvicorn's run() made a no-op) or as an ASGI server
# imports it, then reports which modules of OpenTelemetry got imported.
_REPORT = """
otel = sorted(
    name for name, module in sys.modules.items()
    if module is not None and name.split(".")[0] == "opentelemetry"
)
ours = "gateway.tracing" in sys.modules
print(json.dumps({"otel": otel, "ours": ours, "app": app}))
"""
_SERVE = (
    """\
import json, sys
from pathlib import Path
import uvicorn
uvicorn.Server.run = lambda self, sockets=None: None  # boot and set up, serve nothing
from gateway.run import serve
assert serve(Path(sys.argv[1]), "127.0.0.1", 0, watch=False) == 0
app = None
"""
    + _REPORT
)
_ASGI = (
    """\
import json, sys
import gateway.asgi
app = type(gateway.asgi.app).__name__
"""
    + _REPORT
)
# Only tracing imports these.
TRACING_MODULES = (
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter",
    "opentelemetry.instrumentation.aiohttp_client",
)


def _imported(script: str, folder: Path, env: dict[str, str]) -> tuple[dict[str, Any], str]:
    """The script's report (its last stdout line) and its stderr (the gateway's log)."""
    result = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report, result.stderr


@pytest.mark.parametrize("entry", ["serve", "asgi"])
@pytest.mark.parametrize("traced", [False, True])
def test_tracing_off_imports_nothing_of_opentelemetry(
    tmp_path: Path, entry: str, traced: bool
) -> None:
    folder = write_config(tmp_path, GATEWAY, {"shop": SHOP})
    env = {**CLEAN_ENV, "GATEWAY_CONFIG_DIR": str(folder), "SHOP_URL": "http://127.0.0.1:9"}
    if traced:  # nothing is exported: no request is served
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
    report, log = _imported(_SERVE if entry == "serve" else _ASGI, folder, env)
    loaded = report["otel"]
    tracing = [name for name in loaded if name.startswith(TRACING_MODULES)]
    if traced:
        assert report["ours"] is True
        assert "opentelemetry.sdk.trace" in tracing
        assert "opentelemetry.instrumentation.aiohttp_client" in tracing
        assert "traces: OTLP/HTTP to http://127.0.0.1:9/v1/traces" in log
    else:
        assert report["ours"] is False
        assert tracing == []
        # Not even what Litestar and redis-py would import by themselves (gateway.lean).
        assert loaded == []
        assert "traces:" not in log
    if entry == "asgi":
        assert report["app"] == ("OpenTelemetryMiddleware" if traced else "GatewayApp")
