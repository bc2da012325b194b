"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a client
whose `client_id` is an https URL publishes its registration there, and the gateway reads
it instead of keeping one.

Fetching a URL a stranger names is a server-side request forgery waiting to happen, so:
https only, no userinfo, fragment or dot segments; the host must resolve to public addresses
only (checked by the resolver the connection itself uses, so a second DNS answer cannot
point elsewhere), no redirects, 5 s and 5 KiB at most, four fetches at once. Documents (and
refusals, briefly) are cached per process. `oauth.registration.allow_private_networks`
lifts the address and scheme checks for tests and private networks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from gateway.oauth.redirects import redirect_problem

__all__ = [
    "ClientDocument",
    "DocumentRefused",
    "MetadataDocuments",
    "client_id_url_problem",
    "is_metadata_url",
]

MAX_BYTES = 5 * 1024
TIMEOUT = 5.0
DEFAULT_TTL = 300.0
TTL_RANGE = (60.0, 86400.0)
REFUSAL_TTL = 30.0
"""A document that could not be used is not fetched again for this long."""
CACHED = 1000
AT_ONCE = 4
"""Fetches under way at once per process: anyone can name a URL, so a flood of distinct
ones waits here rather than becoming a flood of outgoing connections."""
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)")


class DocumentRefused(Exception):
    """Why a metadata document cannot be used (said to the user and the client)."""


class _PrivateAddress(OSError):
    """The resolver's refusal (an OSError, which is what aiohttp expects of a resolver)."""


class Document(msgspec.Struct, frozen=True):
    client_id: str
    redirect_uris: list[str]
    client_name: str = ""
    token_endpoint_auth_method: str = "none"  # noqa: S105 (a method name)
    grant_types: list[str] = msgspec.field(default_factory=lambda: ["authorization_code"])
    response_types: list[str] = msgspec.field(default_factory=lambda: ["code"])


@dataclass(frozen=True)
class ClientDocument:
    """What the gateway uses of a client's metadata document."""

    client_id: str
    name: str
    redirect_uris: tuple[str, ...]


def is_metadata_url(client_id: str) -> bool:
    """Whether a client id is meant as a metadata document's URL."""
    return client_id.startswith(("https://", "http://"))


def _private(address: str) -> bool:
    try:
        return not ipaddress.ip_address(address.split("%", 1)[0]).is_global
    except ValueError:
        return False  # a name, checked by the resolver


def client_id_url_problem(url: str, allow_private: bool) -> str | None:
    """Why ``url`` cannot be a client id (the draft's section 3), or None."""
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        return "a client id URL must be https"
    if parts.username is not None or parts.password is not None:
        return "a client id URL may not hold a user name or password"
    if parts.fragment or "#" in url:
        return "a client id URL may not hold a fragment"
    segments = parts.path.split("/")
    if parts.path in ("", "/") or any(segment in (".", "..") for segment in segments):
        return "a client id URL needs a path, without . or .. segments"
    if len(url) > 2048 or not url.isprintable() or any(c in url for c in ' "\\<>'):
        return "a client id URL must be printable, without spaces or quotes"
    if not allow_private and _private(parts.hostname):
        return "the client id URL's host is not a public address"
    return None


class _PublicOnly(AbstractResolver):
    """DNS that refuses names resolving to loopback, private, link-local or reserved
    addresses: the connection then cannot reach the gateway's own network."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if any(_private(entry["host"]) for entry in found):
            raise _PrivateAddress(f"{host} resolves to a non-public address")
        return found

    async def close(self) -> None:
        await self._inner.close()


def _refusal(error: BaseException) -> str:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, _PrivateAddress):
            return "its host is not a public address"
        seen = seen.__cause__ or getattr(seen, "os_error", None)
    if isinstance(error, TimeoutError):
        return f"it did not arrive within {TIMEOUT:g} s"
    return "it could not be fetched"


def _ttl(cache_control: str | None) -> float:
    found = _MAX_AGE.search(cache_control or "")
    seconds = float(found.group(1)) if found else DEFAULT_TTL
    return min(max(seconds, TTL_RANGE[0]), TTL_RANGE[1])


class MetadataDocuments:
    """``await documents.get(url)`` -> the client, or raises :class:`DocumentRefused`."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._cache: dict[str, tuple[float, ClientDocument | str]] = {}
        self._fetching = asyncio.Semaphore(AT_ONCE)

    async def get(self, url: str) -> ClientDocument:
        cached = self._cache.get(url)
        if cached is not None and cached[0] > time.monotonic():
            if isinstance(cached[1], str):
                raise DocumentRefused(cached[1])
            return cached[1]
        try:
            async with self._fetching:
                document, ttl = await self._fetch(url)
        except DocumentRefused as refused:
            self._remember(url, REFUSAL_TTL, str(refused))
            raise
        self._remember(url, ttl, document)
        return document

    def _remember(self, url: str, ttl: float, entry: ClientDocument | str) -> None:
        if len(self._cache) >= CACHED:
            self._cache.pop(next(iter(self._cache)))  # the oldest entry
        self._cache[url] = (time.monotonic() + ttl, entry)

    async def _fetch(self, url: str) -> tuple[ClientDocument, float]:
        problem = client_id_url_problem(url, self.allow_private)
        if problem is not None:
            raise DocumentRefused(problem)
        resolver = None if self.allow_private else _PublicOnly()
        connector = aiohttp.TCPConnector(resolver=resolver, limit=4)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        headers = {"Accept": "application/json"}
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
                http.get(url, headers=headers, allow_redirects=False) as response,
            ):
                if response.status != 200:
                    raise DocumentRefused(f"it answered HTTP {response.status}")
                if (response.content_length or 0) > MAX_BYTES:
                    raise DocumentRefused("it is larger than 5 KiB")
                body = b""
                async for chunk in response.content.iter_chunked(MAX_BYTES):
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise DocumentRefused("it is larger than 5 KiB")
                ttl = _ttl(response.headers.get("Cache-Control"))
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise DocumentRefused(_refusal(error)) from error
        return self._checked(url, body), ttl

    def _checked(self, url: str, body: bytes) -> ClientDocument:
        try:
            document = msgspec.json.decode(body, type=Document)
        except msgspec.DecodeError as error:
            raise DocumentRefused(f"it is not a client metadata document ({error})") from error
        if document.client_id != url:
            raise DocumentRefused("its client_id is not the URL it was fetched from")
        if document.token_endpoint_auth_method != "none":  # noqa: S105
            raise DocumentRefused("its token_endpoint_auth_method must be none (a public client)")
        if "authorization_code" not in document.grant_types or "code" not in (
            document.response_types
        ):
            raise DocumentRefused("it does not use the authorization code flow")
        if not document.redirect_uris:
            raise DocumentRefused("it lists no redirect_uris")
        for uri in document.redirect_uris:
            if (problem := redirect_problem(uri)) is not None:
                raise DocumentRefused(problem)
        return ClientDocument(url, document.client_name, tuple(document.redirect_uris))
