"""An importable ASGI app for other servers: ``granian --interface asgi gateway.asgi:app``.

The configuration folder comes from ``GATEWAY_CONFIG_DIR`` (default: the current directory);
it boots exactly as `gateway serve` does (gateway.boot): files are watched and reloaded, and
``POST /admin/reload`` works. SIGHUP belongs to the hosting server here.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.boot import boot
from gateway.logs import configure_logging

__all__ = ["app"]

configure_logging(os.environ.get("GATEWAY_LOG_LEVEL", "INFO"))
app = boot(Path(os.environ.get("GATEWAY_CONFIG_DIR", "."))).app
