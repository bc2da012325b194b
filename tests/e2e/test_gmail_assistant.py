"""Seed 001 end to end: the real `gateway serve` of the shipped config as the original
assistant (Gmail and desktop apps behind one API key): connect Gmail at the loopback Google,
read a multi-charset message with attachments, list the apps; the `assistant` profile is
one ChatGPT Action with both."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.conftest import REPO
from tests.e2e.helpers import CLEAN_ENV, serving
from tests.upstreams import mail
from tests.upstreams.google import GoogleState, google_app
from tests.upstreams.server import serve_upstream

KEY = {"X-API-Key": "e2e-api-key"}
SECRET = "GOCSPX-e2e-secret"


async def test_the_assistant_reads_a_multi_charset_message_and_lists_apps(
    tmp_path: Path,
) -> None:
    google = GoogleState(
        client_id="e2e.apps.googleusercontent.com", client_secret=SECRET, valid_codes={"4/0Ae2e"}
    )
    google.add_raw("multi", "t-multi", mail.multi_charset_message())
    app, recorder = google_app(google)
    async with serve_upstream(app, recorder) as upstream:
        env = {
            **CLEAN_ENV,
            "GATEWAY_API_KEY": KEY["X-API-Key"],
            "GOOGLE_CLIENT_ID": google.client_id,
            "GOOGLE_CLIENT_SECRET": SECRET,
            "GOOGLE_AUTH_URL": f"{upstream.url}/o/oauth2/v2/auth",
            "GOOGLE_TOKEN_URL": f"{upstream.url}/token",
            "GMAIL_API_URL": upstream.url,
        }
        log = tmp_path / "gateway.log"
        async with serving(REPO, env, log) as (url, _), aiohttp.ClientSession() as http:
            async with http.get(f"{url}/gmail/auth/url", headers=KEY) as r:
                state = parse_qs(urlsplit((await r.json())["auth_url"]).query)["state"][0]
            async with http.get(f"{url}/gmail/auth/callback?code=4/0Ae2e&state={state}") as r:
                assert (r.status, await r.json()) == (
                    200,
                    {"status": "connected", "user": "default"},
                )

            async with http.get(f"{url}/gmail/messages", headers=KEY) as r:
                assert r.status == 200
                assert r.headers["RateLimit-Limit"] == "120"  # GMAIL_RATE_LIMIT's default
                assert await r.json() == {
                    "messages": [
                        {
                            "id": "multi",
                            "thread_id": "t-multi",
                            "from": "René Lévesque <rene@example.com>",
                            "subject": "Café crème à 10 h",
                            "date": "Wed, 03 Jul 2024 08:30:00 +0200",
                            "snippet": mail.LATIN1_TEXT,
                        }
                    ]
                }
            async with http.get(f"{url}/gmail/messages/multi", headers=KEY) as r:
                assert (r.status, await r.json()) == (
                    200,
                    {
                        "id": "multi",
                        "thread_id": "t-multi",
                        "headers": mail.MULTI_CHARSET_HEADERS,
                        "body": "Bonjour, le café crème est prêt à 10 h.\n"
                        "“Smart quotes” cost 5 € \u2013 not 4 €.\n"
                        "日本語のメールです。\n"
                        "会議は明日の十時です。",
                        "labels": ["INBOX", "UNREAD"],
                        "attachments": [
                            {
                                "filename": "report.pdf",
                                "mime_type": "application/pdf",
                                "size": len(mail.PDF),
                            },
                            {"filename": "résumé.csv", "mime_type": "text/csv", "size": 28},
                        ],
                    },
                )

            async with http.get(f"{url}/apps/list", headers=KEY) as r:
                assert r.status == 200
                assert r.headers["RateLimit-Limit"] == "60"  # APPS_RATE_LIMIT's default
                apps = (await r.json())["apps"]
            assert [app["name"] for app in apps] == [
                "notepad",
                "calculator",
                "browser",
                "chrome",
                "firefox",
                "vscode",
            ]

            async with http.get(f"{url}/actions/assistant/openapi.json") as r:
                assert r.status == 200
                document = await r.json()
        operations = {
            operation["operationId"]
            for item in document["paths"].values()
            for operation in item.values()
        }
        assert operations == {
            "gmailAuthUrl",
            "gmailAuthStatus",
            "listGmailMessages",
            "getGmailMessage",
            "sendGmailMessage",
            "replyGmailMessage",
            "listApps",
            "controlApp",
        }
        assert document["components"]["securitySchemes"] == {
            "api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        }
    raw_calls = [seen for seen in recorder.seen if seen.path.endswith("/messages/multi")]
    assert [seen.query.get("format") for seen in raw_calls] == ["metadata", "raw"]
    output = log.read_text()
    assert SECRET not in output
    assert KEY["X-API-Key"] not in output
