"""routes.d/*.yaml: one upstream, its routes, webhooks and schedules."""

from __future__ import annotations

# msgspec passes `frozen` down to subclasses; mypy's dataclass_transform model does not see it.
# mypy: disable-error-code="misc"
from gateway.config.model.common import Base
from gateway.config.model.routes import Route, Upstream
from gateway.config.model.webhooks import Schedule, Webhook

__all__ = [
    "RouteFile",
]


class RouteFile(Base):
    """One `routes.d/*.yaml` file: an upstream and the routes, webhooks and schedules using it."""

    upstream: Upstream | None = None
    """The API this file's routes call (not needed by static and plugin routes)."""
    routes: list[Route] = []
    """The public operations, each becoming an OpenAPI operation."""
    webhooks: list[Webhook] = []
    """Endpoints senders push events to."""
    schedules: list[Schedule] = []
    """Handlers run periodically."""
