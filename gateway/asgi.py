"""An importable ASGI app for other servers: ``granian --interface asgi gateway.serve.asgi:app``.

The configuration folder comes from ``GATEWAY_CONFIG_DIR`` (default: the current directory);
files are watched and reloaded as under `gateway serve`, and ``POST /admin/reload`` works.
SIGHUP belongs to the hosting server here.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.compiler.build import compile_config
from gateway.config.load import load
from gateway.logs import configure_logging
from gateway.reload import Reloader
from gateway.serve.app import GatewayState, build_app
from gateway.serve.switch import Switch
from gateway.store.backend import open_backend
from gateway.upstream.clients import ClientPool

__all__ = ["app"]

configure_logging(os.environ.get("GATEWAY_LOG_LEVEL", "INFO"))
_config_dir = Path(os.environ.get("GATEWAY_CONFIG_DIR", "."))
_snapshot = compile_config(load(_config_dir))
_state = GatewayState(
    switch=Switch(_snapshot),
    pool=ClientPool(),
    backend=open_backend(_snapshot.store_url, _snapshot.store_namespace),
)
_state.reloader = Reloader(_config_dir, current=lambda: _state.switch.current, swap=_state.swap)
app = build_app(_state)
