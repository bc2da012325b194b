"""The gateway as an OAuth 2 client of an upstream (Gmail): connect once, refresh forever.

A user (or the operator, as user `default`) connects at the authorization URL; the callback
exchanges the code (authlib's client) and keeps the tokens in the store. Every call then
gets a fresh access token: refreshed before it expires, by one caller at a time across
replicas (a store lock); the others wait for the new token instead of refreshing too.
A refresh token the provider refuses is forgotten, and callers are told to reconnect.
The records are sealed with the operator's encryption keys (gateway.sealed); a plaintext
record an earlier version wrote is still read, and sealed when it is next saved.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import msgspec
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from litestar.stores.base import Store

from gateway.plugin import PluginError, UpstreamNotConnected
from gateway.sealed import Sealer
from gateway.snapshot import OAuth2ClientSpec
from gateway.store.locks import Locks
from gateway.upstream.credentials import not_connected, refused

__all__ = ["DEFAULT_USER", "UpstreamTokens", "UserConnection"]

STATE_TTL = 600
WAIT_FOR_REFRESH = 15.0
DEFAULT_USER = "default"
"""Whose connection a call uses when the caller stands for no user (the operator's)."""


def _sealer(spec: OAuth2ClientSpec) -> Sealer:
    if spec.sealer is None:  # the routes answer 503 first; a plugin may still ask
        raise UpstreamNotConnected(
            f"{spec.upstream}: connections cannot be kept: set `store.encryption_keys`"
        )
    return spec.sealer


class UpstreamTokens:
    def __init__(self, store: Store, locks: Locks) -> None:
        self.store = store
        self.locks = locks

    @staticmethod
    def _key(spec: OAuth2ClientSpec, user: str) -> str:
        return f"oauth2:{spec.upstream}:tokens:{user}"

    @staticmethod
    def _client(spec: OAuth2ClientSpec) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=spec.client_id,
            client_secret=spec.client_secret,
            scope=" ".join(spec.scopes),
            redirect_uri=spec.redirect_uri,
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 (a method name)
            timeout=15,
        )

    async def _load(self, spec: OAuth2ClientSpec, user: str) -> dict[str, Any] | None:
        raw = await self.store.get(self._key(spec, user))
        if not raw:
            return None
        if raw.startswith(b"{"):  # written in plaintext by an earlier version
            record: dict[str, Any] = msgspec.json.decode(raw)
            return record
        plain, resealed = _sealer(spec).open_current(raw)
        if resealed is not None:  # sealed under an older key: rotated as it is read
            await self.store.set(self._key(spec, user), resealed)
        opened: dict[str, Any] = msgspec.json.decode(plain)
        return opened

    async def _save(self, spec: OAuth2ClientSpec, user: str, record: dict[str, Any]) -> None:
        sealed = _sealer(spec).seal(msgspec.json.encode(record))
        await self.store.set(self._key(spec, user), sealed)

    async def disconnect(self, spec: OAuth2ClientSpec, user: str) -> None:
        """Forget ``user``'s tokens (the provider's grant stays until revoked there)."""
        await self.store.delete(self._key(spec, user))

    async def authorization_url(
        self, spec: OAuth2ClientSpec, user: str, return_to: str | None = None
    ) -> str:
        """Where ``user`` goes to connect; the state (10 minutes) remembers who asked, and
        where the browser goes once connected (``return_to``, a path of this gateway)."""
        state = secrets.token_urlsafe(24)
        pending = msgspec.json.encode({"user": user, "return_to": return_to})
        await self.store.set(f"oauth2:{spec.upstream}:state:{state}", pending, expires_in=STATE_TTL)
        async with self._client(spec) as client:
            url, _ = client.create_authorization_url(
                spec.authorize_url, state=state, **spec.authorize_params
            )
        return str(url)

    async def complete(self, spec: OAuth2ClientSpec, code: str, state: str) -> str:
        """Exchange the callback's code; returns the user who connected (PluginError 400
        for an unknown state or a refused code)."""
        user, _ = await self.finish(spec, code, state)
        return user

    async def finish(self, spec: OAuth2ClientSpec, code: str, state: str) -> tuple[str, str | None]:
        """:meth:`complete`, also returning where the browser goes next (or None)."""
        key = f"oauth2:{spec.upstream}:state:{state}"
        pending = await self.store.get(key)
        if pending is None:
            raise PluginError(400, "unknown or expired state: start again at the authorization URL")
        await self.store.delete(key)  # a state works once
        if pending.startswith(b"{"):
            started = msgspec.json.decode(pending)
            user, return_to = str(started["user"]), started.get("return_to")
        else:  # a state an earlier version stored: the user alone
            user, return_to = pending.decode(), None
        async with self._client(spec) as client:
            try:
                token = await client.fetch_token(spec.token_url, code=code)
            except OAuthError as exc:
                raise PluginError(400, f"the provider refused the code: {exc.error}") from None
        if not token.get("refresh_token"):
            raise PluginError(
                400, "the provider sent no refresh token (ask for offline access and consent)"
            )
        await self._save(spec, user, self._record(token, None))
        return user, return_to

    @staticmethod
    def _record(token: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "access_token": token["access_token"],
            # Google does not rotate refresh tokens: keep the one we have.
            "refresh_token": token.get("refresh_token") or (previous or {}).get("refresh_token"),
            "expires_at": time.time() + float(token.get("expires_in") or 3600),
            "scope": token.get("scope", ""),
            "connected_at": (previous or {}).get("connected_at", time.time()),
        }

    async def connected_at(self, spec: OAuth2ClientSpec, user: str) -> float | None:
        """When ``user`` connected, or None when they are not connected."""
        record = await self._load(spec, user)
        return float(record["connected_at"]) if record is not None else None

    async def status(self, spec: OAuth2ClientSpec, user: str) -> dict[str, Any]:
        record = await self._load(spec, user)
        if record is None:
            return {"connected": False, "user": user}
        return {
            "connected": True,
            "user": user,
            "scope": record["scope"],
            "access_token_expires_in": max(0, int(record["expires_at"] - time.time())),
        }

    async def access_token(
        self, spec: OAuth2ClientSpec, user: str, stale: str | None = None
    ) -> str:
        """A token valid for at least ``refresh_margin``; refreshes it when it is not.

        ``stale``: a token the upstream just refused (401) although it had not expired;
        it counts as expired, and concurrent callers still cause only one refresh.
        """
        deadline = time.monotonic() + WAIT_FOR_REFRESH
        while True:
            record = await self._load(spec, user)
            if record is None:
                raise self._reconnect(spec, user, "not connected")
            if self._fresh(spec, record, stale):
                return str(record["access_token"])
            lock = await self.locks.acquire(f"oauth2:{spec.upstream}:refresh:{user}", 30)
            if lock is not None:
                try:
                    return await self._refresh(spec, user, stale)
                finally:
                    await lock.release()
            if time.monotonic() > deadline:
                raise self._reconnect(spec, user, "the token refresh did not finish")
            await asyncio.sleep(0.05)  # another caller is refreshing: use its token

    @staticmethod
    def _fresh(spec: OAuth2ClientSpec, record: dict[str, Any], stale: str | None) -> bool:
        if stale is not None and record["access_token"] == stale:
            return False
        return bool(record["expires_at"] - spec.refresh_margin > time.time())

    async def _refresh(self, spec: OAuth2ClientSpec, user: str, stale: str | None) -> str:
        record = await self._load(spec, user)  # again, under the lock
        if record is None:
            raise self._reconnect(spec, user, "not connected")
        if self._fresh(spec, record, stale):
            return str(record["access_token"])  # refreshed by the caller before us
        async with self._client(spec) as client:
            try:
                token = await client.refresh_token(
                    spec.token_url, refresh_token=record["refresh_token"]
                )
            except OAuthError as exc:
                if exc.error == "invalid_grant":  # revoked or expired: it will never work
                    await self.store.delete(self._key(spec, user))
                    raise self._reconnect(
                        spec, user, "the connection was revoked or expired"
                    ) from None
                raise
        fresh = self._record(dict(token), record)
        await self._save(spec, user, fresh)
        return str(fresh["access_token"])

    @staticmethod
    def _reconnect(spec: OAuth2ClientSpec, user: str, why: str) -> UpstreamNotConnected:
        """The operator (an API key of no user) reconnects at the upstream's own route; a
        signed-in user at their /connections page."""
        if user == DEFAULT_USER:
            return UpstreamNotConnected(
                f"{spec.upstream}: {why}; reconnect via /{spec.upstream}/auth/url"
            )
        if why == "not connected":
            return not_connected(spec)
        if why == "the token refresh did not finish":  # another replica's refresh: transient
            return UpstreamNotConnected(f"{spec.upstream}: {why}; try again", spec.connect_url)
        return refused(spec, why)


class UserConnection:
    """One user's connection to an `oauth2_authorization_code` upstream, as a plugin sees it
    (the contract's ``OAuth2Connection``)."""

    def __init__(self, spec: OAuth2ClientSpec, tokens: UpstreamTokens, user: str) -> None:
        self.spec = spec
        self.tokens = tokens
        self.user = user

    async def authorization_url(self) -> str:
        return await self.tokens.authorization_url(self.spec, self.user)

    async def complete(self, code: str, state: str) -> str:
        return await self.tokens.complete(self.spec, code, state)

    async def finish(self, code: str, state: str) -> tuple[str, str | None]:
        return await self.tokens.finish(self.spec, code, state)

    async def status(self) -> dict[str, Any]:
        return await self.tokens.status(self.spec, self.user)
