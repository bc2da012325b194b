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
AUTHORIZE, TOKEN = "/oauth/authorize", "/oauth/token"
"""The canonical URLs; the OMI server's were /chatgpt/oauth/authorize and /chatgpt/oauth/token."""
_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)">')


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
    gw: RunningGateway,
    client: AsyncOAuth2Client,
    user: str,
    password: str,
    verifier: str,
    path: str = AUTHORIZE,
) -> str:
    """The consent page at ``path``, as a user fills it in and a browser posts it (to the
    form's `action`); returns the callback URL with the code."""
    url, state = client.create_authorization_url(f"{gw.url}{path}", code_verifier=verifier)
    async with gw.http.get(url) as page:
        assert page.status == 200
        keep_cookies(gw, page)
        html = await page.text()
    hidden = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', html))
    assert hidden["state"] == state
    assert hidden["code_challenge_method"] == "S256"
    action = _FORM_ACTION.search(html)
    assert action is not None
    form = {**hidden, "username": user, "password": password, "decision": "allow"}
    async with gw.http.post(f"{gw.url}{action[1]}", data=form, allow_redirects=False) as answer:
        assert answer.status == 302, await answer.text()
        location = answer.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    assert parse_qs(urlsplit(location).query)["state"] == [state]  # echoed
    return location


async def token_for(
    gw: RunningGateway,
    user: str,
    password: str,
    *,
    authorize_path: str = AUTHORIZE,
    token_path: str = TOKEN,
) -> dict[str, Any]:
    """A token for ``user``, through the whole authorize + code exchange (with PKCE)."""
    async with chatgpt(gw) as client:
        verifier = generate_token(48)
        callback = await authorize(gw, client, user, password, verifier, authorize_path)
        token: dict[str, Any] = await client.fetch_token(
            f"{gw.url}{token_path}", authorization_response=callback, code_verifier=verifier
        )
        return token
