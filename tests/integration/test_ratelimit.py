"""Rate limits through the gateway: headers, 429 problems, per-key budgets, rejected is free."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REDIS_URL, GatewayFactory, write_config

GATEWAY = """\
store: {url: "${STORE_URL:-memory://}", namespace: "${STORE_NS:-gateway}"}
auth:
  - {id: key, type: api_key, keys: [key-a, key-b]}
defaults: {auth: key}
"""
ROUTES = """\
routes:
  - id: limited
    path: /limited
    static: true
    rate_limit: {limit: 2, per: 1h, key: api_key}
    response: {body: '{{ {"ok": true} }}'}
  - id: perTenant
    path: /tenant
    static: true
    rate_limit: {limit: 1, per: 1h, key: '{{ headers["x-tenant"] }}'}
    response: {body: '{{ {"ok": true} }}'}
"""


async def check_limits(gateway: GatewayFactory, folder: Path, env: dict[str, str]) -> None:
    async with gateway(folder, env) as gw:
        statuses = []
        for _ in range(4):
            async with gw.http.get(f"{gw.url}/limited", headers={"X-API-Key": "key-a"}) as r:
                statuses.append(r.status)
                last_headers, last_body = r.headers, await r.json()
        assert statuses == [200, 200, 429, 429]
        assert last_headers["RateLimit-Limit"] == "2"
        assert last_headers["RateLimit-Remaining"] == "0"
        assert int(last_headers["Retry-After"]) == 1800
        assert last_body["detail"] == "rate limit of 2 per 3600s reached; retry in 1800s"
        assert last_body["type"] == "urn:problem:gateway:rate-limited"
        async with gw.http.get(f"{gw.url}/limited", headers={"X-API-Key": "key-b"}) as r:
            assert r.status == 200  # another key, another budget
            assert r.headers["RateLimit-Remaining"] == "1"
        async with gw.http.get(
            f"{gw.url}/tenant", headers={"X-API-Key": "key-a", "X-Tenant": "t1"}
        ) as r:
            assert r.status == 200
        async with gw.http.get(
            f"{gw.url}/tenant", headers={"X-API-Key": "key-b", "X-Tenant": "t1"}
        ) as r:
            assert r.status == 429
        async with gw.http.get(
            f"{gw.url}/tenant", headers={"X-API-Key": "key-a", "X-Tenant": "t2"}
        ) as r:
            assert r.status == 200


async def test_limits_with_the_memory_store(gateway: GatewayFactory, tmp_path: Path) -> None:
    await check_limits(gateway, write_config(tmp_path, GATEWAY, {"r": ROUTES}), {})


async def test_limits_with_redis(
    gateway: GatewayFactory, tmp_path: Path, redis_namespace: str
) -> None:
    env = {"STORE_URL": REDIS_URL, "STORE_NS": redis_namespace}
    await check_limits(gateway, write_config(tmp_path, GATEWAY, {"r": ROUTES}), env)
