"""Run a handler and say how it ended, the same way for routes, webhooks, schedules and
the login step: each caller maps an :data:`Outcome` to its own answer.

* :class:`Returned`: the handler's value (a route sends it, a webhook acks, a login gets a
  user id from it).
* :class:`Refused`: a deliberate refusal with a status: a :class:`PluginError`, a user who
  must (re)connect an upstream (401), an upstream that could not be reached (502/504).
* :class:`Deferred`: the handler raised :class:`RetrySoon` (busy, nothing failed). It is a
  :class:`Refused` (503 `retry-soon`) for callers that know no better; the queue's worker
  hands the event out again after ``delay`` without spending an attempt.
* :class:`Crashed`: any other exception (logged here once, with its traceback).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.logs import logger
from gateway.plugin import (
    Context,
    PluginError,
    PluginRequest,
    RetrySoon,
    UpstreamNotConnected,
)
from gateway.snapshot import PluginTarget

__all__ = ["Crashed", "Deferred", "Outcome", "Refused", "Returned", "invoke"]


@dataclass(frozen=True, slots=True)
class Returned:
    value: Any


@dataclass(frozen=True, slots=True)
class Refused:
    status: int
    slug: str
    """The problem type: `plugin-refused`, `upstream-not-connected`, `upstream-unreachable`,
    `upstream-timeout`, `retry-soon`."""
    detail: str
    headers: Mapping[str, str] = field(default_factory=dict, kw_only=True)
    """Headers the refusal asks a route to answer with (``PluginError(headers=...)``)."""
    connect_url: str | None = field(default=None, kw_only=True)
    """Where the user (re)connects the upstream, for `upstream-*` credential refusals."""


@dataclass(frozen=True, slots=True)
class Deferred(Refused):
    delay: float
    """Seconds the handler asked to wait before the next try."""


@dataclass(frozen=True, slots=True)
class Crashed:
    error: str
    """`TypeName: message` of what the handler raised."""
    kind: str
    """The exception's type name alone (what a caller may show)."""


Outcome = Returned | Refused | Crashed


async def invoke(target: PluginTarget, ctx: Context, request: PluginRequest) -> Outcome:
    """``target``'s handler on ``request``; never raises (except cancellation)."""
    try:
        return Returned(await target.handler(ctx, request))
    except RetrySoon as exc:
        return Deferred(503, "retry-soon", exc.detail, exc.seconds)
    except PluginError as exc:
        return Refused(exc.status, "plugin-refused", exc.detail, headers=exc.headers)
    except UpstreamNotConnected as exc:
        return Refused(401, exc.slug, exc.detail, connect_url=exc.connect_url)
    except UpstreamTimeout as exc:
        return Refused(504, "upstream-timeout", str(exc))
    except UpstreamError as exc:
        return Refused(502, "upstream-unreachable", str(exc))
    except Exception as exc:
        logger.warning("plugin %s failed on %s", target.name, request.route, exc_info=True)
        return Crashed(f"{type(exc).__name__}: {exc}", type(exc).__name__)
