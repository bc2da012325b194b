"""The consent form, bound to one browser and one authorization request.

GET /oauth/authorize gives the browser a random id in an HttpOnly cookie, and the page a
one-time form token stored with the sha256 of that id and the request's parameters. POST
must bring both back and match exactly: a token an attacker fetched for himself carries
his browser id, not the victim's; a token for request A does not open request B (another
state, redirect_uri, scope or challenge). Before that, a POST whose `Origin` is not the
issuer's is refused: browsers send it on cross-site form posts.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

import msgspec
from litestar.datastructures import Cookie
from litestar.stores.base import Store

from gateway.oauth.tokens import digest
from gateway.store.locks import Locks

__all__ = [
    "COOKIE",
    "ConsentForms",
    "FormBinding",
    "browser_cookie",
    "browser_id",
    "new_browser_id",
    "origin_of",
    "same_origin",
]

COOKIE = "gateway_oauth_browser"
FORM_TTL = 600
"""How long a consent page can be submitted (seconds)."""
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
_HOST = re.compile(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class FormBinding(msgspec.Struct, frozen=True):
    """What a form token was issued for; the POST must match it field for field."""

    browser: str
    """sha256 of the browser id (the cookie): the id itself is never stored."""
    client_id: str
    redirect_uri: str
    state: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    response_type: str

    @classmethod
    def of(cls, browser: str, values: Mapping[str, str]) -> FormBinding:
        return cls(
            browser=digest(browser),
            client_id=values.get("client_id", ""),
            redirect_uri=values.get("redirect_uri", ""),
            state=values.get("state", ""),
            scope=values.get("scope", ""),
            code_challenge=values.get("code_challenge", ""),
            code_challenge_method=values.get("code_challenge_method", ""),
            response_type=values.get("response_type", ""),
        )


def browser_id(cookies: Mapping[str, str]) -> str | None:
    """The browser id from the request's cookie, if it has one of the right shape."""
    found = cookies.get(COOKIE, "")
    return found if _BROWSER_ID.fullmatch(found) else None


def new_browser_id() -> str:
    return secrets.token_urlsafe(32)


def browser_cookie(browser: str, issuer: str, form_path: str = "/oauth/authorize") -> Cookie:
    """Session cookie, only for the folder the form posts to (`/oauth`, or an alias's such
    as `/chatgpt/oauth`), never read by scripts, not sent on cross-site posts."""
    return Cookie(
        key=COOKIE,
        value=browser,
        path=form_path.rsplit("/", 1)[0] or "/",
        httponly=True,
        samesite="lax",
        secure=issuer.startswith("https://"),
    )


def origin_of(url: str) -> str | None:
    """scheme://host[:port] of an http(s) URL (default port left out), or None."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if scheme not in _DEFAULT_PORTS or not _HOST.fullmatch(host):
        return None
    shown = f":{port}" if port is not None and port != _DEFAULT_PORTS[scheme] else ""
    return f"{scheme}://{host}{shown}"


def same_origin(origin: str, issuer: str) -> bool:
    """Whether an `Origin` header names the issuer's origin (`null` and junk do not)."""
    parts = urlsplit(origin)
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        return False
    expected = origin_of(issuer)
    return expected is not None and origin_of(origin) == expected


class ConsentForms:
    """One-time form tokens in the store (shared by replicas), each with its binding."""

    def __init__(self, store: Store, locks: Locks) -> None:
        self.store = store
        self.locks = locks

    async def issue(self, browser: str, values: Mapping[str, str]) -> str:
        token = secrets.token_urlsafe(24)
        binding = msgspec.json.encode(FormBinding.of(browser, values))
        await self.store.set(f"oauth:form:{digest(token)}", binding, expires_in=FORM_TTL)
        return token

    async def take(self, token: str, browser: str, values: Mapping[str, str]) -> bool:
        """Whether ``token`` was issued to this browser for exactly this request. Used up
        either way, so that a wrong guess cannot be followed by a right one."""
        if not token:
            return False
        key = digest(token)
        if await self.locks.acquire(f"oauth:form-used:{key}", FORM_TTL) is None:
            return False  # used already, or being used right now on another replica
        stored = await self.store.get(f"oauth:form:{key}")
        await self.store.delete(f"oauth:form:{key}")
        expected = msgspec.json.encode(FormBinding.of(browser, values))
        return stored is not None and hmac.compare_digest(stored, expected)
