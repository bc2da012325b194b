"""Failed credential checks, throttled per client IP and per credential, shared by replicas.

Each failure counts against two budgets (GCRA, gateway.store.ratelimit): the caller's IP and
the credential's id (a username, a client id; None when the credential is a secret alone).
When a budget is spent, the key is blocked for the window: every attempt from that IP or for
that credential answers 429 with Retry-After, the right credential included (otherwise the
429s would tell a guesser which guess was right). It works again after the window.
"""

from __future__ import annotations

import math
import time

from litestar.stores.base import Store

from gateway.store.ratelimit import RateLimiter

__all__ = ["Throttle"]


class Throttle:
    """``await throttle.blocked("api_key", ip, None)`` -> seconds left, or None."""

    def __init__(self, store: Store, limiter: RateLimiter) -> None:
        self.store = store
        self.limiter = limiter

    @staticmethod
    def _keys(kind: str, ip: str, credential: str | None) -> list[str]:
        keys = [f"throttle:{kind}:ip:{ip}"]
        if credential:
            keys.append(f"throttle:{kind}:id:{credential}")
        return keys

    async def blocked(self, kind: str, ip: str, credential: str | None) -> float | None:
        """Seconds until ``ip`` (or ``credential``) may try again, or None when it may now."""
        now = time.time()
        longest = 0.0
        for key in self._keys(kind, ip, credential):
            until = await self.store.get(f"{key}:blocked")
            if until is not None:
                longest = max(longest, float(until) - now)
        return longest if longest > 0 else None

    async def failed(
        self, kind: str, ip: str, credential: str | None, failures: int, window: float
    ) -> float | None:
        """Count one failure (``failures`` allowed per ``window`` seconds); the lockout in
        seconds when a budget is now spent, else None."""
        lockout = None
        for key in self._keys(kind, ip, credential):
            decision = await self.limiter.hit(key, failures, window)
            if not decision.allowed:
                until = time.time() + window
                await self.store.set(
                    f"{key}:blocked", str(until).encode(), expires_in=math.ceil(window)
                )
                lockout = window
        return lockout
