"""Seed 001: Gmail through the shipped routes.d/gmail.yaml and plugins/gmail.py.

The gateway is Google's OAuth client (`oauth2_authorization_code`): connect once through
the callback, then list, read, send and reply against a loopback Google token endpoint and
Gmail API; expired access tokens are refreshed once for 50 concurrent requests; a revoked
refresh token is a clear 401. With the memory store and with Redis.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from redis.asyncio import Redis

from tests.conftest import REDIS_URL, REPO, TEST_ENCRYPTION_KEY, GatewayFactory, RunningGateway
from tests.upstreams.google import GoogleState, decode_raw, google_app
from tests.upstreams.server import Upstream, serve_upstream

KEY = {"X-API-Key": "gateway-key-1"}


@pytest.fixture
async def google() -> AsyncIterator[tuple[GoogleState, Upstream]]:
    state = GoogleState(
        client_id="1234-abc.apps.googleusercontent.com",
        client_secret="GOCSPX-loopback-secret",
        valid_codes={"4/0AbCdEf-code"},
    )
    state.add_message(
        "m1",
        "t1",
        sender="Ada Lovelace <ada@example.com>",
        to="me@example.com",
        subject="Engine notes",
        date="Mon, 01 Jul 2024 09:00:00 +0000",
        message_id_header="<notes-1@example.com>",
        text="The engine weaves algebraic patterns.",
        html="<p>The engine <b>weaves</b> algebraic patterns.</p>",
        references="<earlier@example.com>",
    )
    state.add_message(
        "m2",
        "t2",
        sender="Alan Turing <alan@example.com>",
        to="me@example.com",
        subject="Lunch?",
        date="Tue, 02 Jul 2024 12:00:00 +0000",
        message_id_header="<lunch-2@example.com>",
        text="Shall we?",
    )
    app, recorder = google_app(state)
    async with serve_upstream(app, recorder) as upstream:
        yield state, upstream


def env(upstream: Upstream, **extra: str) -> dict[str, str]:
    return {
        "GATEWAY_API_KEY": "gateway-key-1",
        "GOOGLE_CLIENT_ID": "1234-abc.apps.googleusercontent.com",
        "GOOGLE_CLIENT_SECRET": "GOCSPX-loopback-secret",
        "GOOGLE_AUTH_URL": f"{upstream.url}/o/oauth2/v2/auth",
        "GOOGLE_TOKEN_URL": f"{upstream.url}/token",
        "GMAIL_API_URL": upstream.url,
        **extra,
    }


async def get(gw: RunningGateway, path: str) -> tuple[int, Any]:
    async with gw.http.get(f"{gw.url}{path}", headers=KEY) as response:
        return response.status, await response.json(content_type=None)


async def post(gw: RunningGateway, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with gw.http.post(f"{gw.url}{path}", json=body, headers=KEY) as response:
        return response.status, await response.json(content_type=None)


async def check_gmail(
    gw: RunningGateway, state: GoogleState, upstream: Upstream, redis_namespace: str | None = None
) -> None:
    """``redis_namespace``: the gateway keeps its tokens there; they must be sealed."""
    assert await get(gw, "/gmail/auth/status") == (200, {"connected": False, "user": "default"})
    status, problem = await get(gw, "/gmail/messages")
    assert (status, problem["detail"]) == (
        401,
        "gmail: not connected; reconnect via /gmail/auth/url",
    )

    # Connect: the authorization URL, then Google's redirect to the callback.
    status, answer = await get(gw, "/gmail/auth/url")
    assert status == 200
    url = urlsplit(answer["auth_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{upstream.url}/o/oauth2/v2/auth"
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert query["client_id"] == state.client_id
    assert query["redirect_uri"] == "http://127.0.0.1:8080/gmail/auth/callback"
    assert query["scope"] == "https://www.googleapis.com/auth/gmail.modify"
    assert (query["access_type"], query["prompt"], query["response_type"]) == (
        "offline",
        "consent",
        "code",
    )
    callback = f"{gw.url}/gmail/auth/callback?code=4/0AbCdEf-code&state={query['state']}"
    async with gw.http.get(callback) as response:  # no API key: it is the user's browser
        assert (response.status, await response.json()) == (
            200,
            {"status": "connected", "user": "default"},
        )
    async with gw.http.get(callback) as response:
        assert response.status == 400  # a state works once
        assert (await response.json())["detail"] == (
            "unknown or expired state: start again at the authorization URL"
        )
    exchange = next(seen for seen in upstream.seen if seen.path == "/token")
    assert parse_qs(exchange.body.decode())["grant_type"] == ["authorization_code"]
    status, connected = await get(gw, "/gmail/auth/status")
    assert connected["connected"] is True
    if redis_namespace is not None:
        await assert_sealed(redis_namespace, state)
    assert 3500 < connected["access_token_expires_in"] <= 3600

    # Read.
    status, listed = await get(gw, "/gmail/messages?max_results=5")
    assert status == 200
    assert listed["messages"] == [
        {
            "id": "m2",
            "thread_id": "t2",
            "from": "Alan Turing <alan@example.com>",
            "subject": "Lunch?",
            "date": "Tue, 02 Jul 2024 12:00:00 +0000",
            "snippet": "Shall we?",
        },
        {
            "id": "m1",
            "thread_id": "t1",
            "from": "Ada Lovelace <ada@example.com>",
            "subject": "Engine notes",
            "date": "Mon, 01 Jul 2024 09:00:00 +0000",
            "snippet": "The engine weaves algebraic patterns.",
        },
    ]
    metadata = next(s for s in upstream.seen if s.path == "/gmail/v1/users/me/messages/m1")
    assert "format=metadata" in metadata.raw_path
    status, message = await get(gw, "/gmail/messages/m1")
    assert (status, message["body"]) == (200, "The engine weaves algebraic patterns.")
    assert message["headers"]["Message-ID"] == "<notes-1@example.com>"
    assert (await get(gw, "/gmail/messages/nope"))[0] == 404

    # Send: an RFC 2822 message, base64url in `raw`.
    status, sent = await post(
        gw,
        "/gmail/send",
        {"to": "bob@example.com", "subject": "Hello", "body": "Hi Bob,\nsee you.", "cc": "c@x.io"},
    )
    assert (status, sent["status"]) == (200, "sent")
    raw = decode_raw(state.sent[-1]["raw"])
    assert (raw["To"], raw["Cc"], raw["Subject"]) == ("bob@example.com", "c@x.io", "Hello")
    assert raw.get_content().strip() == "Hi Bob,\r\nsee you."  # RFC 2822 line ends
    assert (await post(gw, "/gmail/send", {"to": "bob@example.com"}))[0] == 400
    sent_before = len(state.sent)
    for field in ("to", "cc", "subject"):
        injected = {"to": "bob@example.com", "subject": "Hi", "body": "x", "cc": "c@x.io"}
        injected[field] += "\r\nBcc: eve@evil.example"
        status, problem = await post(gw, "/gmail/send", injected)
        assert (status, problem["detail"]) == (400, f"`{field}` must not contain a line break")
    assert len(state.sent) == sent_before  # nothing reached Gmail

    # Reply in the thread.
    status, replied = await post(gw, "/gmail/reply", {"message_id": "m1", "body": "Noted!"})
    assert (status, replied["thread_id"]) == (200, "t1")
    assert state.sent[-1]["threadId"] == "t1"
    raw = decode_raw(state.sent[-1]["raw"])
    assert raw["To"] == "Ada Lovelace <ada@example.com>"
    assert raw["Subject"] == "Re: Engine notes"
    assert raw["In-Reply-To"] == "<notes-1@example.com>"
    assert raw["References"] == "<earlier@example.com> <notes-1@example.com>"

    # The access token expires: 50 concurrent calls, one refresh upstream, all succeed.
    state.expire_access_tokens()
    refreshes_before = state.refresh_calls
    results = await asyncio.gather(*(get(gw, "/gmail/messages/m2") for _ in range(50)))
    assert [status for status, _ in results] == [200] * 50
    assert state.refresh_calls == refreshes_before + 1

    # Revoked at Google: a clear 401 telling the user to reconnect.
    state.revoke_all()
    state.expire_access_tokens()
    status, problem = await get(gw, "/gmail/messages")
    assert (status, problem["detail"]) == (
        401,
        "gmail: the connection was revoked or expired; reconnect via /gmail/auth/url",
    )
    assert problem["type"] == "urn:problem:gateway:upstream-not-connected"
    assert (await get(gw, "/gmail/auth/status"))[1]["connected"] is False


async def test_gmail_with_the_memory_store(
    gateway: GatewayFactory, google: tuple[GoogleState, Upstream]
) -> None:
    state, upstream = google
    async with gateway(REPO, env(upstream)) as gw:
        await check_gmail(gw, state, upstream)


async def test_gmail_with_redis(
    gateway: GatewayFactory, google: tuple[GoogleState, Upstream], redis_namespace: str
) -> None:
    state, upstream = google
    extra = env(
        upstream,
        GATEWAY_STORE_URL=REDIS_URL,
        GATEWAY_STORE_NAMESPACE=redis_namespace,
        GATEWAY_ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY,
    )
    async with gateway(REPO, extra) as gw:
        await check_gmail(gw, state, upstream, redis_namespace)


async def assert_sealed(namespace: str, state: GoogleState) -> None:
    """The stored connection is a Fernet token: no refresh token readable in Redis."""
    redis = Redis.from_url(REDIS_URL)
    try:
        stored = await redis.get(f"{namespace}:oauth2:gmail:tokens:default")
    finally:
        await redis.aclose()
    assert stored is not None
    assert stored.startswith(b"gAAAAA")
    assert state.refresh_tokens
    for token in state.refresh_tokens:
        assert token.encode() not in stored


async def test_gmail_with_redis_needs_an_encryption_key(
    gateway: GatewayFactory, google: tuple[GoogleState, Upstream], redis_namespace: str
) -> None:
    """Refresh tokens are never kept in Redis in plaintext: without a key, 503."""
    _, upstream = google
    extra = env(upstream, GATEWAY_STORE_URL=REDIS_URL, GATEWAY_STORE_NAMESPACE=redis_namespace)
    async with gateway(REPO, extra) as gw:
        status, body = await get(gw, "/gmail/auth/status")
    assert (status, body["detail"]) == (
        503,
        'upstream "gmail" keeps users\' credentials, and the store is durable: set '
        "`store.encryption_keys` (GATEWAY_ENCRYPTION_KEYS; `gateway secret-key` makes one)",
    )


async def test_tokens_are_refreshed_before_they_expire(
    gateway: GatewayFactory, google: tuple[GoogleState, Upstream]
) -> None:
    """No 401 first: a token within `refresh_margin` (60s) of expiry is refreshed ahead."""
    state, upstream = google
    state.access_ttl = 62
    async with gateway(REPO, env(upstream)) as gw:
        _, answer = await get(gw, "/gmail/auth/url")
        query = parse_qs(urlsplit(answer["auth_url"]).query)
        async with gw.http.get(
            f"{gw.url}/gmail/auth/callback?code=4/0AbCdEf-code&state={query['state'][0]}"
        ) as response:
            assert response.status == 200
        assert (await get(gw, "/gmail/messages/m1"))[0] == 200
        assert state.refresh_calls == 0
        await asyncio.sleep(2.1)  # now less than 60s are left
        assert (await get(gw, "/gmail/messages/m1"))[0] == 200
        assert state.refresh_calls == 1
    gmail_calls = [seen for seen in upstream.seen if seen.path.startswith("/gmail/v1/")]
    assert len(gmail_calls) == 2  # no refused call, no retry


PROFILE_ROUTE = """
  - id: gmailProfile
    path: /gmail/profile
    summary: The connected mailbox's address and counts (a declared route, no plugin)
    tags: [gmail]
    upstream: {path: /gmail/v1/users/me/profile}
"""


async def test_a_refused_unexpired_token_is_refreshed_once_for_declared_and_plugin_routes(
    gateway: GatewayFactory, google: tuple[GoogleState, Upstream], tmp_path: Path
) -> None:
    """One outbound-auth flow: a 401 for a token that had not expired refreshes it once and
    sends again, on a declared proxy route exactly as on a plugin's client."""
    state, upstream = google
    folder = tmp_path / "config"
    shutil.copytree(REPO, folder, ignore=shutil.ignore_patterns(".*", "tests", "bench"))
    gmail_yaml = folder / "routes.d" / "gmail.yaml"
    gmail_yaml.write_text(gmail_yaml.read_text() + PROFILE_ROUTE)
    async with gateway(folder, env(upstream)) as gw:
        _, answer = await get(gw, "/gmail/auth/url")
        query = parse_qs(urlsplit(answer["auth_url"]).query)
        async with gw.http.get(
            f"{gw.url}/gmail/auth/callback?code=4/0AbCdEf-code&state={query['state'][0]}"
        ) as response:
            assert response.status == 200

        state.refuse_access_tokens()
        status, profile = await get(gw, "/gmail/profile")
        assert (status, profile["emailAddress"]) == (200, state.email_address)
        assert state.refresh_calls == 1

        state.refuse_access_tokens()
        status, message = await get(gw, "/gmail/messages/m1")
        assert (status, message["id"]) == (200, "m1")
        assert state.refresh_calls == 2
    # Refused once, then sent once more with the refreshed token.
    sent = [
        seen.headers["Authorization"] for seen in upstream.seen if seen.path.endswith("/profile")
    ]
    assert len(sent) == 2
    assert sent[0] != sent[1]


async def test_the_original_backends_redirect_path_connects(
    gateway: GatewayFactory, google: tuple[GoogleState, Upstream]
) -> None:
    """A Google client registered with <public_url>/oauth2callback (the original backend's)
    keeps working: GMAIL_REDIRECT_PATH names it, and that path takes Google's redirect."""
    _, upstream = google
    async with gateway(REPO, env(upstream, GMAIL_REDIRECT_PATH="/oauth2callback")) as gw:
        _, answer = await get(gw, "/gmail/auth/url")
        query = {k: v[0] for k, v in parse_qs(urlsplit(answer["auth_url"]).query).items()}
        assert query["redirect_uri"] == "http://127.0.0.1:8080/oauth2callback"
        async with gw.http.get(
            f"{gw.url}/oauth2callback?code=4/0AbCdEf-code&state={query['state']}"
        ) as response:
            assert (response.status, await response.json()) == (
                200,
                {"status": "connected", "user": "default"},
            )
        exchange = next(seen for seen in upstream.seen if seen.path == "/token")
        assert parse_qs(exchange.body.decode())["redirect_uri"] == [
            "http://127.0.0.1:8080/oauth2callback"
        ]
        assert (await get(gw, "/gmail/messages/m1"))[0] == 200
