"""Generic proxying: inbound/outbound auth, templates, retries, timeouts, errors, caps, 503s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import GatewayFactory, write_config
from tests.upstreams.items import items_app
from tests.upstreams.server import Upstream, free_port, serve_upstream

GATEWAY = """\
server: {public_url: "https://gw.example.com"}
auth:
  - {id: key, type: api_key, keys: ["${KEY_ONE}", key-two]}
  - {id: qkey, type: api_key, header: null, query: api_key, keys: [query-key]}
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
  - {id: flaky, path: /flaky, upstream: {path: /v1/flaky}}
  - {id: slow, path: /slow, timeout: 200ms, upstream: {path: /v1/slow}}
  - {id: echoAuth, path: /echo-auth, upstream: {path: /v1/echo-auth}}
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
DEAD = """\
upstream: {name: dead, base_url: "http://127.0.0.1:${DEAD_PORT}"}
routes:
  - {id: dead, path: /dead, auth: none}
"""
KEY = {"X-API-Key": "key-one"}


@pytest.fixture
async def shop() -> AsyncIterator[Upstream]:
    app, recorder = items_app()
    async with serve_upstream(app, recorder) as upstream:
        yield upstream


def env(shop: Upstream, **extra: str) -> dict[str, str]:
    return {
        "SHOP_URL": shop.url,
        "SHOP_TOKEN": "shop-secret-token",
        "KEY_ONE": "key-one",
        "PARTNER_KEY": "partner-key",
        "DEAD_PORT": str(free_port()),
        **extra,
    }


def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, GATEWAY, {"shop": SHOP, "partner": HEADER_AUTH, "dead": DEAD})


async def test_api_key_inbound_and_bearer_outbound(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw:
        async with gw.http.get(f"{gw.url}/items") as r:
            assert r.status == 401
            assert (await r.json())["detail"] == "missing API key: send it in the X-API-Key header"
        async with gw.http.get(f"{gw.url}/items", headers={"X-API-Key": "wrong"}) as r:
            assert r.status == 401
            assert (await r.json())["detail"] == "invalid API key"
        for key in ("key-one", "key-two"):
            async with gw.http.get(f"{gw.url}/items", headers={"X-API-Key": key}) as r:
                assert r.status == 200
                assert await r.json() == [{"id": 0, "name": "item 0"}, {"id": 1, "name": "item 1"}]
        async with gw.http.get(f"{gw.url}/query-key?api_key=query-key") as r:
            assert r.status == 200
    seen = shop.seen[0]
    assert seen.path == "/v1/items"
    assert seen.query == {"limit": "2"}
    assert seen.headers["Authorization"] == "Bearer shop-secret-token"
    assert seen.headers["X-Static"] == "fixed"
    assert "X-API-Key" not in seen.headers


async def test_header_outbound_auth(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw:
        async with gw.http.get(f"{gw.url}/partner/items") as r:
            assert r.status == 200
    assert shop.seen[0].headers["X-Partner-Key"] == "partner-key"
    assert "Authorization" not in shop.seen[0].headers


async def test_query_and_path_parameters(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw:
        async with gw.http.get(f"{gw.url}/items?per_page=4", headers=KEY) as r:
            assert len(await r.json()) == 4
        async with gw.http.get(f"{gw.url}/items?per_page=99", headers=KEY) as r:
            assert r.status == 400
            assert (await r.json())["errors"] == [
                {"in": "query", "field": "per_page", "message": "must be <= 50, got 99"}
            ]
        async with gw.http.get(f"{gw.url}/items/abc-1", headers=KEY) as r:
            assert await r.json() == {"id": "abc-1"}
    assert [seen.path for seen in shop.seen] == ["/v1/items", "/v1/items/abc-1"]


async def test_retries_on_declared_status(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw:
        async with gw.http.get(f"{gw.url}/flaky", headers=KEY) as r:
            assert r.status == 200
            assert await r.json() == {"ok": True, "attempt": 3}
    assert len(shop.seen) == 3


async def test_timeout_is_a_504(gateway: GatewayFactory, shop: Upstream, tmp_path: Path) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw:
        async with gw.http.get(f"{gw.url}/slow", headers=KEY) as r:
            assert r.status == 504
            problem = await r.json()
    assert problem["detail"] == 'upstream "shop" did not answer within 0.2s'
    assert problem["type"] == "urn:problem:gateway:upstream-timeout"


async def test_unreachable_upstream_is_a_502(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw, gw.http.get(f"{gw.url}/dead") as r:
        assert r.status == 502
        assert (await r.json())["detail"] == (
            'upstream "dead" could not be reached: ClientConnectorError'
        )


async def test_upstream_error_is_a_502_with_excerpt_and_no_secret(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw:
        async with gw.http.get(f"{gw.url}/items/missing", headers=KEY) as r:
            assert r.status == 502
            missing = await r.json()
        async with gw.http.get(f"{gw.url}/echo-auth", headers=KEY) as r:
            echoed = await r.text()
    assert missing["upstream_status"] == 404
    assert missing["upstream_excerpt"] == '{"error": "no such item"}'
    assert "shop-secret-token" not in echoed
    assert '"upstream_excerpt":"{\\"error\\": \\"bad token Bearer ***\\"}"' in echoed


async def test_answers_are_capped_cleanly(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw:
        async with gw.http.get(f"{gw.url}/big", headers=KEY) as r:
            body = await r.read()
    assert len(body) <= 500
    items = __import__("json").loads(body)
    assert items[-1]["truncated"] is True
    assert items[-1]["total"] == 200
    assert items[0] == {"id": 0, "text": "x" * 50}


async def test_unconfigured_route_answers_503_and_others_work(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    environ = env(shop)
    del environ["PARTNER_KEY"]
    async with gateway(config(tmp_path), environ) as gw:
        async with gw.http.get(f"{gw.url}/partner/items") as r:
            assert r.status == 503
            assert (await r.json())["detail"] == (
                'upstream "partner" is not configured: set PARTNER_KEY'
            )
        async with gw.http.get(f"{gw.url}/items", headers=KEY) as r:
            assert r.status == 200
        async with gw.http.get(f"{gw.url}/health") as r:
            health = await r.text()
    assert '"unconfigured":[{"route":"partnerItems"' in health
    assert "shop-secret-token" not in health
    assert "key-one" not in health


async def test_built_in_documents(gateway: GatewayFactory, shop: Upstream, tmp_path: Path) -> None:
    async with gateway(config(tmp_path), env(shop)) as gw:
        async with gw.http.get(f"{gw.url}/openapi.json") as r:
            merged = await r.json()
        async with gw.http.get(f"{gw.url}/openapi.yaml") as r:
            assert r.content_type == "application/yaml"
            assert (await r.text()).startswith("openapi: 3.1.0\n")
        async with gw.http.get(f"{gw.url}/actions/shop/openapi.json") as r:
            profile = await r.json()
        async with gw.http.get(f"{gw.url}/actions/nope/openapi.json") as r:
            assert r.status == 404
            assert (await r.json())["detail"] == "no action profile `nope` (known: shop)"
        async with gw.http.get(f"{gw.url}/.well-known/ai-plugin.json") as r:
            manifest = await r.json()
        async with gw.http.get(f"{gw.url}/docs") as r:
            assert r.content_type == "text/html"
            assert "Redoc.init" in await r.text()
    assert merged["servers"] == [{"url": "https://gw.example.com"}]
    assert set(profile["paths"]) == {"/items", "/items/{item_id}"}
    assert manifest["api"] == {"type": "openapi", "url": "https://gw.example.com/openapi.json"}
    assert "shop-secret-token" not in str([merged, profile, manifest])
