"""An importable ASGI app for other servers: ``granian --interface asgi gateway.asgi:app``.

The configuration folder comes from ``GATEWAY_CONFIG_DIR`` (default: the current directory);
it boots exactly as `gateway serve` does (gateway.boot): the folder's `.env` under the
environment, files watched and reloaded, ``POST /admin/reload``. SIGHUP belongs to the
hosting server here. With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set it is traced as `gateway serve`
is (gateway.tracing); the spans still queued are exported when the process exits.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.boot import boot
from gateway.config.dotenv import environment, read_dotenv
from gateway.logs import configure_logging, logger
from gateway.serve.app import ASGIApp

__all__ = ["app"]

_folder = Path(os.environ.get("GATEWAY_CONFIG_DIR", "."))
_dotenv = read_dotenv(_folder)
_environ = environment(_dotenv)
configure_logging(_environ.get("GATEWAY_LOG_LEVEL", "INFO"))
for _warning in _dotenv.warnings if _dotenv else ():
    logger.warning("%s", _warning)
_booted = boot(_folder, environ=_environ)
app: ASGIApp = _booted.app
_otlp = _environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
if _otlp or _environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
    from gateway.tracing import Tracing  # only now: off, tracing is not even imported

    app = Tracing.start(_environ, _booted).app  # flushed by the provider's exit hook
