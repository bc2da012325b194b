"""One upstream call with the route's retries and timeout, on the upstream's pool.

Shared by the dispatcher (declared routes) and the clients plugins get, so both apply the
same auth headers, retry policy and timeouts. Failures are raised as UpstreamTimeout or
UpstreamError; the caller decides how they look to its client.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl

from gateway import metrics
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamTooLarge
from gateway.logs import UPSTREAM_TIMING
from gateway.snapshot import IDEMPOTENT_METHODS, RetryPolicy, UpstreamSettings
from gateway.upstream.clients import ClientPool
from gateway.upstream.h1 import H1ConnectError, H1Error, H1Pool, H1TooLarge

__all__ = ["UpstreamAnswer", "UpstreamCaller"]

_URL_CACHE_SIZE = 4096
_SESSION_DEFAULT: Any = aiohttp.helpers.sentinel  # "use the session's ClientTimeout"


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    status: int
    content_type: bytes | None
    body: bytes
    retry_after: str | None = None
    """The upstream's Retry-After (on 429 and 503), passed on to the caller."""


class _Unreachable(Exception):
    """No answer from the upstream; the text names the kind of failure (never its address:
    callers see it)."""


class UpstreamCaller:
    """``await caller.send(settings, "GET", "/v1/x", retry=..., timeout=...)``."""

    def __init__(self, pool: ClientPool) -> None:
        self.pool = pool
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}
        self._urls: dict[str, yarl.URL] = {}

    async def send(
        self,
        settings: UpstreamSettings,
        method: str,
        path: str,
        *,
        retry: RetryPolicy,
        timeout_seconds: float,
        params: Mapping[str, str | Sequence[str]] | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> UpstreamAnswer:
        client = self.pool.client(settings)
        url = self._url(settings.base_url, path)
        attempts = retry.attempts if method in IDEMPOTENT_METHODS else 1
        deadline = time.monotonic() + retry.deadline
        self.pool.acquire(client)
        try:
            for attempt in range(1, attempts + 1):
                last = attempt == attempts
                remaining = deadline - time.monotonic()
                # The last attempt that fits gets what is left of the deadline.
                if remaining < timeout_seconds:
                    timeout = max(remaining, 0.001)
                    detail = f"did not answer within the {retry.deadline:g}s deadline"
                else:
                    timeout = timeout_seconds
                    detail = f"did not answer within {timeout_seconds:g}s"
                sent = time.perf_counter()
                try:
                    if isinstance(client, H1Pool):
                        answer = await self._h1(
                            client, settings, method, url, params, headers, data, timeout
                        )
                    else:
                        answer = await self._aiohttp(
                            client, settings, method, url, params, headers, data, timeout
                        )
                except UpstreamTooLarge:
                    _failed(settings.name, "too_large", sent, None)
                    raise
                except TimeoutError:
                    _failed(settings.name, "timeout", sent, None)
                    if last or deadline - time.monotonic() <= 0:
                        raise UpstreamTimeout(settings.name, detail) from None
                except _Unreachable as exc:
                    _failed(settings.name, "unreachable", sent, None)
                    if last:
                        raise UpstreamError(settings.name, f"could not be reached: {exc}") from None
                else:
                    _answered(settings.name, answer.status, sent)
                    if answer.status in retry.on_status and not last:
                        pause = _pause(retry, attempt, answer.retry_after)
                        if time.monotonic() + pause < deadline:
                            await asyncio.sleep(pause)
                            continue
                    return answer
                pause = _pause(retry, attempt, None)
                if time.monotonic() + pause >= deadline:
                    raise UpstreamTimeout(settings.name, detail)
                await asyncio.sleep(pause)
            raise AssertionError("unreachable: the last attempt returns or raises")
        finally:
            self.pool.release(client)

    async def _h1(
        self,
        client: H1Pool,
        settings: UpstreamSettings,
        method: str,
        url: yarl.URL,
        params: Mapping[str, str | Sequence[str]] | None,
        headers: dict[str, str] | None,
        data: bytes | None,
        seconds: float,
    ) -> UpstreamAnswer:
        """One attempt on the keep-alive pool (the query encoded as aiohttp would)."""
        target = (url.extend_query(params) if params else url).raw_path_qs
        try:
            response = await client.request(
                method,
                target,
                headers or {},
                data,
                timeout=seconds,
                connect_timeout=settings.connect_timeout,
                max_body=settings.max_answer_bytes,
            )
        except H1TooLarge:
            cap = settings.max_answer_bytes
            raise UpstreamTooLarge(settings.name, f"answered more than {cap} bytes") from None
        except H1ConnectError:
            raise _Unreachable("ConnectError") from None
        except H1Error:
            raise _Unreachable("ProtocolError") from None
        retry_after = response.headers.get("Retry-After") if response.status >= 400 else None
        content_type = response.headers.get("Content-Type")
        encoded = content_type.encode() if content_type else None
        return UpstreamAnswer(response.status, encoded, response.body, retry_after)

    async def _aiohttp(
        self,
        session: aiohttp.ClientSession,
        settings: UpstreamSettings,
        method: str,
        url: yarl.URL,
        params: Mapping[str, str | Sequence[str]] | None,
        headers: dict[str, str] | None,
        data: bytes | None,
        seconds: float,
    ) -> UpstreamAnswer:
        """One attempt on an aiohttp session (with traces on: it makes the span)."""
        try:
            async with session.request(
                method,
                url,
                params=params or None,
                headers=headers,
                data=data,
                timeout=self._timeout(settings, seconds),
                allow_redirects=False,
            ) as response:
                body = await _read_capped(response, settings)
                retry_after = (
                    response.headers.get("Retry-After") if response.status >= 400 else None
                )
                content_type = response.headers.get("Content-Type")
                encoded = content_type.encode() if content_type else None
                return UpstreamAnswer(response.status, encoded, body, retry_after)
        except aiohttp.ClientError as exc:
            raise _Unreachable(type(exc).__name__) from None

    def _url(self, base_url: str, path: str) -> yarl.URL:
        """Parsed once per distinct URL: parsing is a noticeable share of a proxied call."""
        key = base_url + path
        url = self._urls.get(key)
        if url is None:
            url = yarl.URL(key)
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[key] = url
        return url

    def _timeout(self, settings: UpstreamSettings, timeout: float) -> Any:
        """The call's own timeout, or the session's default (no per-request object); the
        cache keeps the routes' timeouts, not the one-off rest of a deadline."""
        if timeout == settings.timeout:
            return _SESSION_DEFAULT
        key = (timeout, settings.connect_timeout)
        found = self._timeouts.get(key)
        if found is None:
            found = aiohttp.ClientTimeout(total=key[0], connect=key[1])
            if len(self._timeouts) < _URL_CACHE_SIZE:
                self._timeouts[key] = found
        return found


def _answered(upstream: str, status: int, sent: float) -> None:
    seconds = time.perf_counter() - sent
    metrics.upstream_answered(upstream, status, seconds)
    timing = UPSTREAM_TIMING.get()
    if timing is not None:
        timing.add(status, seconds)


def _failed(upstream: str, kind: str, sent: float, status: int | None) -> None:
    seconds = time.perf_counter() - sent
    metrics.upstream_failed(upstream, kind, seconds)
    timing = UPSTREAM_TIMING.get()
    if timing is not None:
        timing.add(status, seconds)


def _pause(retry: RetryPolicy, attempt: int, retry_after: str | None) -> float:
    """Exponential backoff with jitter (replicas do not retry in step), at least what the
    upstream's Retry-After (seconds) asks for."""
    pause = retry.backoff * 2.0 ** (attempt - 1) * random.uniform(0.5, 1.5)  # noqa: S311 (jitter)
    if retry_after is not None and retry_after.strip().isdigit():
        pause = max(pause, float(retry_after.strip()))
    return pause


async def _read_capped(response: aiohttp.ClientResponse, settings: UpstreamSettings) -> bytes:
    """The whole answer, read in chunks and stopped at the upstream's cap (memory stays
    bounded whatever the upstream sends)."""
    cap = settings.max_answer_bytes
    declared = response.content_length
    if declared is not None and declared > cap:
        raise UpstreamTooLarge(settings.name, f"answered more than {cap} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65_536):
        size += len(chunk)
        if size > cap:
            raise UpstreamTooLarge(settings.name, f"answered more than {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
