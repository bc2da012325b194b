"""The plugin contract and the app_control plugin, with real processes."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from gateway.compiler.build import compile_config
from gateway.config.load import load
from gateway.errors import ConfigErrors
from tests.conftest import REPO, GatewayFactory, write_config
from tests.upstreams.items import items_app
from tests.upstreams.server import serve_upstream

GATEWAY = "auth:\n  - {id: key, type: api_key, keys: [k1]}\ndefaults: {auth: key}\n"
KEY = {"X-API-Key": "k1"}
APPS = f"""\
routes:
  - id: listApps
    path: /apps/list
    handler: app_control:list_apps
    settings: &apps
      stop_timeout: 2
      apps:
        - {{name: sleeper, executable: {sys.executable}, args: [-c, "import time; time.sleep(60)"]}}
        - {{name: ghost, executable: definitely-not-installed-xyz}}
  - id: controlApp
    method: POST
    path: /apps/control
    handler: app_control:control_app
    settings: *apps
    body:
      schema:
        type: object
        properties:
          app_name: {{type: string}}
          action: {{type: string, enum: [start, stop]}}
        required: [app_name, action]
"""


def apps_config(tmp_path: Path) -> Path:
    folder = write_config(tmp_path, GATEWAY, {"apps": APPS})
    (folder / "plugins").mkdir()
    shutil.copy(REPO / "plugins" / "app_control.py", folder / "plugins" / "app_control.py")
    return folder


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_app_control_starts_and_stops_only_allowlisted_apps(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with gateway(apps_config(tmp_path), {}) as gw:
        control = f"{gw.url}/apps/control"
        async with gw.http.get(f"{gw.url}/apps/list") as r:
            assert r.status == 401
        async with gw.http.get(f"{gw.url}/apps/list", headers=KEY) as r:
            listing = await r.json()
        assert listing["apps"][0] == {
            "name": "sleeper",
            "description": "",
            "available": True,
            "path": sys.executable,
            "running": False,
            "pids": [],
        }
        assert listing["apps"][1]["available"] is False

        async with gw.http.post(
            control, json={"app_name": "sleeper", "action": "start"}, headers=KEY
        ) as r:
            assert r.status == 200
            started = await r.json()
        assert started["message"] == "sleeper started successfully"
        (pid,) = started["pids"]
        assert alive(pid)
        async with gw.http.post(
            control, json={"app_name": "sleeper", "action": "start"}, headers=KEY
        ) as r:
            assert (await r.json())["message"] == "sleeper is already running"
        async with gw.http.get(f"{gw.url}/apps/list", headers=KEY) as r:
            assert (await r.json())["apps"][0]["pids"] == [pid]

        async with gw.http.post(
            control, json={"app_name": "sleeper", "action": "stop"}, headers=KEY
        ) as r:
            assert (await r.json())["message"] == "Stopped 1 instance(s) of sleeper"
        assert not alive(pid)
        async with gw.http.post(
            control, json={"app_name": "sleeper", "action": "stop"}, headers=KEY
        ) as r:
            stopped = await r.json()
        assert stopped["message"] == "sleeper is not running"
        assert stopped["success"] is False

        async with gw.http.post(
            control, json={"app_name": "rm -rf /", "action": "start"}, headers=KEY
        ) as r:
            assert r.status == 404
            assert (await r.json())["detail"] == (
                "App 'rm -rf /' not found in configuration. Use /apps/list to see available apps."
            )
        async with gw.http.post(
            control, json={"app_name": "sleeper", "action": "restart"}, headers=KEY
        ) as r:
            assert r.status == 400
            assert (await r.json())["errors"] == [
                {
                    "in": "body",
                    "field": "$.action",
                    "message": "'restart' is not one of ['start', 'stop']",
                }
            ]
        async with gw.http.post(
            control, json={"app_name": "ghost", "action": "start"}, headers=KEY
        ) as r:
            assert r.status == 409
            assert (await r.json())["detail"] == (
                "ghost cannot start: `definitely-not-installed-xyz` is not installed here"
            )


PLUGIN = """
import msgspec
from gateway.plugin import Context, PluginError, PluginRequest, PluginResponse

class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    greeting: str = "hello"
    limit: int = 2

async def greet(ctx: Context, request: PluginRequest) -> dict:
    seen = int(await ctx.store.get("greet-count") or 0) + 1
    await ctx.store.set("greet-count", str(seen))
    answer = await ctx.clients["shop"].request("GET", "/v1/items", query={"limit": str(ctx.settings.limit)})
    names = [item["name"] for item in answer.json()["data"]]
    return {"message": f"{ctx.settings.greeting}, {request.query.get('name')}", "items": names,
            "request_id": ctx.request_id, "count": seen}

async def created(ctx: Context, request: PluginRequest) -> PluginResponse:
    return PluginResponse(201, {"id": 7}, {"Location": "/things/7"})

async def refuse(ctx: Context, request: PluginRequest) -> dict:
    raise PluginError(418, "no coffee here")

async def crash(ctx: Context, request: PluginRequest) -> dict:
    raise RuntimeError("secret internals")

def not_async(ctx, request):
    return {}
"""
PLUGIN_ROUTES = """\
upstream: {name: shop, base_url: "${SHOP_URL}", auth: {type: bearer, token: shop-token}}
routes:
  - {id: greet, path: /greet, auth: none, handler: demo:greet, settings: {greeting: hi},
     query: [{name: name}]}
  - {id: created, path: /created, auth: none, method: POST, handler: demo:created}
  - {id: refuse, path: /refuse, auth: none, handler: demo:refuse}
  - {id: crash, path: /crash, auth: none, handler: demo:crash}
"""


def plugin_config(tmp_path: Path, routes: str = PLUGIN_ROUTES, source: str = PLUGIN) -> Path:
    folder = write_config(tmp_path, GATEWAY, {"demo": routes})
    (folder / "plugins").mkdir(exist_ok=True)
    (folder / "plugins" / "demo.py").write_text(source)
    return folder


async def test_plugin_gets_settings_clients_and_request(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    app, recorder = items_app()
    async with serve_upstream(app, recorder) as shop:
        async with gateway(plugin_config(tmp_path), {"SHOP_URL": shop.url}) as gw:
            async with gw.http.get(
                f"{gw.url}/greet?name=ada", headers={"X-Request-ID": "rid-7"}
            ) as r:
                assert await r.json() == {
                    "message": "hi, ada",
                    "items": ["item 0", "item 1"],
                    "request_id": "rid-7",
                    "count": 1,
                }
            async with gw.http.post(f"{gw.url}/created") as r:
                assert r.status == 201
                assert r.headers["Location"] == "/things/7"
                assert await r.json() == {"id": 7}
            async with gw.http.get(f"{gw.url}/refuse") as r:
                assert r.status == 418
                assert (await r.json())["detail"] == "no coffee here"
            async with gw.http.get(f"{gw.url}/crash", headers={"X-Request-ID": "rid-crash"}) as r:
                assert r.status == 502
                problem = await r.json()
            assert problem["detail"] == "plugin demo:crash failed: RuntimeError"
            assert problem["request_id"] == "rid-crash"
            async with gw.http.get(f"{gw.url}/greet?name=again") as r:
                assert (await r.json())["count"] == 2  # still serving; the store remembers
    assert recorder.seen[0].headers["Authorization"] == "Bearer shop-token"
    assert recorder.seen[0].headers["X-Request-ID"] == "rid-7"
    assert recorder.seen[0].query == {"limit": "2"}


@pytest.mark.parametrize(
    ("route", "source", "expected"),
    [
        pytest.param(
            "{id: a, path: /a, auth: none, handler: nope:greet}",
            PLUGIN,
            "routes.d/demo.yaml:3:44: plugin module `nope` not found: expected plugins/nope.py"
            " - at `$.routes[0].handler`",
            id="missing-module",
        ),
        pytest.param(
            "{id: a, path: /a, auth: none, handler: demo:gret, settings: {greeting: x}}",
            PLUGIN,
            "routes.d/demo.yaml:3:44: plugin handler `demo:gret` does not exist (plugins/demo.py"
            " defines: crash, created, greet, refuse) - at `$.routes[0].handler`",
            id="missing-function",
        ),
        pytest.param(
            "{id: a, path: /a, auth: none, handler: demo:not_async, settings: {greeting: x}}",
            PLUGIN,
            "routes.d/demo.yaml:3:44: plugin handler `demo:not_async` must be"
            " `async def not_async(ctx, request)` - at `$.routes[0].handler`",
            id="not-async",
        ),
        pytest.param(
            "{id: a, path: /a, auth: none, handler: demo:greet, settings: {greting: x}}",
            PLUGIN,
            "routes.d/demo.yaml:3:66: settings of plugin `demo`: Object contains unknown field"
            " `greting` - at `$.routes[0].settings`",
            id="bad-settings",
        ),
        pytest.param(
            "{id: a, path: /a, auth: none, handler: demo:greet}",
            "def broken(:\n",
            "routes.d/demo.yaml:3:44: plugin `demo` failed to import: SyntaxError: invalid syntax"
            " (plugins/demo.py:1) - at `$.routes[0].handler`",
            id="syntax-error",
        ),
    ],
)
def test_plugin_mistakes_are_config_errors(
    tmp_path: Path, route: str, source: str, expected: str
) -> None:
    routes = "upstream: {name: shop, base_url: 'http://127.0.0.1:9'}\nroutes:\n  - " + route + "\n"
    folder = plugin_config(tmp_path, routes, source)
    with pytest.raises(ConfigErrors) as caught:
        compile_config(load(folder, environ={}))
    assert [str(error) for error in caught.value.errors] == [expected]
