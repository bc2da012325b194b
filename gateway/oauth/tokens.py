"""Codes, access tokens and refresh tokens in the store: hashed at rest, single-use codes,
rotating refresh tokens. The store is the gateway's (Redis when configured), so one flow
can span replicas: the authorize page on one, the token exchange on another.

Every token carries the id of its *family*: the tokens issued from one authorization code
and all their refreshes. A reused code or a replayed (rotated) refresh token revokes the
family with one marker key, checked whenever a token is used: no list of tokens to keep,
and a token saved while the family is being revoked is refused all the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from typing import Any

import msgspec
from litestar.stores.base import Store

from gateway.snapshot import OAuthClientSpec
from gateway.store.locks import Locks

__all__ = ["OAuthTokens", "digest", "new_family"]

EXPIRED_GRACE = 86400.0
"""Expired access tokens are kept this long, to answer "expired" rather than "invalid"."""
CLAIM_WINDOW = 60.0
"""How long a refresh token is held by the exchange that claimed it."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_family() -> str:
    return secrets.token_hex(16)


class OAuthTokens:
    def __init__(self, store: Store, locks: Locks) -> None:
        self.store = store
        self.locks = locks

    async def _get(self, key: str) -> dict[str, Any] | None:
        raw = await self.store.get(key)
        return msgspec.json.decode(raw) if raw else None

    async def save_code(self, code: str, data: dict[str, Any], ttl: float) -> None:
        await self.store.set(f"oauth:code:{digest(code)}", msgspec.json.encode(data), int(ttl))

    async def take_code(self, code: str, ttl: float, lifetime: float) -> dict[str, Any] | None:
        """The code's data, once. A second use (even at the same moment elsewhere) gets None
        and revokes what the first use issued (RFC 6749 4.1.2). The record stays until it
        expires, marked used by the lock, so that a reuse still finds its family."""
        key = f"oauth:code:{digest(code)}"
        first = await self.locks.acquire(f"oauth:code-used:{digest(code)}", ttl) is not None
        data = await self._get(key)
        if first:
            return data
        if data is not None and data.get("family"):
            await self.revoke_family(data["family"], lifetime)
        return None

    async def save_tokens(
        self,
        access_token: str,
        refresh_token: str | None,
        grant: dict[str, Any],
        access_ttl: float,
        refresh_ttl: float,
    ) -> None:
        access = {**grant, "expires_at": time.time() + access_ttl}
        await self.store.set(
            f"oauth:access:{digest(access_token)}",
            msgspec.json.encode(access),
            int(access_ttl + EXPIRED_GRACE),
        )
        if refresh_token:
            await self.store.set(
                f"oauth:refresh:{digest(refresh_token)}",
                msgspec.json.encode(grant),
                int(refresh_ttl),
            )

    async def access(self, token: str) -> dict[str, Any] | None:
        return await self._get(f"oauth:access:{digest(token)}")

    async def claim_refresh(self, token: str, lifetime: float) -> dict[str, Any] | None:
        """The refresh token's grant, for one exchange only. A rotated token presented again
        is a replay: its family is revoked (RFC 9700 4.14.2). A token claimed by an
        exchange still under way is refused without revoking (that exchange may fail)."""
        data = await self._get(f"oauth:refresh:{digest(token)}")
        if data is None or await self.family_revoked(data.get("family")):
            return None
        if data.get("rotated"):
            await self.revoke_family(data.get("family"), lifetime)
            return None
        if await self.locks.acquire(f"oauth:refresh-used:{digest(token)}", CLAIM_WINDOW) is None:
            return None
        return data

    async def rotate_refresh(self, token: str, ttl: float) -> None:
        """Spent: kept (as rotated) rather than deleted, so that a replay is recognized."""
        key = f"oauth:refresh:{digest(token)}"
        data = await self._get(key)
        if data is None:
            return
        await self.store.set(key, msgspec.json.encode({**data, "rotated": True}), int(ttl))

    async def find(self, token: str, hint: str | None) -> tuple[str, dict[str, Any]] | None:
        """("access" or "refresh", its grant) for a token, looked up first as ``hint``
        says (RFC 7009 2.1), or None."""
        kinds = ("refresh", "access") if hint == "refresh_token" else ("access", "refresh")
        for kind in kinds:
            found = await self._get(f"oauth:{kind}:{digest(token)}")
            if found is not None:
                return kind, found
        return None

    async def revoke(self, kind: str, token: str, grant: dict[str, Any], lifetime: float) -> None:
        """Revoke a token and everything issued with it (its family: the authorization's
        access and refresh tokens, RFC 7009 2.1); a token without a family alone."""
        if grant.get("family"):
            await self.revoke_family(grant["family"], lifetime)
        else:
            await self.store.delete(f"oauth:{kind}:{digest(token)}")

    async def revoke_family(self, family: str | None, lifetime: float) -> None:
        """No token of ``family`` works any more; ``lifetime`` outlasts any of its tokens."""
        if family:
            await self.store.set(f"oauth:family-revoked:{family}", b"1", int(lifetime))

    async def family_revoked(self, family: str | None) -> bool:
        """Tokens without a family (issued before families existed) are never revoked."""
        return bool(family) and await self.store.exists(f"oauth:family-revoked:{family}")

    async def client_credentials(self, client: OAuthClientSpec) -> tuple[str, str, str | None]:
        """(client_id, sha256 of the secret, the secret if it was generated just now).

        A client configured without credentials gets them generated once and kept in the
        store (the secret only as its hash); the caller prints the new secret once.
        """
        if client.client_id:
            return client.client_id, digest(client.client_secret), None
        key = f"oauth:client:{client.id}"
        for _ in range(50):
            found = await self._get(key)
            if found is not None:
                return found["client_id"], found["secret_sha256"], None
            if await self.locks.acquire(f"oauth:client-create:{client.id}", 30) is not None:
                break
            await asyncio.sleep(0.1)  # another replica is creating it right now
        else:
            raise RuntimeError(f"OAuth client {client.id}: its credentials did not appear")
        client_id = f"{client.id}-{secrets.token_hex(8)}"
        secret = secrets.token_urlsafe(32)
        record = {"client_id": client_id, "secret_sha256": digest(secret)}
        await self.store.set(key, msgspec.json.encode(record))
        return client_id, record["secret_sha256"], secret
