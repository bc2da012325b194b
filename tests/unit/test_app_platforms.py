"""Which command starts an allowlisted app on Linux, macOS and Windows: the shipped
routes.d/apps.yaml, compiled as the gateway serves it, and the plugin's own pure functions
(`commands`, `resolve`, `not_installed`) with the platform passed in."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gateway.compiler.build import compile_config
from gateway.config.load import load
from gateway.errors import ConfigErrors
from tests.conftest import REPO, write_config


def shipped() -> tuple[ModuleType, dict[str, Any]]:
    """The plugin module the shipped config compiled, and its apps by name."""
    route = compile_config(load(REPO, environ={})).table.match("GET", "/apps/list").route
    module = sys.modules[route.plugin.handler.__module__]  # type: ignore[union-attr]
    return module, {app.name: app for app in route.plugin.settings.apps}  # type: ignore[union-attr]


URL = "https://www.google.com/"
EXPECTED = {
    "linux": {
        "notepad": [["gedit"], ["gnome-text-editor"], ["kate"], ["mousepad"]],
        "calculator": [["gnome-calculator"], ["kcalc"], ["galculator"]],
        "browser": [["xdg-open", URL], ["firefox"], ["chromium"], ["chromium-browser"]],
        "chrome": [["google-chrome"], ["google-chrome-stable"], ["chromium"], ["chromium-browser"]],
        "firefox": [["firefox"], ["firefox-esr"]],
        "vscode": [["code", "--new-window"]],
    },
    "darwin": {
        "notepad": [
            ["/System/Applications/TextEdit.app/Contents/MacOS/TextEdit"],
            ["/Applications/TextEdit.app/Contents/MacOS/TextEdit"],
            ["open", "-a", "TextEdit"],
        ],
        "calculator": [
            ["/System/Applications/Calculator.app/Contents/MacOS/Calculator"],
            ["/Applications/Calculator.app/Contents/MacOS/Calculator"],
            ["open", "-a", "Calculator"],
        ],
        "browser": [["open", URL]],
        "chrome": [["/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"]],
        "firefox": [["/Applications/Firefox.app/Contents/MacOS/firefox"]],
        "vscode": [["code", "--new-window"]],
    },
    "win32": {
        "notepad": [["notepad.exe"]],
        "calculator": [["calc.exe"]],
        "browser": [["cmd.exe", "/c", "start", "", URL]],
        "chrome": [
            ["C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe"],
            ["C:\\Program Files (x86)\\Google\\Chrome\\Application\\chrome.exe"],
            ["%LOCALAPPDATA%\\Google\\Chrome\\Application\\chrome.exe"],
        ],
        "firefox": [
            ["C:\\Program Files\\Mozilla Firefox\\firefox.exe"],
            ["C:\\Program Files (x86)\\Mozilla Firefox\\firefox.exe"],
        ],
        "vscode": [["code", "--new-window"]],
    },
}


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_the_shipped_allowlist_per_platform_in_order(platform: str) -> None:
    module, apps = shipped()
    assert list(apps) == ["notepad", "calculator", "browser", "chrome", "firefox", "vscode"]
    assert {name: module.commands(app, platform) for name, app in apps.items()} == (
        EXPECTED[platform]
    )


@pytest.mark.parametrize(
    ("platform", "key"),
    [
        ("linux", "linux"),
        ("darwin", "darwin"),
        ("win32", "win32"),
        ("freebsd14", "linux"),  # other Unix desktops run the same X11/Wayland apps
        ("cygwin", "linux"),
    ],
)
def test_platform_key(platform: str, key: str) -> None:
    module, _ = shipped()
    assert module.platform_key(platform) == key


def installed(*names: str) -> Any:
    """A `which` for a machine where exactly ``names`` are installed (under /opt/bin)."""
    return lambda name: f"/opt/bin/{name}" if name in names else None


def test_the_first_installed_command_wins() -> None:
    module, apps = shipped()
    notepad = apps["notepad"]
    assert module.resolve(notepad, "linux", installed("mousepad", "kate")) == ["/opt/bin/kate"]
    assert module.resolve(notepad, "linux", installed("gedit", "kate")) == ["/opt/bin/gedit"]
    assert module.resolve(notepad, "linux", installed()) is None
    assert module.resolve(notepad, "linux", installed("notepad.exe")) is None  # not Linux's
    assert module.resolve(notepad, "darwin", installed("open")) == [
        "/opt/bin/open",
        "-a",
        "TextEdit",
    ]
    assert module.resolve(notepad, "win32", installed("notepad.exe")) == ["/opt/bin/notepad.exe"]
    browser = apps["browser"]
    assert module.resolve(browser, "linux", installed("firefox", "xdg-open")) == [
        "/opt/bin/xdg-open",
        URL,
    ]
    assert module.resolve(browser, "linux", installed("chromium")) == ["/opt/bin/chromium"]


def test_windows_paths_expand_percent_variables_from_the_environment() -> None:
    module, apps = shipped()
    user_chrome = "C:\\Users\\ada\\AppData\\Local\\Google\\Chrome\\Application\\chrome.exe"
    environ = {"LOCALAPPDATA": "C:\\Users\\ada\\AppData\\Local"}
    found = module.resolve(apps["chrome"], "win32", installed(user_chrome), environ)
    assert found == [f"/opt/bin/{user_chrome}"]
    assert module.resolve(apps["chrome"], "win32", installed(user_chrome), {}) is None


def test_real_which_on_this_machine() -> None:
    module, _ = shipped()
    app = module.App(
        name="py", linux=["definitely-not-installed-xyz", [sys.executable, "-V"]], win32=["x"]
    )
    assert module.resolve(app, "linux") == [sys.executable, "-V"]
    assert module.resolve(app, "darwin") is None  # no darwin list and no `executable`


def test_not_installed_names_what_was_looked_for() -> None:
    module, apps = shipped()
    assert module.not_installed(apps["vscode"], "win32") == (
        "vscode cannot start: `code` is not installed here"
    )
    assert module.not_installed(apps["notepad"], "linux") == (
        "notepad cannot start: none of `gedit`, `gnome-text-editor`, `kate`, `mousepad`"
        " is installed here"
    )
    only_windows = module.App(name="paint", win32=["mspaint.exe"])
    assert module.not_installed(only_windows, "darwin") == (
        "paint cannot start: nothing is configured for darwin"
    )


ROUTES = """\
routes:
  - id: listApps
    path: /apps/list
    handler: app_control:list_apps
    settings:
      apps:
%s
"""


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (
            "        - {name: nothing}",
            "routes.d/apps.yaml:6:7: settings of plugin `app_control`: app `nothing` needs"
            " `executable` or commands for `linux`, `darwin` or `win32` - at `$.apps[0]`"
            " - at `$.routes[0].settings`",
        ),
        (
            "        - {name: empty, linux: [[]]}",
            "routes.d/apps.yaml:6:7: settings of plugin `app_control`: app `empty` has an empty"
            " command - at `$.apps[0]` - at `$.routes[0].settings`",
        ),
        (
            "        - {name: typo, linx: [gedit]}",
            "routes.d/apps.yaml:6:7: settings of plugin `app_control`: Object contains unknown"
            " field `linx` - at `$.apps[0]` - at `$.routes[0].settings`",
        ),
    ],
    ids=["no-command", "empty-command", "unknown-platform"],
)
def test_allowlist_mistakes_are_config_errors(tmp_path: Path, app: str, expected: str) -> None:
    folder = write_config(tmp_path, "", {"apps": ROUTES % app})
    (folder / "plugins").mkdir()
    (folder / "plugins" / "app_control.py").write_text(
        (REPO / "plugins" / "app_control.py").read_text()
    )
    with pytest.raises(ConfigErrors) as caught:
        compile_config(load(folder, environ={}))
    assert [str(error) for error in caught.value.errors] == [expected]
