"""The OAuth consent page in headless Chromium: it names the service and the host the
browser returns to, labels its inputs, shows Allow as the primary button and Deny as the
secondary one; Deny sends the browser to the client's redirect URI with access_denied and
the state. That one navigation to chatgpt.com is answered by the test at the network edge,
never sent; every other request stays on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client

from tests.browser.conftest import CLIENT_ID, Tab
from tests.oauth_client import CALLBACK, GOOD_SECRET

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_the_consent_page_and_deny(site: str, tab: Tab, tmp_path: Path) -> None:
    client = AsyncOAuth2Client(
        client_id=CLIENT_ID,
        client_secret=GOOD_SECRET,
        redirect_uri=CALLBACK,
        scope="read:memories",
        code_challenge_method="S256",
    )
    async with client:
        url, state = client.create_authorization_url(
            f"{site}/oauth/authorize", code_verifier=generate_token(48)
        )
    page = tab.page
    await page.goto(url)
    assert await page.title() == "Sign in to Integration Gateway"
    assert await page.locator("h1").inner_text() == "Sign in to Integration Gateway"
    text = " ".join((await page.locator("body").inner_text()).split())
    assert "chatgpt asks to use Integration Gateway for you, to:" in text
    assert "You will be sent back to chatgpt.com." in text
    assert "Read your OMI conversations (read:memories)" in text

    username, password = page.get_by_label("Username"), page.get_by_label("Password")
    assert await username.get_attribute("autocomplete") == "username"
    assert await password.get_attribute("autocomplete") == "current-password"
    assert await password.get_attribute("type") == "password"
    allow = page.get_by_role("button", name="Allow")
    deny = page.get_by_role("button", name="Deny")
    assert [await allow.get_attribute("type"), await deny.get_attribute("type")] == [
        "submit",
        "submit",
    ]
    colours = [
        await button.evaluate(
            "b => [getComputedStyle(b).backgroundColor, getComputedStyle(b).color]"
        )
        for button in (allow, deny)
    ]
    assert colours == [
        ["rgb(11, 87, 208)", "rgb(255, 255, 255)"],
        ["rgb(255, 255, 255)", "rgb(31, 35, 40)"],
    ]
    await tab.screenshot(tmp_path, "consent")

    tab.answers[CALLBACK] = (200, "the client's callback, answered by the test")
    await deny.click()  # no username or password needed to say no
    await page.wait_for_url(f"{CALLBACK}?*")
    query = {key: values[0] for key, values in parse_qs(urlsplit(page.url).query).items()}
    assert query == {
        "error": "access_denied",
        "error_description": "The resource owner or authorization server denied the request",
        "state": state,
        "iss": site,
    }
    assert await page.locator("body").inner_text() == "the client's callback, answered by the test"
    # The one request off 127.0.0.1: the gateway's redirect there, answered here.
    assert tab.left_loopback() == tab.off_host == [page.url]
    assert tab.redirects == {page.url: f"{site}/oauth/authorize"}
    assert tab.errors == []
