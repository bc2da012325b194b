"""A declarative, YAML-configured integration gateway.

from gateway import load, compile_config
snapshot = compile_config(load(Path(".")))
"""

from __future__ import annotations

from gateway.lean import skip_unused_opentelemetry

skip_unused_opentelemetry()  # first: before Litestar and redis-py are imported

from gateway.compiler import compile_config  # noqa: E402
from gateway.config.load import Config, load  # noqa: E402
from gateway.errors import (  # noqa: E402
    ConfigError,
    ConfigErrors,
    GatewayError,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.snapshot import CompiledRoute, Snapshot  # noqa: E402

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
