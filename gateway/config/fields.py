"""Constrained field types of the configuration, declared once.

``Duration`` accepts ``10s``, ``200ms``, ``1.5m``, ``1h`` or a number of seconds and becomes
a float of seconds. It is decoded by :func:`dec_hook` and described by :func:`schema_hook`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "Duration",
    "HeaderName",
    "HttpMethod",
    "Identifier",
    "ModuleRef",
    "ParamName",
    "RoutePath",
    "WebhookPath",
    "dec_hook",
    "schema_hook",
]

Identifier = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$",
        description="A name of letters, digits, `_` and `-`, starting with a letter (max 64).",
    ),
]
ParamName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")]
HeaderName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")]
_PATH_CHARACTERS = r"^/[A-Za-z0-9._~!$&'()*+,;=:@/{}-]*$"
RoutePath = Annotated[
    str,
    msgspec.Meta(
        pattern=_PATH_CHARACTERS,
        description="A path starting with `/`; `{name}` marks a path parameter.",
    ),
]
# Same characters as a route path, so that `{...}` reaches the compiler's clearer message.
WebhookPath = Annotated[
    str, msgspec.Meta(pattern=_PATH_CHARACTERS, description="A path starting with `/`.")
]
ModuleRef = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*:[A-Za-z_][A-Za-z0-9_]*$",
        description="A plugin handler as `module:function`, the module living in plugins/.",
    ),
]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class Duration(float):
    """Seconds, written in YAML as ``10s``, ``200ms``, ``1.5m``, ``1h`` or a plain number."""


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
DURATION_HINT = "Expected a duration like `10s`, `200ms` or `1.5m`"


def parse_duration(value: object) -> Duration:
    if isinstance(value, bool):
        raise ValueError(f"{DURATION_HINT}, got `{value}`")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{DURATION_HINT}, got `{value}`")
        return Duration(value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            return Duration(float(match[1]) * _UNIT_SECONDS[match[2]])
    raise ValueError(f"{DURATION_HINT}, got {value!r}")


def dec_hook(type_: type, value: Any) -> Any:
    """msgspec decode hook for the custom field types above."""
    if type_ is Duration:
        return parse_duration(value)
    raise NotImplementedError(f"no decoder for {type_!r}")


def schema_hook(type_: type) -> dict[str, Any]:
    """msgspec JSON-schema hook for the custom field types above."""
    if type_ is Duration:
        return {
            "anyOf": [
                {"type": "string", "pattern": r"^\d+(\.\d+)?\s*(ms|s|m|h)?$"},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: `10s`, `200ms`, `1.5m`, `1h`, or seconds as a number.",
        }
    raise NotImplementedError(f"no schema for {type_!r}")
