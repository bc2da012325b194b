"""The authorization server's hardening (issue "Hardening", 2-5), over real HTTP:
redirect URIs per RFC 9700, PKCE with S256 only, and token families revoked when a code
is used twice or a rotated refresh token comes back (memory store and Redis).
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError

from gateway.config.model import CHATGPT_CALLBACKS
from gateway.snapshot import OAuthClientSpec
from tests.conftest import REDIS_URL, RunningGateway, run_gateway
from tests.integration.test_oauth_server import call, config, token_call
from tests.oauth_client import CALLBACK, GOOD_SECRET, authorize, chatgpt, consent_form
from tests.upstreams.server import free_port

GOOD = "https://chatgpt.com/aip/g-abc123/oauth/callback"
BAD_REDIRECTS = [
    "https://chatgpt.com/aip/../oauth/callback",
    "https://chatgpt.com/aip/%2F..%2F/oauth/callback",
    "https://chatgpt.com/aip/a\\@evil/oauth/callback",
    'https://chatgpt.com/aip/a"b/oauth/callback',
    "https://chatgpt.com/aip/a/b/oauth/callback",
    "https://chatgpt.com/aip//oauth/callback",
    "https://chatgpt.com/aip/g-abc123/oauth/callback/x",
    "https://evil.example/aip/g-abc123/oauth/callback",
]
REVOKED = (401, "Token has been revoked")


def shipped_client() -> OAuthClientSpec:
    return OAuthClientSpec(
        id="chatgpt",
        client_id="gpt-client",
        client_secret="s",
        redirect_uris=tuple(CHATGPT_CALLBACKS),
        scopes=("read:memories",),
    )


# -- 2. redirect URIs ----------------------------------------------------------------------


def test_the_shipped_pattern_accepts_one_plain_segment() -> None:
    client = shipped_client()
    assert client.allows_redirect(GOOD)
    assert client.allows_redirect("https://chat.openai.com/aip/g-abc123/oauth/callback")
    assert [uri for uri in BAD_REDIRECTS if client.allows_redirect(uri)] == []


def test_the_patterns_are_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    client = shipped_client()

    def no_compile(*args: Any) -> Any:
        raise AssertionError("compiled on a call")

    monkeypatch.setattr(re, "compile", no_compile)
    assert client.allows_redirect(GOOD)


def test_an_exact_uri_matches_only_itself() -> None:
    client = OAuthClientSpec(
        id="c", client_id="c", client_secret="s", redirect_uris=(GOOD,), scopes=()
    )
    assert client.allows_redirect(GOOD)
    assert not client.allows_redirect(GOOD.replace("abc123", "abc124"))
    assert not client.allows_redirect(GOOD + "?x=1")


@asynccontextmanager
async def memory_gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    port = free_port()  # the issuer (public_url) is the gateway's own address
    async with run_gateway(config(tmp_path), {"PUBLIC_URL": f"http://127.0.0.1:{port}"}, port) as g:
        yield g


async def test_the_authorize_page_refuses_the_bad_redirects(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path) as gw:
        for uri in [GOOD, *BAD_REDIRECTS]:
            url, _ = chatgpt(gw).create_authorization_url(
                f"{gw.url}/oauth/authorize", redirect_uri=uri
            )
            async with gw.http.get(url, allow_redirects=False) as page:
                text = html.unescape(await page.text())
                if uri == GOOD:
                    assert page.status == 200, text
                    continue
                assert page.status == 400, uri
                # authlib names the URI, unless it holds characters an OAuth error may not.
                named = "" if re.search(r'["\\]', uri) else f" {uri}"
                assert f"invalid_request: Redirect URI{named} is not supported by client." in text


# -- 3. PKCE: S256 only --------------------------------------------------------------------

UNSUPPORTED = "Unsupported 'code_challenge_method'"


def error_redirect(status: int, headers: Any) -> tuple[int, str, dict[str, list[str]]]:
    """(status, where to, query) of an answer sent back to the client."""
    location = headers.get("Location", "")
    return status, location.partition("?")[0], parse_qs(urlsplit(location).query)


async def test_pkce_is_s256_only(tmp_path: Path) -> None:
    """A `plain` challenge is refused at the client's redirect URI (RFC 7636 4.4.1: the
    authorization error response, invalid_request), with the request's state."""
    async with memory_gateway(tmp_path) as gw:
        async with gw.http.get(f"{gw.url}/.well-known/oauth-authorization-server") as r:
            assert (await r.json())["code_challenge_methods_supported"] == ["S256"]
        verifier = generate_token(48)
        for extra in (
            {"code_challenge": verifier, "code_challenge_method": "plain"},
            {"code_challenge": verifier},  # no method means plain (RFC 7636 4.3)
        ):
            async with chatgpt(gw) as client:
                client.code_challenge_method = None  # the parameters are given as they are
                url, state = client.create_authorization_url(f"{gw.url}/oauth/authorize", **extra)
            async with gw.http.get(url, allow_redirects=False) as page:
                assert error_redirect(page.status, page.headers) == (
                    302,
                    CALLBACK,
                    {
                        "error": ["invalid_request"],
                        "error_description": [UNSUPPORTED],
                        "state": [state],
                        "iss": [gw.url],
                    },
                ), extra
        # A form switched to plain after the page was shown: refused the same way.
        async with chatgpt(gw) as client:
            url, state = client.create_authorization_url(
                f"{gw.url}/oauth/authorize", code_verifier=verifier
            )
            values = await consent_form(gw, url)
            forged = {**values, "code_challenge": verifier, "code_challenge_method": "plain"}
            async with gw.http.post(
                f"{gw.url}/oauth/authorize",
                data={**forged, "username": "alice", "password": "alice-pass-1"},
                allow_redirects=False,
            ) as page:
                assert error_redirect(page.status, page.headers) == (
                    302,
                    CALLBACK,
                    {
                        "error": ["invalid_request"],
                        "error_description": [UNSUPPORTED],
                        "state": [state],
                        "iss": [gw.url],
                    },
                )


async def test_pkce_stays_optional_for_a_confidential_client(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path) as gw, chatgpt(gw) as client:
        url, _ = client.create_authorization_url(f"{gw.url}/oauth/authorize")
        values = await consent_form(gw, url)
        assert "code_challenge" not in values
        async with gw.http.post(
            f"{gw.url}/oauth/authorize",
            data={**values, "username": "alice", "password": "alice-pass-1", "decision": "allow"},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 302
            callback = answer.headers["Location"]
        token = await client.fetch_token(f"{gw.url}/oauth/token", authorization_response=callback)
        assert (await call(gw, token["access_token"]))[::2] == (200, {"user": "uid_alice"})


# -- 4, 5. token families, on memory and on Redis (two replicas) --------------------------


@asynccontextmanager
async def redis_replicas(
    tmp_path: Path, namespace: str
) -> AsyncIterator[tuple[RunningGateway, RunningGateway]]:
    """Two gateways on one Redis: each step may land on either replica."""
    port = free_port()
    env = {"PUBLIC_URL": f"http://127.0.0.1:{port}", "STORE_URL": REDIS_URL, "STORE_NS": namespace}
    folder = config(tmp_path)
    async with run_gateway(folder, env, port) as one, run_gateway(folder, env) as two:
        yield one, two


async def first_tokens(gw: RunningGateway) -> tuple[dict[str, Any], str, str]:
    """(the token response, the code, its verifier), through authlib's client."""
    async with chatgpt(gw) as client:
        verifier = generate_token(48)
        callback = await authorize(gw, client, "alice", "alice-pass-1", verifier)
        token = await client.fetch_token(
            f"{gw.url}/oauth/token", authorization_response=callback, code_verifier=verifier
        )
    code = parse_qs(urlsplit(callback).query)["code"][0]
    return token, code, verifier


async def refresh(gw: RunningGateway, refresh_token: str) -> dict[str, Any]:
    async with chatgpt(gw) as client:
        token: dict[str, Any] = await client.refresh_token(
            f"{gw.url}/oauth/token", refresh_token=refresh_token
        )
        return token


async def refused_refresh(gw: RunningGateway, refresh_token: str) -> None:
    with pytest.raises(OAuthError, match=r"^invalid_grant: $"):
        await refresh(gw, refresh_token)


async def revoked(gw: RunningGateway, access_token: str) -> None:
    status, headers, problem = await call(gw, access_token)
    assert (status, problem.get("detail")) == REVOKED
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]


async def check_code_reuse(one: RunningGateway, two: RunningGateway) -> None:
    token, code, verifier = await first_tokens(one)
    assert (await call(two, token["access_token"]))[::2] == (200, {"user": "uid_alice"})
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": "gpt-client",
        "client_secret": GOOD_SECRET,
        "code_verifier": verifier,
    }
    status, body = await token_call(two, form)
    assert (status, body["error"]) == (400, "invalid_grant")
    await revoked(one, token["access_token"])
    await revoked(two, token["access_token"])
    await refused_refresh(one, token["refresh_token"])
    # Another user's tokens (another code) are not touched.
    other, _, _ = await first_tokens(one)
    assert (await call(two, other["access_token"]))[0] == 200


async def check_refresh_replay(one: RunningGateway, two: RunningGateway) -> None:
    first, _, _ = await first_tokens(one)
    second = await refresh(two, first["refresh_token"])  # R1 -> (A2, R2)
    assert (await call(one, second["access_token"]))[::2] == (200, {"user": "uid_alice"})
    status, body = await token_call(
        one,
        {
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": "gpt-client",
            "client_secret": GOOD_SECRET,
        },
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    await revoked(two, second["access_token"])
    await revoked(one, first["access_token"])
    await refused_refresh(two, second["refresh_token"])
    await refused_refresh(one, first["refresh_token"])
    other, _, _ = await first_tokens(two)  # a new sign-in starts a new family
    assert (await call(one, other["access_token"]))[0] == 200
    assert (await call(one, (await refresh(one, other["refresh_token"]))["access_token"]))[0] == 200


async def test_a_reused_code_revokes_its_tokens_on_the_memory_store(tmp_path: Path) -> None:
    async with memory_gateway(tmp_path) as gw:
        await check_code_reuse(gw, gw)


async def test_a_reused_code_revokes_its_tokens_on_redis(
    tmp_path: Path, redis_namespace: str
) -> None:
    async with redis_replicas(tmp_path, redis_namespace) as (one, two):
        await check_code_reuse(one, two)


async def test_a_replayed_refresh_token_revokes_its_family_on_the_memory_store(
    tmp_path: Path,
) -> None:
    async with memory_gateway(tmp_path) as gw:
        await check_refresh_replay(gw, gw)


async def test_a_replayed_refresh_token_revokes_its_family_on_redis(
    tmp_path: Path, redis_namespace: str
) -> None:
    async with redis_replicas(tmp_path, redis_namespace) as (one, two):
        await check_refresh_replay(one, two)
