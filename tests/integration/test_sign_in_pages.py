"""Signing in with the OpenID provider on the gateway's pages, and what is refused: a
provider callback in a browser that did not start the sign-in, a state used twice, an
account outside the allowlist, the provider saying no. The shipped config, the loopback
provider (tests/upstreams/oidc.py), the real app under uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.conftest import REPO, RunningGateway, run_gateway
from tests.oauth_client import GOOD_SECRET, keep_cookies
from tests.upstreams.oidc import OidcProvider, oidc_provider
from tests.upstreams.server import free_port

OIDC_SECRET = "oidc-client-secret-1"


@asynccontextmanager
async def signing_in(**settings: str) -> AsyncIterator[tuple[RunningGateway, OidcProvider]]:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    async with oidc_provider(
        client_id="gw", client_secret=OIDC_SECRET, redirect_uri=f"{public}/oauth/identity/callback"
    ) as provider:
        env = {
            "GATEWAY_PUBLIC_URL": public,
            "OAUTH_CLIENT_ID": "gpt-client",
            "OAUTH_CLIENT_SECRET": GOOD_SECRET,
            "OIDC_ISSUER": provider.url,
            "OIDC_CLIENT_ID": "gw",
            "OIDC_CLIENT_SECRET": OIDC_SECRET,
            **settings,
        }
        async with run_gateway(REPO, env, port) as gw:
            yield gw, provider


async def start(gw: RunningGateway, next_path: str = "/connections") -> str:
    """Follow "Sign in with ..." to the provider and back; the callback URL."""
    async with gw.http.get(
        f"{gw.url}/oauth/identity/start", params={"next": next_path}, allow_redirects=False
    ) as r:
        assert r.status == 302
        cookie = r.cookies["gateway_signin_state"]
        assert (cookie["path"], cookie["httponly"]) == ("/oauth/identity/callback", True)
        keep_cookies(gw, r)
        authorize = r.headers["Location"]
    async with gw.http.get(authorize, allow_redirects=False) as r:
        assert r.status == 302
        return r.headers["Location"]


async def test_sign_in_with_the_provider_then_connections() -> None:
    async with signing_in(OIDC_ALLOW_DOMAINS="example.com") as (gw, provider):
        status, html = await get(gw, "/oauth/signin?next=/connections")
        assert status == 200
        assert 'href="/oauth/identity/start?next=%2Fconnections">Sign in with Google</a>' in html
        assert 'name="password"' not in html  # no configured users: the provider only
        provider.sign_in_as("1042", "ada@example.com", name="Ada")
        callback = await start(gw)
        assert callback.startswith(f"{gw.url}/oauth/identity/callback?")
        async with gw.http.get(callback, allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (303, "/connections")
            keep_cookies(gw, r)
        status, html = await get(gw, "/connections")
        assert status == 200
        assert "Signed in as <b>ada@example.com</b>" in html
        # The state works once.
        async with gw.http.get(callback, allow_redirects=False) as r:
            assert r.status == 400
            assert (
                "This sign-in was started in another browser, or it expired: start again."
                in await r.text()
            )


async def test_a_callback_in_another_browser_signs_nobody_in() -> None:
    async with signing_in() as (gw, provider):
        provider.sign_in_as("666", "mallory@example.com")
        callback = await start(gw)  # the attacker's own sign-in, sent to a victim
        async with aiohttp.ClientSession() as victim:
            async with victim.get(callback, allow_redirects=False) as r:
                assert r.status == 400
                assert "gateway_session" not in r.cookies
                assert "started in another browser" in await r.text()


async def test_an_account_outside_the_allowlist_is_refused() -> None:
    async with signing_in(OIDC_ALLOW_EMAILS="ada@example.com") as (gw, provider):
        provider.sign_in_as("7", "eve@example.org")
        callback = await start(gw)
        async with gw.http.get(callback, allow_redirects=False) as r:
            assert r.status == 403
            assert "gateway_session" not in r.cookies
            assert "the account eve@example.org may not sign in here" in await r.text()


async def test_the_provider_saying_no_is_shown() -> None:
    async with signing_in() as (gw, provider):
        provider.sign_out()  # nobody signs in at the provider: access_denied
        callback = await start(gw)
        assert parse_qs(urlsplit(callback).query)["error"] == ["access_denied"]
        async with gw.http.get(callback, allow_redirects=False) as r:
            assert r.status == 403
            assert "The provider did not sign you in (access_denied)." in await r.text()


async def get(gw: RunningGateway, path: str) -> tuple[int, str]:
    async with gw.http.get(f"{gw.url}{path}", allow_redirects=False) as r:
        return r.status, await r.text()
