"""The gateway as ChatGPT's authorization server, driven by authlib's own OAuth client.

authorize (login page) -> code -> token -> call -> refresh -> call, with PKCE, against the
real gateway (memory store and Redis), and every way it must fail: wrong redirect, wrong
secret, reused code, reused refresh token, expired token, missing scope.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from tests.conftest import REDIS_URL, RunningGateway, run_gateway, write_config
from tests.oauth_client import CALLBACK, authorize, chatgpt, consent_form, token_for
from tests.upstreams.server import free_port

GATEWAY = """\
server: {public_url: "${PUBLIC_URL}"}
store: {url: "${STORE_URL:-memory://}", namespace: "${STORE_NS:-gateway}"}
auth:
  - {id: oauth, type: oauth}
oauth:
  clients:
    - {id: chatgpt, client_id: gpt-client, client_secret: gpt-secret-0123456789}
  scopes:
    read:memories: Read your memories
    write:notes: Write notes
  users:
    - {username: alice, password: alice-pass-1, user_id: uid_alice}
    - {username: bob, password: bob-pass-2, user_id: uid_bob}
  access_token_ttl: ${ACCESS_TTL:-1h}
defaults: {auth: oauth}
"""
ROUTES = """\
routes:
  - id: whoami
    path: /me
    scopes: [read:memories]
    static: true
    response: {body: '{{ {"user": auth.user} }}'}
  - id: writeNote
    method: POST
    path: /notes
    scopes: [write:notes]
    static: true
    response: {body: '{{ {"ok": true} }}'}
"""


def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, GATEWAY, {"r": ROUTES})


async def call(gw: RunningGateway, token: str, path: str = "/me", method: str = "GET") -> Any:
    async with gw.http.request(
        method, f"{gw.url}{path}", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        return response.status, dict(response.headers), await response.json(content_type=None)


async def token_call(gw: RunningGateway, form: dict[str, str]) -> tuple[int, Any]:
    async with gw.http.post(f"{gw.url}/oauth/token", data=form) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        return response.status, await response.json()


async def check_flow(gw: RunningGateway) -> None:
    async with gw.http.get(f"{gw.url}/.well-known/oauth-authorization-server") as r:
        metadata = await r.json()
    assert metadata["token_endpoint"] == f"{gw.url}/oauth/token"
    assert metadata["scopes_supported"] == ["read:memories", "write:notes"]

    async with chatgpt(gw) as client:
        verifier = generate_token(48)
        callback = await authorize(gw, client, "alice", "alice-pass-1", verifier)
        token = await client.fetch_token(
            f"{gw.url}/oauth/token", authorization_response=callback, code_verifier=verifier
        )
        assert token["token_type"].lower() == "bearer"
        assert token["expires_in"] == 3600
        assert token["scope"] == "read:memories"
        assert token["refresh_token"]
        assert (await call(gw, token["access_token"]))[::2] == (200, {"user": "uid_alice"})

        # Refresh: a new access token and a new refresh token; the old one is spent.
        old_refresh = token["refresh_token"]
        refreshed = await client.refresh_token(f"{gw.url}/oauth/token", refresh_token=old_refresh)
        assert refreshed["refresh_token"] != old_refresh
        assert refreshed["access_token"] != token["access_token"]
        assert (await call(gw, refreshed["access_token"]))[::2] == (200, {"user": "uid_alice"})

        # A scope the token does not have: 403, with the RFC 6750 challenge.
        status, headers, problem = await call(gw, refreshed["access_token"], "/notes", "POST")
        assert (status, problem["detail"]) == (403, "the token lacks the scope write:notes")
        assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]

        # The old refresh token is spent (last but one: its replay revokes the family).
        again = await token_call(
            gw,
            {
                "grant_type": "refresh_token",
                "refresh_token": old_refresh,
                "client_id": "gpt-client",
                "client_secret": "gpt-secret-0123456789",
            },
        )
        assert (again[0], again[1]["error"]) == (400, "invalid_grant")

        # The code works once (last: a reuse revokes what it issued, see test_oauth_hardening).
        code = parse_qs(urlsplit(callback).query)["code"][0]
        reuse = await token_call(
            gw,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": CALLBACK,
                "client_id": "gpt-client",
                "client_secret": "gpt-secret-0123456789",
                "code_verifier": verifier,
            },
        )
        assert reuse[0] == 400
        assert reuse[1]["error"] == "invalid_grant"

    # Bob logs in through the same client and is bob.
    async with chatgpt(gw) as client:
        verifier = generate_token(48)
        callback = await authorize(gw, client, "bob", "bob-pass-2", verifier)
        token = await client.fetch_token(
            f"{gw.url}/oauth/token", authorization_response=callback, code_verifier=verifier
        )
        assert (await call(gw, token["access_token"]))[::2] == (200, {"user": "uid_bob"})

    # Wrong client secret at the token endpoint: 401 invalid_client (JSON, never a 200).
    async with chatgpt(gw) as good, chatgpt(gw, secret="wrong-secret") as bad:
        verifier = generate_token(48)
        callback = await authorize(gw, good, "alice", "alice-pass-1", verifier)
        with pytest.raises(OAuthError, match="invalid_client"):
            await bad.fetch_token(
                f"{gw.url}/oauth/token", authorization_response=callback, code_verifier=verifier
            )
    wrong = await token_call(
        gw,
        {
            "grant_type": "refresh_token",
            "refresh_token": "whatever",
            "client_id": "gpt-client",
            "client_secret": "wrong-secret",
        },
    )
    assert (wrong[0], wrong[1]["error"]) == (401, "invalid_client")
    unsupported = await token_call(
        gw,
        {
            "grant_type": "password",
            "client_id": "gpt-client",
            "client_secret": "gpt-secret-0123456789",
        },
    )
    assert (unsupported[0], unsupported[1]["error"]) == (400, "unsupported_grant_type")

    # A wrong PKCE verifier: invalid_grant.
    async with chatgpt(gw) as client:
        callback = await authorize(gw, client, "alice", "alice-pass-1", generate_token(48))
        with pytest.raises(OAuthError, match="invalid_grant"):
            await client.fetch_token(
                f"{gw.url}/oauth/token",
                authorization_response=callback,
                code_verifier=generate_token(48),
            )

    # Wrong redirect URI: refused on the page itself, never redirected to.
    async with chatgpt(gw) as client:
        url, _ = client.create_authorization_url(
            f"{gw.url}/oauth/authorize", redirect_uri="https://evil.example/oauth/callback"
        )
        async with gw.http.get(url, allow_redirects=False) as page:
            assert page.status == 400
            assert "Redirect URI https://evil.example/oauth/callback is not supported" in (
                await page.text()
            )

    # A wrong password shows the page again (401); Deny redirects with access_denied.
    async with chatgpt(gw) as client:
        url, state = client.create_authorization_url(f"{gw.url}/oauth/authorize")
        values = await consent_form(gw, url)
        async with gw.http.post(
            f"{gw.url}/oauth/authorize",
            data={**values, "username": "alice", "password": "nope", "decision": "allow"},
            allow_redirects=False,
        ) as page:
            assert page.status == 401
            shown_again = await page.text()
            assert "Wrong username or password." in shown_again
        # The form token works once; a form posted without one (login CSRF) is refused.
        for replayed in (values, {k: v for k, v in values.items() if k != "csrf"}):
            async with gw.http.post(
                f"{gw.url}/oauth/authorize",
                data={**replayed, "username": "alice", "password": "alice-pass-1"},
                allow_redirects=False,
            ) as page:
                assert page.status == 400
                assert "This form expired: open the authorization link again." in (
                    await page.text()
                )
        values = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', shown_again))
        async with gw.http.post(
            f"{gw.url}/oauth/authorize",
            data={**values, "decision": "deny"},
            allow_redirects=False,
        ) as denied:
            query = parse_qs(urlsplit(denied.headers["Location"]).query)
            assert (denied.status, query["error"], query["state"]) == (
                302,
                ["access_denied"],
                [state],
            )

    # No token, a made-up token.
    status, headers, problem = await call(gw, "made-up-token")
    assert (status, problem["detail"]) == (401, "Invalid access token")
    async with gw.http.get(f"{gw.url}/me") as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_oauth_flow_with_the_memory_store(tmp_path: Path) -> None:
    port = free_port()  # the issuer (public_url) is the gateway's own address
    env = {"PUBLIC_URL": f"http://127.0.0.1:{port}"}
    async with run_gateway(config(tmp_path), env, port) as gw:
        await check_flow(gw)


async def test_oauth_flow_with_redis_across_two_replicas(
    tmp_path: Path, redis_namespace: str
) -> None:
    """Authorize on one replica, exchange and refresh on the other: one shared store."""
    port = free_port()
    env = {
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "STORE_URL": REDIS_URL,
        "STORE_NS": redis_namespace,
    }
    folder = config(tmp_path)
    async with run_gateway(folder, env, port) as one, run_gateway(folder, env) as two:
        async with chatgpt(one) as client:
            verifier = generate_token(48)
            callback = await authorize(one, client, "alice", "alice-pass-1", verifier)
            token = await client.fetch_token(
                f"{two.url}/oauth/token", authorization_response=callback, code_verifier=verifier
            )
            assert (await call(two, token["access_token"]))[::2] == (200, {"user": "uid_alice"})
            refreshed = await client.refresh_token(
                f"{one.url}/oauth/token", refresh_token=token["refresh_token"]
            )
            assert (await call(two, refreshed["access_token"]))[::2] == (
                200,
                {"user": "uid_alice"},
            )
        await check_flow(one)


async def test_an_expired_token_is_refused(tmp_path: Path) -> None:
    port = free_port()
    env = {"PUBLIC_URL": f"http://127.0.0.1:{port}", "ACCESS_TTL": "1s"}
    async with run_gateway(config(tmp_path), env, port) as gw, chatgpt(gw) as client:
        verifier = generate_token(48)
        callback = await authorize(gw, client, "alice", "alice-pass-1", verifier)
        token = await client.fetch_token(
            f"{gw.url}/oauth/token", authorization_response=callback, code_verifier=verifier
        )
        assert token["expires_in"] == 1
        assert (await call(gw, token["access_token"]))[0] == 200
        await asyncio.sleep(1.2)
        status, headers, problem = await call(gw, token["access_token"])
        assert (status, problem["detail"]) == (401, "Token has expired")
        assert 'error="invalid_token"' in headers["WWW-Authenticate"]


GENERATED = GATEWAY.replace(
    "    - {id: chatgpt, client_id: gpt-client, client_secret: gpt-secret-0123456789}",
    "    - {id: chatgpt}",
)


async def test_a_client_without_credentials_gets_them_generated_once(
    tmp_path: Path, redis_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_config(tmp_path, GENERATED, {"r": ROUTES})
    port = free_port()
    env = {
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "STORE_URL": REDIS_URL,
        "STORE_NS": redis_namespace,
    }
    async with run_gateway(folder, env, port):
        pass
    printed = capsys.readouterr().out
    client_id = re.search(r"Client ID:\s+(\S+)", printed)
    secret = re.search(r"Client Secret:\s+(\S+)", printed)
    assert client_id is not None
    assert secret is not None
    assert client_id[1].startswith("chatgpt-")
    assert f"Authorization URL: http://127.0.0.1:{port}/oauth/authorize" in printed
    assert "Scope:             read:memories write:notes" in printed

    async with run_gateway(folder, env, port) as gw:  # the same client, not printed again
        assert "Client Secret" not in capsys.readouterr().out
        client = AsyncOAuth2Client(
            client_id=client_id[1],
            client_secret=secret[1],
            redirect_uri=CALLBACK,
            scope="read:memories",
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
        )
        async with client:
            verifier = generate_token(48)
            url, _ = client.create_authorization_url(
                f"{gw.url}/oauth/authorize", code_verifier=verifier
            )
            values = await consent_form(gw, url)
            async with gw.http.post(
                f"{gw.url}/oauth/authorize",
                data={**values, "username": "bob", "password": "bob-pass-2", "decision": "allow"},
                allow_redirects=False,
            ) as answer:
                callback = answer.headers["Location"]
            token = await client.fetch_token(
                f"{gw.url}/oauth/token", authorization_response=callback, code_verifier=verifier
            )
        assert (await call(gw, token["access_token"]))[::2] == (200, {"user": "uid_bob"})


LOGIN_PLUGIN = '''\
from gateway.plugin import PluginError


async def check(ctx, request):
    """A login step as a plugin: here, password "pw-<name>" opens the account uid_<name>."""
    name, password = request.body["username"], request.body["password"]
    if password != f"pw-{name}":
        raise PluginError(401, "wrong password")
    return f"uid_{name}"
'''


async def test_the_login_step_can_be_a_plugin(tmp_path: Path) -> None:
    gateway_yaml = GATEWAY.replace("  users:\n", "  login_handler: login:check\n  users:\n")
    folder = write_config(tmp_path, gateway_yaml, {"r": ROUTES})
    (folder / "plugins").mkdir()
    (folder / "plugins" / "login.py").write_text(LOGIN_PLUGIN)
    port = free_port()
    async with run_gateway(folder, {"PUBLIC_URL": f"http://127.0.0.1:{port}"}, port) as gw:
        token = await token_for(gw, "carol", "pw-carol")
        assert (await call(gw, token["access_token"]))[::2] == (200, {"user": "uid_carol"})
        token = await token_for(gw, "alice", "alice-pass-1")  # the user list still works
        assert (await call(gw, token["access_token"]))[::2] == (200, {"user": "uid_alice"})
        async with chatgpt(gw) as client:
            url, _ = client.create_authorization_url(f"{gw.url}/oauth/authorize")
            values = await consent_form(gw, url)
            async with gw.http.post(
                f"{gw.url}/oauth/authorize",
                data={**values, "username": "carol", "password": "nope", "decision": "allow"},
                allow_redirects=False,
            ) as page:
                assert page.status == 401
