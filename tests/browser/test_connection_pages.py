"""The sign-in and connection pages in headless Chromium, as a user clicks through them:
sign in with a password, paste an Ambivo token (a wrong one is refused on the page), see it
connected, disconnect it; then an authorization that needs Ambivo lists it on the consent
page, the Connect button goes to the paste form and back, and Allow reaches the client.
Every form posts under the pages' own Content-Security-Policy (a blocked post would stall)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client

from tests.browser.conftest import CLIENT_ID, PASSWORD, USERNAME, Tab
from tests.oauth_client import CALLBACK, GOOD_SECRET

pytestmark = pytest.mark.asyncio(loop_scope="module")

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJlLWFubg"


async def text(tab: Tab) -> str:
    return " ".join((await tab.page.locator("body").inner_text()).split())


async def test_sign_in_connect_and_disconnect(site: str, tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    await page.goto(f"{site}/connections")
    await page.wait_for_url(f"{site}/oauth/signin?next=%2Fconnections")
    assert await page.title() == "Sign in to Integration Gateway"
    await page.get_by_label("Username").fill(USERNAME)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{site}/connections")
    assert "Ambivo API token: not connected" in await text(tab)
    assert f"Signed in as {USERNAME}" in await text(tab)

    await page.get_by_role("link", name="Connect Ambivo API token").click()
    await page.wait_for_url(f"{site}/connections/ambivo")
    token = page.get_by_label("Ambivo API token")
    assert await token.get_attribute("type") == "password"
    await token.fill("not-a-token")
    await page.get_by_role("button", name="Save Ambivo API token").click()
    await page.wait_for_load_state()
    assert (
        "that is not a JWT (three parts separated by dots); paste your Ambivo API token"
        in await text(tab)
    )
    await tab.screenshot(tmp_path, "connect-refused")
    await page.get_by_label("Ambivo API token").fill(JWT)
    await page.get_by_role("button", name="Save Ambivo API token").click()
    await page.wait_for_url(f"{site}/connections?connected=ambivo")
    listed = await text(tab)
    assert "Ambivo API token is connected." in listed
    assert "Ambivo API token: connected since" in listed
    await tab.screenshot(tmp_path, "connections")

    await page.get_by_role("button", name="Disconnect Ambivo API token").click()
    await page.wait_for_url(f"{site}/connections?disconnected=ambivo")
    assert "Ambivo API token is disconnected." in await text(tab)
    assert "Ambivo API token: not connected" in await text(tab)

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{site}/oauth/signout")
    assert "You are signed out of this gateway." in await text(tab)
    await page.goto(f"{site}/connections")
    await page.wait_for_url(f"{site}/oauth/signin?next=%2Fconnections")
    # The one error: the refused paste's 400, which the page explained.
    assert tab.errors == [
        "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
    assert tab.left_loopback() == []


async def test_the_consent_page_lists_and_connects_what_the_scopes_need(
    site: str, tab: Tab, tmp_path: Path
) -> None:
    client = AsyncOAuth2Client(
        client_id=CLIENT_ID,
        client_secret=GOOD_SECRET,
        redirect_uri=CALLBACK,
        scope="crm",
        code_challenge_method="S256",
    )
    async with client:
        url, state = client.create_authorization_url(
            f"{site}/oauth/authorize", code_verifier=generate_token(48)
        )
    page = tab.page
    await page.goto(url)
    await page.get_by_label("Username").fill(USERNAME)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_load_state()
    # Signed in now, and Ambivo is not connected: the page says so before granting.
    shown = await text(tab)
    assert f"Signed in as {USERNAME}." in shown
    assert "Your accounts these need: Ambivo API token: not connected" in shown
    await tab.screenshot(tmp_path, "consent-connections")
    await page.get_by_role("link", name="Connect Ambivo API token").click()
    await page.get_by_label("Ambivo API token").fill(JWT)
    await page.get_by_role("button", name="Save Ambivo API token").click()
    await page.wait_for_url(f"{site}/oauth/authorize?*")
    assert "Ambivo API token: connected" in await text(tab)
    assert await page.get_by_label("Password").count() == 0

    tab.answers[CALLBACK] = (200, "the client's callback, answered by the test")
    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_url(f"{CALLBACK}?*")
    query = {key: values[0] for key, values in parse_qs(urlsplit(page.url).query).items()}
    assert set(query) == {"code", "state", "iss"}
    assert query["iss"] == site
    assert query["state"] == state
    assert tab.errors == []
