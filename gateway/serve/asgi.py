"""An importable ASGI app for other servers: ``granian --interface asgi gateway.serve.asgi:app``.

The configuration folder comes from ``GATEWAY_CONFIG_DIR`` (default: the current directory).
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.compiler.build import compile_config
from gateway.config.load import load
from gateway.logs import configure_logging
from gateway.serve.app import GatewayState, build_app
from gateway.serve.switch import Switch
from gateway.upstream.clients import ClientPool

__all__ = ["app"]

configure_logging(os.environ.get("GATEWAY_LOG_LEVEL", "INFO"))
_config_dir = Path(os.environ.get("GATEWAY_CONFIG_DIR", "."))
app = build_app(GatewayState(switch=Switch(compile_config(load(_config_dir))), pool=ClientPool()))
