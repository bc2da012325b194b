"""Failed credential checks are throttled per client IP, shared by replicas on Redis: past
the limit every attempt (the right key too) is a 429 with Retry-After until the window ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import REDIS_URL, GatewayFactory, RunningGateway, write_config

GATEWAY = """\
server: {failed_auth_limit: 3, failed_auth_window: 2s}
admin: {keys: [admin-right-key]}
store: {url: "${STORE_URL:-memory://}", namespace: "${STORE_NS:-gateway}"}
auth:
  - {id: key, type: api_key, keys: [right-key]}
defaults: {auth: key}
"""
ROUTES = """\
routes:
  - {id: hello, path: /hello, static: true, response: {body: '{{ {"hi": 1} }}'}}
"""


async def status(gw: RunningGateway, path: str, headers: dict[str, str]) -> tuple[int, str | None]:
    async with gw.http.get(f"{gw.url}{path}", headers=headers) as response:
        return response.status, response.headers.get("Retry-After")


async def check_lockout(
    first: RunningGateway, second: RunningGateway, path: str, header: str, right: str
) -> None:
    wrong = {header: "guess"}
    assert [await status(first, path, wrong) for _ in range(3)] == [(401, None)] * 3
    assert await status(first, path, wrong) == (429, "2")
    # Locked out: the right key gets the same 429 (a guess must not learn it was right),
    # on the other replica too when they share a store.
    assert await status(second, path, {header: right}) == (429, "2")
    await asyncio.sleep(2.2)
    assert (await status(second, path, {header: right}))[0] == 200


async def test_api_key_guessing_is_locked_out_per_ip(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = write_config(tmp_path, GATEWAY, {"hello": ROUTES})
    async with gateway(folder, {}) as gw:
        await check_lockout(gw, gw, "/hello", "X-API-Key", "right-key")
        # A burst of guesses: only the budget's worth is even checked.
        await asyncio.sleep(2.2)
        results = await asyncio.gather(
            *(status(gw, "/hello", {"X-API-Key": f"guess-{n}"}) for n in range(200))
        )
        assert sum(1 for code, _ in results if code == 401) == 3
        assert sum(1 for code, _ in results if code == 429) == 197


async def test_admin_key_guessing_is_locked_out(gateway: GatewayFactory, tmp_path: Path) -> None:
    folder = write_config(tmp_path, GATEWAY, {"hello": ROUTES})
    async with gateway(folder, {}) as gw:
        await check_lockout(gw, gw, "/admin/webhooks/dead", "X-Admin-Key", "admin-right-key")


async def test_two_replicas_on_redis_share_the_lockout(
    gateway: GatewayFactory, tmp_path: Path, redis_namespace: str
) -> None:
    folder = write_config(tmp_path, GATEWAY, {"hello": ROUTES})
    environ = {"STORE_URL": REDIS_URL, "STORE_NS": redis_namespace}
    async with gateway(folder, environ) as first, gateway(folder, environ) as second:
        await check_lockout(first, second, "/hello", "X-API-Key", "right-key")
