"""`/metrics` through the real gateway: who may scrape it, and that every counter named in
the README moves when its event happens, with bounded labels (route ids, never paths).

The registry belongs to the process (Prometheus scrapes each replica), and other tests run
gateways in this process too: every check compares a scrape before with one after.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import GatewayFactory, RunningGateway, eventually, write_config
from tests.oauth_client import chatgpt, token_for
from tests.upstreams.server import Recorder, Upstream, free_port, serve_upstream

METRICS_KEY = "metrics-key-0123456789"
ADMIN_KEY = "admin-key-0123456789"
GATEWAY = """\
admin: {keys: ["${ADMIN_KEY:-}"]}
metrics:
  keys: ["${METRICS_KEY:-}"]
  public: ${METRICS_PUBLIC:-false}
auth:
  - {id: key, type: api_key, header: X-API-Key, keys: [caller-key-1]}
  - {id: oauth, type: oauth}
oauth:
  clients:
    - {id: chatgpt, client_id: gpt-client, client_secret: gpt-secret-0123456789}
  scopes: {read:memories: Read your memories}
  users: [{username: alice, password: alice-pass-1, user_id: uid_alice}]
defaults: {auth: none}
queue: {visibility_timeout: 1s}
"""
ROUTES = """\
upstream:
  name: backend
  base_url: "${BACKEND_URL}"
  retry: {attempts: 1}
routes:
  - {id: hello, path: /hello, static: true, response: {body: '{{ {"hi": 1} }}'}}
  - {id: once, path: /once, static: true, rate_limit: {limit: 1, per: 1m, key: ip},
     response: {body: '{{ {"once": 1} }}'}}
  - {id: keyed, path: /keyed, auth: key, static: true, response: {body: '{{ {"k": 1} }}'}}
  - {id: me, path: /me, auth: oauth, scopes: ["read:memories"], static: true,
     response: {body: '{{ {"user": auth.user} }}'}}
  - {id: fetch, path: "/items/{item}", upstream: {path: "/items/{{ path.item }}"}}
  - {id: slow, path: /slow, timeout: 200ms, upstream: {path: /slow}}
webhooks:
  - {id: good, path: /hooks/good, handler: "hooks:good"}
  - {id: doomed, path: /hooks/doomed, handler: "hooks:doomed",
     retry: {attempts: 2, backoff: [50ms]}}
"""
AWAY = """\
upstream:
  name: away
  base_url: "${AWAY_URL}"
  retry: {attempts: 1}
routes:
  - {id: gone, path: /gone, upstream: {path: /}}
"""
HOOKS = """\
from gateway.plugin import PluginError


async def good(ctx, request):
    return None


async def doomed(ctx, request):
    raise PluginError("never works")
"""


@pytest.fixture
async def backend() -> AsyncIterator[Upstream]:
    recorder = Recorder()
    app = web.Application(middlewares=[recorder.middleware])

    async def item(request: web.Request) -> web.Response:
        if request.match_info["item"] == "missing":
            return web.json_response({"error": "no such item"}, status=404)
        return web.json_response({"id": request.match_info["item"]})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({"late": True})

    app.router.add_get("/items/{item}", item)
    app.router.add_get("/slow", slow)
    async with serve_upstream(app, recorder) as upstream:
        yield upstream


def config(tmp_path: Path) -> Path:
    folder = write_config(tmp_path, GATEWAY, {"backend": ROUTES, "away": AWAY})
    (folder / "plugins").mkdir(exist_ok=True)
    (folder / "plugins" / "hooks.py").write_text(HOOKS)
    return folder


def environ(backend: Upstream, **extra: str) -> dict[str, str]:
    return {
        "BACKEND_URL": backend.url,
        "AWAY_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "ADMIN_KEY": ADMIN_KEY,
        "METRICS_KEY": METRICS_KEY,
        **extra,
    }


class Scrape:
    """One scrape: ``value(name, **labels)`` of a sample (0.0 when absent)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(gw: RunningGateway) -> Scrape:
    headers = {"Authorization": f"Bearer {METRICS_KEY}"}
    async with gw.http.get(f"{gw.url}/metrics", headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return Scrape(await response.text())


async def get(gw: RunningGateway, path: str, **headers: str) -> int:
    async with gw.http.get(f"{gw.url}{path}", headers=headers) as response:
        await response.read()
        return response.status


async def test_scraping_takes_the_metrics_key_or_an_admin_key(
    gateway: GatewayFactory, tmp_path: Path, backend: Upstream
) -> None:
    async with gateway(config(tmp_path), environ(backend)) as gw:
        assert (await scrape(gw)).value("gateway_store_up") == 1.0
        assert await get(gw, "/metrics", **{"X-Admin-Key": ADMIN_KEY}) == 200
        # Prometheus asks for OpenMetrics, and gets it.
        openmetrics = {
            "Authorization": f"Bearer {METRICS_KEY}",
            "Accept": "application/openmetrics-text; version=1.0.0",
        }
        async with gw.http.get(f"{gw.url}/metrics", headers=openmetrics) as response:
            assert response.headers["Content-Type"] == (
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
            )
            assert (await response.text()).endswith("# EOF\n")
        async with gw.http.get(f"{gw.url}/metrics") as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
            problem = await response.json()
        assert problem["detail"] == (
            "send a metrics key as `Authorization: Bearer <key>` or an admin key in X-Admin-Key"
        )
        before = await scrape(gw)
        for wrong in ({"Authorization": "Bearer nope"}, {"X-Admin-Key": "nope"}):
            async with gw.http.get(f"{gw.url}/metrics", headers=wrong) as response:
                assert response.status == 401
                assert (await response.json())["detail"] == "invalid metrics key"
        after = await scrape(gw)
        # The first refusal above (no key at all) counted too; the key itself is never shown.
        assert after.value("gateway_auth_failures_total", kind="metrics") == (
            before.value("gateway_auth_failures_total", kind="metrics") + 2
        )
        assert "nope" not in after.text
        assert METRICS_KEY not in after.text


async def test_failed_scrape_keys_are_throttled(
    gateway: GatewayFactory, tmp_path: Path, backend: Upstream
) -> None:
    async with gateway(config(tmp_path), environ(backend)) as gw:
        statuses = [await get(gw, "/metrics", Authorization="Bearer guess") for _ in range(12)]
        assert statuses == [401] * 10 + [429, 429]
        async with gw.http.get(
            f"{gw.url}/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}
        ) as response:
            assert response.status == 429  # the right key too: a guesser learns nothing
            assert int(response.headers["Retry-After"]) >= 1


async def test_without_keys_metrics_are_off_unless_public(
    gateway: GatewayFactory, tmp_path: Path, backend: Upstream
) -> None:
    folder = config(tmp_path)
    async with gateway(folder, environ(backend, ADMIN_KEY="", METRICS_KEY="")) as gw:
        async with gw.http.get(f"{gw.url}/metrics") as response:
            assert response.status == 503
            assert response.headers["Content-Type"] == "application/problem+json"
            assert (await response.json())["detail"] == (
                "metrics are off: set `metrics.keys` (GATEWAY_METRICS_KEY) or `admin.keys` in "
                "gateway.yaml, or `metrics.public: true`"
            )
    env = environ(backend, ADMIN_KEY="", METRICS_KEY="", METRICS_PUBLIC="true")
    async with gateway(folder, env) as gw:
        async with gw.http.get(f"{gw.url}/metrics") as response:
            assert response.status == 200
            assert "gateway_requests_total" in await response.text()


async def test_requests_upstreams_and_refusals_are_counted_by_route_id(
    gateway: GatewayFactory, tmp_path: Path, backend: Upstream
) -> None:
    async with gateway(config(tmp_path), environ(backend)) as gw:
        before = await scrape(gw)
        assert [await get(gw, "/hello") for _ in range(3)] == [200, 200, 200]
        assert await get(gw, "/items/abc") == 200
        assert await get(gw, "/items/missing") == 404
        assert await get(gw, "/slow") == 504
        assert await get(gw, "/gone") == 502
        assert [await get(gw, "/once") for _ in range(2)] == [200, 429]
        assert await get(gw, "/keyed", **{"X-API-Key": "wrong"}) == 401
        assert await get(gw, "/no-such-path-4f2a") == 404
        assert await get(gw, "/health") == 200
        async with gw.http.request("PROPFIND", f"{gw.url}/no-such-path-4f2a") as response:
            assert response.status == 404
        after = await scrape(gw)

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    requests = "gateway_requests_total"
    assert grew(requests, route="hello", method="GET", status="200") == 3
    assert grew("gateway_request_duration_seconds_count", route="hello") == 3
    assert grew(requests, route="fetch", method="GET", status="200") == 1
    assert grew(requests, route="fetch", method="GET", status="404") == 1
    assert grew(requests, route="slow", method="GET", status="504") == 1
    assert grew(requests, route="gone", method="GET", status="502") == 1
    assert grew(requests, route="once", method="GET", status="429") == 1
    assert grew(requests, route="_unmatched", method="GET", status="404") == 1
    assert grew(requests, route="_unmatched", method="OTHER", status="404") == 1
    assert grew(requests, route="_gateway:/health", method="GET", status="200") == 1
    # The scrape itself: the one before this one was answered inside the window.
    assert grew(requests, route="_gateway:/metrics", method="GET", status="200") == 1

    upstream = "gateway_upstream_requests_total"
    assert grew(upstream, upstream="backend", status="200") == 1
    assert grew(upstream, upstream="backend", status="404") == 1
    assert grew("gateway_upstream_errors_total", upstream="backend", kind="timeout") == 1
    assert grew("gateway_upstream_errors_total", upstream="away", kind="unreachable") == 1
    assert grew("gateway_upstream_duration_seconds_count", upstream="backend") == 3
    assert grew("gateway_rate_limited_total", route="once") == 1
    assert grew("gateway_auth_failures_total", kind="api_key") == 1
    # Bounded labels: a path, an item id or a key never becomes a series. (The config
    # version is a hex hash: it may well hold "abc", so its line is not searched.)
    series = "\n".join(
        line for line in after.text.splitlines() if not line.startswith("gateway_config_info")
    )
    for value in ("no-such-path-4f2a", "/items/", "abc", "wrong", "PROPFIND"):
        assert value not in series


async def test_webhook_events_and_the_queue_are_counted(
    gateway: GatewayFactory, tmp_path: Path, backend: Upstream
) -> None:
    async with gateway(config(tmp_path), environ(backend)) as gw:
        before = await scrape(gw)
        for path in ("/hooks/good", "/hooks/good", "/hooks/doomed"):
            async with gw.http.post(f"{gw.url}{path}", json={"n": 1}) as response:
                assert response.status == 200, await response.text()
        worker = gw.state.worker
        assert worker is not None
        await eventually(lambda: worker.processed >= 2 and worker.failed >= 2)
        await eventually(lambda: not worker.in_flight)
        after = await scrape(gw)

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert grew("gateway_webhook_events_received_total", webhook="good") == 2
    assert grew("gateway_webhook_events_received_total", webhook="doomed") == 1
    assert grew("gateway_webhook_events_processed_total", webhook="good") == 2
    assert grew("gateway_webhook_events_failed_total", webhook="doomed") == 2
    assert grew("gateway_webhook_events_dead_lettered_total", webhook="doomed") == 1
    assert grew("gateway_requests_total", route="webhook:good", method="POST", status="200") == 2
    assert after.value("gateway_webhook_queue_depth") == 0.0


async def test_reloads_and_the_served_version(
    gateway: GatewayFactory, tmp_path: Path, backend: Upstream
) -> None:
    folder = config(tmp_path)
    async with gateway(folder, environ(backend)) as gw:
        first = gw.state.switch.current.version
        before = await scrape(gw)
        assert before.value("gateway_config_info", version=first) == 1.0
        admin = {"X-Admin-Key": ADMIN_KEY}
        (folder / "routes.d" / "away.yaml").write_text("routes: [oops\n")
        async with gw.http.post(f"{gw.url}/admin/reload", headers=admin) as response:
            assert response.status == 422
        (folder / "routes.d" / "away.yaml").write_text(AWAY.replace("/gone", "/gone2"))
        async with gw.http.post(f"{gw.url}/admin/reload", headers=admin) as response:
            assert response.status == 200
            second = (await response.json())["version"]
        async with gw.http.post(f"{gw.url}/admin/reload", headers=admin) as response:
            assert (await response.json())["status"] == "unchanged"
        after = await scrape(gw)
    assert second != first
    for outcome in ("refused", "ok", "unchanged"):
        grown = after.value("gateway_reloads_total", outcome=outcome) - before.value(
            "gateway_reloads_total", outcome=outcome
        )
        assert grown == 1, outcome
    assert after.value("gateway_config_info", version=second) == 1.0
    assert ("gateway_config_info", frozenset({("version", first)})) not in after.samples


async def test_oauth_tokens_issued_and_refused(
    gateway: GatewayFactory, tmp_path: Path, backend: Upstream
) -> None:
    async with gateway(config(tmp_path), environ(backend)) as gw:
        before = await scrape(gw)
        token = await token_for(gw, "alice", "alice-pass-1")
        async with chatgpt(gw) as client:
            await client.refresh_token(
                f"{gw.url}/oauth/token", refresh_token=token["refresh_token"]
            )
        assert await get(gw, "/me", Authorization=f"Bearer {token['access_token']}") == 200
        assert await get(gw, "/me", Authorization="Bearer not-a-token") == 401
        after = await scrape(gw)

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert grew("gateway_oauth_tokens_issued_total", grant_type="authorization_code") == 1
    assert grew("gateway_oauth_tokens_issued_total", grant_type="refresh_token") == 1
    assert grew("gateway_auth_failures_total", kind="oauth_token") == 1
    assert token["access_token"] not in after.text
