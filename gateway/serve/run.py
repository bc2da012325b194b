"""`gateway serve`: load, compile, and serve with uvicorn (uvloop + httptools)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import uvicorn

from gateway.compiler.build import compile_config
from gateway.config.load import load
from gateway.errors import ConfigErrors
from gateway.logs import configure_logging, logger
from gateway.serve.app import GatewayState, build_app
from gateway.serve.switch import Switch
from gateway.upstream.clients import ClientPool

__all__ = ["serve"]


def serve(config_dir: Path, host: str, port: int) -> int:
    configure_logging(os.environ.get("GATEWAY_LOG_LEVEL", "INFO"))
    try:
        snapshot = compile_config(load(config_dir))
    except ConfigErrors as exc:
        for error in exc.errors:
            logger.error("%s", error)
        logger.error("not starting: %d configuration error(s) in %s", len(exc.errors), config_dir)
        return 1
    for route_id, reason in snapshot.unconfigured.items():
        logger.warning("route %s answers 503: %s", route_id, reason)
    state = GatewayState(switch=Switch(snapshot), pool=ClientPool())
    app = build_app(state)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        log_level=logging.WARNING,
    )
    logger.info(
        "serving %d routes (version %s) on http://%s:%d",
        len(snapshot.routes),
        snapshot.version,
        host,
        port,
    )
    asyncio.run(uvicorn.Server(config).serve())
    return 0
