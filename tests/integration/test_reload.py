"""Reloads swap complete snapshots only; broken edits change nothing that serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.reload import ReloadOutcome
from tests.conftest import GatewayFactory, RunningGateway, write_config
from tests.upstreams.items import items_app
from tests.upstreams.server import Upstream, serve_upstream

GATEWAY = """\
admin: {keys: [admin-secret]}
defaults: {auth: none}
"""
SHOP = """\
upstream: {name: shop, base_url: "${SHOP_URL}", auth: {type: bearer, token: t1}}
routes:
  - {id: listItems, path: /items, upstream: {path: /v1/items}}
"""


@pytest.fixture
async def shop() -> Upstream:
    app, recorder = items_app()
    async with serve_upstream(app, recorder) as upstream:
        yield upstream  # type: ignore[misc]


def reloader(gw: RunningGateway):  # type: ignore[no-untyped-def]
    assert gw.state.reloader is not None
    return gw.state.reloader


async def test_good_edit_swaps_and_serves(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    folder = write_config(tmp_path, GATEWAY, {"shop": SHOP})
    async with gateway(folder, {"SHOP_URL": shop.url}) as gw:
        before = gw.state.switch.current.version
        session = gw.state.pool.session(gw.state.switch.current.upstreams["shop"])
        (folder / "routes.d" / "shop.yaml").write_text(
            SHOP
            + "  - {id: oneItem, path: '/items/{item_id}', upstream: {path: '/v1/items/{{ path.item_id }}'}}\n"
        )
        result = await reloader(gw).reload("test")
        assert result.outcome is ReloadOutcome.SWAPPED
        assert result.diff is not None
        assert result.diff.summary() == "routes +1 (oneItem)"
        assert gw.state.switch.current.version != before
        async with gw.http.get(f"{gw.url}/items/9") as r:
            assert await r.json() == {"id": "9"}
        # The upstream's settings did not change: its pooled session is reused.
        assert gw.state.pool.session(gw.state.switch.current.upstreams["shop"]) is session
        assert (await reloader(gw).reload("again")).outcome is ReloadOutcome.UNCHANGED


async def test_broken_edit_keeps_serving_and_is_reported(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    folder = write_config(tmp_path, GATEWAY, {"shop": SHOP})
    async with gateway(folder, {"SHOP_URL": shop.url}) as gw:
        version = gw.state.switch.current.version
        (folder / "routes.d" / "shop.yaml").write_text(SHOP + "  - {id: bad, path: nope}\n")
        result = await reloader(gw).reload("test")
        assert result.outcome is ReloadOutcome.FAILED
        assert result.errors == (
            "routes.d/shop.yaml:4:21: Invalid value: A path starting with `/`; `{name}` marks a"
            " path parameter. - at `$.routes[1].path`",
        )
        assert gw.state.switch.current.version == version
        async with gw.http.get(f"{gw.url}/items") as r:
            assert r.status == 200
        async with gw.http.get(f"{gw.url}/health", headers={"X-Admin-Key": "admin-secret"}) as r:
            health = await r.json()
        assert health["failed_reloads"] == 1
        assert health["last_reload_error"] == result.errors[0]
        async with gw.http.get(f"{gw.url}/health") as r:  # without the admin key
            assert (await r.json())["last_reload_error"] == (
                "routes.d/shop.yaml:4:21: Invalid value - at `$.routes[1].path`"
            )
        (folder / "routes.d" / "shop.yaml").write_text(SHOP)  # fixed again
        assert (await reloader(gw).reload("fixed")).outcome is ReloadOutcome.UNCHANGED
        async with gw.http.get(f"{gw.url}/health") as r:
            assert (await r.json())["last_reload_error"] is None


async def test_changed_upstream_gets_a_new_client_and_old_one_is_retired(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    folder = write_config(tmp_path, GATEWAY, {"shop": SHOP})
    async with gateway(folder, {"SHOP_URL": shop.url}) as gw:
        old = gw.state.pool.session(gw.state.switch.current.upstreams["shop"])
        moved = SHOP.replace("auth:", "connect_timeout: 3s, auth:")  # other client settings
        (folder / "routes.d" / "shop.yaml").write_text(moved.replace("token: t1", "token: t2"))
        assert (await reloader(gw).reload("token")).outcome is ReloadOutcome.SWAPPED
        async with gw.http.get(f"{gw.url}/items") as r:
            assert r.status == 200
        new = gw.state.pool.session(gw.state.switch.current.upstreams["shop"])
        assert new is not old
        for _ in range(40):  # bounded: the retired session closes once idle
            if old.closed:
                break
            await __import__("asyncio").sleep(0.05)
        assert old.closed
    assert [seen.headers["Authorization"] for seen in shop.seen] == ["Bearer t2"]


async def test_admin_reload_endpoint(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    folder = write_config(tmp_path, GATEWAY, {"shop": SHOP})
    async with gateway(folder, {"SHOP_URL": shop.url}) as gw:
        async with gw.http.post(f"{gw.url}/admin/reload") as r:
            assert r.status == 401
            assert (await r.json())[
                "detail"
            ] == "missing API key: send it in the X-Admin-Key header"
        (folder / "routes.d" / "shop.yaml").write_text(
            SHOP.replace("path: /items,", "path: /things,")
        )
        admin = {"X-Admin-Key": "admin-secret"}
        async with gw.http.post(f"{gw.url}/admin/reload", headers=admin) as r:
            assert r.status == 200
            body = await r.json()
        assert body["status"] == "reloaded"
        assert body["changes"] == [
            "route changed: listItems",
            "operation added: GET /things (listItems)",
            "operation removed: GET /items (listItems)",
        ]
        (folder / "gateway.yaml").write_text(GATEWAY + "defaults: {}\n")
        async with gw.http.post(f"{gw.url}/admin/reload", headers=admin) as r:
            assert r.status == 422
            refused = await r.json()
        assert refused["errors"] == ["gateway.yaml:3:1: duplicate key `defaults` - at `$.defaults`"]
        async with gw.http.get(f"{gw.url}/things") as r:
            assert r.status == 200


async def test_admin_api_is_off_without_keys(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path
) -> None:
    folder = write_config(tmp_path, "defaults: {auth: none}\n", {"shop": SHOP})
    async with gateway(folder, {"SHOP_URL": shop.url}) as gw:
        async with gw.http.post(f"{gw.url}/admin/reload", headers={"X-Admin-Key": "x"}) as r:
            assert r.status == 503
            assert (await r.json())[
                "detail"
            ] == "the admin API is off: set `admin.keys` in gateway.yaml"


async def test_edited_plugin_serves_new_code(gateway: GatewayFactory, tmp_path: Path) -> None:
    routes = "routes:\n  - {id: hello, path: /hello, handler: hello:hello}\n"
    folder = write_config(tmp_path, "defaults: {auth: none}\n", {"hello": routes})
    (folder / "plugins").mkdir()
    code = "async def hello(ctx, request):\n    return {'v': %d}\n"
    (folder / "plugins" / "hello.py").write_text(code % 1)
    async with gateway(folder, {}) as gw:
        async with gw.http.get(f"{gw.url}/hello") as r:
            assert await r.json() == {"v": 1}
        (folder / "plugins" / "hello.py").write_text(code % 2)
        assert (await reloader(gw).reload("plugin")).outcome is ReloadOutcome.SWAPPED
        async with gw.http.get(f"{gw.url}/hello") as r:
            assert await r.json() == {"v": 2}
        (folder / "plugins" / "hello.py").write_text(
            "async def hello(ctx, request):\n    return {\n"
        )
        assert (await reloader(gw).reload("broken plugin")).outcome is ReloadOutcome.FAILED
        async with gw.http.get(f"{gw.url}/hello") as r:
            assert await r.json() == {"v": 2}


async def test_settings_read_at_start_are_named_when_a_reload_changes_them(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = write_config(tmp_path, GATEWAY, {"shop": SHOP})
    async with gateway(folder, {"SHOP_URL": shop.url}) as gw:
        (folder / "gateway.yaml").write_text(
            GATEWAY + "store: {namespace: other}\nqueue: {consume: false, dead_letters: 5}\n"
        )
        with caplog.at_level("WARNING", logger="gateway"):
            result = await reloader(gw).reload("test")
        assert result.outcome is ReloadOutcome.SWAPPED
        assert [r.getMessage() for r in caplog.records if "restart" in r.getMessage()] == [
            "store.namespace, queue.dead_letters, queue.consume changed: read at start only,"
            " restart to apply"
        ]
        # The new snapshot carries the new values; what was opened at start stays as it was.
        assert gw.state.backend.stores.namespace == "gateway"
        assert gw.state.switch.current.queue.consume is False


async def test_a_secret_in_a_broken_edit_is_never_shown(
    gateway: GatewayFactory, shop: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The token lands in a field where it does not fit: the refusal redacts it everywhere."""
    folder = write_config(tmp_path, GATEWAY, {"shop": SHOP})
    environ = {"SHOP_URL": shop.url, "SHOP_SECRET": "sk-live-0123456789abcdef"}
    async with gateway(folder, environ) as gw:
        (folder / "routes.d" / "shop.yaml").write_text(
            SHOP.replace("auth: {type: bearer, token: t1}", "timeout: '${SHOP_SECRET}'")
        )
        with caplog.at_level("ERROR", logger="gateway"):
            async with gw.http.post(
                f"{gw.url}/admin/reload", headers={"X-Admin-Key": "admin-secret"}
            ) as r:
                assert r.status == 422
                refused = await r.text()
        async with gw.http.get(f"{gw.url}/health", headers={"X-Admin-Key": "admin-secret"}) as r:
            full = (await r.json())["last_reload_error"]
        async with gw.http.get(f"{gw.url}/health") as r:
            anonymous = (await r.json())["last_reload_error"]
    assert full == (
        "routes.d/shop.yaml:1:58: Expected a duration like `10s`, `200ms` or `1.5m`, got '***'"
        " - at `$.upstream.timeout`"
    )
    assert (
        anonymous == "routes.d/shop.yaml:1:58: Expected a duration like - at `$.upstream.timeout`"
    )
    for shown in (refused, full, anonymous, caplog.text):
        assert "sk-live-0123456789abcdef" not in shown
