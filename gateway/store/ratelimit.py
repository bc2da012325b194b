"""Rate limits as GCRA (generic cell rate algorithm): one atomic decision per request.

A limit of ``limit`` per ``period`` lets ``limit`` requests through at once, then one every
``period / limit``. Only accepted requests move the key's "theoretical arrival time", so
rejected requests consume nothing. With Redis the decision is one Lua script using the
server's clock, so any number of gateway processes share one exact budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

from gateway.store.client import RedisClient, key_prefix

__all__ = ["Decision", "MemoryRateLimiter", "RateLimiter", "RedisRateLimiter"]


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not; requests left; seconds until one is allowed / the budget is full."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset_after: float

    def headers(self) -> list[tuple[bytes, bytes]]:
        found = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(math.ceil(self.reset_after)).encode()),
        ]
        if not self.allowed:
            found.append((b"retry-after", str(max(1, math.ceil(self.retry_after))).encode()))
        return found


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, period: float) -> Decision: ...


def _decide(now: int, tat: int, limit: int, period: int) -> tuple[Decision, int | None]:
    """The decision and the new arrival time (None: rejected, nothing changes).

    Integer nanoseconds throughout: with floats, `remaining` can floor 0.99999 to 0.
    """
    interval = period // limit
    tat = max(tat, now)
    allow_at = tat - period + interval
    if now < allow_at:
        return Decision(False, limit, 0, (allow_at - now) / 1e9, (tat - now) / 1e9), None
    new_tat = tat + interval
    remaining = (now - (new_tat - period)) // interval
    return Decision(True, limit, max(0, remaining), 0.0, (new_tat - now) / 1e9), new_tat


class MemoryRateLimiter:
    """For one process (the memory store)."""

    def __init__(self) -> None:
        self._tat: dict[str, int] = {}

    async def hit(self, key: str, limit: int, period: float) -> Decision:
        now = time.monotonic_ns()
        decision, new_tat = _decide(now, self._tat.get(key, now), limit, int(period * 1e9))
        if new_tat is not None:
            self._tat[key] = new_tat
            if len(self._tat) > 100_000:  # forget keys whose budget is full again
                self._tat = {k: t for k, t in self._tat.items() if t > now}
        return decision


# KEYS[1] = the key; ARGV = limit, period (ms). Uses the Redis server's clock (TIME), so
# replicas with skewed clocks still share one budget. Returns allowed, remaining,
# retry_after_ms, reset_after_ms.
_GCRA = """
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local interval = math.floor(period / limit)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allow_at = tat - period + interval
if now < allow_at then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', new_tat - now + 1)
local remaining = math.floor((now - (new_tat - period)) / interval)
if remaining < 0 then remaining = 0 end
return {1, remaining, 0, math.ceil(new_tat - now)}
"""


class RedisRateLimiter:
    """Shared by every process on one Redis."""

    def __init__(self, redis: RedisClient, namespace: str, *, cluster: bool = False) -> None:
        self._script = redis.register_script(_GCRA)
        self._prefix = f"{key_prefix(namespace, cluster)}ratelimit:"

    async def hit(self, key: str, limit: int, period: float) -> Decision:
        allowed, remaining, retry_ms, reset_ms = await self._script(
            keys=[self._prefix + key], args=[limit, int(period * 1000)]
        )
        return Decision(bool(allowed), limit, int(remaining), retry_ms / 1000, reset_ms / 1000)
