"""The real `gateway serve` under steady load while its files are rewritten 20 times.

Edits cover writing in place, renaming over, deleting and recreating, broken files, and a
Kubernetes ConfigMap-style `..data` symlink swap. No request may fail or be wrong, and each
good write must be live within one second. A second test keeps ~200 req/s on a route of a
file that is truncated or deleted for a moment before it is written again: no 404 (the
half-written state never goes live), and a delete that stays is applied after the settle
window.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
from pathlib import Path

import aiohttp

from tests.e2e.helpers import CLEAN_ENV, serving
from tests.upstreams.items import items_app
from tests.upstreams.server import serve_upstream

STABLE = """\
upstream: {name: shop, base_url: "${SHOP_URL}"}
routes:
  - id: stable
    path: /stable
    upstream: {path: /v1/items, query: {limit: "1"}}
    response: {body: '{{ {"stable": true, "first": body.data[0].name} }}'}
"""
EXPECTED = {"stable": True, "first": "item 0"}


def dynamic(route: str) -> str:
    return f'routes:\n  - {{id: {route}, path: /{route}, static: true, response: {{body: \'{{{{ {{"route": "{route}"}} }}}}\'}}}}\n'


async def live_within(
    http: aiohttp.ClientSession, url: str, expected: object, limit: float
) -> float:
    """Seconds until ``url`` answers ``expected``; fails after ``limit``."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        async with http.get(url) as r:
            if r.status == 200 and await r.json() == expected:
                return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"{url} did not answer {expected} within {limit}s")


async def failed_reloads(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/health") as r:
        return int((await r.json())["failed_reloads"])


async def test_twenty_rewrites_under_load_lose_nothing(tmp_path: Path) -> None:
    app, recorder = items_app()
    routes = tmp_path / "routes.d"
    routes.mkdir(parents=True)
    (tmp_path / "gateway.yaml").write_text("defaults: {auth: none}\n")
    (routes / "stable.yaml").write_text(STABLE)
    edited = routes / "edited.yaml"
    edited.write_text(dynamic("start"))
    # A ConfigMap mount: cm.yaml -> ..data/cm.yaml, ..data -> ..v0 (swapped atomically).
    (routes / "..v0").mkdir()
    (routes / "..v0" / "cm.yaml").write_text(dynamic("cm0"))
    os.symlink("..v0", routes / "..data")
    os.symlink("..data/cm.yaml", routes / "cm.yaml")

    async with serve_upstream(app, recorder) as shop:
        env = {**CLEAN_ENV, "SHOP_URL": shop.url}
        async with (
            serving(tmp_path, env, tmp_path / "gateway.log") as (url, _),
            aiohttp.ClientSession() as http,
        ):
            stop = asyncio.Event()
            counts = {"ok": 0, "bad": 0}
            problems: list[str] = []

            async def load() -> None:
                deadline = time.monotonic() + 90  # bounded even if the test body hangs
                while not stop.is_set() and time.monotonic() < deadline:
                    try:
                        async with http.get(f"{url}/stable") as r:
                            body = await r.json()
                            if r.status == 200 and body == EXPECTED:
                                counts["ok"] += 1
                                continue
                            problems.append(f"{r.status} {body}")
                    except aiohttp.ClientError as exc:
                        problems.append(repr(exc))
                    counts["bad"] += 1

            workers = [asyncio.create_task(load()) for _ in range(6)]
            timings: list[float] = []
            try:
                for step in range(20):
                    kind = step % 5
                    route = f"r{step}"
                    if kind == 0:  # an editor writing in place
                        edited.write_text(dynamic(route))
                    elif kind == 1:  # an editor writing a temp file and renaming it over
                        temporary = routes / ".edited.yaml.tmp"
                        temporary.write_text(dynamic(route))
                        os.replace(temporary, edited)
                    elif kind == 3:  # delete and recreate (also repairs the broken file)
                        edited.unlink()
                        await asyncio.sleep(0.05)
                        edited.write_text(dynamic(route))
                    elif kind == 2:  # a broken edit: refused, nothing changes
                        before = await failed_reloads(http, url)
                        edited.write_text("routes:\n  - {id: broken, path: nope\n")
                        for _ in range(100):
                            if await failed_reloads(http, url) > before:
                                break
                            await asyncio.sleep(0.02)
                        assert await failed_reloads(http, url) == before + 1
                        async with http.get(f"{url}/r{step - 1}") as r:
                            assert r.status == 200  # the last good version still serves
                        continue
                    else:  # kind == 4: swap the ConfigMap's ..data symlink atomically
                        version = routes / f"..v{step}"
                        version.mkdir()
                        (version / "cm.yaml").write_text(dynamic(route))
                        os.symlink(version.name, routes / "..data_tmp")
                        os.replace(routes / "..data_tmp", routes / "..data")
                    timings.append(await live_within(http, f"{url}/{route}", {"route": route}, 1.0))
            finally:
                stop.set()
                await asyncio.gather(*workers)
            async with http.get(f"{url}/health") as r:
                health = await r.json()

    assert problems == []
    assert counts["bad"] == 0
    assert counts["ok"] > 100
    assert len(timings) == 16
    assert max(timings) < 1.0
    assert health["failed_reloads"] == 4
    assert health["last_reload_error"] is None


async def test_sighup_reloads_when_not_watching(tmp_path: Path) -> None:
    (tmp_path / "routes.d").mkdir()
    (tmp_path / "gateway.yaml").write_text("defaults: {auth: none}\n")
    route_file = tmp_path / "routes.d" / "edited.yaml"
    route_file.write_text(dynamic("before"))
    port_env = {**CLEAN_ENV}
    async with (
        serving(tmp_path, port_env, tmp_path / "gateway.log", "--no-watch") as (url, pid),
        aiohttp.ClientSession() as http,
    ):
        route_file.write_text(dynamic("after"))
        await asyncio.sleep(0.5)
        async with http.get(f"{url}/after") as r:
            assert r.status == 404  # not watching: nothing changed yet
        os.kill(pid, signal.SIGHUP)
        await live_within(http, f"{url}/after", {"route": "after"}, 1.0)


def hot(step: str) -> str:
    """The edited file: the route under load, and one naming the step (to see it is live)."""
    return (
        "routes:\n"
        "  - {id: hot, path: /hot, static: true, response: {body: '{{ {\"hot\": true} }}'}}\n"
        + dynamic(step).removeprefix("routes:\n")
    )


async def test_half_written_files_never_go_live_under_load(tmp_path: Path) -> None:
    """~200 req/s to a route of the file being rewritten: (a) three truncate-then-write
    edits 250 ms apart, (b) six delete-and-recreate edits 300 ms apart lose no request;
    (c) a delete that stays is applied after the settle window, with a WARNING."""
    routes = tmp_path / "routes.d"
    routes.mkdir()
    (tmp_path / "gateway.yaml").write_text("defaults: {auth: none}\nserver: {access_log: false}\n")
    edited = routes / "edited.yaml"
    edited.write_text(hot("start"))
    log = tmp_path / "gateway.log"
    async with (
        serving(tmp_path, {**CLEAN_ENV}, log) as (url, _),
        aiohttp.ClientSession() as http,
    ):
        counts: collections.Counter[str] = collections.Counter()
        stop = asyncio.Event()
        in_flight: set[asyncio.Task[None]] = set()

        async def one() -> None:
            try:
                async with http.get(f"{url}/hot") as r:
                    await r.read()
                    counts[str(r.status)] += 1
            except aiohttp.ClientError as exc:
                counts[type(exc).__name__] += 1

        async def paced() -> None:  # 200 req/s, each request on its own task
            tick = time.monotonic()
            deadline = tick + 90  # bounded even if the test body hangs
            while not stop.is_set() and time.monotonic() < deadline:
                task = asyncio.create_task(one())
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                tick += 1 / 200
                await asyncio.sleep(max(0.0, tick - time.monotonic()))

        async def edits(kind: str, times: int, gap: float) -> collections.Counter[str]:
            counts.clear()
            for step in range(times):
                route = f"{kind}{step}"
                if kind == "truncate":
                    with edited.open("r+") as f:
                        f.truncate(0)
                else:
                    edited.unlink()
                await asyncio.sleep(gap)
                edited.write_text(hot(route))
                await live_within(http, f"{url}/{route}", {"route": route}, 10.0)
                await asyncio.sleep(0.3)
            await asyncio.gather(*list(in_flight))
            return collections.Counter(counts)

        load = asyncio.create_task(paced())
        try:
            truncated = await edits("truncate", 3, 0.25)
            recreated = await edits("recreate", 6, 0.30)
            edited.unlink()  # (c): for good
            counts.clear()
            for _ in range(500):  # bounded: 10 s
                if counts["404"]:
                    break
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            await load
            await asyncio.gather(*list(in_flight))
        async with http.get(f"{url}/health") as r:
            health = await r.json()

    assert truncated["200"] > 200
    assert set(truncated) == {"200"}, truncated
    assert recreated["200"] > 400
    assert set(recreated) == {"200"}, recreated
    assert counts["404"] > 0
    assert set(counts) <= {"200", "404"}, counts
    assert "reload: routes.d/edited.yaml is gone; removed routes hot, recreate5" in log.read_text()
    assert health["failed_reloads"] == 0
