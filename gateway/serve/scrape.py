"""`GET /metrics`: the process's Prometheus metrics, for a scraper holding a key.

The values only the store knows (queue depth, whether the store answers) are read at scrape
time, bounded, so a scrape never waits on a hung store; the rest is counted as it happens
(gateway.metrics).
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from gateway import metrics
from gateway.serve.keys import require_scraper
from gateway.serve.state import GatewayState
from gateway.store.throttle import Throttle

__all__ = ["metrics_handler"]


def metrics_handler(
    state: GatewayState, throttle: Throttle, probe_seconds: float
) -> HTTPRouteHandler:
    """The `/metrics` handler of ``state``'s process."""

    @get("/metrics")
    async def scrape(request: Request[Any, Any, Any]) -> Response[bytes]:
        snapshot = state.switch.current
        await require_scraper(request, snapshot, throttle)
        metrics.config_loaded(snapshot.version)
        try:
            pending: int | None = await asyncio.wait_for(
                state.backend.queue.pending(), probe_seconds
            )
        except Exception:  # the store is away: the scrape still answers, and says so
            pending = None
        metrics.queue_depth(pending)
        metrics.store_up(pending is not None)
        body, content_type = metrics.exposition(request.headers.get("accept"))
        # Litestar appends the charset to a text/ type itself.
        return Response(body, media_type=content_type.removesuffix("; charset=utf-8"))

    return scrape
