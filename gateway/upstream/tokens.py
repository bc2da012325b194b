"""The gateway as an OAuth 2 client of an upstream (Gmail): connect once, refresh forever.

A user (or the operator, as user `default`) connects at the authorization URL; the callback
exchanges the code (authlib's client) and keeps the tokens in the store. Every call then
gets a fresh access token: refreshed before it expires, by one caller at a time across
replicas (a store lock); the others wait for the new token instead of refreshing too.
A refresh token the provider refuses is forgotten, and callers are told to reconnect.
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
from gateway.snapshot import OAuth2ClientSpec
from gateway.store.locks import Locks

__all__ = ["UpstreamTokens", "UserConnection"]

STATE_TTL = 600
WAIT_FOR_REFRESH = 15.0


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
        return msgspec.json.decode(raw) if raw else None

    async def _save(self, spec: OAuth2ClientSpec, user: str, record: dict[str, Any]) -> None:
        await self.store.set(self._key(spec, user), msgspec.json.encode(record))

    async def authorization_url(self, spec: OAuth2ClientSpec, user: str) -> str:
        """Where ``user`` goes to connect; the state (10 minutes) remembers who asked."""
        state = secrets.token_urlsafe(24)
        await self.store.set(
            f"oauth2:{spec.upstream}:state:{state}", user.encode(), expires_in=STATE_TTL
        )
        async with self._client(spec) as client:
            url, _ = client.create_authorization_url(
                spec.authorize_url, state=state, **spec.authorize_params
            )
        return str(url)

    async def complete(self, spec: OAuth2ClientSpec, code: str, state: str) -> str:
        """Exchange the callback's code; returns the user who connected (PluginError 400
        for an unknown state or a refused code)."""
        key = f"oauth2:{spec.upstream}:state:{state}"
        user_raw = await self.store.get(key)
        if user_raw is None:
            raise PluginError(400, "unknown or expired state: start again at the authorization URL")
        await self.store.delete(key)  # a state works once
        user = user_raw.decode()
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
        return user

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
                raise UpstreamNotConnected(self._reconnect(spec, "not connected"))
            if self._fresh(spec, record, stale):
                return str(record["access_token"])
            lock = await self.locks.acquire(f"oauth2:{spec.upstream}:refresh:{user}", 30)
            if lock is not None:
                try:
                    return await self._refresh(spec, user, stale)
                finally:
                    await lock.release()
            if time.monotonic() > deadline:
                raise UpstreamNotConnected(
                    self._reconnect(spec, "the token refresh did not finish")
                )
            await asyncio.sleep(0.05)  # another caller is refreshing: use its token

    @staticmethod
    def _fresh(spec: OAuth2ClientSpec, record: dict[str, Any], stale: str | None) -> bool:
        if stale is not None and record["access_token"] == stale:
            return False
        return bool(record["expires_at"] - spec.refresh_margin > time.time())

    async def _refresh(self, spec: OAuth2ClientSpec, user: str, stale: str | None) -> str:
        record = await self._load(spec, user)  # again, under the lock
        if record is None:
            raise UpstreamNotConnected(self._reconnect(spec, "not connected"))
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
                    raise UpstreamNotConnected(
                        self._reconnect(spec, "the connection was revoked or expired")
                    ) from None
                raise
        fresh = self._record(dict(token), record)
        await self._save(spec, user, fresh)
        return str(fresh["access_token"])

    @staticmethod
    def _reconnect(spec: OAuth2ClientSpec, why: str) -> str:
        return f"{spec.upstream}: {why}; reconnect via /{spec.upstream}/auth/url"


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

    async def status(self) -> dict[str, Any]:
        return await self.tokens.status(self.spec, self.user)
