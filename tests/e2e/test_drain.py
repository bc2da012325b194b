"""SIGTERM drains (the real `gateway serve`): `/ready` answers 503 at once while requests are
still served for `server.drain`; a request in flight when the listener closes finishes; the
process exits 0. `GATEWAY_DRAIN` overrides the setting."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.conftest import write_config
from tests.e2e.helpers import CLEAN_ENV, serving
from tests.upstreams.server import Recorder, serve_upstream

GATEWAY = """\
server: {access_log: false, drain: 2s, shutdown_timeout: 10s}
defaults: {auth: none}
"""
ROUTES = """\
upstream: {name: slow, base_url: "${SLOW_URL}", timeout: 10s}
routes:
  - {id: slow, path: /slow, upstream: {path: /slow}}
  - {id: hello, path: /hello, static: true, response: {body: '{{ {"hi": 1} }}'}}
"""


async def test_sigterm_drains_then_exits_0(tmp_path: Path) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(3)  # still running when the drain window ends
        return web.json_response({"slow": True})

    app = web.Application()
    app.router.add_get("/slow", slow)
    recorder = Recorder()
    app.middlewares.append(recorder.middleware)
    env = {**CLEAN_ENV, "GATEWAY_DRAIN": ""}  # the config's 2s
    async with serve_upstream(app, recorder) as upstream:
        folder = write_config(tmp_path, GATEWAY, {"r": ROUTES})
        env["SLOW_URL"] = upstream.url
        log = tmp_path / "gateway.log"
        async with serving(folder, env, log) as (url, pid), aiohttp.ClientSession() as http:
            async with http.get(f"{url}/ready") as ready:
                assert ready.status == 200
            in_flight = asyncio.create_task(http.get(f"{url}/slow"))
            await asyncio.sleep(0.3)  # the slow request has reached the upstream
            os.kill(pid, signal.SIGTERM)
            await asyncio.sleep(0.3)
            async with http.get(f"{url}/ready") as ready:
                assert ready.status == 503
                assert ready.content_type == "application/problem+json"
                assert (await ready.json())["detail"] == (
                    "this process is stopping; send requests to another replica"
                )
            async with http.get(f"{url}/hello") as hello:  # still served while draining
                assert (hello.status, await hello.json()) == (200, {"hi": 1})
            response = await in_flight
            assert (response.status, await response.json()) == (200, {"slow": True})
            response.release()
            for _ in range(200):  # bounded: 10 s
                if not (Path("/proc") / str(pid)).exists():
                    break
                await asyncio.sleep(0.05)
        # serving() asserted exit code 0.
    text = log.read_text()
    assert "stopping (SIGTERM): draining for 2s, /ready answers 503" in text
    assert "stopping (SIGTERM): finishing requests in flight" in text
