"""`gateway serve --log-format json` (or GATEWAY_LOG_FORMAT=json): one JSON object per line;
an access line carries method, path, status, duration, route and client ip, never a secret."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from tests.conftest import write_config
from tests.e2e.helpers import CLEAN_ENV, serving

GATEWAY = """\
auth:
  - {id: key, type: api_key, keys: ["${HELLO_KEY}"]}
defaults: {auth: key}
"""
ROUTES = """\
routes:
  - {id: hello, path: /hello, static: true, response: {body: '{{ {"hi": 1} }}'}}
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
