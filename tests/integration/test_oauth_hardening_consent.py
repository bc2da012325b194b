"""The consent form is bound to the browser and to the authorization request (issue
"Hardening", 1): a cross-site post, a form token fetched by someone else, a token for
another request, and a post without the browser's cookie are all refused.

Each browser here keeps its own cookie, sent by hand: aiohttp's jar drops cookies set by
an IP address, and the point is to choose exactly what each browser sends.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from authlib.common.security import generate_token

from tests.conftest import RunningGateway, run_gateway
from tests.integration.test_oauth_server import config
from tests.oauth_client import CALLBACK, chatgpt
from tests.upstreams.server import free_port

COOKIE = "gateway_oauth_browser"
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https://chatgpt.com; "
    "frame-ancestors 'none'; base-uri 'none'"
)
ERROR_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
EXPIRED = "This form expired: open the authorization link again."
CROSS_SITE = "This form was sent from another site."
OTHER_CALLBACK = "https://chatgpt.com/aip/g-fedcba9876543210/oauth/callback"


class Page:
    def __init__(self, status: int, headers: Any, text: str) -> None:
        self.status = status
        self.headers = headers
        self.text = text
        self.hidden = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', text))


class Browser:
    """One browser: its own cookie (the gateway's browser id), sent on every request."""

    def __init__(self, gw: RunningGateway, http: aiohttp.ClientSession) -> None:
        self.gw = gw
        self.http = http
        self.cookies: dict[str, str] = {}

    def _headers(self, origin: str | None) -> dict[str, str]:
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if origin is not None:
            headers["Origin"] = origin
        return headers

    async def get(self, url: str) -> Page:
        async with self.http.get(url, headers=self._headers(None)) as response:
            for name, morsel in response.cookies.items():
                self.cookies[name] = morsel.value
            return Page(response.status, response.headers, await response.text())

    async def post(self, form: dict[str, str], origin: str | None = None) -> Page:
        async with self.http.post(
            f"{self.gw.url}/oauth/authorize",
            data=form,
            headers=self._headers(origin),
            allow_redirects=False,
        ) as response:
            return Page(response.status, response.headers, await response.text())


@asynccontextmanager
async def browsers(gw: RunningGateway, count: int) -> AsyncIterator[list[Browser]]:
    # A session without a jar: only the cookies a Browser sends itself.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        yield [Browser(gw, http) for _ in range(count)]


def authorization_url(
    gw: RunningGateway, state: str | None = None, redirect_uri: str = CALLBACK
) -> str:
    """An authorization request as authlib's client builds it (PKCE S256)."""
    url, _ = chatgpt(gw).create_authorization_url(
        f"{gw.url}/oauth/authorize",
        state=state,
        redirect_uri=redirect_uri,
        code_verifier=generate_token(48),
    )
    return str(url)


def login(hidden: dict[str, str]) -> dict[str, str]:
    return {**hidden, "username": "alice", "password": "alice-pass-1", "decision": "allow"}


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    port = free_port()  # the issuer (public_url) is the gateway's own address
    async with run_gateway(config(tmp_path), {"PUBLIC_URL": f"http://127.0.0.1:{port}"}, port) as g:
        yield g


async def test_the_page_sets_the_browser_cookie_and_the_security_headers(
    gw: RunningGateway,
) -> None:
    async with browsers(gw, 1) as (browser,):
        page = await browser.get(authorization_url(gw))
    assert page.status == 200
    assert (page.headers["Content-Security-Policy"], page.headers["X-Frame-Options"]) == (
        CSP,
        "DENY",
    )
    assert page.headers["Cache-Control"] == "no-store"
    cookie = SimpleCookie(page.headers["Set-Cookie"])[COOKIE]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", cookie.value)
    assert (cookie["path"], cookie["samesite"], cookie["httponly"], cookie["secure"]) == (
        "/oauth",
        "lax",  # attribute values are case-insensitive (RFC 6265bis)
        True,
        "",  # the issuer is http here; see the https test below
    )


async def test_the_cookie_is_secure_when_the_issuer_is_https(tmp_path: Path) -> None:
    env = {"PUBLIC_URL": "https://gateway.example.com"}
    async with run_gateway(config(tmp_path), env) as gw, browsers(gw, 1) as (browser,):
        page = await browser.get(authorization_url(gw))
    assert page.status == 200
    assert SimpleCookie(page.headers["Set-Cookie"])[COOKIE]["secure"] is True


async def test_the_normal_flow_with_the_issuers_origin_works(gw: RunningGateway) -> None:
    async with browsers(gw, 1) as (browser,):
        page = await browser.get(authorization_url(gw, state="s-1"))
        # The same browser opening a second tab keeps its id: both forms stay usable.
        second = await browser.get(authorization_url(gw, state="s-2"))
        assert "Set-Cookie" in second.headers
        answer = await browser.post(login(page.hidden), origin=gw.url)
        assert answer.status == 302, answer.text
        assert parse_qs(urlsplit(answer.headers["Location"]).query)["state"] == ["s-1"]
        answer = await browser.post(login(second.hidden))  # no Origin (older browsers)
        assert answer.status == 302, answer.text


async def test_a_cross_origin_post_is_refused(gw: RunningGateway) -> None:
    """The attacker fetches a form himself and has the victim's browser post it."""
    async with browsers(gw, 2) as (attacker, victim):
        for origin in ("https://evil.example", "null", f"{gw.url}.evil.example"):
            page = await attacker.get(authorization_url(gw))
            answer = await victim.post(login(page.hidden), origin=origin)
            assert (answer.status, CROSS_SITE in answer.text) == (403, True)
            assert answer.headers["Content-Security-Policy"] == ERROR_CSP
            assert answer.headers["Cache-Control"] == "no-store"
            # Even from the attacker's own browser (his cookie, his token), not cross-site.
            answer = await attacker.post(login(page.hidden), origin=origin)
            assert (answer.status, CROSS_SITE in answer.text) == (403, True)


async def test_a_token_fetched_by_another_browser_is_refused(gw: RunningGateway) -> None:
    """No Origin header (a browser that does not send it): the binding refuses it."""
    async with browsers(gw, 2) as (attacker, victim):
        await victim.get(authorization_url(gw))  # the victim has a browser id of its own
        page = await attacker.get(authorization_url(gw))
        answer = await victim.post(login(page.hidden))
        assert (answer.status, EXPIRED in answer.text) == (400, True)


async def test_a_token_for_request_a_does_not_open_request_b(gw: RunningGateway) -> None:
    async with browsers(gw, 1) as (browser,):
        for change in (
            {"state": "another-state"},
            {"redirect_uri": OTHER_CALLBACK},
            {"scope": "read:memories write:notes"},
            {"code_challenge": "A" * 43},
        ):
            page = await browser.get(authorization_url(gw, state="state-a"))
            answer = await browser.post(login({**page.hidden, **change}))
            assert (answer.status, EXPIRED in answer.text) == (400, True), change
        # Request B's own page and token, posted as they are: that works.
        page = await browser.get(authorization_url(gw, "state-b", OTHER_CALLBACK))
        answer = await browser.post(login(page.hidden))
        assert answer.status == 302
        assert answer.headers["Location"].startswith(OTHER_CALLBACK + "?")


async def test_a_post_without_the_cookie_is_refused(gw: RunningGateway) -> None:
    async with browsers(gw, 1) as (browser,):
        page = await browser.get(authorization_url(gw))
        browser.cookies.clear()
        answer = await browser.post(login(page.hidden))
        assert (answer.status, EXPIRED in answer.text) == (400, True)
        browser.cookies[COOKIE] = "x" * 43  # a made-up id does not match either
        answer = await browser.post(login(page.hidden))
        assert (answer.status, EXPIRED in answer.text) == (400, True)
