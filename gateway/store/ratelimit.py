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


# KEYS[1] = the key; ARGV = limit, period (µs), wanted (how many requests to admit at most:
# a lease, see RedisRateLimiter). Uses the Redis server's clock (TIME), so replicas with
# skewed clocks still share one budget. Lua has only doubles (exact below 2^53), so the
# arrival time is kept as whole microseconds plus a remainder in 1/limit µs ("tat:rem"):
# one request's share, period / limit, need not be a whole microsecond and nothing is
# rounded. Returns admitted, remaining, retry_after_us, reset_after_us.
_GCRA = """
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
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
-- How many fit: n shares after tat must end by now + period.
local fits = math.floor(((now - tat + period) * limit - rem) / period)
if fits < 1 then
  local allow_at, allow_rem = tat + share - period, rem + share_rem
  if allow_rem >= limit then allow_at, allow_rem = allow_at + 1, allow_rem - limit end
  return {0, 0, math.ceil(allow_at - now + allow_rem / limit), math.ceil(tat - now + rem / limit)}
end
local admitted = math.min(fits, wanted)
local carry = rem + admitted * share_rem
local new_tat = tat + admitted * share + math.floor(carry / limit)
local new_rem = carry % limit
redis.call('SET', KEYS[1], string.format('%d:%d', new_tat, new_rem), 'PX',
  math.ceil((new_tat - now) / 1000) + 1)
local remaining = math.floor(((now - new_tat + period) * limit - new_rem) / period)
if remaining < 0 then remaining = 0 end
return {admitted, remaining, 0, math.ceil(new_tat - now + new_rem / limit)}
"""

LEASE_SHARE = 100
"""A lease is at most 1/100 of the limit..."""
LEASE_WINDOW = 0.05
"""...and at most what the limit earns in 50 ms; it is used within that time or dropped."""


@dataclass(slots=True)
class _Lease:
    left: int
    until: float
    remaining: int
    reset_after: float


class RedisRateLimiter:
    """Shared by every process on one Redis. The hits of one event-loop turn go in one
    pipelined round trip (gateway.store.batching): under load, many requests pay one
    client round trip and one parse instead of one each.

    A high limit is served from leases: a process takes up to 1 % of the limit (what it
    earns in 50 ms at most) in one call and admits them locally within that time. The
    shared budget is charged when a lease is taken, so all processes together never admit
    more than the limit plus one lease each over a window, and a lease not used in time is
    lost (a few early 429s at worst). A limit under 200 per period, or earning fewer than two
    requests in 50 ms, is exact: it gets no lease."""

    def __init__(self, redis: RedisClient, namespace: str, *, cluster: bool = False) -> None:
        self._redis = redis
        self._script = redis.register_script(_GCRA)
        self._prefix = f"{key_prefix(namespace, cluster)}ratelimit:"
        self._cluster = cluster  # redis-py refuses EVALSHA in a cluster pipeline
        self._hits: TurnBatcher[tuple[str, int, int, int], list[Any]] = TurnBatcher(self._send)
        self._leases: dict[str, _Lease] = {}
        self._taking: dict[str, asyncio.Future[None]] = {}
        """Keys whose lease is being taken: the other requests for them wait for it."""

    async def hit(self, key: str, limit: int, period: float) -> Decision:
        for _ in range(2):  # a lease taken meanwhile by a call of this process serves this one
            lease = self._leases.get(key)
            if lease is not None and lease.left > 0 and time.monotonic() < lease.until:
                lease.left -= 1
                return Decision(True, limit, lease.remaining + lease.left, 0.0, lease.reset_after)
            taking = self._taking.get(key)
            if taking is None:
                break
            await asyncio.shield(taking)
        wanted = max(1, min(limit // LEASE_SHARE, int(limit * LEASE_WINDOW / period)))
        if wanted == 1:
            return await self._decide(key, limit, period, 1)
        taking = self._taking[key] = asyncio.get_running_loop().create_future()
        try:
            return await self._decide(key, limit, period, wanted)
        finally:
            del self._taking[key]
            taking.set_result(None)

    async def _decide(self, key: str, limit: int, period: float, wanted: int) -> Decision:
        """One call to Redis: admits up to ``wanted``; beyond the first, a lease."""
        now = time.monotonic()
        admitted, remaining, retry_us, reset_us = await self._hits.submit(
            (self._prefix + key, limit, int(period * 1_000_000), wanted)
        )
        if admitted > 1:
            if len(self._leases) > 10_000:  # keys that stopped calling
                self._leases = {k: found for k, found in self._leases.items() if found.until > now}
            until = now + admitted * period / limit  # the time these requests represent
            self._leases[key] = _Lease(admitted - 1, until, remaining, reset_us / 1e6)
        else:
            self._leases.pop(key, None)
        left = int(remaining) + max(0, int(admitted) - 1)
        return Decision(admitted > 0, limit, left, retry_us / 1e6, reset_us / 1e6)

    async def _send(
        self, batch: list[tuple[str, int, int, int]]
    ) -> list[list[Any] | BaseException]:
        if self._cluster or len(batch) == 1:
            found = await asyncio.gather(
                *(self._script(keys=[key], args=args) for key, *args in batch),
                return_exceptions=True,
            )
            return list(found)
        # EVALSHA rather than the Script in the pipeline, which would first ask SCRIPT EXISTS
        # (another round trip) on every batch.
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, *args in batch:
                pipe.evalsha(self._script.sha, 1, key, *args)
            answers: list[Any] = await pipe.execute(raise_on_error=False)
        for index, answer in enumerate(answers):
            if isinstance(answer, NoScriptError):  # Redis restarted: the script loads again
                key, *args = batch[index]
                try:
                    answers[index] = await self._script(keys=[key], args=args)
                except Exception as exc:
                    answers[index] = exc
        return answers
