"""What `store.url` may be, read without a Redis client (the compiler checks it, the store
opens it: gateway.store.client).

``memory://``; one server: ``redis://``, ``rediss://`` (TLS), ``unix://``; Sentinel:
``redis+sentinel://[user:password@]host:port[,host:port]/<service>[/db]``; Cluster:
``redis+cluster://[user:password@]host:port[,host:port]``, ``rediss+cluster://`` (TLS).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["SCHEMES", "Kind", "StoreUrlError", "hosts", "sentinel_path", "shown_url", "url_kind"]

Kind = Literal["memory", "redis", "sentinel", "cluster"]

SCHEMES: dict[str, Kind] = {
    "memory": "memory",
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
    "redis+sentinel": "sentinel",
    "redis+cluster": "cluster",
    "rediss+cluster": "cluster",
}


class StoreUrlError(ValueError):
    """`store.url` is not a form the store accepts; the message shows it without secrets."""


def shown_url(url: str) -> str:
    """``url`` without its credentials and query (`redis://:secret@host` -> `redis://host`)."""
    parts = urlsplit(url)
    if not parts.netloc:
        return url
    hosts = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, hosts, parts.path, "", ""))


def url_kind(url: str) -> Kind:
    """``memory``, ``redis``, ``sentinel`` or ``cluster``; StoreUrlError for anything else."""
    scheme = urlsplit(url).scheme.lower()
    kind = SCHEMES.get(scheme)
    if kind is None:
        raise StoreUrlError(
            "expected memory:// or redis://host:port/db (or rediss://, unix://, "
            f"redis+sentinel://, redis+cluster://, rediss+cluster://), got {shown_url(url)!r}"
        )
    if kind in ("sentinel", "cluster"):
        hosts(url)  # raises for a missing or malformed host list
    if kind == "sentinel":
        sentinel_path(url)
    return kind


def hosts(url: str) -> list[tuple[str, int]]:
    """The ``host:port`` list of a Sentinel or Cluster URL."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    found: list[tuple[str, int]] = []
    for item in netloc.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise StoreUrlError(f"expected host:port[,host:port...], got {shown_url(url)!r}")
        found.append((host.strip("[]"), int(port)))
    return found


def sentinel_path(url: str) -> tuple[str, int]:
    """The service name and db of a Sentinel URL (``/<service>[/db]``)."""
    parts = [part for part in urlsplit(url).path.split("/") if part]
    if not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise StoreUrlError(
            f"expected redis+sentinel://host:port,.../<service>[/db], got {shown_url(url)!r}"
        )
    return unquote(parts[0]), int(parts[1]) if len(parts) == 2 else 0
