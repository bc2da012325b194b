"""The keys of the gateway's own endpoints: the admin API and `/metrics`.

Failed checks are throttled per client IP (429 with Retry-After once the budget is spent,
the right key included), and counted in `gateway_auth_failures_total`.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Mapping
from typing import Any

from litestar import Request
from litestar.exceptions import HTTPException

from gateway import metrics
from gateway.serve.inbound import Unauthorized, authenticate
from gateway.snapshot import Snapshot
from gateway.store.throttle import Throttle

__all__ = ["is_admin", "require_admin", "require_scraper"]

_METRICS_OFF = (
    "metrics are off: set `metrics.keys` (GATEWAY_METRICS_KEY) or `admin.keys` in "
    "gateway.yaml, or `metrics.public: true`"
)
_METRICS_MISSING = "send a metrics key as `Authorization: Bearer <key>` or an admin key in {}"


async def require_admin(
    request: Request[Any, Any, Any], snapshot: Snapshot, throttle: Throttle
) -> None:
    """The admin key, or 401; failed checks are throttled per client IP (429)."""
    if not snapshot.admin.keys:
        detail = "the admin API is off: set `admin.keys` in gateway.yaml"
        raise HTTPException(status_code=503, detail=detail)
    ip = _ip(request)
    if (wait := await throttle.blocked("admin", ip, None)) is not None:
        raise _locked_out(wait)
    try:
        authenticate(snapshot.admin, _headers(request), {})
    except Unauthorized as exc:
        metrics.auth_failed("admin")
        limits = snapshot.failed_auth
        lockout = await throttle.failed("admin", ip, None, limits.failures, limits.window)
        if lockout is not None:
            raise _locked_out(lockout) from None
        raise HTTPException(status_code=401, detail=exc.detail) from None


def is_admin(request: Request[Any, Any, Any], snapshot: Snapshot) -> bool:
    """Whether the request carries an admin key (not throttled: it only widens what an
    answer shows, it opens nothing)."""
    return _admin_key_in(_headers(request), snapshot)


async def require_scraper(
    request: Request[Any, Any, Any], snapshot: Snapshot, throttle: Throttle
) -> None:
    """A metrics key (bearer) or an admin key, or 401; open when `metrics.public`."""
    access = snapshot.metrics
    if access.public:
        return
    if not access.keys and not snapshot.admin.keys:
        raise HTTPException(status_code=503, detail=_METRICS_OFF)
    ip = _ip(request)
    if (wait := await throttle.blocked("metrics", ip, None)) is not None:
        raise _locked_out(wait)
    headers = _headers(request)
    if _bearer_matches(headers.get("authorization"), access.keys) or _admin_key_in(
        headers, snapshot
    ):
        return
    metrics.auth_failed("metrics")
    limits = snapshot.failed_auth
    lockout = await throttle.failed("metrics", ip, None, limits.failures, limits.window)
    if lockout is not None:
        raise _locked_out(lockout)
    admin_header = snapshot.admin.header or "X-Admin-Key"
    presented = "authorization" in headers or admin_header.lower() in headers
    raise HTTPException(
        status_code=401,
        detail="invalid metrics key" if presented else _METRICS_MISSING.format(admin_header),
        headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
    )


def _admin_key_in(headers: Mapping[str, str], snapshot: Snapshot) -> bool:
    if not snapshot.admin.keys:
        return False
    try:
        authenticate(snapshot.admin, headers, {})
    except Unauthorized:
        return False
    return True


def _bearer_matches(authorization: str | None, keys: tuple[bytes, ...]) -> bool:
    if not authorization or not keys:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    presented = token.strip().encode()
    matched = False
    for key in keys:  # every key, in constant time each: the timing names none of them
        matched |= hmac.compare_digest(presented, key)
    return matched


def _headers(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {key.lower(): value for key, value in request.headers.items()}


def _ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def _locked_out(wait: float) -> HTTPException:
    seconds = max(1, math.ceil(wait))
    return HTTPException(
        status_code=429,
        detail=f"too many failed credential checks; retry in {seconds}s",
        headers={"Retry-After": str(seconds)},
    )
