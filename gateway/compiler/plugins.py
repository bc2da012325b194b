"""Resolve `module:function` handlers from plugins/ and check them at compile time.

A module is imported from its file under a name derived from its content hash, so a reload
re-imports only the plugins that changed, and an unchanged plugin keeps its module object.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

from gateway.config.fields import dec_hook
from gateway.config.load import PLUGINS_DIR
from gateway.snapshot import PluginTarget

__all__ = ["HandlerProblem", "resolve_handler"]

_MODULES: dict[str, ModuleType] = {}  # content hash -> imported module


@dataclass(frozen=True, slots=True)
class HandlerProblem:
    """Why a `module:function` cannot be used; ``field`` is `handler` or `settings`."""

    field: str
    message: str
    unsettled: PluginTarget | None = None
    """For a `settings` problem: the handler itself (settings None), usable once the
    settings are fixed (an item whose settings lack a variable answers 503 meanwhile)."""


def resolve_handler(
    config_dir: Path, ref: str, settings: dict[str, Any]
) -> PluginTarget | HandlerProblem:
    """The checked handler and its decoded settings, or the problem saying what is wrong."""
    module_name, _, function_name = ref.partition(":")
    module = _import(config_dir, module_name)
    if isinstance(module, str):
        return HandlerProblem("handler", module)
    function = getattr(module, function_name, None)
    if function is None:
        defined = sorted(
            name
            for name, value in vars(module).items()
            if inspect.iscoroutinefunction(value) and not name.startswith("_")
        )
        listed = ", ".join(defined) or "none"
        return HandlerProblem(
            "handler",
            f"plugin handler `{ref}` does not exist (plugins/{module_name}.py defines: {listed})",
        )
    if not inspect.iscoroutinefunction(function) or len(_positional(function)) != 2:
        return HandlerProblem(
            "handler", f"plugin handler `{ref}` must be `async def {function_name}(ctx, request)`"
        )
    unsettled = PluginTarget(module_name, function_name, function, None)
    settings_type = getattr(module, "Settings", None)
    if settings_type is None:
        if settings:
            return HandlerProblem(
                "settings",
                f"plugin `{module_name}` takes no settings (it declares no `Settings` Struct)",
            )
        return unsettled
    try:
        decoded = msgspec.convert(settings, settings_type, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        return HandlerProblem("settings", f"settings of plugin `{module_name}`: {exc}", unsettled)
    return PluginTarget(module_name, function_name, function, decoded)


def _positional(function: Any) -> list[inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p for p in inspect.signature(function).parameters.values() if p.kind in kinds]


def _import(config_dir: Path, module_name: str) -> ModuleType | str:
    path = config_dir / PLUGINS_DIR / f"{module_name}.py"
    try:
        source = path.read_bytes()
    except OSError:
        return f"plugin module `{module_name}` not found: expected {PLUGINS_DIR}/{module_name}.py"
    digest = hashlib.sha256(source).hexdigest()[:16]
    cached = _MODULES.get(digest)
    if cached is not None:
        return cached
    unique = f"gateway_plugins.{module_name}_{digest}"
    spec = importlib.util.spec_from_file_location(unique, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module  # dataclasses and msgspec look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # any import failure refuses the configuration
        del sys.modules[unique]
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        line = getattr(exc, "lineno", None) or (frame.lineno if frame else "?")
        where = f"{PLUGINS_DIR}/{module_name}.py:{line}"
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        return f"plugin `{module_name}` failed to import: {type(exc).__name__}: {reason} ({where})"
    _MODULES[digest] = module
    return module
