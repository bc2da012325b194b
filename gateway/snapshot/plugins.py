"""A resolved plugin handler: what a route, webhook, schedule or login step calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.plugin import Handler

__all__ = ["PluginTarget"]


@dataclass(frozen=True, slots=True)
class PluginTarget:
    """``module:function`` from plugins/, checked at compile time, with decoded settings."""

    module: str
    function: str
    handler: Handler
    settings: Any

    @property
    def name(self) -> str:
        return f"{self.module}:{self.function}"
