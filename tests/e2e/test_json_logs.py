"""`gateway serve --log-format json` (or GATEWAY_LOG_FORMAT=json): one JSON object per line;
an access line carries method, path, status, duration, route and client ip, never a secret."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.conftest import write_config
from tests.e2e.helpers import CLEAN_ENV, serving
from tests.upstreams.server import Recorder, serve_upstream

GATEWAY = """\
auth:
  - {id: key, type: api_key, keys: ["${HELLO_KEY}"]}
defaults: {auth: key}
"""
ROUTES = """\
routes:
  - {id: hello, path: /hello, static: true, response: {body: '{{ {"hi": 1} }}'}}
"""
PROXIED = """\
upstream: {name: backend, base_url: "${BACKEND_URL}"}
routes:
  - {id: item, path: "/items/{item}", auth: none, upstream: {path: "/items/{{ path.item }}"}}
"""
SECRET = "json-log-secret-123"


async def test_json_access_lines(tmp_path: Path) -> None:
    folder = write_config(tmp_path, GATEWAY, {"r": ROUTES})
    env = {**CLEAN_ENV, "HELLO_KEY": SECRET, "GATEWAY_LOG_FORMAT": "json"}
    log = tmp_path / "gateway.log"
    async with serving(folder, env, log) as (url, _), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/hello", headers={"X-API-Key": SECRET}) as response:
            assert response.status == 200
            request_id = response.headers["X-Request-Id"]
        async with http.get(f"{url}/hello%0Aforged", headers={"X-API-Key": "wrong"}) as r:
            assert r.status == 404
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines, log.read_text()
    assert all({"time", "level", "logger", "request_id", "message"} <= set(line) for line in lines)
    access = next(line for line in lines if line.get("route") == "hello")
    assert {key: access[key] for key in ("method", "path", "status", "client_ip")} == {
        "method": "GET",
        "path": "/hello",
        "status": 200,
        "client_ip": "127.0.0.1",
    }
    assert access["request_id"] == request_id
    assert isinstance(access["duration_ms"], float)
    assert SECRET not in log.read_text()


async def test_json_access_lines_carry_the_upstreams_status_and_time(tmp_path: Path) -> None:
    recorder = Recorder()
    app = web.Application(middlewares=[recorder.middleware])

    async def item(request: web.Request) -> web.Response:
        return web.json_response({"missing": True}, status=404)

    app.router.add_get("/items/{item}", item)
    folder = write_config(tmp_path, GATEWAY, {"r": ROUTES, "p": PROXIED})
    log = tmp_path / "gateway.log"
    async with serve_upstream(app, recorder) as backend:
        env = {**CLEAN_ENV, "HELLO_KEY": SECRET, "BACKEND_URL": backend.url}
        async with (
            serving(folder, env, log, "--log-format", "json") as (url, _),
            aiohttp.ClientSession() as http,
        ):
            async with http.get(f"{url}/items/a1") as response:
                assert response.status == 404
            async with http.get(f"{url}/hello", headers={"X-API-Key": SECRET}) as response:
                assert response.status == 200
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    proxied = next(line for line in lines if line.get("route") == "item")
    assert (proxied["status"], proxied["upstream_status"]) == (404, 404)
    assert 0 < proxied["upstream_duration_ms"] <= proxied["duration_ms"]
    static = next(line for line in lines if line.get("route") == "hello")
    assert "upstream_status" not in static  # no upstream was called
    assert "upstream_duration_ms" not in static


def test_an_unknown_log_format_is_refused(tmp_path: Path) -> None:
    import subprocess

    from tests.e2e.helpers import GATEWAY_BIN

    folder = write_config(tmp_path, GATEWAY, {"r": ROUTES})
    env = {**CLEAN_ENV, "GATEWAY_LOG_FORMAT": "xml"}
    result = subprocess.run(
        [GATEWAY_BIN, "serve", "--config-dir", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stderr.strip()) == (
        2,
        "GATEWAY_LOG_FORMAT must be text or json, got 'xml'",
    )
