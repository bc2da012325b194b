"""ChatGPT's side of an OAuth Action, played by authlib's client (for the tests)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client

from tests.conftest import RunningGateway

CALLBACK = "https://chatgpt.com/aip/g-0123456789abcdef/oauth/callback"
GOOD_SECRET = "gpt-secret-0123456789"


def chatgpt(gw: RunningGateway, secret: str = GOOD_SECRET) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id="gpt-client",
        client_secret=secret,
        redirect_uri=CALLBACK,
        scope="read:memories",
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",
    )


def keep_cookies(gw: RunningGateway, page: aiohttp.ClientResponse) -> None:
    """Keep the page's cookies for the next requests, as a browser does (the consent form
    is bound to the browser's cookie). aiohttp's jar drops cookies set by an IP address,
    such as the gateway's loopback one, so they are put in the session's jar here."""
    for name, morsel in page.cookies.items():
        gw.http.cookie_jar.update_cookies({name: morsel.value})


async def consent_form(gw: RunningGateway, url: str) -> dict[str, str]:
    """The hidden fields of the consent page at ``url`` (the request, and its form token)."""
    async with gw.http.get(url) as page:
        assert page.status == 200, await page.text()
        keep_cookies(gw, page)
        return dict(re.findall(r'name="([^"]+)" value="([^"]*)"', await page.text()))


async def authorize(
    gw: RunningGateway, client: AsyncOAuth2Client, user: str, password: str, verifier: str
) -> str:
    """The consent page, as a user fills it in; returns the callback URL with the code."""
    url, state = client.create_authorization_url(
        f"{gw.url}/oauth/authorize", code_verifier=verifier
    )
    async with gw.http.get(url) as page:
        assert page.status == 200
        keep_cookies(gw, page)
        html = await page.text()
    hidden = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', html))
    assert hidden["state"] == state
    assert hidden["code_challenge_method"] == "S256"
    form = {**hidden, "username": user, "password": password, "decision": "allow"}
    async with gw.http.post(
        f"{gw.url}/oauth/authorize", data=form, allow_redirects=False
    ) as answer:
        assert answer.status == 302, await answer.text()
        location = answer.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    assert parse_qs(urlsplit(location).query)["state"] == [state]  # echoed
    return location


async def token_for(gw: RunningGateway, user: str, password: str) -> dict[str, Any]:
    """A token for ``user``, through the whole authorize + code exchange (with PKCE)."""
    async with chatgpt(gw) as client:
        verifier = generate_token(48)
        callback = await authorize(gw, client, user, password, verifier)
        token: dict[str, Any] = await client.fetch_token(
            f"{gw.url}/oauth/token", authorization_response=callback, code_verifier=verifier
        )
        return token
