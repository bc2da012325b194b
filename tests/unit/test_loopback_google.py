"""The loopback Google OAuth token endpoint and Gmail API behave as their wire facts say."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import pytest

from tests.upstreams.google import GoogleState, b64url, decode_raw, google_app
from tests.upstreams.server import Upstream, serve_upstream

CLIENT_ID, CLIENT_SECRET = "cid.apps.googleusercontent.com", "GOCSPX-secret"
REDIRECT = "http://127.0.0.1/gmail/auth/callback"
GMAIL = "/gmail/v1/users/me"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def google() -> AsyncIterator[tuple[Upstream, GoogleState]]:
    state = GoogleState(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, valid_codes={"4/0Acode"})
    state.add_message(
        "18f0000000000001",
        "18f0000000000001",
        sender="Alice <alice@example.com>",
        to="me@example.com",
        subject="Hello",
        date="Wed, 29 May 2024 10:00:00 +0000",
        message_id_header="<CAF=abc@mail.gmail.com>",
        text="Hi, can we meet tomorrow?",
        html="<p>Hi, can we meet tomorrow?</p>",
    )
    state.add_message(
        "18f0000000000002",
        "18f0000000000001",
        sender="Bob <bob@example.com>",
        to="me@example.com",
        subject="Re: Hello",
        date="Thu, 30 May 2024 10:00:00 +0000",
        message_id_header="<CAF=def@mail.gmail.com>",
        text="Sure, at noon.",
        references="<CAF=abc@mail.gmail.com>",
    )
    app, recorder = google_app(state)
    async with serve_upstream(app, recorder) as upstream:
        yield upstream, state


async def post_token(
    http: aiohttp.ClientSession, url: str, form: dict[str, str], **kwargs: Any
) -> tuple[int, Any]:
    async with http.post(f"{url}/token", data=form, **kwargs) as response:
        return response.status, await response.json()


def basic(client_id: str, client_secret: str) -> dict[str, str]:
    """RFC 6749 section 2.3.1: each part form-urlencoded, then HTTP Basic."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def client(**form: str) -> dict[str, str]:
    return {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form}


async def exchange(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    status, body = await post_token(
        http,
        url,
        client(grant_type="authorization_code", code="4/0Acode", redirect_uri=REDIRECT),
    )
    assert status == 200, body
    return dict(body)


async def gmail(
    http: aiohttp.ClientSession, url: str, path: str, token: str | None, **kwargs: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    method = "POST" if "json" in kwargs else "GET"
    async with http.request(method, f"{url}{GMAIL}{path}", headers=headers, **kwargs) as response:
        return response.status, await response.json(), response


async def test_code_exchange_is_single_use(
    http: aiohttp.ClientSession, google: tuple[Upstream, GoogleState]
) -> None:
    upstream, state = google
    body = await exchange(http, upstream.url)
    assert set(body) == {"access_token", "expires_in", "refresh_token", "scope", "token_type"}
    assert body["access_token"].startswith("ya29.")
    assert body["refresh_token"].startswith("1//")
    assert (body["expires_in"], body["token_type"]) == (3600, "Bearer")
    assert body["scope"] == "https://www.googleapis.com/auth/gmail.modify"
    assert state.code_calls == 1
    assert body["refresh_token"] in state.refresh_tokens
    assert upstream.seen[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    status, again = await post_token(
        http,
        upstream.url,
        client(grant_type="authorization_code", code="4/0Acode", redirect_uri=REDIRECT),
    )
    assert (status, again) == (400, {"error": "invalid_grant", "error_description": "Bad Request"})
    status, missing = await post_token(
        http, upstream.url, client(grant_type="authorization_code", code="4/0Acode")
    )
    assert (status, missing["error"]) == (400, "invalid_request")
    status, other = await post_token(http, upstream.url, client(grant_type="password"))
    assert (status, other["error"]) == (400, "unsupported_grant_type")


async def test_wrong_client_is_401_by_form_and_basic(
    http: aiohttp.ClientSession, google: tuple[Upstream, GoogleState]
) -> None:
    upstream, state = google
    expected = {"error": "invalid_client", "error_description": "The OAuth client was not found."}
    form = {"grant_type": "authorization_code", "code": "4/0Acode", "redirect_uri": REDIRECT}
    status, body = await post_token(
        http, upstream.url, {**form, "client_id": CLIENT_ID, "client_secret": "wrong"}
    )
    assert (status, body) == (401, expected)
    status, body = await post_token(http, upstream.url, form, headers=basic(CLIENT_ID, "wrong"))
    assert (status, body) == (401, expected)
    status, body = await post_token(http, upstream.url, form)  # no client at all
    assert (status, body) == (401, expected)
    assert state.code_calls == 0
    assert "4/0Acode" in state.valid_codes
    status, body = await post_token(
        http, upstream.url, form, headers=basic(CLIENT_ID, CLIENT_SECRET)
    )
    assert status == 200
    assert "refresh_token" in body


async def test_refresh_does_not_rotate_and_is_counted(
    http: aiohttp.ClientSession, google: tuple[Upstream, GoogleState]
) -> None:
    upstream, state = google
    first = await exchange(http, upstream.url)
    form = client(grant_type="refresh_token", refresh_token=first["refresh_token"])
    results = await asyncio.gather(*(post_token(http, upstream.url, form) for _ in range(2)))
    for status, body in results:
        assert status == 200
        assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
        assert body["access_token"] != first["access_token"]
    assert state.refresh_calls == 2
    state.revoke_all()
    assert first["refresh_token"] in state.revoked
    status, body = await post_token(http, upstream.url, form)
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    )
    status, body = await post_token(http, upstream.url, {**form, "refresh_token": "1//unknown"})
    assert (status, body["error"]) == (400, "invalid_grant")
    assert state.refresh_calls == 2


async def test_gmail_requires_a_live_access_token(
    http: aiohttp.ClientSession, google: tuple[Upstream, GoogleState]
) -> None:
    upstream, state = google
    for token in (None, "ya29.bogus"):
        status, body, response = await gmail(http, upstream.url, "/messages", token)
        assert status == 401
        assert body["error"]["status"] == "UNAUTHENTICATED"
        assert body["error"]["errors"][0]["reason"] == "authError"
        assert body["error"]["message"].startswith("Request had invalid authentication")
        assert response.headers["WWW-Authenticate"] == (
            'Bearer realm="https://accounts.google.com/"'
        )
    token = (await exchange(http, upstream.url))["access_token"]
    status, _, _ = await gmail(http, upstream.url, "/profile", token)
    assert status == 200
    state.expire_access_tokens()
    status, body, _ = await gmail(http, upstream.url, "/messages", token)
    assert (status, body["error"]["code"]) == (401, 401)


async def test_list_metadata_and_full_shapes(
    http: aiohttp.ClientSession, google: tuple[Upstream, GoogleState]
) -> None:
    upstream, _ = google
    token = (await exchange(http, upstream.url))["access_token"]
    url = upstream.url
    status, body, _ = await gmail(http, url, "/messages", token, params={"maxResults": "10"})
    assert status == 200
    assert body == {
        "messages": [
            {"id": "18f0000000000002", "threadId": "18f0000000000001"},
            {"id": "18f0000000000001", "threadId": "18f0000000000001"},
        ],
        "resultSizeEstimate": 2,
    }
    status, body, _ = await gmail(http, url, "/messages", token, params={"q": "ALICE"})
    assert [m["id"] for m in body["messages"]] == ["18f0000000000001"]
    status, body, _ = await gmail(http, url, "/messages", token, params={"q": "nothing-here"})
    assert (status, body) == (200, {"resultSizeEstimate": 0})
    status, body, _ = await gmail(http, url, "/messages", token, params={"maxResults": "501"})
    assert (status, body["error"]["status"], body["error"]["code"]) == (
        400,
        "INVALID_ARGUMENT",
        400,
    )

    params = [("format", "metadata"), ("metadataHeaders", "from"), ("metadataHeaders", "Subject")]
    status, body, _ = await gmail(http, url, "/messages/18f0000000000001", token, params=params)
    assert status == 200
    assert body["payload"] == {
        "partId": "",
        "mimeType": "multipart/alternative",
        "filename": "",
        "headers": [
            {"name": "From", "value": "Alice <alice@example.com>"},
            {"name": "Subject", "value": "Hello"},
        ],
    }
    assert body["snippet"] == "Hi, can we meet tomorrow?"
    assert body["labelIds"] == ["INBOX", "UNREAD"]

    status, full, _ = await gmail(http, url, "/messages/18f0000000000001", token)
    assert status == 200
    assert set(full) == {
        "id",
        "threadId",
        "labelIds",
        "snippet",
        "historyId",
        "internalDate",
        "sizeEstimate",
        "payload",
    }
    assert full["internalDate"] == "1716976800000"
    plain, html = full["payload"]["parts"]
    assert (plain["mimeType"], html["mimeType"]) == ("text/plain", "text/html")
    # body.data: the part's bytes, transfer encoding undone (the line end is the part's)
    assert base64.urlsafe_b64decode(plain["body"]["data"]) == b"Hi, can we meet tomorrow?\r\n"
    assert plain["body"]["size"] == len(b"Hi, can we meet tomorrow?\r\n")
    assert (plain["partId"], html["partId"]) == ("0", "1")
    assert {"name": "Content-Type", "value": 'text/plain; charset="utf-8"'} in plain["headers"]
    names = [h["name"] for h in full["payload"]["headers"]]
    assert {"From", "To", "Subject", "Date", "Message-ID"} <= set(names)
    status, reply, _ = await gmail(
        http, url, "/messages/18f0000000000002", token, params={"format": "metadata"}
    )
    assert {"name": "References", "value": "<CAF=abc@mail.gmail.com>"} in reply["payload"][
        "headers"
    ]

    status, body, _ = await gmail(http, url, "/messages/nope", token)
    assert status == 404
    assert body["error"]["status"] == "NOT_FOUND"
    assert body["error"]["message"] == "Requested entity was not found."


async def test_send_round_trip(
    http: aiohttp.ClientSession, google: tuple[Upstream, GoogleState]
) -> None:
    upstream, state = google
    token = (await exchange(http, upstream.url))["access_token"]
    mail = EmailMessage()
    mail["To"] = "bob@example.com"
    mail["Subject"] = "Re: Hello"
    mail["In-Reply-To"] = "<CAF=abc@mail.gmail.com>"
    mail["References"] = "<CAF=abc@mail.gmail.com>"
    mail.set_content("Thanks!")
    raw = b64url(mail.as_bytes()).rstrip("=")  # Gmail takes it with or without padding
    payload = {"raw": raw, "threadId": "18f0000000000001"}
    status, body, _ = await gmail(http, upstream.url, "/messages/send", token, json=payload)
    assert status == 200
    assert body["threadId"] == "18f0000000000001"
    assert body["labelIds"] == ["SENT"]
    assert body["id"]
    assert state.sent == [payload]
    decoded = decode_raw(state.sent[0]["raw"])
    assert decoded["In-Reply-To"] == "<CAF=abc@mail.gmail.com>"
    assert decoded["Subject"] == "Re: Hello"
    assert decoded.get_content().strip() == "Thanks!"

    status, body, _ = await gmail(http, upstream.url, "/messages/send", token, json={"raw": "a"})
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")
    status, body, _ = await gmail(http, upstream.url, "/messages/send", token, json={"raw": "a+b/"})
    assert status == 400
    status, body, _ = await gmail(http, upstream.url, "/messages/send", token, json={"raw": raw})
    assert status == 200
    assert body["threadId"] == body["id"]
    assert len(state.sent) == 2


def test_decode_raw_matches_the_documented_vector() -> None:
    raw = (
        "VG86IGJvYkBleGFtcGxlLmNvbQ0KU3ViamVjdDogUmU6IEhlbGxvDQpJbi1SZXBseS1UbzogPENBRj1hYmNAbWFp"
        "bC5nbWFpbC5jb20-DQpSZWZlcmVuY2VzOiA8Q0FGPWFiY0BtYWlsLmdtYWlsLmNvbT4NCkNvbnRlbnQtVHlwZTog"
        "dGV4dC9wbGFpbjsgY2hhcnNldD0idXRmLTgiDQoNClRoYW5rcyENCg=="
    )
    for value in (raw, raw.rstrip("=")):
        message = decode_raw(value)
        assert message["To"] == "bob@example.com"
        assert message["References"] == "<CAF=abc@mail.gmail.com>"
        assert message.get_content() == "Thanks!\r\n" or message.get_content() == "Thanks!\n"
