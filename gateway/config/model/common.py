"""What both kinds of file share: the strict base Struct, value aliases, limits and retries."""

from __future__ import annotations

# msgspec passes `frozen` down to subclasses; mypy's dataclass_transform model does not see it.
# mypy: disable-error-code="misc"
from typing import Annotated

import msgspec

from gateway.config.fields import (
    Duration,
)

__all__ = [
    "Base",
    "PositiveInt",
    "RateLimit",
    "Retry",
    "StatusCode",
    "Template",
]


Template = Annotated[str, msgspec.Meta(description="A Jinja2 template (sandboxed, native types).")]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
StatusCode = Annotated[int, msgspec.Meta(ge=100, le=599)]


class Base(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Shared options: unknown fields are errors, instances are immutable."""


# --- gateway.yaml -------------------------------------------------------------------------


class RateLimit(Base):
    """At most `limit` requests per `per`, for each caller `key`: `ip`, `api_key` (the key
    used), `bearer` (the token used) or a template such as `{{ headers["x-tenant"] }}`."""

    limit: PositiveInt
    """Requests allowed per `per`; also how many may come at once."""
    per: Duration
    """The period `limit` is counted over, e.g. `1m`."""
    key: str = "ip"
    """What tells callers apart: `ip` (default), `api_key`, `bearer` or a template."""


class Retry(Base):
    """Retries of idempotent calls (GET, HEAD, OPTIONS, PUT, DELETE) only."""

    attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 2
    """Total attempts, the first included."""
    on_status: list[StatusCode] = msgspec.field(default_factory=lambda: [502, 503, 504])
    """Upstream statuses that are retried; failed connections and timeouts are too."""
    backoff: Duration | None = None
    """Wait before the second attempt (default 200ms); doubles after each retry."""
