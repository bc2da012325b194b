"""One request on its way through a route: the single value every step reads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gateway.serve.answers import Problem
from gateway.serve.inbound import Identity
from gateway.snapshot import RateLimitSpec, Snapshot
from gateway.store.ratelimit import Decision
from gateway.upstream.auth import Caller

__all__ = ["Exchange", "client_ip", "not_connected", "rate_limited", "too_many_failures"]


@dataclass(slots=True)
class Exchange:
    """The snapshot it is served on, the ASGI scope, the request id, the caller's headers
    (lower-case names) and raw query; ``identity`` and ``raw_body`` once known."""

    snapshot: Snapshot
    scope: dict[str, Any]
    receive: Any
    request_id: str
    headers: dict[str, str]
    query: dict[str, str]
    identity: Identity | None = None
    raw_body: bytes = b""

    @property
    def user(self) -> str | None:
        """The user the caller's credential stands for (an api key's user, a token's)."""
        return self.identity.user if self.identity is not None else None

    def caller(self) -> Caller:
        """On whose behalf upstreams are called: the user, the headers, and the caller's
        own token when its scheme passes it through."""
        identity = self.identity
        if identity is None:
            return Caller(None, self.headers)
        return Caller(identity.user, self.headers, identity.token)


def client_ip(scope: dict[str, Any]) -> str:
    """The peer's address (proxy headers are not believed here)."""
    return str((scope.get("client") or ("unknown", 0))[0])


def too_many_failures(wait: float) -> Problem:
    """The 429 of a caller (or credential) locked out after too many failed checks."""
    seconds = max(1, math.ceil(wait))
    problem = Problem(
        429,
        "too-many-failed-attempts",
        f"too many failed credential checks; retry in {seconds}s",
    )
    problem.headers.append((b"retry-after", str(seconds).encode()))
    return problem


def rate_limited(spec: RateLimitSpec, decision: Decision) -> Problem:
    """The 429 of a caller over a route's or webhook's rate limit (RateLimit-* headers)."""
    problem = Problem(
        429,
        "rate-limited",
        f"rate limit of {spec.limit} per {spec.period:g}s reached; "
        f"retry in {max(1, math.ceil(decision.retry_after))}s",
    )
    problem.headers.extend(decision.headers())
    return problem


def not_connected(
    detail: str, slug: str = "upstream-not-connected", connect_url: str | None = None
) -> Problem:
    """The 401 that tells the user to (re)connect an upstream (at ``connect_url``)."""
    extra = {"connect_url": connect_url} if connect_url else {}
    problem = Problem(401, slug, detail, **extra)
    problem.headers.append((b"www-authenticate", b'Bearer realm="upstream"'))
    return problem
