"""Resolve `module:function` handlers from plugins/ and check them at compile time: the
function exists and is ``async def fn(ctx, request)``, its module's ``Settings`` decode.
(Importing the modules is gateway.compiler.modules' job.)"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from gateway.compiler.modules import import_plugin
from gateway.config.fields import dec_hook
from gateway.snapshot import PluginTarget

__all__ = ["HandlerProblem", "resolve_handler"]


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
    module = import_plugin(config_dir, module_name)
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
