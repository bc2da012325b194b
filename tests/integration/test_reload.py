"""Reloads swap complete snapshots only; broken edits change nothing that serves."""

from __future__ import annotations

import asyncio
import collections
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
        session = gw.state.pool.client(gw.state.switch.current.upstreams["shop"])
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
        # The upstream's settings did not change: its pool is reused.
        assert gw.state.pool.client(gw.state.switch.current.upstreams["shop"]) is session
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
        old = gw.state.pool.client(gw.state.switch.current.upstreams["shop"])
        moved = SHOP.replace("auth:", "connect_timeout: 3s, auth:")  # other client settings
        (folder / "routes.d" / "shop.yaml").write_text(moved.replace("token: t1", "token: t2"))
        assert (await reloader(gw).reload("token")).outcome is ReloadOutcome.SWAPPED
        async with gw.http.get(f"{gw.url}/items") as r:
            assert r.status == 200
        new = gw.state.pool.client(gw.state.switch.current.upstreams["shop"])
        assert new is not old
        for _ in range(40):  # bounded: the retired pool closes once idle
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


# --- a watcher reload waits for files caught half-written --------------------------------

HOT = """\
routes:
  - {id: hot, path: /hot, static: true, response: {body: '{{ {"v": %d} }}'}}
"""
PROBE = "routes:\n  - {id: probe, path: /probe, static: true, response: {body: '{{ 1 }}'}}\n"


async def answers(gw: RunningGateway, path: str, status: int, tries: int = 500) -> bool:
    """Whether ``path`` answers ``status`` within ``tries`` polls 20 ms apart (10 s)."""
    for _ in range(tries):
        async with gw.http.get(f"{gw.url}{path}") as r:
            if r.status == status:
                return True
        await asyncio.sleep(0.02)
    return False


@asynccontextmanager
async def watching(gw: RunningGateway, folder: Path) -> AsyncIterator[None]:
    """The real watcher, running; a probe file proves it sees changes before the test edits."""
    stop = asyncio.Event()
    task = asyncio.create_task(reloader(gw).watch(stop))
    try:
        for attempt in range(40):  # a write before the watcher is set up goes unseen
            (folder / "routes.d" / "probe.yaml").write_text(PROBE + f"# {attempt}\n")
            if await answers(gw, "/probe", 200, tries=25):
                break
        else:
            raise AssertionError("the watcher never saw probe.yaml")
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 5)
        except TimeoutError:
            task.cancel()


@asynccontextmanager
async def counting(gw: RunningGateway, path: str) -> AsyncIterator[collections.Counter[int]]:
    """Requests to ``path`` back to back while the block runs: their statuses, counted."""
    counts: collections.Counter[int] = collections.Counter()
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            async with gw.http.get(f"{gw.url}{path}") as r:
                await r.read()
                counts[r.status] += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(loop())
    try:
        yield counts
    finally:
        stop.set()
        await task


def hot_config(tmp_path: Path, gateway_yaml: str = "defaults: {auth: none}\n") -> Path:
    return write_config(tmp_path, gateway_yaml, {"hot": HOT % 0})


async def live(gw: RunningGateway, step: int) -> None:
    """Wait (bounded: 10 s) until /hot answers version ``step``."""
    for _ in range(500):
        async with gw.http.get(f"{gw.url}/hot") as r:
            if r.status == 200 and await r.json() == {"v": step}:
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"/hot did not answer version {step}")


async def test_watcher_applies_only_the_rewritten_content_of_a_truncated_file(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = hot_config(tmp_path)
    hot = folder / "routes.d" / "hot.yaml"
    async with gateway(folder, {}) as gw, watching(gw, folder):
        swaps = reloader(gw).reloads
        async with counting(gw, "/hot") as counts:
            for step in (1, 2, 3):
                with hot.open("r+") as f:  # truncated in place, written 250 ms later
                    f.truncate(0)
                await asyncio.sleep(0.25)
                hot.write_text(HOT % step)
                await live(gw, step)
        # Each rewrite went live once; the empty file never did.
        assert reloader(gw).reloads == swaps + 3
    assert counts[200] > 20
    assert set(counts) == {200}


async def test_watcher_holds_a_deleted_file_until_it_is_written_again(
    gateway: GatewayFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = hot_config(tmp_path)
    hot = folder / "routes.d" / "hot.yaml"
    async with gateway(folder, {}) as gw, watching(gw, folder):
        swaps = reloader(gw).reloads
        with caplog.at_level("INFO", logger="gateway"):
            async with counting(gw, "/hot") as counts:
                for step in range(1, 7):
                    hot.unlink()
                    await asyncio.sleep(0.3)
                    hot.write_text(HOT % step)
                    await live(gw, step)
        assert reloader(gw).reloads == swaps + 6
    assert counts[200] > 20
    assert set(counts) == {200}
    messages = [record.getMessage() for record in caplog.records]
    assert (
        "reload (changed: hot.yaml): routes.d/hot.yaml is gone; waiting up to 1.0 s for it"
        " to come back"
    ) in messages
    assert [m for m in messages if "removed" in m] == []


async def test_a_file_that_stays_gone_is_removed_after_the_settle_window(
    gateway: GatewayFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = hot_config(tmp_path, "defaults: {auth: none}\nreload: {settle: 300ms}\n")
    async with gateway(folder, {}) as gw, watching(gw, folder):
        assert reloader(gw).settle == 0.3
        with caplog.at_level("INFO", logger="gateway"):
            (folder / "routes.d" / "hot.yaml").unlink()
            assert await answers(gw, "/hot", 404)
        async with gw.http.get(f"{gw.url}/probe") as r:
            assert r.status == 200  # the other file's route is untouched
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    held = (
        "INFO",
        "reload (changed: hot.yaml): routes.d/hot.yaml is gone; waiting up to 0.3 s"
        " for it to come back",
    )
    removed = ("WARNING", "reload: routes.d/hot.yaml is gone; removed routes hot")
    assert [m for m in messages if "routes.d/hot.yaml" in m[1]] == [held, removed]


async def test_a_file_emptied_to_comments_is_held_then_removed(
    gateway: GatewayFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = hot_config(tmp_path, "defaults: {auth: none}\nreload: {settle: 200ms}\n")
    async with gateway(folder, {}) as gw:
        (folder / "routes.d" / "hot.yaml").write_text("# nothing here yet\n\n")
        with caplog.at_level("INFO", logger="gateway"):
            result = await reloader(gw).reload_settled("test")
        assert result.outcome is ReloadOutcome.SWAPPED
        assert result.diff is not None
        assert result.diff.removed == ("hot",)
        async with gw.http.get(f"{gw.url}/hot") as r:
            assert r.status == 404
    assert [r.getMessage() for r in caplog.records if "hot.yaml" in r.getMessage()] == [
        "reload (test): routes.d/hot.yaml is empty; waiting up to 0.2 s for it to come back",
        "reload: routes.d/hot.yaml is empty; removed routes hot",
    ]


async def test_a_file_that_comes_back_within_the_window_applies_only_its_new_content(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = hot_config(tmp_path)
    hot = folder / "routes.d" / "hot.yaml"
    async with gateway(folder, {}) as gw:
        version = gw.state.switch.current.version
        hot.unlink()
        pending = asyncio.create_task(reloader(gw).reload_settled("test"))
        await asyncio.sleep(0.3)
        assert not pending.done()  # held: nothing applied, /hot still serves
        async with gw.http.get(f"{gw.url}/hot") as r:
            assert await r.json() == {"v": 0}
        assert gw.state.switch.current.version == version
        hot.write_text(HOT % 1)
        result = await asyncio.wait_for(pending, 10)
        assert result.outcome is ReloadOutcome.SWAPPED
        assert result.diff is not None
        assert result.diff.summary() == "routes ~1 (hot)"
        assert reloader(gw).reloads == 1


async def test_explicit_reloads_apply_a_removal_at_once(
    gateway: GatewayFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGHUP and POST /admin/reload mean "the files are ready": no settle window."""
    folder = write_config(
        tmp_path,
        "admin: {keys: [admin-secret]}\ndefaults: {auth: none}\n",
        {"hot": HOT % 0, "probe": PROBE},
    )
    async with gateway(folder, {}) as gw:
        (folder / "routes.d" / "hot.yaml").unlink()
        with caplog.at_level("WARNING", logger="gateway"):
            async with gw.http.post(
                f"{gw.url}/admin/reload", headers={"X-Admin-Key": "admin-secret"}
            ) as r:
                assert r.status == 200
                body = await r.json()
        assert body["status"] == "reloaded"
        assert "route removed: hot" in body["changes"]
        async with gw.http.get(f"{gw.url}/hot") as r:
            assert r.status == 404
    assert [r.getMessage() for r in caplog.records] == [
        "reload: routes.d/hot.yaml is gone; removed routes hot"
    ]


async def test_a_renamed_file_is_not_held(
    gateway: GatewayFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its routes are still declared (by the new name): nothing is missing, nothing waits."""
    folder = hot_config(tmp_path, "defaults: {auth: none}\nreload: {settle: 1h}\n")
    async with gateway(folder, {}) as gw:
        os.replace(folder / "routes.d" / "hot.yaml", folder / "routes.d" / "renamed.yaml")
        with caplog.at_level("INFO", logger="gateway"):
            result = await asyncio.wait_for(reloader(gw).reload_settled("test"), 10)
        assert result.outcome is not ReloadOutcome.HELD
        async with gw.http.get(f"{gw.url}/hot") as r:
            assert await r.json() == {"v": 0}
    assert [r.getMessage() for r in caplog.records if "hot.yaml" in r.getMessage()] == []


async def test_an_emptied_gateway_yaml_is_held_like_a_route_file(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    """An empty gateway.yaml would mean the defaults: no admin keys, `defaults.auth: none`."""
    settings = "admin: {keys: [admin-secret]}\ndefaults: {auth: none}\n"
    folder = hot_config(tmp_path, settings)
    async with gateway(folder, {}) as gw:
        (folder / "gateway.yaml").write_text("")
        pending = asyncio.create_task(reloader(gw).reload_settled("test"))
        await asyncio.sleep(0.3)
        assert not pending.done()
        (folder / "gateway.yaml").write_text(settings + "server: {access_log: false}\n")
        result = await asyncio.wait_for(pending, 10)
        assert result.outcome is ReloadOutcome.SWAPPED
        async with gw.http.post(
            f"{gw.url}/admin/reload", headers={"X-Admin-Key": "admin-secret"}
        ) as r:
            assert r.status == 200  # the admin keys never went away


async def test_a_broken_half_written_file_is_refused_by_the_watcher_path(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = hot_config(tmp_path)
    async with gateway(folder, {}) as gw:
        version = gw.state.switch.current.version
        (folder / "routes.d" / "hot.yaml").write_text("routes:\n  - {id: hot, path: /h")
        result = await asyncio.wait_for(reloader(gw).reload_settled("test"), 10)
        assert result.outcome is ReloadOutcome.FAILED
        assert gw.state.switch.current.version == version
        async with gw.http.get(f"{gw.url}/hot") as r:
            assert await r.json() == {"v": 0}


async def test_settled_waits_until_the_files_stop_changing(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = hot_config(tmp_path)
    hot = folder / "routes.d" / "hot.yaml"
    async with gateway(folder, {}) as gw:
        done = asyncio.Event()

        async def writer() -> None:  # an editor writing in chunks, 40 ms apart
            with hot.open("w") as f:
                for line in (HOT % 7).splitlines(keepends=True) * 5:
                    f.write(line)
                    f.flush()
                    await asyncio.sleep(0.04)
            done.set()

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.01)
        seen = await reloader(gw).settled()
        assert done.is_set()  # it returned only once the writes had stopped
        assert seen == reloader(gw).fingerprint()
        await task
