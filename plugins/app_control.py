"""Start and stop allowlisted desktop apps (routes.d/apps.yaml) on Linux, macOS and Windows.

Only apps named in the YAML allowlist can be started, each with fixed commands: no shell,
no path or argument from the caller. An app lists its commands per platform, in order of
preference; the first whose executable is installed runs::

    - name: notepad
      win32: [notepad.exe]
      darwin: [/System/Applications/TextEdit.app/Contents/MacOS/TextEdit, [open, -a, TextEdit]]
      linux: [gedit, gnome-text-editor, kate, mousepad]
    - {name: vscode, executable: code, args: [--new-window]}   # the same on every platform

A command is an executable (looked up on PATH, or a full path; ``%NAME%`` is expanded from
the environment on Windows) or a list: the executable and its fixed arguments.

Stop only ever signals processes this gateway started (tracked in the plugin's state, which
survives reloads): politely first (SIGTERM to the app's process group; on Windows
``Popen.terminate``), then SIGKILL after ``stop_timeout``. A launcher that hands the app to
the desktop and exits (``open -a``, ``xdg-open``, ``cmd /c start``, calc.exe on Windows 10+)
is not running any more, and the app it opened is not the gateway's to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from gateway.plugin import Context, PluginError, PluginRequest

PLATFORMS = ("linux", "darwin", "win32")
Command = str | list[str]
"""An executable, or ``[executable, *arguments]``."""


class App(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    description: str = ""
    executable: str | None = None
    """One executable for every platform without a list of its own (with `args`)."""
    args: list[str] = []
    linux: list[Command] | None = None
    """Commands on Linux (and other Unix systems), first installed wins."""
    darwin: list[Command] | None = None
    """Commands on macOS."""
    win32: list[Command] | None = None
    """Commands on Windows."""

    def __post_init__(self) -> None:
        lists = (self.linux, self.darwin, self.win32)
        if self.executable is None and all(commands is None for commands in lists):
            raise ValueError(
                f"app `{self.name}` needs `executable` or commands for `linux`, `darwin` or `win32`"
            )
        for commands in lists:
            for command in commands or []:
                if not command or (isinstance(command, list) and not command[0]):
                    raise ValueError(f"app `{self.name}` has an empty command")


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    apps: list[App]
    stop_timeout: float = 5.0
    """Seconds between the polite stop and the kill."""


# --- which command, on which platform (pure) -----------------------------------------------


def platform_key(platform: str) -> str:
    """``sys.platform`` -> the allowlist's key: ``darwin``, ``win32``, else ``linux``."""
    return platform if platform in ("darwin", "win32") else "linux"


def commands(app: App, platform: str) -> list[list[str]]:
    """The commands that may start ``app`` on ``platform`` (a ``sys.platform`` value), in
    order of preference: the platform's own list, else ``executable`` with ``args``."""
    declared: list[Command] | None = getattr(app, platform_key(platform))
    if declared is None:
        return [[app.executable, *app.args]] if app.executable else []
    return [[command] if isinstance(command, str) else list(command) for command in declared]


_PERCENT_VARIABLE = re.compile(r"%([A-Za-z_][A-Za-z0-9_()]*)%")


def resolve(
    app: App,
    platform: str,
    which: Callable[[str], str | None] = shutil.which,
    environ: Mapping[str, str] = os.environ,
) -> list[str] | None:
    """The first of ``commands(app, platform)`` whose executable ``which`` finds, with the
    executable's full path; None when none is installed."""
    for command in commands(app, platform):
        executable = command[0]
        if platform_key(platform) == "win32":
            executable = _PERCENT_VARIABLE.sub(
                lambda found: environ.get(found[1], found[0]), executable
            )
        path = which(executable)
        if path is not None:
            return [path, *command[1:]]
    return None


def not_installed(app: App, platform: str) -> str:
    """The 409's detail when ``app`` has no installed command on ``platform``."""
    names = [f"`{command[0]}`" for command in commands(app, platform)]
    if not names:
        return f"{app.name} cannot start: nothing is configured for {platform_key(platform)}"
    if len(names) == 1:
        return f"{app.name} cannot start: {names[0]} is not installed here"
    return f"{app.name} cannot start: none of {', '.join(names)} is installed here"


# --- processes -----------------------------------------------------------------------------


def _processes(ctx: Context) -> dict[str, list[subprocess.Popen[bytes]]]:
    """The processes we started, per app name, without the ones that have exited."""
    started: dict[str, list[subprocess.Popen[bytes]]] = ctx.state.setdefault("processes", {})
    for name, processes in started.items():
        started[name] = [process for process in processes if process.poll() is None]
    return started


def _spawn(command: list[str]) -> subprocess.Popen[bytes]:
    """Run ``command`` detached from the gateway: its own process group (stopping it never
    touches ours) and no console of ours."""
    streams: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
    }
    if sys.platform == "win32":
        return subprocess.Popen(
            command, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP, **streams
        )
    return subprocess.Popen(command, start_new_session=True, **streams)


def _signal(process: subprocess.Popen[bytes], *, kill: bool) -> None:
    """Ask ``process`` (and, on Unix, its process group) to stop; ``kill``: no asking."""
    if process.poll() is not None:
        return
    if sys.platform == "win32":
        with contextlib.suppress(OSError):  # both are TerminateProcess: no polite stop
            if kill:
                process.kill()
            else:
                process.terminate()
        return
    number = signal.SIGKILL if kill else signal.SIGTERM
    try:
        os.killpg(process.pid, number)  # its group: helpers it started stop with it
    except (ProcessLookupError, PermissionError):  # it left its group: the process alone
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(number)


async def _exited(processes: list[subprocess.Popen[bytes]], within: float) -> bool:
    """Wait (at most ``within`` seconds) until every process has exited; whether they did."""
    deadline = asyncio.get_running_loop().time() + within
    while any(process.poll() is None for process in processes):
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# --- the routes ----------------------------------------------------------------------------


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
    apps = []
    for app in settings.apps:
        command = resolve(app, sys.platform)
        apps.append(
            {
                "name": app.name,
                "description": app.description,
                "available": command is not None,
                "path": command[0] if command else "",
                "running": bool(running.get(app.name)),
                "pids": [process.pid for process in running.get(app.name, [])],
            }
        )
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
    command = resolve(app, sys.platform)
    if command is None:
        raise PluginError(409, not_installed(app, sys.platform))
    try:
        process = await asyncio.to_thread(_spawn, command)
    except OSError as exc:
        raise PluginError(
            409, f"{app.name} cannot start: `{command[0]}` failed: {exc.strerror or exc}"
        ) from None
    running.append(process)
    ctx.logger.info("started %s (pid %d): %s", app.name, process.pid, command[0])
    return _result(app, "start", f"{app.name} started successfully", pids=running)


async def _stop(ctx: Context, app: App) -> dict[str, Any]:
    settings: Settings = ctx.settings
    running = _processes(ctx).get(app.name, [])
    if not running:
        return _result(app, "stop", f"{app.name} is not running", pids=[], success=False)
    for process in running:
        _signal(process, kill=False)
    if not await _exited(running, settings.stop_timeout):
        for process in running:
            _signal(process, kill=True)
        await _exited(running, 5.0)
    count = len(running)
    running.clear()
    ctx.logger.info("stopped %d instance(s) of %s", count, app.name)
    return _result(app, "stop", f"Stopped {count} instance(s) of {app.name}", pids=[])


def _result(
    app: App,
    action: str,
    message: str,
    *,
    pids: list[subprocess.Popen[bytes]],
    success: bool = True,
) -> dict[str, Any]:
    return {
        "success": success,
        "message": message,
        "app_name": app.name,
        "action": action,
        "pids": [process.pid for process in pids],
    }
