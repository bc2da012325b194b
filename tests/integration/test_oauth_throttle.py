"""Guessing a consent-page password or a client secret is throttled per client IP and per
credential id (a username, a client id), shared by replicas on Redis: past the limit every
attempt, the right one included, is a 429 with Retry-After until the window ends.

A second client address is 127.0.0.2 (all of 127.0.0.0/8 is loopback on Linux).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError

from tests.conftest import REDIS_URL, RunningGateway, run_gateway, write_config
from tests.integration.test_oauth_server import GATEWAY, ROUTES
from tests.oauth_client import GOOD_SECRET, authorize, chatgpt
from tests.upstreams.server import free_port

THROTTLED = GATEWAY.replace(
    'server: {public_url: "${PUBLIC_URL}"}',
    'server: {public_url: "${PUBLIC_URL}", failed_auth_limit: 3, failed_auth_window: 2s}',
)
WRONG = "Wrong username or password."
LOCKED = "Too many failed sign-ins. Try again in 2 seconds."
TOO_MANY_CLIENT_FAILURES = {
    "error": "invalid_client",
    "error_description": "too many failed client authentications; retry in 2s",
}


@asynccontextmanager
async def gateway(tmp_path: Path, store: dict[str, str] | None = None) -> AsyncIterator[Any]:
    folder = write_config(tmp_path, THROTTLED, {"r": ROUTES})
    port = free_port()
    env = {"PUBLIC_URL": f"http://127.0.0.1:{port}", **(store or {})}
    async with run_gateway(folder, env, port) as gw:
        yield gw


class Browser:
    """A browser at one client address, with its own cookie."""

    def __init__(self, gw: RunningGateway, address: str) -> None:
        self.gw = gw
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(address, 0)),
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # the gateway's host is an IP
        )
        self.form: dict[str, str] = {}

    async def open(self) -> None:
        url, _ = chatgpt(self.gw).create_authorization_url(
            f"{self.gw.url}/oauth/authorize", code_verifier=generate_token(48)
        )
        async with self.http.get(url) as page:
            assert page.status == 200
            self.form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', await page.text()))

    async def sign_in(self, username: str, password: str) -> tuple[int, str | None, str]:
        """Post the form; the next form token comes from the page that answers."""
        form = {**self.form, "username": username, "password": password, "decision": "allow"}
        async with self.http.post(
            f"{self.gw.url}/oauth/authorize", data=form, allow_redirects=False
        ) as answer:
            text = await answer.text()
            self.form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', text))
            shown = re.search(r'<p class="error">([^<]*)</p>', text)
            return answer.status, answer.headers.get("Retry-After"), shown[1] if shown else ""

    async def close(self) -> None:
        await self.http.close()


@asynccontextmanager
async def browser(gw: RunningGateway, address: str = "127.0.0.1") -> AsyncIterator[Browser]:
    opened = Browser(gw, address)
    try:
        await opened.open()
        yield opened
    finally:
        await opened.close()


async def test_password_guessing_on_the_consent_page_is_locked_out(tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw, browser(gw) as one:
        assert [await one.sign_in("alice", f"guess-{n}") for n in range(3)] == [
            (401, None, WRONG)
        ] * 3
        assert await one.sign_in("alice", "guess-4") == (429, "2", LOCKED)
        # Locked out: the right password gets the same answer (it must not tell a guesser).
        assert await one.sign_in("alice", "alice-pass-1") == (429, "2", LOCKED)
        await asyncio.sleep(2.2)
        assert (await one.sign_in("alice", "alice-pass-1"))[0] == 302


async def test_a_username_is_locked_out_from_every_address(tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw, browser(gw) as here, browser(gw, "127.0.0.2") as there:
        for n in range(4):
            await here.sign_in("alice", f"guess-{n}")
        # Another address: alice stays locked (per username), bob signs in (a new IP).
        assert await there.sign_in("alice", "alice-pass-1") == (429, "2", LOCKED)
        assert (await there.sign_in("bob", "bob-pass-2"))[0] == 302


async def token_guess(gw: RunningGateway, secret: str, address: str = "127.0.0.1") -> Any:
    form = {
        "grant_type": "authorization_code",
        "code": "no-such-code",
        "redirect_uri": "https://chatgpt.com/aip/g-0123456789abcdef/oauth/callback",
        "client_id": "gpt-client",
        "client_secret": secret,
        "code_verifier": generate_token(48),
    }
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.post(f"{gw.url}/oauth/token", data=form) as answer,
    ):
        assert answer.headers["Content-Type"].startswith("application/json")
        return answer.status, answer.headers.get("Retry-After"), await answer.json()


async def check_client_lockout(first: RunningGateway, second: RunningGateway) -> None:
    # A real code first: the lockout must hold it back, the window's end must not spoil it.
    async with chatgpt(first) as client:
        verifier = generate_token(48)
        callback = await authorize(first, client, "alice", "alice-pass-1", verifier)
    for n in range(3):
        status, retry, body = await token_guess(first, f"guess-{n}")
        assert (status, retry, body["error"]) == (401, None, "invalid_client")
    assert await token_guess(first, "guess-4") == (429, "2", TOO_MANY_CLIENT_FAILURES)
    # The right secret, on the other replica and from another address (the client id is
    # locked): the same 429, through authlib's client as ChatGPT would send it.
    assert await token_guess(second, GOOD_SECRET, "127.0.0.2") == (
        429,
        "2",
        TOO_MANY_CLIENT_FAILURES,
    )
    async with chatgpt(second) as client:
        with pytest.raises(OAuthError) as refused:
            await client.fetch_token(
                f"{second.url}/oauth/token", authorization_response=callback, code_verifier=verifier
            )
        assert refused.value.error == "invalid_client"
        await asyncio.sleep(2.2)
        token = await client.fetch_token(
            f"{second.url}/oauth/token", authorization_response=callback, code_verifier=verifier
        )
    assert token["token_type"].lower() == "bearer"


async def test_client_secret_guessing_at_the_token_endpoint_is_locked_out(
    tmp_path: Path,
) -> None:
    async with gateway(tmp_path) as gw:
        await check_client_lockout(gw, gw)


async def test_two_replicas_on_redis_share_both_lockouts(
    tmp_path: Path, redis_namespace: str
) -> None:
    store = {"STORE_URL": REDIS_URL, "STORE_NS": redis_namespace}
    async with gateway(tmp_path, store) as first, gateway(tmp_path, store) as second:
        await check_client_lockout(first, second)
        async with browser(first) as one, browser(second, "127.0.0.2") as two:
            for n in range(4):
                await one.sign_in("bob", f"guess-{n}")
            assert await two.sign_in("bob", "bob-pass-2") == (429, "2", LOCKED)
