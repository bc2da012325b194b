"""Turn `store.url` into a redis-py client: one place for every URL form the store accepts.

* ``redis://[user:password@]host:port/db``, ``rediss://...`` (TLS; query parameters such as
  ``ssl_cert_reqs`` or ``ssl_ca_certs`` go to redis-py as ``from_url`` reads them),
  ``unix:///path.sock?db=0``: one server (``Redis`` on a blocking pool).
* ``redis+sentinel://[user:password@]host1:26379,host2:26379/<service>[/db]``: the master of
  ``<service>`` as the Sentinels name it (``Sentinel(...).master_for(service)``), followed
  through failovers; the password is the master's, ``?sentinel_password=`` the Sentinels'.
* ``redis+cluster://[user:password@]host:port[,host:port]``, ``rediss+cluster://`` (TLS):
  a Redis Cluster (``RedisCluster``). Keys are then prefixed ``{namespace}:`` (a hash tag),
  so every script and multi-key command of the gateway touches one slot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.cluster
import redis.sentinel
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.connection import parse_url as parse_async_url
from redis.asyncio.sentinel import Sentinel
from redis.connection import SSLConnection as SyncSSLConnection
from redis.connection import parse_url as parse_sync_url
from redis.exceptions import RedisClusterException, RedisError

from gateway.snapshot.store_url import (
    SCHEMES,
    Kind,
    StoreUrlError,
    hosts,
    sentinel_path,
    shown_url,
    url_kind,
)

__all__ = [
    "SCHEMES",
    "Opened",
    "RedisClient",
    "StoreUrlError",
    "key_prefix",
    "open_client",
    "probe",
    "shown_url",
    "url_kind",
]

# redis-py leaves these untyped; strict mypy wants typed calls.
_async_sentinel: Any = Sentinel
_sync_sentinel: Any = redis.sentinel.Sentinel
_sync_node: Any = redis.cluster.ClusterNode
_sync_parse: Any = parse_sync_url

RedisClient: TypeAlias = Redis | RedisCluster
"""What the store, limiter, locks and queue run on."""

REDIS_CONNECTIONS = 64
# Socket timeouts bound every call (the queue's blocking reads wait 1 s at most), so a
# Redis that stops answering fails requests instead of hanging them.
_TIMEOUTS: dict[str, Any] = {"socket_timeout": 10, "socket_connect_timeout": 5}
_PROBE_TIMEOUTS: dict[str, Any] = {"socket_timeout": 3, "socket_connect_timeout": 3}


def key_prefix(namespace: str, cluster: bool) -> str:
    """The prefix of every key: ``{namespace}:`` on a cluster (one hash slot for all the
    keys a script or transaction touches), ``namespace:`` elsewhere (unchanged names)."""
    return f"{{{namespace}}}:" if cluster else f"{namespace}:"


def store_namespace(namespace: str, cluster: bool) -> str:
    """The namespace for Litestar's RedisStore, which adds the ``:`` itself."""
    return key_prefix(namespace, cluster)[:-1]


@dataclass
class Opened:
    kind: Kind
    client: RedisClient
    others: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Closed with the client (a Sentinel's own connections)."""

    async def close(self) -> None:
        await self.client.aclose()
        for close in self.others:
            await close()


def _single_url(url: str, tls: bool, db: int, drop: tuple[str, ...] = ()) -> str:
    """A one-host ``redis[s]://`` URL with ``url``'s credentials, db and query, for
    redis-py's own parsing of the query parameters (types, TLS options)."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k not in drop])
    netloc = f"{userinfo}{at}localhost:1"
    return urlunsplit(("rediss" if tls else "redis", netloc, f"/{db}", query, ""))


def _query_value(url: str, name: str) -> str | None:
    return dict(parse_qsl(urlsplit(url).query)).get(name)


def _connection_kwargs(url: str, tls: bool, db: int, *, sync: bool) -> dict[str, Any]:
    single = _single_url(url, tls, db, drop=("sentinel_password",))
    kwargs: dict[str, Any] = dict(_sync_parse(single) if sync else parse_async_url(single))
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    if kwargs.pop("connection_class", None) in (SSLConnection, SyncSSLConnection):
        kwargs["ssl"] = True
    return kwargs


def open_client(url: str) -> Opened:
    """The async client for a redis URL (not connected yet: redis-py connects on first use)."""
    kind = url_kind(url)
    if kind == "redis":
        # Blocking pool: a burst waits for a free connection instead of failing the request.
        pool = BlockingConnectionPool.from_url(
            url, max_connections=REDIS_CONNECTIONS, timeout=5, **_TIMEOUTS
        )
        return Opened(kind, Redis.from_pool(pool))  # the client owns the pool and closes it
    if kind == "sentinel":
        service, db = sentinel_path(url)
        kwargs = _connection_kwargs(url, False, db, sync=False)
        sentinel_kwargs = _sentinel_kwargs(url, _TIMEOUTS)
        sentinel = _async_sentinel(hosts(url), sentinel_kwargs=sentinel_kwargs, **_TIMEOUTS)
        master: Redis = sentinel.master_for(service, **kwargs)
        return Opened(kind, master, [one.aclose for one in sentinel.sentinels])
    if kind == "cluster":
        tls = urlsplit(url).scheme.lower().startswith("rediss")
        kwargs = _connection_kwargs(url, tls, 0, sync=False)
        kwargs.pop("db", None)
        nodes = [ClusterNode(host, port) for host, port in hosts(url)]
        return Opened(kind, RedisCluster(startup_nodes=nodes, **kwargs, **_TIMEOUTS))
    raise StoreUrlError(f"{shown_url(url)!r} is not a Redis URL")


def _sentinel_kwargs(url: str, timeouts: dict[str, Any]) -> dict[str, Any]:
    """What the Sentinels themselves are opened with: the timeouts, their own password."""
    found = dict(timeouts)
    password = _query_value(url, "sentinel_password")
    if password is not None:
        found["password"] = password
    return found


def probe(url: str) -> str | None:
    """Why the store at ``url`` cannot be used right now, or None (memory always can).

    A short-lived synchronous client: the serving loop's pool is not touched before start.
    The reason never contains the URL's password.
    """
    try:
        kind = url_kind(url)
    except StoreUrlError as exc:
        return str(exc)
    if kind == "memory":
        return None
    try:
        if kind == "redis":
            client = redis.Redis.from_url(url, **_PROBE_TIMEOUTS)
            try:
                client.ping()
            finally:
                client.close()
        elif kind == "sentinel":
            service, db = sentinel_path(url)
            kwargs = _connection_kwargs(url, False, db, sync=True)
            sentinel_kwargs = _sentinel_kwargs(url, _PROBE_TIMEOUTS)
            sentinel = _sync_sentinel(
                hosts(url), sentinel_kwargs=sentinel_kwargs, **_PROBE_TIMEOUTS
            )
            try:
                master = sentinel.master_for(service, **kwargs)
                try:
                    master.ping()
                finally:
                    master.close()
            finally:
                for one in sentinel.sentinels:
                    one.close()
        else:
            tls = urlsplit(url).scheme.lower().startswith("rediss")
            kwargs = _connection_kwargs(url, tls, 0, sync=True)
            kwargs.pop("db", None)
            nodes = [_sync_node(host, port) for host, port in hosts(url)]
            cluster = redis.cluster.RedisCluster(startup_nodes=nodes, **kwargs, **_PROBE_TIMEOUTS)
            try:
                cluster.ping()
            finally:
                cluster.close()
    except (RedisError, RedisClusterException, OSError, ValueError) as exc:
        return _without_secrets(str(exc) or type(exc).__name__, url)
    return None


def _without_secrets(text: str, url: str) -> str:
    parts = urlsplit(url)
    secrets = [parts.password, _query_value(url, "sentinel_password")]
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***").replace(unquote(secret), "***")
    return text
