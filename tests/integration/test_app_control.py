"""App control over real HTTP: the shipped allowlist and rate limits (routes.d/apps.yaml),
and real processes started and stopped through per-platform command lists."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, GatewayFactory, RunningGateway, eventually, write_config

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="real processes on Linux")

KEY = {"X-API-Key": "k1"}
GATEWAY = "auth:\n  - {id: key, type: api_key, keys: [k1]}\ndefaults: {auth: key}\n"
PY = sys.executable


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet, e.g. under a container's PID 1, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def routes(apps: str, stop_timeout: float = 2) -> str:
    return f"""\
routes:
  - id: listApps
    path: /apps/list
    handler: app_control:list_apps
    settings: &apps
      stop_timeout: {stop_timeout}
      apps:
{apps}
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


def config(tmp_path: Path, apps: str, stop_timeout: float = 2) -> Path:
    folder = write_config(tmp_path / "config", GATEWAY, {"apps": routes(apps, stop_timeout)})
    (folder / "plugins").mkdir()
    shutil.copy(REPO / "plugins" / "app_control.py", folder / "plugins" / "app_control.py")
    return folder


async def control(gw: RunningGateway, app: str, action: str) -> tuple[int, Any]:
    async with gw.http.post(
        f"{gw.url}/apps/control", json={"app_name": app, "action": action}, headers=KEY
    ) as response:
        return response.status, await response.json()


async def listing(gw: RunningGateway) -> Any:
    async with gw.http.get(f"{gw.url}/apps/list", headers=KEY) as response:
        assert response.status == 200
        return await response.json()


def script(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return str(path)


async def test_the_platforms_command_list_starts_the_first_installed(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    """On Linux the `linux` list is read in order: a missing program is skipped, the next
    one runs; stop ends it; the other platforms' commands are never tried here."""
    sleeper = script(tmp_path, "sleeper", "import time\ntime.sleep(60)\n")
    apps = f"""\
        - name: editor
          description: A stand-in editor
          win32: [notepad.exe]
          darwin: [[open, -a, TextEdit]]
          linux: [definitely-missing-editor-xyz, [{PY}, {sleeper}]]
"""
    async with gateway(config(tmp_path, apps), {}) as gw:
        assert await listing(gw) == {
            "apps": [
                {
                    "name": "editor",
                    "description": "A stand-in editor",
                    "available": True,
                    "path": PY,
                    "running": False,
                    "pids": [],
                }
            ],
            "message": "Available apps for control",
        }
        status, started = await control(gw, "editor", "start")
        (pid,) = started["pids"]
        assert (status, started) == (
            200,
            {
                "success": True,
                "message": "editor started successfully",
                "app_name": "editor",
                "action": "start",
                "pids": [pid],
            },
        )
        assert alive(pid)
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            assert cmdline.read().split(b"\0")[:2] == [PY.encode(), sleeper.encode()]
        assert os.getpgid(pid) == pid  # its own process group, not the gateway's
        assert os.getpgid(pid) != os.getpgid(0)
        assert (await listing(gw))["apps"][0]["running"] is True

        status, stopped = await control(gw, "editor", "stop")
        assert (status, stopped) == (
            200,
            {
                "success": True,
                "message": "Stopped 1 instance(s) of editor",
                "app_name": "editor",
                "action": "stop",
                "pids": [],
            },
        )
        assert not alive(pid)
        assert (await listing(gw))["apps"][0]["running"] is False


async def test_stop_is_polite_then_kills_and_takes_the_apps_helpers_along(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    """SIGTERM to the app's process group first; one that ignores it is SIGKILLed after
    `stop_timeout`; a helper process it started (same group) stops with it."""
    ready = tmp_path / "ready"
    stubborn = script(
        tmp_path,
        "stubborn",
        "import pathlib, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "helper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"pathlib.Path({str(ready)!r}).write_text(str(helper.pid))\n"
        "time.sleep(60)\n",
    )
    polite = script(tmp_path, "polite", "import time\ntime.sleep(60)\n")
    apps = f"""\
        - {{name: stubborn, linux: [[{PY}, {stubborn}]]}}
        - {{name: polite, linux: [[{PY}, {polite}]]}}
"""
    async with gateway(config(tmp_path, apps, stop_timeout=0.5), {}) as gw:
        _, started = await control(gw, "stubborn", "start")
        (pid,) = started["pids"]
        await eventually(ready.exists)
        helper = int(ready.read_text())
        assert alive(pid)
        assert alive(helper)
        began = time.monotonic()
        status, stopped = await control(gw, "stubborn", "stop")
        assert (status, stopped["message"]) == (200, "Stopped 1 instance(s) of stubborn")
        assert time.monotonic() - began >= 0.5  # it was asked first, and waited for
        assert not alive(pid)
        await eventually(lambda: not alive(helper), timeout=5)

        _, started = await control(gw, "polite", "start")
        (pid,) = started["pids"]
        began = time.monotonic()
        assert (await control(gw, "polite", "stop"))[1]["message"] == (
            "Stopped 1 instance(s) of polite"
        )
        assert time.monotonic() - began < 0.5  # SIGTERM was enough
        assert not alive(pid)


async def test_an_app_that_exits_by_itself_is_not_running(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    """A launcher (xdg-open, open -a, cmd /c start) exits once it handed the app over."""
    apps = f"        - {{name: launcher, linux: [[{PY}, -c, 'pass']]}}\n"
    async with gateway(config(tmp_path, apps), {}) as gw:
        status, started = await control(gw, "launcher", "start")
        assert (status, started["message"]) == (200, "launcher started successfully")
        (pid,) = started["pids"]
        await eventually(lambda: not alive(pid))
        await asyncio.sleep(0.1)
        assert (await listing(gw))["apps"][0]["running"] is False
        assert await control(gw, "launcher", "stop") == (
            200,
            {
                "success": False,
                "message": "launcher is not running",
                "app_name": "launcher",
                "action": "stop",
                "pids": [],
            },
        )


async def test_missing_executables_are_409s_naming_what_was_looked_for(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    not_executable = tmp_path / "not-executable"
    not_executable.write_text("#!/bin/sh\n")
    not_executable.chmod(0o644)
    apps = f"""\
        - {{name: ghost, executable: definitely-not-installed-xyz}}
        - {{name: ghosts, linux: [missing-one-xyz, [missing-two-xyz, --flag]]}}
        - {{name: paint, win32: [mspaint.exe], darwin: [/Applications/Paint.app]}}
        - {{name: broken, linux: [{not_executable}]}}
"""
    async with gateway(config(tmp_path, apps), {}) as gw:
        for app, detail in [
            ("ghost", "ghost cannot start: `definitely-not-installed-xyz` is not installed here"),
            (
                "ghosts",
                "ghosts cannot start: none of `missing-one-xyz`, `missing-two-xyz` is installed"
                " here",
            ),
            ("paint", "paint cannot start: nothing is configured for linux"),
            ("broken", f"broken cannot start: `{not_executable}` is not installed here"),
        ]:
            status, problem = await control(gw, app, "start")
            assert (status, problem["status"], problem["detail"]) == (409, 409, detail)
        assert [
            (app["name"], app["available"], app["path"]) for app in (await listing(gw))["apps"]
        ] == [
            ("ghost", False, ""),
            ("ghosts", False, ""),
            ("paint", False, ""),
            ("broken", False, ""),
        ]


# --- the shipped routes.d/apps.yaml ------------------------------------------------------------

LINUX = {
    "notepad": ["gedit", "gnome-text-editor", "kate", "mousepad"],
    "calculator": ["gnome-calculator", "kcalc", "galculator"],
    "browser": ["xdg-open", "firefox", "chromium", "chromium-browser"],
    "chrome": ["google-chrome", "google-chrome-stable", "chromium", "chromium-browser"],
    "firefox": ["firefox", "firefox-esr"],
    "vscode": ["code"],
}
DESCRIPTIONS = {
    "notepad": "A plain-text editor (Notepad, TextEdit, gedit, Kate or Mousepad)",
    "calculator": "The desktop calculator",
    "browser": "The default web browser (the desktop opens it; stop cannot close it)",
    "chrome": "Google Chrome",
    "firefox": "Firefox web browser",
    "vscode": "Visual Studio Code",
}


def first_installed(names: list[str]) -> str:
    return next((found for name in names if (found := shutil.which(name))), "")


async def test_the_shipped_allowlist_is_listed_and_rate_limited(gateway: GatewayFactory) -> None:
    environ = {
        "GATEWAY_API_KEY": "k1",
        "GATEWAY_API_KEY_NEXT": "k2",
        "APPS_CONTROL_RATE_LIMIT": "2",
    }
    async with gateway(REPO, environ) as gw:
        async with gw.http.get(f"{gw.url}/apps/list", headers=KEY) as response:
            assert response.status == 200
            assert response.headers["RateLimit-Limit"] == "60"  # APPS_RATE_LIMIT's default
            body = await response.json()
        assert body == {
            "apps": [
                {
                    "name": name,
                    "description": DESCRIPTIONS[name],
                    "available": bool(first_installed(names)),
                    "path": first_installed(names),
                    "running": False,
                    "pids": [],
                }
                for name, names in LINUX.items()
            ],
            "message": "Available apps for control",
        }
        # APPS_CONTROL_RATE_LIMIT=2 per API key: the third call is refused, before anything runs.
        for _ in range(2):
            assert (await control(gw, "no-such-app", "start"))[0] == 404
        async with gw.http.post(
            f"{gw.url}/apps/control", json={"app_name": "notepad", "action": "start"}, headers=KEY
        ) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "30"
            assert (await response.json())["detail"] == (
                "rate limit of 2 per 60s reached; retry in 30s"
            )
        other = {"X-API-Key": "k2"}  # another key has its own budget
        async with gw.http.post(
            f"{gw.url}/apps/control",
            json={"app_name": "no-such-app", "action": "stop"},
            headers=other,
        ) as response:
            assert response.status == 404
