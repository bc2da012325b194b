"""Clients that register themselves (RFC 7591 Dynamic Client Registration) and manage their
tokens (RFC 7009 revocation), as MCP clients do: public clients get no secret and must use
PKCE, redirect URIs are exact and https (or loopback http), registration is rate-limited per
address, and a revoked token stops working together with everything issued with it."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

from tests.conftest import RunningGateway, run_gateway, write_config
from tests.upstreams.items import items_app
from tests.upstreams.server import free_port, serve_upstream

CALLBACK = "http://127.0.0.1:9/callback"
GATEWAY = """\
server: {{public_url: "${{PUBLIC_URL}}"}}
auth:
  - {{id: oauth, type: oauth}}
oauth:
  clients:
    - {{id: action, client_id: gpt-action, client_secret: action-secret-0123456789,
        redirect_uris: ["{callback}"]}}
  scopes: {{notes.read: Read notes}}
  users:
    - {{username: ann, password: ann-pass-1, user_id: uid_ann}}
  registration: {{per_hour: {per_hour}, dynamic: {dynamic}}}
defaults: {{auth: oauth}}
"""
ROUTES = """\
routes:
  - id: whoami
    path: /me
    summary: Who is signed in
    scopes: [notes.read]
    static: true
    response: {body: '{{ {"user": auth.user} }}'}
"""
HIDDEN = re.compile(r'name="([^"]+)" value="([^"]*)"')
VERIFIER = "v" * 64
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=")


@asynccontextmanager
async def gateway(
    tmp_path: Path, per_hour: int = 20, dynamic: bool = True
) -> AsyncIterator[RunningGateway]:
    port = free_port()
    text = GATEWAY.format(per_hour=per_hour, dynamic=str(dynamic).lower(), callback=CALLBACK)
    write_config(tmp_path, text, {"a": ROUTES})
    async with run_gateway(tmp_path, {"PUBLIC_URL": f"http://127.0.0.1:{port}"}, port) as gw:
        yield gw


async def register(gw: RunningGateway, **metadata: Any) -> tuple[int, dict[str, Any]]:
    body = {"redirect_uris": [CALLBACK], "client_name": "Notes agent", **metadata}
    async with gw.http.post(f"{gw.url}/oauth/register", json=body) as r:
        return r.status, await r.json()


async def authorize(gw: RunningGateway, query: dict[str, str]) -> dict[str, list[str]]:
    """Sign in as ann on the consent page and allow; the query of the redirect."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(f"{gw.url}/oauth/authorize?{urlencode(query)}") as page:
            assert page.status == 200, await page.text()
            text = await page.text()
        form = {
            **dict(HIDDEN.findall(text)),
            "username": "ann",
            "password": "ann-pass-1",
            "decision": "allow",
        }
        async with browser.post(
            f"{gw.url}/oauth/authorize", data=form, allow_redirects=False
        ) as answer:
            assert answer.status == 302, await answer.text()
            location = answer.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    assert "code=" in location, location
    return parse_qs(urlsplit(location).query), text


def code_query(client_id: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "scope": "notes.read",
        "state": "st-1",
        **extra,
    }


async def tokens_for(gw: RunningGateway, client_id: str, **credentials: str) -> dict[str, Any]:
    sent, _ = await authorize(
        gw, code_query(client_id, code_challenge=CHALLENGE.decode(), code_challenge_method="S256")
    )
    form = {
        "grant_type": "authorization_code",
        "code": sent["code"][0],
        "redirect_uri": CALLBACK,
        "client_id": client_id,
        "code_verifier": VERIFIER,
        **credentials,
    }
    async with gw.http.post(f"{gw.url}/oauth/token", data=form) as r:
        assert r.status == 200, await r.text()
        found: dict[str, Any] = await r.json()
        return found


async def test_the_metadata_names_registration_revocation_and_public_clients(
    tmp_path: Path,
) -> None:
    async with gateway(tmp_path) as gw:
        async with gw.http.get(f"{gw.url}/.well-known/oauth-authorization-server") as r:
            metadata = await r.json()
        assert metadata == {
            "issuer": gw.url,
            "authorization_endpoint": f"{gw.url}/oauth/authorize",
            "token_endpoint": f"{gw.url}/oauth/token",
            "registration_endpoint": f"{gw.url}/oauth/register",
            "revocation_endpoint": f"{gw.url}/oauth/revoke",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": True,
            "scopes_supported": ["notes.read"],
        }


async def test_a_public_client_registers_and_must_use_pkce(tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw:
        status, client = await register(gw, token_endpoint_auth_method="none")
        assert status == 201
        client_id = client.pop("client_id")
        assert client_id.startswith("mcp-")
        assert isinstance(client.pop("client_id_issued_at"), int)
        assert client == {
            "redirect_uris": [CALLBACK],
            "client_name": "Notes agent",
            "token_endpoint_auth_method": "none",
        }

        # Without PKCE the client hears why, at its redirect URI.
        async with gw.http.get(
            f"{gw.url}/oauth/authorize?{urlencode(code_query(client_id))}", allow_redirects=False
        ) as r:
            assert r.status == 302
            sent = parse_qs(urlsplit(r.headers["Location"]).query)
        assert sent == {
            "error": ["invalid_request"],
            "error_description": [
                "PKCE is required: send code_challenge with code_challenge_method=S256."
            ],
            "state": ["st-1"],
            "iss": [gw.url],
        }

        # With it: the consent page names the client as one that registered itself.
        query = code_query(client_id, code_challenge=CHALLENGE.decode())
        query["code_challenge_method"] = "S256"
        sent, page = await authorize(gw, query)
        assert "<b>Notes agent (registered itself)</b> asks to use" in page
        form = {
            "grant_type": "authorization_code",
            "code": sent["code"][0],
            "redirect_uri": CALLBACK,
            "client_id": client_id,
        }
        async with gw.http.post(f"{gw.url}/oauth/token", data=form) as r:
            assert r.status == 400
            assert await r.json() == {
                "error": "invalid_request",
                "error_description": "Missing 'code_verifier'",
            }
        tokens = await tokens_for(gw, client_id)
        async with gw.http.get(
            f"{gw.url}/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        ) as r:
            assert (r.status, await r.json()) == (200, {"user": "uid_ann"})

        # A public client has no secret to present, so presenting one is refused.
        async with gw.http.post(
            f"{gw.url}/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": client_id,
                "client_secret": "guess",
            },
        ) as r:
            assert r.status == 401
            assert (await r.json())["error"] == "invalid_client"


async def test_a_confidential_client_gets_a_secret_once(tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw:
        status, client = await register(gw, token_endpoint_auth_method="client_secret_post")
        assert status == 201
        assert client["client_secret_expires_at"] == 0
        secret = client["client_secret"]
        tokens = await tokens_for(gw, client["client_id"], client_secret=secret)
        assert tokens["token_type"] == "Bearer"
        key = hashlib.sha256(client["client_id"].encode()).hexdigest()
        raw = await gw.state.backend.store.get(f"oauth:registered:{key}")
        assert raw is not None
        assert secret.encode() not in raw  # only its hash is kept


async def test_bad_registrations_are_refused_with_the_reason(tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw:
        cases = [
            (
                {"redirect_uris": ["http://example.com/cb"]},
                "invalid_redirect_uri",
                "A redirect URI must be https, or http on a loopback address.",
            ),
            (
                {"redirect_uris": ["https://example.com/cb#frag"]},
                "invalid_redirect_uri",
                "A redirect URI may not hold a fragment.",
            ),
            ({"redirect_uris": []}, "invalid_redirect_uri", "Register at least one redirect URI."),
            (
                {"token_endpoint_auth_method": "private_key_jwt"},
                "invalid_client_metadata",
                "Invalid claim: 'token_endpoint_auth_method'",
            ),
            (
                {"scope": "admin"},
                "invalid_client_metadata",
                "Invalid claim: 'scope'",
            ),
        ]
        for metadata, error, description in cases:
            status, body = await register(gw, **metadata)
            assert (status, body) == (400, {"error": error, "error_description": description})
        async with gw.http.post(f"{gw.url}/oauth/register", data=b"[1]") as r:
            assert r.status == 400
            assert await r.json() == {
                "error": "invalid_client_metadata",
                "error_description": "the registration must be a JSON object",
            }
        async with gw.http.post(f"{gw.url}/oauth/register", data=b"{" + b" " * 17000) as r:
            assert r.status == 400
            assert (await r.json())["error_description"] == "the registration is larger than 16 KiB"


async def test_registration_is_rate_limited_per_address(tmp_path: Path) -> None:
    async with gateway(tmp_path, per_hour=2) as gw:
        assert (await register(gw))[0] == 201
        assert (await register(gw))[0] == 201
        async with gw.http.post(
            f"{gw.url}/oauth/register", json={"redirect_uris": [CALLBACK]}
        ) as r:
            assert r.status == 429
            wait = int(r.headers["Retry-After"])
            assert 0 < wait <= 1800
            assert await r.json() == {
                "error": "invalid_request",
                "error_description": (
                    f"too many client registrations from this address; retry in {wait}s"
                ),
            }


async def test_registration_can_be_turned_off(tmp_path: Path) -> None:
    async with gateway(tmp_path, dynamic=False) as gw:
        status, body = await register(gw)
        assert status == 404
        assert body["detail"] == "dynamic client registration is off on this gateway"
        async with gw.http.get(f"{gw.url}/.well-known/oauth-authorization-server") as r:
            assert "registration_endpoint" not in await r.json()


async def test_a_revoked_token_stops_working_with_its_family(tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw:
        secret = {"client_secret": "action-secret-0123456789"}
        tokens = await tokens_for(gw, "gpt-action", **secret)
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        async with gw.http.get(f"{gw.url}/me", headers=bearer) as r:
            assert r.status == 200

        revoke = f"{gw.url}/oauth/revoke"
        wrong = {"token": tokens["refresh_token"], "client_id": "gpt-action", "client_secret": "x"}
        async with gw.http.post(revoke, data=wrong) as r:
            assert r.status == 401
            assert (await r.json())["error"] == "invalid_client"
        async with gw.http.get(f"{gw.url}/me", headers=bearer) as r:
            assert r.status == 200  # a failed revocation changes nothing

        unknown = {"token": "never-issued", "client_id": "gpt-action", **secret}
        async with gw.http.post(revoke, data=unknown) as r:
            assert (r.status, await r.json()) == (200, {})
        form = {
            "token": tokens["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": "gpt-action",
            **secret,
        }
        async with gw.http.post(revoke, data=form) as r:
            assert (r.status, await r.json()) == (200, {})

        # The refresh token's family goes with it: its access token too.
        async with gw.http.get(f"{gw.url}/me", headers=bearer) as r:
            assert r.status == 401
            assert (await r.json())["detail"] == "Token has been revoked"
        refresh = {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": "gpt-action",
            **secret,
        }
        async with gw.http.post(f"{gw.url}/oauth/token", data=refresh) as r:
            assert r.status == 400
            assert (await r.json())["error"] == "invalid_grant"


async def test_a_client_cannot_revoke_another_clients_token(tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw:
        tokens = await tokens_for(gw, "gpt-action", client_secret="action-secret-0123456789")
        _, other = await register(gw, token_endpoint_auth_method="none")
        form = {"token": tokens["access_token"], "client_id": other["client_id"]}
        async with gw.http.post(f"{gw.url}/oauth/revoke", data=form) as r:
            assert r.status == 400
            assert (await r.json())["error"] == "invalid_grant"
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        async with gw.http.get(f"{gw.url}/me", headers=bearer) as r:
            assert r.status == 200


SHOP = """\
upstream:
  name: shop
  base_url: ${SHOP_URL}
  auth: {type: bearer, token: shop-key-123}
routes:
  - id: listItems
    path: /items
    summary: List the items
    scopes: [notes.read]
    upstream: {path: /v1/items}
"""


async def test_the_callers_token_never_goes_upstream(tmp_path: Path) -> None:
    """Over HTTP and as an MCP tool alike, the upstream gets its own credential only."""
    async with serve_upstream(*items_app()) as shop:
        port = free_port()
        text = GATEWAY.format(per_hour=20, dynamic="true", callback=CALLBACK)
        write_config(tmp_path, text, {"a": ROUTES, "shop": SHOP})
        env = {"PUBLIC_URL": f"http://127.0.0.1:{port}", "SHOP_URL": shop.url}
        async with run_gateway(tmp_path, env, port) as gw:
            tokens = await tokens_for(gw, "gpt-action", client_secret="action-secret-0123456789")
            token = tokens["access_token"]
            bearer = {"Authorization": f"Bearer {token}"}
            async with gw.http.get(f"{gw.url}/items", headers=bearer) as r:
                assert r.status == 200
            call = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "listItems", "arguments": {}},
            }
            headers = {
                **bearer,
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-11-25",
            }
            async with gw.http.post(f"{gw.url}/mcp", json=call, headers=headers) as r:
                assert r.status == 200
                assert (await r.json())["result"]["isError"] is False
        assert len(shop.seen) == 2
        for seen in shop.seen:
            assert seen.headers["Authorization"] == "Bearer shop-key-123"
            assert token not in str(seen.headers) + seen.raw_path + seen.body.decode()
