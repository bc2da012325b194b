"""Generic proxying: inbound/outbound auth, templates, retries, timeouts, errors, caps, 503s.

A small config written to tmp_path (its own gateway.yaml and routes.d files) in front of the
loopback items upstream (tests/upstreams/items.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
import yarl

from tests.conftest import GatewayFactory, write_config
from tests.upstreams.items import items_app
from tests.upstreams.server import Upstream, free_port, serve_upstream

GATEWAY = """\
server: {public_url: "https://gw.example.com"}
info: {title: Test Gateway, description: A gateway for tests., version: "2.0.0"}
auth:
  - {id: key, type: api_key, keys: ["${KEY_ONE}", key-two]}
  - {id: qkey, type: api_key, header: null, query: api_key, keys: [query-key, query-key-2]}
defaults: {auth: key}
profiles:
  - {id: shop, title: Shop, description: The shop API., tags: [shop]}
"""
SHOP = """\
upstream:
  name: shop
  base_url: ${SHOP_URL}
  headers: {X-Static: fixed}
  auth: {type: bearer, token: "${SHOP_TOKEN}"}
  retry: {attempts: 3, on_status: [503], backoff: 10ms}
routes:
  - id: listItems
    path: /items
    tags: [shop]
    query: [{name: per_page, type: integer, minimum: 1, maximum: 50, default: 2}]
    upstream: {path: /v1/items, query: {limit: "{{ query.per_page }}"}}
    response:
      body: '{{ body.data | map("pick", "id", "name") | list }}'
  - id: getItem
    path: /items/{item_id}
    tags: [shop]
    upstream: {path: "/v1/items/{{ path.item_id }}"}
    response: {pass_statuses: []}        # every upstream error is a 502 here
  - {id: flaky, path: /flaky, upstream: {path: /v1/flaky}}
  - {id: slow, path: /slow, timeout: 200ms, retry: {attempts: 1}, upstream: {path: /v1/slow}}
  - {id: slowRetried, path: /slow-retried, timeout: 200ms, upstream: {path: /v1/slow}}
  - {id: echoAuth, path: /echo-auth, upstream: {path: /v1/echo-auth}}
  - {id: echoAuthLate, path: /echo-auth-late, upstream: {path: /v1/echo-auth-late}}
  - {id: big, path: /big, response: {max_chars: 500}, upstream: {path: /v1/big}}
  - {id: queryKey, path: /query-key, auth: qkey, upstream: {path: /v1/items}}
"""
HEADER_AUTH = """\
upstream:
  name: partner
  base_url: ${SHOP_URL}
  auth: {type: header, name: X-Partner-Key, value: "${PARTNER_KEY}"}
routes:
  - {id: partnerItems, path: /partner/items, auth: none, upstream: {path: /v1/items}}
"""
X_UPSTREAM = """\
upstream:
  name: x
  base_url: ${SHOP_URL}
  auth: {type: bearer, token: "${X_TOKEN}"}
routes:
  - {id: xItems, path: /x/items, upstream: {path: /v1/items}}
"""
DEAD = """\
upstream: {name: dead, base_url: "http://127.0.0.1:${DEAD_PORT}", retry: {attempts: 1}}
routes:
  - {id: dead, path: /dead, auth: none}
"""
ROUTES = 12
# Long enough that an excerpt window could cut it in two (OAuth access tokens are this long).
SHOP_TOKEN = "shop-secret-token-" + "A" * 282
KEY = {"X-API-Key": "key-one"}
PROBLEM = "application/problem+json"


@pytest.fixture
async def shop() -> AsyncIterator[Upstream]:
    app, recorder = items_app()
    async with serve_upstream(app, recorder) as upstream:
        yield upstream


def env(shop: Upstream, **extra: str) -> dict[str, str]:
    return {
        "SHOP_URL": shop.url,
        "SHOP_TOKEN": SHOP_TOKEN,
        "KEY_ONE": "key-one",
        "PARTNER_KEY": "partner-key",
        "X_TOKEN": "x-secret-token",
        "DEAD_PORT": str(free_port()),  # free now, and nothing listens there
        **extra,
    }


def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        GATEWAY,
        {"shop": SHOP, "partner": HEADER_AUTH, "x": X_UPSTREAM, "dead": DEAD},
    )


def assert_no_gateway_credentials(shop: Upstream) -> None:
    """What the caller proved itself with never reaches the upstream."""
    assert shop.seen, "the upstream saw no request"
    for seen in shop.seen:
        assert "X-API-Key" not in seen.headers
        assert "api_key" not in seen.query
        assert "Cookie" not in seen.headers


async def test_api_key_in_a_header(gateway: GatewayFactory, shop: Upstream, tmp_path: Path) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw:
        async with gw.http.get(f"{gw.url}/items") as r:
            assert r.status == 401
            assert r.content_type == PROBLEM
            assert "WWW-Authenticate" not in r.headers
            missing = await r.json()
        async with gw.http.get(f"{gw.url}/items", headers={"X-API-Key": "wrong"}) as r:
            assert r.status == 401
            wrong = await r.json()
        # The key is only looked for where the scheme says: not in the query.
        async with gw.http.get(f"{gw.url}/items?X-API-Key=key-one") as r:
            assert r.status == 401
        for key in ("key-one", "key-two"):
            async with gw.http.get(
                f"{gw.url}/items", headers={"X-API-Key": key, "Cookie": "session=abc"}
            ) as r:
                assert r.status == 200, key
                assert await r.json() == [{"id": 0, "name": "item 0"}, {"id": 1, "name": "item 1"}]
    assert missing["detail"] == "missing API key: send it in the X-API-Key header"
    assert missing["type"] == "urn:problem:gateway:unauthorized"
    assert missing["route"] == "listItems"
    assert wrong["detail"] == "invalid API key"
    assert len(shop.seen) == 2
    assert_no_gateway_credentials(shop)


async def test_api_key_in_the_query(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw:
        async with gw.http.get(f"{gw.url}/query-key") as r:
            assert r.status == 401
            missing = await r.json()
        async with gw.http.get(f"{gw.url}/query-key?api_key=nope") as r:
            assert r.status == 401
            wrong = await r.json()
        async with gw.http.get(
            f"{gw.url}/query-key", headers={"X-API-Key": "key-one"}
        ) as r:  # another scheme's key does not open this route
            assert r.status == 401
        for key in ("query-key", "query-key-2"):
            async with gw.http.get(f"{gw.url}/query-key?api_key={key}") as r:
                assert r.status == 200, key
    assert missing["detail"] == "missing API key: send it in the `api_key` query parameter"
    assert wrong["detail"] == "invalid API key"
    assert len(shop.seen) == 2
    assert_no_gateway_credentials(shop)


async def test_outbound_bearer_and_static_headers(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    caller = {**KEY, "Authorization": "Bearer the-callers-own", "X-Request-ID": "rid-7"}
    async with (
        gateway(config(tmp_path), env(shop)) as gw,
        gw.http.get(f"{gw.url}/items", headers=caller) as r,
    ):
        assert r.status == 200
        assert r.headers["X-Request-ID"] == "rid-7"
    (seen,) = shop.seen
    assert seen.headers["Authorization"] == f"Bearer {SHOP_TOKEN}"
    assert seen.headers["X-Static"] == "fixed"
    assert seen.headers["X-Request-ID"] == "rid-7"
    assert_no_gateway_credentials(shop)


async def test_outbound_header_auth(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with (
        gateway(config(tmp_path), env(shop)) as gw,
        gw.http.get(f"{gw.url}/partner/items", headers=KEY) as r,
    ):
        assert r.status == 200
    (seen,) = shop.seen
    assert seen.headers["X-Partner-Key"] == "partner-key"
    assert "Authorization" not in seen.headers
    assert "X-Static" not in seen.headers  # headers belong to their own upstream
    assert_no_gateway_credentials(shop)


async def test_query_templates_path_parameters_and_validation(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw:
        async with gw.http.get(f"{gw.url}/items?per_page=4&unknown=1", headers=KEY) as r:
            assert r.status == 200
            assert [item["id"] for item in await r.json()] == [0, 1, 2, 3]
        async with gw.http.get(f"{gw.url}/items?per_page=99", headers=KEY) as r:
            assert r.status == 400
            assert r.content_type == PROBLEM
            too_big = await r.json()
        async with gw.http.get(f"{gw.url}/items?per_page=0", headers=KEY) as r:
            assert r.status == 400
            too_small = await r.json()
        async with gw.http.get(f"{gw.url}/items?per_page=many", headers=KEY) as r:
            assert r.status == 400
            not_int = await r.json()
        async with gw.http.get(f"{gw.url}/items/abc-1", headers=KEY) as r:
            assert r.status == 200
            assert await r.json() == {"id": "abc-1"}
        async with gw.http.get(f"{gw.url}/items/a%20b", headers=KEY) as r:
            assert r.status == 200
        # A dot segment smuggled in encoded must not walk up the upstream's path.
        dots = yarl.URL(f"{gw.url}/items/%2E%2E", encoded=True)
        async with gw.http.get(dots, headers=KEY) as r:
            assert r.status == 400
            dot_segment = await r.json()
    assert too_big["detail"] == "the request is invalid: 1 field failed"
    assert too_big["errors"] == [
        {"in": "query", "field": "per_page", "message": "must be <= 50, got 99"}
    ]
    assert too_small["errors"] == [
        {"in": "query", "field": "per_page", "message": "must be >= 1, got 0"}
    ]
    assert not_int["errors"] == [
        {"in": "query", "field": "per_page", "message": "Expected `integer`, got 'many'"}
    ]
    assert dot_segment["errors"] == [
        {"in": "path", "field": "item_id", "message": "must not be `.` or `..`"}
    ]
    # Only the valid requests went upstream; the template set `limit`, the rest was dropped.
    assert [(seen.raw_path, seen.query) for seen in shop.seen] == [
        ("/v1/items?limit=4", {"limit": "4"}),
        ("/v1/items/abc-1", {}),
        ("/v1/items/a%20b", {}),
    ]


async def test_retries_on_declared_status(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with (
        gateway(config(tmp_path), env(shop)) as gw,
        gw.http.get(f"{gw.url}/flaky", headers=KEY) as r,
    ):
        assert r.status == 200
        assert await r.json() == {"ok": True, "attempt": 3}
    assert [seen.path for seen in shop.seen] == ["/v1/flaky"] * 3


async def test_timeout_is_a_504(gateway: GatewayFactory, shop: Upstream, tmp_path: Path) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw:
        started = time.monotonic()
        async with gw.http.get(f"{gw.url}/slow", headers=KEY) as r:
            assert r.status == 504
            assert r.content_type == PROBLEM
            problem = await r.json()
        elapsed = time.monotonic() - started
        assert len(shop.seen) == 1
        # Idempotent calls are retried after a timeout too (3 attempts on this upstream).
        async with gw.http.get(f"{gw.url}/slow-retried", headers=KEY) as r:
            assert r.status == 504
            retried = await r.json()
    assert problem["detail"] == 'upstream "shop" did not answer within 0.2s'
    assert problem["type"] == "urn:problem:gateway:upstream-timeout"
    assert problem["title"] == "Gateway Timeout"
    assert problem["route"] == "slow"
    assert elapsed < 0.9  # the upstream would take 1 s
    assert retried["detail"] == 'upstream "shop" did not answer within 0.2s'
    assert len(shop.seen) == 1 + 3


async def test_unreachable_upstream_is_a_502(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw, gw.http.get(f"{gw.url}/dead") as r:
        assert r.status == 502
        assert r.content_type == PROBLEM
        problem = await r.json()
    assert problem["detail"] == 'upstream "dead" could not be reached: ConnectError'
    assert problem["type"] == "urn:problem:gateway:upstream-unreachable"
    assert "upstream_status" not in problem


async def test_upstream_error_is_a_502_with_excerpt(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with (
        gateway(config(tmp_path), env(shop)) as gw,
        gw.http.get(f"{gw.url}/items/missing", headers=KEY) as r,
    ):
        assert r.status == 502
        assert r.content_type == PROBLEM
        problem = await r.json()
    assert problem["detail"] == 'upstream "shop" answered 404'
    assert problem["type"] == "urn:problem:gateway:upstream-error"
    assert problem["route"] == "getItem"
    assert problem["upstream_status"] == 404
    assert problem["upstream_excerpt"] == '{"error": "no such item"}'
    assert len(shop.seen) == 1  # 404 is not in on_status


async def test_secrets_echoed_by_the_upstream_are_redacted(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw:
        async with gw.http.get(f"{gw.url}/echo-auth", headers=KEY) as r:
            assert r.status == 502
            echoed_text = await r.text()
        async with gw.http.get(f"{gw.url}/echo-auth-late", headers=KEY) as r:
            assert r.status == 502
            late_text = await r.text()
    # The upstream really did echo it: the gateway is what keeps it from the caller.
    assert shop.seen[0].headers["Authorization"] == f"Bearer {SHOP_TOKEN}"
    for text in (echoed_text, late_text):
        assert "shop-secret-token" not in text
        assert "AAAAAAAAAA" not in text
    assert json.loads(echoed_text)["upstream_excerpt"] == '{"error": "bad token Bearer ***"}'
    # A secret straddling where the excerpt is cut is still redacted as a whole.
    assert json.loads(late_text)["upstream_excerpt"] == "x" * 150 + " token Bearer ***"


async def test_answers_are_capped_cleanly(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with (
        gateway(config(tmp_path), env(shop)) as gw,
        gw.http.get(f"{gw.url}/big", headers=KEY) as r,
    ):
        assert r.status == 200
        assert r.content_type == "application/json"
        body = await r.read()
    assert len(body.decode()) <= 500
    items = json.loads(body)
    *kept, marker = items
    assert marker == {
        "truncated": True,
        "shown": len(kept),
        "total": 200,
        "note": "answer cut to fit the size limit; narrow the request to see the rest",
    }
    assert len(kept) >= 1
    assert kept == [{"id": index, "text": "x" * 50} for index in range(len(kept))]


async def test_unconfigured_route_answers_503_and_others_work(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    environ = env(shop)
    del environ["X_TOKEN"]
    async with gateway(config(tmp_path), environ) as gw:
        async with gw.http.get(f"{gw.url}/x/items", headers=KEY) as r:
            assert r.status == 503
            assert r.content_type == PROBLEM
            problem = await r.json()
        async with gw.http.get(f"{gw.url}/x/items") as r:  # 503 comes before auth
            assert r.status == 503
        async with gw.http.get(f"{gw.url}/items", headers=KEY) as r:
            assert r.status == 200
        async with gw.http.get(f"{gw.url}/partner/items") as r:
            assert r.status == 200
        async with gw.http.get(f"{gw.url}/health") as r:
            assert r.status == 200
            health_text = await r.text()
        version = gw.state.switch.current.version
    assert problem["detail"] == 'upstream "x" is not configured: set X_TOKEN'
    assert problem["type"] == "urn:problem:gateway:not-configured"
    assert problem["route"] == "xItems"
    assert [seen.path for seen in shop.seen] == ["/v1/items", "/v1/items"]
    health = json.loads(health_text)
    assert health["status"] == "ok"
    assert health["version"] == version
    assert health["routes"] == ROUTES
    assert health["unconfigured"] == [
        {"route": "xItems", "reason": 'upstream "x" is not configured: set X_TOKEN'}
    ]
    for secret in (SHOP_TOKEN, "key-one", "key-two", "partner-key", "query-key"):
        assert secret not in health_text


async def test_health_when_everything_is_configured(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with (
        gateway(config(tmp_path), env(shop)) as gw,
        gw.http.get(f"{gw.url}/health") as r,
    ):
        assert r.status == 200
        health_text = await r.text()
    health = json.loads(health_text)
    assert health["routes"] == ROUTES
    assert health["unconfigured"] == []
    assert len(health["version"]) >= 8
    for secret in (SHOP_TOKEN, "x-secret-token", "key-one", "partner-key"):
        assert secret not in health_text


async def test_built_in_documents(gateway: GatewayFactory, shop: Upstream, tmp_path: Path) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw:
        async with gw.http.get(f"{gw.url}/openapi.json") as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            merged = await r.json()
        async with gw.http.get(f"{gw.url}/openapi.yaml") as r:
            assert r.status == 200
            assert r.content_type == "application/yaml"
            from_yaml = yaml.safe_load(await r.text())
        async with gw.http.get(f"{gw.url}/actions/shop/openapi.json") as r:
            assert r.status == 200
            profile = await r.json()
        async with gw.http.get(f"{gw.url}/actions/nope/openapi.json") as r:
            assert r.status == 404
            assert r.content_type == PROBLEM
            unknown = await r.json()
        async with gw.http.get(f"{gw.url}/.well-known/ai-plugin.json") as r:
            assert r.status == 200
            manifest = await r.json()
        async with gw.http.get(f"{gw.url}/docs") as r:
            assert r.status == 200
            assert r.content_type == "text/html"
            docs = await r.text()
        async with gw.http.post(f"{gw.url}/openapi.json") as r:
            assert r.status == 405
            assert r.content_type == PROBLEM
            assert "GET" in r.headers["Allow"]
    assert merged["openapi"] == "3.1.0"
    assert merged["info"]["title"] == "Test Gateway"
    assert merged["servers"] == [{"url": "https://gw.example.com"}]
    assert from_yaml == merged
    assert "/items" in merged["paths"]
    assert set(profile["paths"]) == {"/items", "/items/{item_id}"}
    assert profile["openapi"] == "3.1.0"
    assert unknown["detail"] == "no action profile `nope` (known: shop)"
    assert manifest["api"] == {"type": "openapi", "url": "https://gw.example.com/openapi.json"}
    assert "<html" in docs.lower()
    assert 'data-openapi-url="/openapi.json"' in docs  # Swagger UI (tests/browser renders it)
    everything = json.dumps([merged, profile, manifest]) + docs
    for secret in (SHOP_TOKEN, "key-one", "partner-key", "x-secret-token"):
        assert secret not in everything
