"""Rate limits as GCRA (generic cell rate algorithm): one atomic decision per request.

A limit of ``limit`` per ``period`` lets ``limit`` requests through at once, then one every
``period / limit``. Only accepted requests move the key's "theoretical arrival time", so
rejected requests consume nothing. With Redis the decision is one Lua script using the
server's clock, so any number of gateway processes share one exact budget.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import NoScriptError

from gateway.store.batching import TurnBatcher
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

    Integers throughout, in units of 1/limit ns (the caller scales): one request's share of
    the period is then exactly ``period // limit``, whatever the limit and window (2,000 a
    second, 7 per 3 s), and `remaining` cannot floor 0.99999 to 0 as floats would.
    """
    interval = period // limit
    tat = max(tat, now)
    allow_at = tat - period + interval
    if now < allow_at:
        return Decision(
            False, limit, 0, (allow_at - now) / (1e9 * limit), (tat - now) / (1e9 * limit)
        ), None
    new_tat = tat + interval
    remaining = (now - (new_tat - period)) // interval
    reset = (new_tat - now) / (1e9 * limit)
    return Decision(True, limit, max(0, remaining), 0.0, reset), new_tat


class MemoryRateLimiter:
    """For one process (the memory store)."""

    def __init__(self) -> None:
        self._tat: dict[str, int] = {}

    async def hit(self, key: str, limit: int, period: float) -> Decision:
        now = time.monotonic_ns() * limit  # Python's integers do not overflow
        decision, new_tat = _decide(now, self._tat.get(key, now), limit, int(period * 1e9) * limit)
        if new_tat is not None:
            self._tat[key] = new_tat
            if len(self._tat) > 100_000:  # forget keys whose budget is full again
                self._tat = {k: t for k, t in self._tat.items() if t > now}
        return decision


# KEYS[1] = the key; ARGV = limit, period (µs). Uses the Redis server's clock (TIME), so
# replicas with skewed clocks still share one budget. Lua has only doubles (exact below
# 2^53), so the arrival time is kept as whole microseconds plus a remainder in 1/limit µs
# ("tat:rem"): one request's share, period / limit, need not be a whole microsecond and
# nothing is rounded. Returns allowed, remaining, retry_after_us, reset_after_us.
_GCRA = """
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local share = math.floor(period / limit)
local share_rem = period - share * limit
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat, rem = now, 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local sep = string.find(stored, ':', 1, true)
  if sep then
    tat = tonumber(string.sub(stored, 1, sep - 1))
    rem = tonumber(string.sub(stored, sep + 1))
  else
    tat = tonumber(stored) * 1000
  end
end
if tat < now then tat, rem = now, 0 end
local new_tat, new_rem = tat + share, rem + share_rem
if new_rem >= limit then new_tat, new_rem = new_tat + 1, new_rem - limit end
local allow_at = new_tat - period
if now < allow_at or (now == allow_at and new_rem > 0) then
  return {0, 0, math.ceil(allow_at - now + new_rem / limit), math.ceil(tat - now + rem / limit)}
end
redis.call('SET', KEYS[1], string.format('%d:%d', new_tat, new_rem), 'PX',
  math.ceil((new_tat - now) / 1000) + 1)
local remaining = math.floor(((now - new_tat + period) * limit - new_rem) / period)
if remaining < 0 then remaining = 0 end
return {1, remaining, 0, math.ceil(new_tat - now + new_rem / limit)}
"""


class RedisRateLimiter:
    """Shared by every process on one Redis. The hits of one event-loop turn go in one
    pipelined round trip (gateway.store.batching): under load, many requests pay one
    client round trip and one parse instead of one each."""

    def __init__(self, redis: RedisClient, namespace: str, *, cluster: bool = False) -> None:
        self._redis = redis
        self._script = redis.register_script(_GCRA)
        self._prefix = f"{key_prefix(namespace, cluster)}ratelimit:"
        self._cluster = cluster  # redis-py refuses EVALSHA in a cluster pipeline
        self._hits: TurnBatcher[tuple[str, int, int], list[Any]] = TurnBatcher(self._send)

    async def hit(self, key: str, limit: int, period: float) -> Decision:
        allowed, remaining, retry_us, reset_us = await self._hits.submit(
            (self._prefix + key, limit, int(period * 1_000_000))
        )
        return Decision(bool(allowed), limit, int(remaining), retry_us / 1e6, reset_us / 1e6)

    async def _send(self, batch: list[tuple[str, int, int]]) -> list[list[Any] | BaseException]:
        if self._cluster or len(batch) == 1:
            found = await asyncio.gather(
                *(self._script(keys=[key], args=[limit, period]) for key, limit, period in batch),
                return_exceptions=True,
            )
            return list(found)
        # EVALSHA rather than the Script in the pipeline, which would first ask SCRIPT EXISTS
        # (another round trip) on every batch.
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, limit, period in batch:
                pipe.evalsha(self._script.sha, 1, key, limit, period)
            answers: list[Any] = await pipe.execute(raise_on_error=False)
        for index, answer in enumerate(answers):
            if isinstance(answer, NoScriptError):  # Redis restarted: the script loads again
                key, limit, period = batch[index]
                try:
                    answers[index] = await self._script(keys=[key], args=[limit, period])
                except Exception as exc:
                    answers[index] = exc
        return answers
