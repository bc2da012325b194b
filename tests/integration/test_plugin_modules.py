"""Plugin modules: helper modules next to a plugin, reloads of edited helpers, and old
versions leaving sys.modules."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.compiler import compile_config
from gateway.compiler.modules import KEPT_VERSIONS, loaded_versions
from gateway.config.load import load
from gateway.reload import ReloadOutcome
from gateway.snapshot import PluginRoute
from tests.conftest import GatewayFactory, write_config

ROUTES = """\
routes:
  - id: greet
    path: /greet
    auth: none
    handler: greeter:greet
"""
GREETER = """\
import greeting_words
from greeting_words import punctuation


async def greet(ctx, request):
    return {"message": greeting_words.HELLO + punctuation()}
"""


def helpers_config(tmp_path: Path, hello: str) -> Path:
    folder = write_config(tmp_path, "", {"greet": ROUTES})
    (folder / "plugins").mkdir(exist_ok=True)
    (folder / "plugins" / "greeter.py").write_text(GREETER)
    (folder / "plugins" / "greeting_words.py").write_text(
        f"HELLO = {hello!r}\n\n\ndef punctuation():\n    return '!'\n"
    )
    return folder


async def test_a_plugin_imports_its_helper_and_sees_the_helper_edited(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = helpers_config(tmp_path, "hello")
    async with gateway(folder, {}) as gw:
        async with gw.http.get(f"{gw.url}/greet") as response:
            assert (response.status, await response.json()) == (200, {"message": "hello!"})
        # Only the helper changes: the plugin that imported it is imported again.
        (folder / "plugins" / "greeting_words.py").write_text(
            "HELLO = 'bonjour'\n\n\ndef punctuation():\n    return '?'\n"
        )
        assert gw.state.reloader is not None
        result = await gw.state.reloader.reload("test")
        assert result.outcome is ReloadOutcome.SWAPPED
        async with gw.http.get(f"{gw.url}/greet") as response:
            assert (response.status, await response.json()) == (200, {"message": "bonjour?"})
    # The helper's plain name was bound only while the plugin imported it.
    assert "greeting_words" not in sys.modules


def test_edited_plugins_do_not_pile_up_in_sys_modules(tmp_path: Path) -> None:
    folder = helpers_config(tmp_path, "v0")
    for edit in range(1, 6):
        (folder / "plugins" / "greeter.py").write_text(GREETER + f"\nEDIT = {edit}\n")
        (folder / "plugins" / "greeting_words.py").write_text(
            f"HELLO = 'v{edit}'\n\n\ndef punctuation():\n    return '.'\n"
        )
        snapshot = compile_config(load(folder, environ={}))
        assert snapshot.routes[0].id == "greet"
    assert len(loaded_versions(folder, "greeter")) == KEPT_VERSIONS
    assert len(loaded_versions(folder, "greeting_words")) == KEPT_VERSIONS


def test_an_unchanged_plugin_keeps_its_module(tmp_path: Path) -> None:
    folder = helpers_config(tmp_path, "same")
    first = compile_config(load(folder, environ={})).routes[0]
    second = compile_config(load(folder, environ={})).routes[0]
    assert isinstance(first, PluginRoute)
    assert isinstance(second, PluginRoute)
    assert first.plugin.handler is second.plugin.handler
