"""Start and stop allowlisted desktop apps (routes.d/apps.yaml).

Only apps named in the YAML allowlist can be started, each with its fixed executable and
arguments: no shell, no path or argument from the caller. Stop only ever signals processes
this gateway started (tracked by pid in the plugin's state, which survives reloads).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from typing import Any

import msgspec

from gateway.plugin import Context, PluginError, PluginRequest


class App(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    executable: str
    args: list[str] = []
    description: str = ""


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    apps: list[App]
    stop_timeout: float = 5.0


def _processes(ctx: Context) -> dict[str, list[asyncio.subprocess.Process]]:
    """The processes we started, per app name, without the ones that have exited."""
    started: dict[str, list[asyncio.subprocess.Process]] = ctx.state.setdefault("started", {})
    for name, processes in started.items():
        started[name] = [process for process in processes if process.returncode is None]
    return started


def _find(ctx: Context, name: Any) -> App:
    settings: Settings = ctx.settings
    for app in settings.apps:
        if app.name == name:
            return app
    raise PluginError(
        404, f"App '{name}' not found in configuration. Use /apps/list to see available apps."
    )


async def list_apps(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    settings: Settings = ctx.settings
    running = _processes(ctx)
    apps = [
        {
            "name": app.name,
            "description": app.description,
            "available": shutil.which(app.executable) is not None,
            "running": bool(running.get(app.name)),
            "pids": [process.pid for process in running.get(app.name, [])],
        }
        for app in settings.apps
    ]
    return {"apps": apps, "message": "Available apps for control"}


async def control_app(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    app = _find(ctx, request.body["app_name"])
    action = request.body["action"]
    if action == "start":
        return await _start(ctx, app)
    return await _stop(ctx, app)


async def _start(ctx: Context, app: App) -> dict[str, Any]:
    running = _processes(ctx).setdefault(app.name, [])
    if running:
        return _result(app, "start", f"{app.name} is already running", pids=running)
    executable = shutil.which(app.executable)
    if executable is None:
        raise PluginError(409, f"{app.name} cannot start: `{app.executable}` is not installed here")
    process = await asyncio.create_subprocess_exec(
        executable,
        *app.args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # its own process group: stopping it never touches ours
    )
    running.append(process)
    ctx.logger.info("started %s (pid %d)", app.name, process.pid)
    return _result(app, "start", f"{app.name} started successfully", pids=running)


async def _stop(ctx: Context, app: App) -> dict[str, Any]:
    settings: Settings = ctx.settings
    running = _processes(ctx).get(app.name, [])
    if not running:
        return _result(app, "stop", f"{app.name} is not running", pids=[], success=False)
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    for process in running:
        try:
            await asyncio.wait_for(process.wait(), settings.stop_timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    count = len(running)
    running.clear()
    ctx.logger.info("stopped %d instance(s) of %s", count, app.name)
    return _result(app, "stop", f"Stopped {count} instance(s) of {app.name}", pids=[])


def _result(
    app: App,
    action: str,
    message: str,
    *,
    pids: list[asyncio.subprocess.Process] | list[int],
    success: bool = True,
) -> dict[str, Any]:
    numbers = [pid if isinstance(pid, int) else pid.pid for pid in pids]
    return {
        "success": success,
        "message": message,
        "app_name": app.name,
        "action": action,
        "pids": numbers,
    }
