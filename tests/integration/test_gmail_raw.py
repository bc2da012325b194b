"""Reading Gmail messages through the shipped routes.d/gmail.yaml: `format=raw` parsed with
the standard library's `email` package (each part's charset, text/plain before text/html,
attachments listed without content, malformed mail never a 500, bounded answers), the
`format=full` path for messages over the answer cap, and the Gmail rate limits."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.plugin import html_to_text
from tests.conftest import REPO, GatewayFactory, RunningGateway
from tests.upstreams import mail
from tests.upstreams.google import GoogleState, google_app
from tests.upstreams.server import Upstream, serve_upstream

KEY = {"X-API-Key": "gateway-key-1"}
CLIENT_ID = "1234-abc.apps.googleusercontent.com"
CODE = "4/0AbCdEf-code"


@pytest.fixture
async def google() -> AsyncIterator[tuple[GoogleState, Upstream]]:
    state = GoogleState(
        client_id=CLIENT_ID, client_secret="GOCSPX-loopback-secret", valid_codes={CODE}
    )
    state.add_raw("multi", "t-multi", mail.multi_charset_message())
    state.add_raw("menu", "t-menu", mail.html_only_message())
    state.add_raw("latin", "t-latin", mail.mislabelled_latin1_message())
    state.add_raw("broken", "t-broken", mail.MALFORMED)
    state.add_raw("noboundary", "t-nob", mail.NO_BOUNDARY)
    state.add_raw("garbage", "t-garbage", b"\x00\xff garbage, no headers at all")
    app, recorder = google_app(state)
    async with serve_upstream(app, recorder) as upstream:
        yield state, upstream


def env(upstream: Upstream, **extra: str) -> dict[str, str]:
    return {
        "GATEWAY_API_KEY": "gateway-key-1",
        "GOOGLE_CLIENT_ID": CLIENT_ID,
        "GOOGLE_CLIENT_SECRET": "GOCSPX-loopback-secret",
        "GOOGLE_AUTH_URL": f"{upstream.url}/o/oauth2/v2/auth",
        "GOOGLE_TOKEN_URL": f"{upstream.url}/token",
        "GMAIL_API_URL": upstream.url,
        **extra,
    }


async def get(gw: RunningGateway, path: str, headers: dict[str, str] = KEY) -> tuple[int, Any]:
    async with gw.http.get(f"{gw.url}{path}", headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def connect(gw: RunningGateway) -> None:
    _, answer = await get(gw, "/gmail/auth/url")
    state = parse_qs(urlsplit(answer["auth_url"]).query)["state"][0]
    async with gw.http.get(f"{gw.url}/gmail/auth/callback?code={CODE}&state={state}") as r:
        assert r.status == 200


def formats(upstream: Upstream, message_id: str) -> list[str]:
    """The `format` of each call the loopback Gmail got for one message."""
    path = f"/gmail/v1/users/me/messages/{message_id}"
    return [seen.query.get("format", "") for seen in upstream.seen if seen.path == path]


MULTI = {
    "id": "multi",
    "thread_id": "t-multi",
    "headers": mail.MULTI_CHARSET_HEADERS,
    "body": mail.MULTI_CHARSET_BODY,
    "labels": ["INBOX", "UNREAD"],
    "attachments": mail.MULTI_CHARSET_ATTACHMENTS,
}


async def test_each_part_is_decoded_with_its_charset_and_attachments_are_listed(
    gateway: GatewayFactory, google: tuple[GoogleState, Upstream]
) -> None:
    _, upstream = google
    async with gateway(REPO, env(upstream)) as gw:
        await connect(gw)
        assert await get(gw, "/gmail/messages/multi") == (200, MULTI)
    assert formats(upstream, "multi") == ["raw"]  # one call, the whole message


async def test_html_only_is_made_plain_and_mislabelled_latin1_is_windows_1252(
    gateway: GatewayFactory, google: tuple[GoogleState, Upstream]
) -> None:
    _, upstream = google
    async with gateway(REPO, env(upstream)) as gw:
        await connect(gw)
        assert await get(gw, "/gmail/messages/menu") == (
            200,
            {
                "id": "menu",
                "thread_id": "t-menu",
                "headers": {
                    "From": "Bistro <bistro@example.com>",
                    "To": "me@example.com",
                    "Cc": "",
                    "Subject": "Menu",
                    "Date": "Thu, 04 Jul 2024 11:00:00 +0000",
                    "Message-ID": "<menu-1@example.com>",
                },
                "body": html_to_text(mail.HTML_ONLY),  # the gateway's own HTML-to-text
                "labels": ["INBOX", "UNREAD"],
                "attachments": [],
            },
        )
        status, latin = await get(gw, "/gmail/messages/latin")
        assert (status, latin["body"], latin["headers"]["Subject"]) == (
            200,
            "“Quoted” \u2013 in ISO-8859-1 (Windows wrote it)",
            "Café",  # =?iso-8859-1?q?Caf=E9?=
        )


async def test_malformed_mail_is_read_as_far_as_it_goes_never_a_500(
    gateway: GatewayFactory, google: tuple[GoogleState, Upstream]
) -> None:
    state, upstream = google
    async with gateway(REPO, env(upstream)) as gw:
        await connect(gw)
        assert await get(gw, "/gmail/messages/broken") == (
            200,
            {
                "id": "broken",
                "thread_id": "t-broken",
                "headers": {
                    "From": "Broken Sender <broken@example.com>",
                    "To": "me@example.com",
                    "Cc": "",
                    # an encoded word in an unknown charset, then raw Latin-1 bytes
                    "Subject": "caf\ufffd \ufffdt\ufffd",
                    "Date": "not a date",
                    "Message-ID": "<broken-1@example.com>",
                },
                "body": "caf\ufffd ok",  # charset="x-no-such-charset": UTF-8, replaced
                "labels": ["INBOX", "UNREAD"],
                # broken base64 (`AAEC!!!AwQ=`): the bytes that decode
                "attachments": [
                    {"filename": "broken.bin", "mime_type": "application/octet-stream", "size": 5}
                ],
            },
        )
        status, no_boundary = await get(gw, "/gmail/messages/noboundary")
        assert (status, no_boundary["body"], no_boundary["attachments"]) == (
            200,
            "Just text where the parts should be.",
            [],
        )
        status, garbage = await get(gw, "/gmail/messages/garbage")
        assert (status, garbage["body"], garbage["headers"]["Subject"]) == (
            200,
            "\x00ÿ garbage, no headers at all",  # no charset, not UTF-8: windows-1252
            "",
        )

        state.corrupt_raw.add("multi")
        status, problem = await get(gw, "/gmail/messages/multi")
        assert (status, problem["type"], problem["detail"]) == (
            502,
            "urn:problem:gateway:plugin-refused",
            "Gmail sent a `raw` message that is not base64url",
        )


async def test_a_message_the_parser_gives_up_on_is_read_from_format_full(
    gateway: GatewayFactory, google: tuple[GoogleState, Upstream]
) -> None:
    """3,000 nested multiparts: the standard library's parser raises RecursionError; the
    gateway answers from Gmail's own parse (`format=full`) instead of failing."""
    state, upstream = google
    nested = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(3000)
    )
    state.add_raw("deep", "t-deep", b"Subject: deep\r\n" + nested + b"\r\nbottom\r\n")
    async with gateway(REPO, env(upstream)) as gw:
        await connect(gw)
        status, answer = await get(gw, "/gmail/messages/deep")
    assert (status, answer["headers"]["Subject"], answer["body"], answer["attachments"]) == (
        200,
        "deep",
        "",
        [],
    )
    assert formats(upstream, "deep") == ["raw", "full"]


async def test_the_body_and_the_attachment_list_are_bounded(
    gateway: GatewayFactory, google: tuple[GoogleState, Upstream]
) -> None:
    state, upstream = google
    long = mail.MIMEText("é" * 30_000, "plain", "iso-8859-1")
    long["Subject"] = "long"
    state.add_raw("long", "t-long", mail.wire(long))
    many = mail.MIMEMultipart("mixed")
    many.attach(mail.MIMEText("see the files", "plain", "us-ascii"))
    for index in range(120):
        part = mail.MIMEApplication(b"x" * index, "octet-stream")
        part.add_header("Content-Disposition", "attachment", filename=f"f{index}.bin")
        many.attach(part)
    state.add_raw("many", "t-many", mail.wire(many))
    async with gateway(REPO, env(upstream)) as gw:
        await connect(gw)
        status, answer = await get(gw, "/gmail/messages/long")
        assert (status, answer["body"]) == (200, "é" * 20_000)  # max_body_chars
        status, answer = await get(gw, "/gmail/messages/many")
        assert (status, answer["body"]) == (200, "see the files")
        assert answer["attachments"] == [  # max_attachments
            {"filename": f"f{index}.bin", "mime_type": "application/octet-stream", "size": index}
            for index in range(100)
        ]


async def test_a_message_over_the_answer_cap_is_read_from_format_full(
    gateway: GatewayFactory, google: tuple[GoogleState, Upstream], tmp_path: Path
) -> None:
    """Over the gmail upstream's `max_answer_bytes` the raw answer is not read; the same
    answer comes from `format=full`, where Gmail leaves out the attachments' content."""
    state, upstream = google
    big = mail.multi_charset_message().replace(
        b"Message-ID: <multi-1@example.com>", b"Message-ID: <big-1@example.com>"
    )
    message = mail.email.message_from_bytes(big)
    video = mail.MIMEApplication(bytes(200_000), "octet-stream")
    video.add_header("Content-Disposition", "attachment", filename="video.bin")
    message.attach(video)
    state.add_raw("big", "t-big", mail.wire(message))
    folder = tmp_path / "config"
    shutil.copytree(REPO, folder, ignore=shutil.ignore_patterns(".*", "tests", "bench"))
    gmail_yaml = folder / "routes.d" / "gmail.yaml"
    text = gmail_yaml.read_text().replace(
        "  timeout: 20s\n", "  timeout: 20s\n  max_answer_bytes: 100000\n"
    )
    gmail_yaml.write_text(text)
    expected = {
        **MULTI,
        "id": "big",
        "thread_id": "t-big",
        "headers": {**mail.MULTI_CHARSET_HEADERS, "Message-ID": "<big-1@example.com>"},
        "attachments": [
            *mail.MULTI_CHARSET_ATTACHMENTS,
            {"filename": "video.bin", "mime_type": "application/octet-stream", "size": 200_000},
        ],
    }
    async with gateway(folder, env(upstream)) as gw:
        await connect(gw)
        assert await get(gw, "/gmail/messages/big") == (200, expected)
        assert await get(gw, "/gmail/messages/multi") == (200, MULTI)  # small: raw
    assert formats(upstream, "big") == ["raw", "full"]
    assert formats(upstream, "multi") == ["raw"]
    state.valid_codes.add(CODE)  # a new gateway (memory store): connect again
    async with gateway(REPO, env(upstream)) as gw:  # the default cap (10 MiB): raw
        await connect(gw)
        assert await get(gw, "/gmail/messages/big") == (200, expected)
    assert formats(upstream, "big") == ["raw", "full", "raw"]


async def test_gmail_routes_are_rate_limited_per_api_key(
    gateway: GatewayFactory, google: tuple[GoogleState, Upstream]
) -> None:
    _, upstream = google
    environ = env(upstream, GMAIL_RATE_LIMIT="4", GATEWAY_API_KEY_NEXT="gateway-key-2")
    async with gateway(REPO, environ) as gw:
        await connect(gw)  # gmailAuthUrl: one of this key's 4; the callback counts per IP
        for _ in range(3):
            async with gw.http.get(f"{gw.url}/gmail/messages/multi", headers=KEY) as response:
                assert response.status == 200
                assert response.headers["RateLimit-Limit"] == "4"
        async with gw.http.get(f"{gw.url}/gmail/auth/status", headers=KEY) as response:
            assert response.status == 429  # one budget for all Gmail routes
            assert response.headers["Retry-After"] == "15"
            problem = await response.json()
        assert problem["detail"] == "rate limit of 4 per 60s reached; retry in 15s"
        assert (await get(gw, "/gmail/messages/multi", {"X-API-Key": "gateway-key-2"}))[0] == 200

        # The OAuth callback has no API key: 10 per minute per client IP, of its own.
        statuses = []
        for _ in range(11):
            async with gw.http.get(f"{gw.url}/gmail/auth/callback?code=x&state=y") as response:
                statuses.append(response.status)
        assert statuses == [400] * 9 + [429] * 2  # connect() spent the first
