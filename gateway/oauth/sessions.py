"""Sign-ins on the gateway's own pages (the consent page, /connections): a random id in an
HttpOnly cookie, its record in the store (shared by replicas) under the id's hash.

A session is what lets a user who signed in once (with a password or an OpenID provider)
consent, connect upstreams and come back from a provider's redirect without signing in
again. Forms of a signed-in page carry the session's own form token, and their POSTs must
come from this origin.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Mapping

import msgspec
from litestar.datastructures import Cookie
from litestar.stores.base import Store

from gateway.oauth.tokens import digest

__all__ = ["SESSION_COOKIE", "Session", "Sessions", "safe_next", "session_cookie"]

SESSION_COOKIE = "gateway_session"
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
_NEXT = re.compile(r"/(?![/\\])[^\s\\]*")


class Session(msgspec.Struct, frozen=True):
    """Who is signed in: the gateway user id, the name pages show, the form token."""

    user: str
    name: str
    csrf: str
    expires_at: float

    def form_token_matches(self, presented: str) -> bool:
        return bool(presented) and hmac.compare_digest(presented, self.csrf)


def session_cookie(value: str, issuer: str, max_age: int | None) -> Cookie:
    """For every path (the consent page, /connections, a provider's callback), never read
    by scripts, not sent on cross-site posts; ``max_age`` 0 removes it."""
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        path="/",
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=issuer.startswith("https://"),
    )


def safe_next(value: str | None, default: str) -> str:
    """``value`` when it is a path of this gateway (never another site: no `//host`, no
    backslashes, no scheme), else ``default``."""
    if value and len(value) <= 4096 and _NEXT.fullmatch(value):
        return value
    return default


class Sessions:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def start(self, user: str, name: str, ttl: float) -> str:
        """A new session for ``user``; returns the cookie's value."""
        session_id = secrets.token_urlsafe(32)
        record = Session(user, name, secrets.token_urlsafe(24), time.time() + ttl)
        await self.store.set(
            f"session:{digest(session_id)}", msgspec.json.encode(record), expires_in=int(ttl)
        )
        return session_id

    async def get(self, cookies: Mapping[str, str]) -> Session | None:
        session_id = cookies.get(SESSION_COOKIE, "")
        if not _SESSION_ID.fullmatch(session_id):
            return None
        raw = await self.store.get(f"session:{digest(session_id)}")
        if raw is None:
            return None
        session = msgspec.json.decode(raw, type=Session)
        return session if session.expires_at > time.time() else None

    async def end(self, cookies: Mapping[str, str]) -> None:
        session_id = cookies.get(SESSION_COOKIE, "")
        if _SESSION_ID.fullmatch(session_id):
            await self.store.delete(f"session:{digest(session_id)}")
