"""Users' own connections, on the shipped config: sign in on the gateway's pages, paste an
Ambivo JWT at /connections/ambivo, consent (the page lists what the scopes need), and the
user's calls carry that JWT. What must be refused is: a form from another site or without
its token, a token of the wrong shape, a `next` that leaves the gateway, a call without a
connection or with one the upstream refuses.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from authlib.common.security import generate_token

from tests.conftest import REPO, RunningGateway, run_gateway
from tests.oauth_client import CALLBACK, GOOD_SECRET, keep_cookies
from tests.upstreams.ambivo import ambivo_app
from tests.upstreams.server import Upstream, free_port, serve_upstream

JWT_ALICE = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWFsaWNl"
JWT_BOB = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlLWJvYg"
HIDDEN = re.compile(r'name="([^"]+)" value="([^"]*)"')
REFUSED: set[str] = set()


@asynccontextmanager
async def shipped() -> AsyncIterator[tuple[RunningGateway, Upstream]]:
    REFUSED.clear()
    app, recorder = ambivo_app(REFUSED)
    async with serve_upstream(app, recorder) as ambivo:
        port = free_port()
        env = {
            "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "AMBIVO_API_BASE_URL": ambivo.url,
            "OPENAI_API_KEY": "sk-operator-key",  # configured: the scope decides
            "OAUTH_CLIENT_ID": "gpt-client",
            "OAUTH_CLIENT_SECRET": GOOD_SECRET,
            "OMI_USERS": "alice:alice-pass-1:uid_alice,bob:bob-pass-2:uid_bob",
        }
        async with run_gateway(REPO, env, port) as gw:
            yield gw, ambivo


async def sign_in(gw: RunningGateway, username: str, password: str) -> None:
    form = {"username": username, "password": password, "next": "/connections"}
    async with gw.http.post(f"{gw.url}/oauth/signin", data=form, allow_redirects=False) as r:
        assert (r.status, r.headers["Location"]) == (303, "/connections")
        cookie = r.cookies["gateway_session"]
        assert cookie["httponly"] is True
        assert (cookie["path"], cookie["samesite"]) == ("/", "lax")
        keep_cookies(gw, r)


async def page(gw: RunningGateway, path: str) -> tuple[int, str]:
    async with gw.http.get(f"{gw.url}{path}", allow_redirects=False) as r:
        return r.status, await r.text()


async def csrf_of(gw: RunningGateway, path: str) -> str:
    status, html = await page(gw, path)
    assert status == 200, html
    return dict(HIDDEN.findall(html))["csrf"]


async def post(
    gw: RunningGateway, path: str, form: dict[str, str], **headers: str
) -> aiohttp.ClientResponse:
    async with gw.http.post(
        f"{gw.url}{path}", data=form, headers=headers, allow_redirects=False
    ) as r:
        await r.read()
        return r


def text_of(html: str) -> str:
    """The page's text as a reader sees it (no styles, tags as spaces)."""
    body = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    words = " ".join(re.sub(r"<[^>]+>", " ", body).split())
    return re.sub(r" ([.:,])", r"\1", words)


async def test_paste_a_token_see_it_and_disconnect() -> None:
    async with shipped() as (gw, _):
        status, _ = await page(gw, "/connections")
        assert status == 303  # not signed in: to the sign-in page, and back
        async with gw.http.get(f"{gw.url}/connections", allow_redirects=False) as r:
            assert r.headers["Location"] == "/oauth/signin?next=%2Fconnections"
        await sign_in(gw, "alice", "alice-pass-1")
        status, html = await page(gw, "/connections")
        assert status == 200
        listing = text_of(html)
        assert "Ambivo API token: not connected Connect Ambivo API token" in listing
        # No GOOGLE_CLIENT_ID here: listed, not offered.
        assert "Gmail: not available here yet" in listing
        assert 'href="/connections/gmail"' not in html
        assert "Signed in as alice" in listing

        csrf = await csrf_of(gw, "/connections/ambivo")
        status, html = await page(gw, "/connections/ambivo")
        assert 'name="token" type="password" autocomplete="off"' in html
        assert "copy your API token (a JWT that starts with &#34;eyJ&#34;)" in html

        bad = await post(gw, "/connections/ambivo", {"csrf": csrf, "token": "not a jwt"})
        assert bad.status == 400
        wrong = await post(gw, "/connections/ambivo", {"csrf": csrf, "token": "abc.def"})
        assert wrong.status == 400
        async with gw.http.post(
            f"{gw.url}/connections/ambivo", data={"csrf": csrf, "token": "nope"}
        ) as r:
            assert (
                "that is not a JWT (three parts separated by dots); paste your Ambivo API token"
                in await r.text()
            )
        # `Bearer ` copied along is dropped; the form returns to /connections.
        saved = await post(
            gw, "/connections/ambivo", {"csrf": csrf, "token": f"Bearer {JWT_ALICE}"}
        )
        assert (saved.status, saved.headers["Location"]) == (
            303,
            "/connections?connected=ambivo",
        )
        status, html = await page(gw, "/connections?connected=ambivo")
        assert "Ambivo API token is connected." in text_of(html)
        assert "Ambivo API token: connected since" in text_of(html)
        stored = await gw.state.backend.store.get("connections:ambivo:uid_alice")
        assert stored is not None
        assert JWT_ALICE.encode() not in stored  # sealed, even in memory

        gone = await post(gw, "/connections/ambivo/disconnect", {"csrf": csrf})
        assert (gone.status, gone.headers["Location"]) == (
            303,
            "/connections?disconnected=ambivo",
        )
        assert await gw.state.backend.store.get("connections:ambivo:uid_alice") is None


async def test_forms_from_elsewhere_or_without_their_token_change_nothing() -> None:
    async with shipped() as (gw, _):
        await sign_in(gw, "alice", "alice-pass-1")
        csrf = await csrf_of(gw, "/connections/ambivo")
        form = {"csrf": csrf, "token": JWT_ALICE}
        foreign = await post(gw, "/connections/ambivo", form, Origin="https://evil.example")
        assert foreign.status == 403
        missing = await post(gw, "/connections/ambivo", {"token": JWT_ALICE})
        assert missing.status == 400
        forged = await post(gw, "/connections/ambivo", {"csrf": "x" * 32, "token": JWT_ALICE})
        assert forged.status == 400
        assert await gw.state.backend.store.get("connections:ambivo:uid_alice") is None

        # Another browser (no session) cannot use the form token either.
        async with aiohttp.ClientSession() as stranger:
            async with stranger.post(
                f"{gw.url}/connections/ambivo", data=form, allow_redirects=False
            ) as r:
                assert r.status == 401
                assert "Your sign-in expired: sign in again." in await r.text()
        assert await gw.state.backend.store.get("connections:ambivo:uid_alice") is None

        unknown = await page(gw, "/connections/nothing")
        assert unknown[0] == 404
        assert "No upstream called &#39;nothing&#39; takes your own account here." in unknown[1]


async def test_next_never_leaves_the_gateway() -> None:
    async with shipped() as (gw, _):
        for target in ("//evil.example/x", "https://evil.example", "/\\evil.example", "x"):
            form = {"username": "alice", "password": "alice-pass-1", "next": target}
            async with gw.http.post(
                f"{gw.url}/oauth/signin", data=form, allow_redirects=False
            ) as r:
                assert (r.status, r.headers["Location"]) == (303, "/connections")


async def test_wrong_password_on_the_sign_in_page() -> None:
    async with shipped() as (gw, _):
        form = {"username": "alice", "password": "wrong", "next": "/connections"}
        async with gw.http.post(f"{gw.url}/oauth/signin", data=form) as r:
            assert r.status == 401
            assert "Wrong username or password." in await r.text()
            assert "gateway_session" not in r.cookies


async def authorize_url(gw: RunningGateway, scope: str) -> tuple[str, str, str]:
    """(the authorization URL, its state, the PKCE verifier) as ChatGPT builds them."""
    verifier = generate_token(48)
    query = {
        "response_type": "code",
        "client_id": "gpt-client",
        "redirect_uri": CALLBACK,
        "scope": scope,
        "state": generate_token(20),
    }
    return f"{gw.url}/oauth/authorize?{urlencode(query)}", query["state"], verifier


async def test_consent_lists_the_connections_and_calls_carry_the_users_jwt() -> None:
    async with shipped() as (gw, ambivo):
        url, state, _ = await authorize_url(gw, "crm read:memories")
        async with gw.http.get(url) as first:
            keep_cookies(gw, first)
            hidden = dict(HIDDEN.findall(await first.text()))
        form = {**hidden, "username": "bob", "password": "bob-pass-2", "decision": "allow"}
        # Bob has not connected Ambivo: the page comes back signed in, listing it.
        async with gw.http.post(f"{gw.url}/oauth/authorize", data=form, allow_redirects=False) as r:
            assert r.status == 200
            keep_cookies(gw, r)
            html = await r.text()
        listed = text_of(html)
        assert "Signed in as bob." in listed
        assert "Your accounts these need: Ambivo API token: not connected" in listed
        link = re.search(r'href="(/connections/ambivo\?next=[^"]+)"', html)
        assert link is not None
        connect_path = link[1].replace("&amp;", "&")
        back = parse_qs(urlsplit(connect_path).query)["next"][0]
        assert back.startswith("/oauth/authorize?")
        csrf = await csrf_of(gw, connect_path)
        saved = await post(
            gw, "/connections/ambivo", {"csrf": csrf, "token": JWT_BOB, "next": back}
        )
        assert (saved.status, saved.headers["Location"]) == (303, back)

        status, html = await page(gw, back)
        assert status == 200
        assert "Ambivo API token: connected" in text_of(html)
        assert 'name="password"' not in html  # signed in: no password asked again
        hidden = dict(HIDDEN.findall(html))
        async with gw.http.post(
            f"{gw.url}/oauth/authorize",
            data={**hidden, "decision": "allow"},
            allow_redirects=False,
        ) as r:
            assert r.status == 302, await r.text()
            location = r.headers["Location"]
        query = parse_qs(urlsplit(location).query)
        assert query["state"] == [state]
        form = {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": CALLBACK,
            "client_id": "gpt-client",
            "client_secret": GOOD_SECRET,
        }
        async with gw.http.post(f"{gw.url}/oauth/token", data=form) as r:
            assert r.status == 200
            token = (await r.json())["access_token"]

        bearer = {"Authorization": f"Bearer {token}"}
        async with gw.http.post(f"{gw.url}/query", json={"query": "leads"}, headers=bearer) as r:
            assert r.status == 200, await r.text()
        sent = [seen for seen in ambivo.seen if seen.path == "/entity/natural_query"]
        assert sent[-1].headers["Authorization"] == f"Bearer {JWT_BOB}"

        # Ambivo refuses the saved JWT now (expired): a 401 that says where to fix it.
        REFUSED.add(JWT_BOB)
        async with gw.http.post(f"{gw.url}/query", json={"query": "leads"}, headers=bearer) as r:
            assert r.status == 401
            problem = await r.json()
        assert problem["type"] == "urn:problem:gateway:upstream-refused-credential"
        assert problem["detail"] == (
            f"ambivo refused your saved credential (401): open {gw.url}/connections/ambivo"
            " to connect it again, then try again"
        )
        assert problem["connect_url"] == f"{gw.url}/connections/ambivo"
        assert JWT_BOB not in str(problem)

        # Without the connection: the link to make it, never another user's token.
        csrf = await csrf_of(gw, "/connections")
        await post(gw, "/connections/ambivo/disconnect", {"csrf": csrf})
        async with gw.http.post(f"{gw.url}/query", json={"query": "leads"}, headers=bearer) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"] == 'Bearer realm="upstream"'
            problem = await r.json()
        assert problem["type"] == "urn:problem:gateway:upstream-not-connected"
        assert problem["detail"] == (
            f"ambivo is not connected for your account: open {gw.url}/connections/ambivo"
            " to connect it, then try again"
        )
        # A route outside the token's scopes.
        async with gw.http.get(f"{gw.url}/openai/models", headers=bearer) as r:
            assert r.status == 403
            assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
            assert (await r.json())["detail"] == "the token lacks the scope openai"


async def test_a_direct_caller_still_passes_its_own_jwt_through() -> None:
    async with shipped() as (gw, ambivo):
        headers = {"Authorization": f"Bearer {JWT_ALICE}"}
        async with gw.http.post(f"{gw.url}/query", json={"query": "x"}, headers=headers) as r:
            assert r.status == 200
        assert ambivo.seen[-1].headers["Authorization"] == f"Bearer {JWT_ALICE}"


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        pytest.param(
            {},
            "credentials required: send `Authorization: Bearer <token>` with a token of this"
            " gateway's sign-in or your own token",
            id="nothing",
        ),
        pytest.param(
            {"Authorization": "Bearer " + "a" * 42},
            "Invalid access token",
            id="unknown-gateway-token",
        ),
        pytest.param(
            {"Authorization": "Bearer short"},
            "the bearer token is not a JWT (three base64url parts)",
            id="neither",
        ),
    ],
)
async def test_which_scheme_a_bearer_token_is_for(headers: dict[str, str], detail: str) -> None:
    async with shipped() as (gw, _):
        async with gw.http.post(f"{gw.url}/query", json={"query": "x"}, headers=headers) as r:
            assert r.status == 401
            assert (await r.json())["detail"] == detail


async def test_oauth_behind_an_http_public_url_says_what_to_fix() -> None:
    """authlib refuses OAuth over http except on loopback: a clear 503, never a 500."""
    env = {"GATEWAY_PUBLIC_URL": "http://gateway.lan", "OAUTH_CLIENT_ID": "gpt-client"}
    env["OAUTH_CLIENT_SECRET"] = GOOD_SECRET
    async with run_gateway(REPO, env) as gw:
        assert gw.state.switch.get().warnings[0] == (
            "oauth: the public URL http://gateway.lan is not https: the authorization server"
            " refuses every request (only a loopback address may use http); set"
            " GATEWAY_PUBLIC_URL (server.public_url)"
        )
        url = (await authorize_url(gw, "crm"))[0]
        status, html = await page(gw, url.removeprefix(gw.url))
        assert status == 503
        assert (
            "OAuth needs this gateway&#39;s public URL to be https (set server.public_url,"
            " GATEWAY_PUBLIC_URL); only a loopback address may use http." in html
        )
        form = {"grant_type": "authorization_code", "code": "x", "client_id": "gpt-client"}
        async with gw.http.post(f"{gw.url}/oauth/token", data=form) as r:
            assert r.status == 503
            assert (await r.json())["error"] == "server_error"
