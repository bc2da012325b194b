"""Users' own credentials for `user_token` upstreams (an Ambivo JWT pasted once), sealed in
the store: one record per upstream and gateway user, readable only with the operator's
encryption keys. The messages that tell a user to (re)connect live here too, so that a
missing token, a refused one and a revoked OAuth connection all read the same way.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import msgspec
from litestar.stores.base import Store

from gateway.plugin import UpstreamNotConnected
from gateway.sealed import Sealer
from gateway.snapshot import ConnectableAuth, UserTokenSpec

__all__ = [
    "CredentialRejected",
    "StoredCredential",
    "UserCredentials",
    "check_pasted",
    "connection_key",
    "not_connected",
    "refused",
]

_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")


class CredentialRejected(ValueError):
    """A pasted credential of the wrong shape; the message says what is wrong."""


class _Record(msgspec.Struct, frozen=True):
    token: str
    connected_at: float


@dataclass(frozen=True, slots=True)
class StoredCredential:
    token: str
    connected_at: float


def connection_key(upstream: str, user: str) -> str:
    return f"connections:{upstream}:{user}"


def not_connected(spec: ConnectableAuth) -> UpstreamNotConnected:
    """The 401 of a signed-in user who has not connected this upstream."""
    return UpstreamNotConnected(
        f"{spec.upstream} is not connected for your account: open {spec.connect_url} "
        "to connect it, then try again",
        spec.connect_url,
    )


def refused(spec: ConnectableAuth, why: str) -> UpstreamNotConnected:
    """The 401 of a user whose saved credential the upstream no longer takes."""
    return UpstreamNotConnected(
        f"{spec.upstream} refused your saved credential ({why}): open {spec.connect_url} "
        "to connect it again, then try again",
        spec.connect_url,
        slug="upstream-refused-credential",
    )


def check_pasted(spec: UserTokenSpec, pasted: str) -> str:
    """The credential as it will be kept (surrounding blanks and a `Bearer ` the user
    copied along removed), or CredentialRejected."""
    token = pasted.strip()
    if spec.prefix.strip() and token.lower().startswith(spec.prefix.strip().lower() + " "):
        token = token[len(spec.prefix.strip()) :].strip()
    if not token:
        raise CredentialRejected(f"paste your {spec.title}")
    if len(token) > spec.max_length:
        raise CredentialRejected(f"that is longer than {spec.max_length} characters")
    if not _PRINTABLE.match(token):
        raise CredentialRejected("that holds spaces or characters a token does not have")
    if spec.jwt_only and not (len(token) >= 10 and _JWT.match(token)):
        raise CredentialRejected(
            f"that is not a JWT (three parts separated by dots); paste your {spec.title}"
        )
    return token


class UserCredentials:
    """``await credentials.get(spec, user)`` -> the user's token for ``spec.upstream``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _sealer(spec: UserTokenSpec) -> Sealer:
        if spec.sealer is None:  # the routes answer 503 first; a plugin may still ask
            raise UpstreamNotConnected(
                f"{spec.upstream}: connections cannot be kept: set `store.encryption_keys`"
            )
        return spec.sealer

    async def get(self, spec: UserTokenSpec, user: str) -> StoredCredential | None:
        key = connection_key(spec.upstream, user)
        raw = await self.store.get(key)
        if raw is None:
            return None
        plain, resealed = self._sealer(spec).open_current(raw)
        if resealed is not None:  # sealed under an older key: rotated as it is read
            await self.store.set(key, resealed)
        record = msgspec.json.decode(plain, type=_Record)
        return StoredCredential(record.token, record.connected_at)

    async def put(self, spec: UserTokenSpec, user: str, token: str) -> None:
        record = msgspec.json.encode(_Record(token, time.time()))
        await self.store.set(connection_key(spec.upstream, user), self._sealer(spec).seal(record))

    async def delete(self, spec: UserTokenSpec, user: str) -> None:
        await self.store.delete(connection_key(spec.upstream, user))
