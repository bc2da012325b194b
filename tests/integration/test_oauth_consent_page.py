"""The consent page for humans (issue 12) and where authorization errors go (RFC 6749
4.1.2.1), driven by authlib's client: the page names the service and the host it returns
to, labels its inputs, and has a primary Allow and a secondary Deny; an unknown client or
a missing or unregistered redirect_uri is an error page, never a redirect; every other
error goes back to the client's redirect URI with `error`, `error_description` and `state`.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from selectolax.lexbor import LexborHTMLParser

from gateway.oauth.consent import ConsentForms
from gateway.oauth.runtime import OAuthRuntime
from tests.conftest import RunningGateway, run_gateway, write_config
from tests.integration.test_oauth_server import GATEWAY, ROUTES
from tests.oauth_client import CALLBACK, chatgpt, consent_form
from tests.upstreams.server import free_port

TITLE = "Memory <Vault> & Co"  # escaped on the page
CONFIG = GATEWAY + f"info: {{title: {TITLE!r}}}\n"
SERVER_ERROR = "The authorization server could not complete the request."


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    port = free_port()  # the issuer (public_url) is the gateway's own address
    folder = write_config(tmp_path, CONFIG, {"r": ROUTES})
    async with run_gateway(folder, {"PUBLIC_URL": f"http://127.0.0.1:{port}"}, port) as g:
        yield g


def authorization_url(gw: RunningGateway, **params: Any) -> tuple[str, str]:
    """authlib's authorization URL (PKCE S256), with ``params`` over its own; a value of
    None leaves the parameter out."""
    url, state = chatgpt(gw).create_authorization_url(
        f"{gw.url}/oauth/authorize", code_verifier="v" * 48
    )
    query = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
    query.update(params)
    kept = {key: value for key, value in query.items() if value is not None}
    return f"{gw.url}/oauth/authorize?{urlencode(kept)}", state


async def answer(gw: RunningGateway, url: str) -> tuple[int, str | None, str]:
    async with gw.http.get(url, allow_redirects=False) as response:
        return response.status, response.headers.get("Location"), await response.text()


def sent_back(location: str | None) -> tuple[str, dict[str, str]]:
    """Where a redirect goes and its query, one value per name."""
    assert location is not None
    target, _, query = location.partition("?")
    return target, {key: values[0] for key, values in parse_qs(query).items()}


async def test_the_page_names_the_service_and_the_return_host(gw: RunningGateway) -> None:
    url, _ = authorization_url(gw)
    status, _, text = await answer(gw, url)
    assert status == 200
    assert "Memory &lt;Vault&gt; &amp; Co" in text
    assert TITLE not in text
    tree = LexborHTMLParser(text)
    assert tree.css_first("title").text() == f"Sign in to {TITLE}"
    assert tree.css_first("h1").text() == f"Sign in to {TITLE}"
    assert "You will be sent back to chatgpt.com." in " ".join(tree.body.text().split())
    assert [li.text(deep=True) for li in tree.css("li")] == ["Read your memories (read:memories)"]
    for name, kind, autocomplete in [
        ("username", None, "username"),
        ("password", "password", "current-password"),
    ]:
        field = tree.css_first(f"input[name={name}]")
        assert field.attributes["id"] == name
        assert field.attributes.get("type") == kind
        assert field.attributes["autocomplete"] == autocomplete
        assert "required" in field.attributes
        assert tree.css_first(f"label[for={name}]").text() == name.capitalize()
    buttons = [
        (b.text(), b.attributes["type"], b.attributes["class"], b.attributes["value"])
        for b in tree.css("form button")
    ]
    # Allow first: the form's default button (Enter), and the primary one.
    assert buttons == [
        ("Allow", "submit", "primary", "allow"),
        ("Deny", "submit", "secondary", "deny"),
    ]
    assert "formnovalidate" in tree.css("form button")[1].attributes


async def test_a_bad_client_or_redirect_uri_is_an_error_page(gw: RunningGateway) -> None:
    unknown = "https://evil.example/oauth/callback"
    cases = [
        ({"client_id": "nobody"}, "invalid_client: The client does not exist on this server."),
        ({"client_id": None}, "invalid_client: Missing 'client_id' parameter."),
        ({"redirect_uri": None}, "invalid_request: Missing 'redirect_uri' in request."),
        (
            {"redirect_uri": unknown},
            f"invalid_request: Redirect URI {unknown} is not supported by client.",
        ),
        # The other errors too, while the redirect_uri is not one of the client's.
        (
            {"redirect_uri": unknown, "response_type": "token"},
            "unsupported_response_type: Only response_type=code is supported.",
        ),
        (
            {"client_id": "nobody", "scope": "everything"},
            "invalid_client: The client does not exist on this server.",
        ),
    ]
    for params, shown in cases:
        status, location, text = await answer(gw, authorization_url(gw, **params)[0])
        assert (status, location) == (400, None), params
        error = LexborHTMLParser(text).css_first("p.error")
        assert html.unescape(error.text()) == shown, params
        assert "<form" not in text


async def test_the_other_errors_go_back_to_the_client(gw: RunningGateway) -> None:
    cases = [
        (
            {"response_type": "token"},
            "unsupported_response_type",
            "Only response_type=code is supported.",
        ),
        ({"response_type": None}, "invalid_request", "Missing 'response_type' parameter."),
        (
            {"scope": "read:memories delete:everything"},
            "invalid_scope",
            "The requested scope is invalid, unknown, or malformed.",
        ),
        (
            {"code_challenge_method": "plain"},
            "invalid_request",
            "Unsupported 'code_challenge_method'",
        ),
    ]
    for params, error, description in cases:
        url, state = authorization_url(gw, **params)
        status, location, _ = await answer(gw, url)
        assert status == 302, params
        assert sent_back(location) == (
            CALLBACK,
            {"error": error, "error_description": description, "state": state, "iss": gw.url},
        ), params
    # Without a state in the request, none in the answer.
    url, _ = authorization_url(gw, response_type="token", state=None)
    status, location, _ = await answer(gw, url)
    assert (status, sent_back(location)) == (
        302,
        (
            CALLBACK,
            {
                "error": "unsupported_response_type",
                "error_description": "Only response_type=code is supported.",
                "iss": gw.url,  # RFC 9207: which server answered
            },
        ),
    )


async def test_deny_sends_access_denied_back(gw: RunningGateway) -> None:
    url, state = authorization_url(gw)
    values = await consent_form(gw, url)
    async with gw.http.post(
        f"{gw.url}/oauth/authorize", data={**values, "decision": "deny"}, allow_redirects=False
    ) as denied:
        assert denied.status == 302
        assert sent_back(denied.headers["Location"]) == (
            CALLBACK,
            {
                "error": "access_denied",
                "error_description": "The resource owner or authorization server denied the request",
                "state": state,
                "iss": gw.url,
            },
        )


async def test_a_failure_on_our_side_is_a_server_error_for_the_client(
    gw: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = authorization_url(gw)
    values = await consent_form(gw, url)

    async def store_away(*args: Any) -> str:
        raise ConnectionError("the store is away")

    # The sign-in fails (the store holding the throttle is away): the client hears of it.
    monkeypatch.setattr(OAuthRuntime, "sign_in", store_away)
    form = {**values, "username": "alice", "password": "alice-pass-1", "decision": "allow"}
    async with gw.http.post(
        f"{gw.url}/oauth/authorize", data=form, allow_redirects=False
    ) as failed:
        assert failed.status == 302
        assert sent_back(failed.headers["Location"]) == (
            CALLBACK,
            {
                "error": "server_error",
                "error_description": SERVER_ERROR,
                "state": state,
                "iss": gw.url,
            },
        )
    # The page cannot issue its form token: the same, before any form is shown.
    monkeypatch.setattr(ConsentForms, "issue", store_away)
    url, state = authorization_url(gw)
    status, location, _ = await answer(gw, url)
    assert (status, sent_back(location)) == (
        302,
        (
            CALLBACK,
            {
                "error": "server_error",
                "error_description": SERVER_ERROR,
                "state": state,
                "iss": gw.url,
            },
        ),
    )
