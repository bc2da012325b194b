"""Codes, access tokens and refresh tokens in the store: hashed at rest, single-use codes,
rotating refresh tokens. The store is the gateway's (Redis when configured), so one flow
can span replicas: the authorize page on one, the token exchange on another.
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

__all__ = ["OAuthTokens", "digest"]

EXPIRED_GRACE = 86400.0
"""Expired access tokens are kept this long, to answer "expired" rather than "invalid"."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class OAuthTokens:
    def __init__(self, store: Store, locks: Locks) -> None:
        self.store = store
        self.locks = locks

    async def _get(self, key: str) -> dict[str, Any] | None:
        raw = await self.store.get(key)
        return msgspec.json.decode(raw) if raw else None

    async def save_code(self, code: str, data: dict[str, Any], ttl: float) -> None:
        await self.store.set(f"oauth:code:{digest(code)}", msgspec.json.encode(data), int(ttl))

    async def take_code(self, code: str, ttl: float) -> dict[str, Any] | None:
        """The code's data, once: a second use (even at the same moment elsewhere) gets None."""
        key = f"oauth:code:{digest(code)}"
        if await self.locks.acquire(f"oauth:code-used:{digest(code)}", ttl) is None:
            return None
        data = await self._get(key)
        await self.store.delete(key)
        return data

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

    async def claim_refresh(self, token: str) -> dict[str, Any] | None:
        """The refresh token's grant, for one exchange only (rotation: it is then revoked)."""
        data = await self._get(f"oauth:refresh:{digest(token)}")
        if data is None:
            return None
        if await self.locks.acquire(f"oauth:refresh-used:{digest(token)}", 60) is None:
            return None
        return data

    async def revoke_refresh(self, token: str) -> None:
        await self.store.delete(f"oauth:refresh:{digest(token)}")

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
