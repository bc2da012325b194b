"""One upstream call with the route's retries and timeout, on the pooled session.

Shared by the dispatcher (declared routes) and the clients plugins get, so both apply the
same auth headers, retry policy and timeouts. Failures are raised as UpstreamTimeout or
UpstreamError; the caller decides how they look to its client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl

from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.snapshot import IDEMPOTENT_METHODS, RetryPolicy, UpstreamSettings
from gateway.upstream.clients import ClientPool

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
        session = self.pool.session(settings)
        url = self._url(settings.base_url, path)
        client_timeout = self._timeout(settings, timeout_seconds)
        attempts = retry.attempts if method in IDEMPOTENT_METHODS else 1
        self.pool.acquire(session)
        try:
            for attempt in range(1, attempts + 1):
                last = attempt == attempts
                try:
                    async with session.request(
                        method,
                        url,
                        params=params or None,
                        headers=headers,
                        data=data,
                        timeout=client_timeout,
                        allow_redirects=False,
                    ) as response:
                        body = await response.read()
                        if response.status in retry.on_status and not last:
                            await asyncio.sleep(retry.backoff * 2 ** (attempt - 1))
                            continue
                        content_type = response.headers.get("Content-Type")
                        encoded = content_type.encode() if content_type else None
                        retry_after = (
                            response.headers.get("Retry-After") if response.status >= 400 else None
                        )
                        return UpstreamAnswer(response.status, encoded, body, retry_after)
                except TimeoutError:
                    if last:
                        detail = f"did not answer within {timeout_seconds:g}s"
                        raise UpstreamTimeout(settings.name, detail) from None
                except aiohttp.ClientError as exc:
                    if last:
                        detail = f"could not be reached: {type(exc).__name__}"
                        raise UpstreamError(settings.name, detail) from None
                await asyncio.sleep(retry.backoff * 2 ** (attempt - 1))
            raise AssertionError("unreachable: the last attempt returns or raises")
        finally:
            self.pool.release(session)

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
        """The call's own timeout, or the session's default (no per-request object)."""
        if timeout == settings.timeout:
            return _SESSION_DEFAULT
        key = (timeout, settings.connect_timeout)
        found = self._timeouts.get(key)
        if found is None:
            found = self._timeouts[key] = aiohttp.ClientTimeout(total=key[0], connect=key[1])
        return found
