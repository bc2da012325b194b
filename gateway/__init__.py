"""A declarative, YAML-configured integration gateway.

from gateway import load, compile_config
snapshot = compile_config(load(Path(".")))
"""

from __future__ import annotations

from gateway.compiler import compile_config
from gateway.config.load import Config, load
from gateway.errors import ConfigError, ConfigErrors, GatewayError, UpstreamError, UpstreamTimeout
from gateway.snapshot import CompiledRoute, Snapshot

__all__ = [
    "CompiledRoute",
    "Config",
    "ConfigError",
    "ConfigErrors",
    "GatewayError",
    "Snapshot",
    "UpstreamError",
    "UpstreamTimeout",
    "compile_config",
    "load",
]
