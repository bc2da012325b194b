"""/mcp signed in with the gateway's OAuth, driven by the SDK's own `OAuthClientProvider`:
the 401 names the Protected Resource Metadata (RFC 9728), the client discovers the
authorization server from it, signs the user in on the consent page with PKCE S256, gets a
token and calls a tool; a token without a tool's scope gets 403 insufficient_scope."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from tests.conftest import RunningGateway, run_gateway, write_config
from tests.upstreams.server import free_port

CALLBACK = "http://127.0.0.1:9/callback"
GATEWAY = f"""\
server: {{public_url: "${{PUBLIC_URL}}"}}
auth:
  - {{id: oauth, type: oauth}}
oauth:
  clients:
    - {{id: agent, client_id: mcp-agent, client_secret: agent-secret-0123456789,
        redirect_uris: ["{CALLBACK}"]}}
  scopes: {{notes.read: Read notes, notes.write: Write notes}}
  users:
    - {{username: ann, password: ann-pass-1, user_id: uid_ann}}
defaults: {{auth: oauth}}
profiles:
  - {{id: me, title: Me, description: Who I am., routes: [whoami]}}
"""
ROUTES = """\
routes:
  - id: whoami
    path: /me
    summary: Who is signed in
    scopes: [notes.read]
    static: true
    response:
      body: '{{ {"user": auth.user} }}'
      schema: {type: object, properties: {user: {type: string}}}
  - id: writeNote
    method: POST
    path: /notes
    summary: Write a note
    scopes: [notes.write]
    static: true
    response: {body: '{{ {"ok": true} }}'}
"""
HIDDEN = re.compile(r'name="([^"]+)" value="([^"]*)"')


PRE_REGISTERED = OAuthClientInformationFull(
    client_id="mcp-agent",
    client_secret="agent-secret-0123456789",
    redirect_uris=[CALLBACK],
    token_endpoint_auth_method="client_secret_post",
)


class Memory:
    """The SDK's TokenStorage, in memory, holding the pre-registered client (None: none,
    the client registers itself)."""

    def __init__(self, client: OAuthClientInformationFull | None = PRE_REGISTERED) -> None:
        self.tokens: OAuthToken | None = None
        self.client = client

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """The user at the consent page: signs in as ann and allows."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.opened: list[str] = []
        self.pages: list[str] = []
        """The consent pages' HTML, in order."""
        self.result: AuthorizationCodeResult | None = None

    async def open(self, url: str) -> None:
        self.opened.append(url)
        async with self.http.get(url) as page:
            assert page.status == 200, await page.text()
            for name, morsel in page.cookies.items():
                self.http.cookie_jar.update_cookies({name: morsel.value})
            self.pages.append(await page.text())
            hidden = dict(HIDDEN.findall(self.pages[-1]))
        action = urlsplit(url)._replace(query="").geturl()
        form = {**hidden, "username": "ann", "password": "ann-pass-1", "decision": "allow"}
        async with self.http.post(action, data=form, allow_redirects=False) as answer:
            assert answer.status == 302, await answer.text()
            location = answer.headers["Location"]
        assert location.startswith(CALLBACK + "?")
        query = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
        self.result = AuthorizationCodeResult(
            code=query["code"], state=query.get("state"), iss=query.get("iss")
        )

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result


@asynccontextmanager
async def gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    port = free_port()
    write_config(tmp_path, GATEWAY, {"a": ROUTES})
    async with run_gateway(tmp_path, {"PUBLIC_URL": f"http://127.0.0.1:{port}"}, port) as gw:
        yield gw


def provider(
    gw: RunningGateway, browser: Browser, storage: Memory, scope: str
) -> OAuthClientProvider:
    return OAuthClientProvider(
        server_url=f"{gw.url}/mcp",
        client_metadata=OAuthClientMetadata(redirect_uris=[CALLBACK], scope=scope),
        storage=storage,
        redirect_handler=browser.open,
        callback_handler=browser.callback,
    )


async def test_an_unauthenticated_request_names_the_resource_metadata(tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        headers = {"Accept": "application/json, text/event-stream"}
        async with gw.http.post(f"{gw.url}/mcp", json=body, headers=headers) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"] == (
                f'Bearer resource_metadata="{gw.url}/.well-known/oauth-protected-resource/mcp",'
                ' scope="notes.read notes.write"'
            )
            assert (await r.json())["detail"] == (
                "Authorization header required: send `Authorization: Bearer <token>`"
            )
        async with gw.http.get(f"{gw.url}/.well-known/oauth-protected-resource/mcp") as r:
            assert r.status == 200
            assert await r.json() == {
                "resource": f"{gw.url}/mcp",
                "authorization_servers": [gw.url],
                "scopes_supported": ["notes.read", "notes.write"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Integration Gateway",
            }
        async with gw.http.get(f"{gw.url}/.well-known/oauth-authorization-server") as r:
            assert (await r.json())["code_challenge_methods_supported"] == ["S256"]


async def test_the_sdk_signs_in_and_calls_a_tool(tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw:
        browser, storage = Browser(gw.http), Memory()
        auth = provider(gw, browser, storage, "notes.read notes.write")
        async with httpx2.AsyncClient(auth=auth, timeout=30) as http:
            async with Client(streamable_http_client(f"{gw.url}/mcp", http_client=http)) as client:
                names = [tool.name for tool in (await client.list_tools()).tools]
                assert names == ["whoami", "writeNote"]
                me = await client.call_tool("whoami", {})
                assert me.structured_content == {"user": "uid_ann"}
        assert len(browser.opened) == 1  # one sign-in, then the token
        opened = parse_qs(urlsplit(browser.opened[0]).query)
        assert opened["code_challenge_method"] == ["S256"]
        assert opened["resource"] == [f"{gw.url}/mcp"]
        assert browser.result is not None
        assert browser.result.iss == gw.url  # RFC 9207, checked by the SDK too
        assert storage.tokens is not None

        # RFC 8707: the token is for /mcp, and for nothing else of this gateway.
        token = storage.tokens.access_token
        headers = {
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {token}",
            "MCP-Protocol-Version": "2025-11-25",
        }
        ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        async with gw.http.post(f"{gw.url}/mcp/me", json=ping, headers=headers) as r:
            assert r.status == 401
            assert (await r.json())["detail"] == f"the token is for {gw.url}/mcp"
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
        async with gw.http.get(f"{gw.url}/me", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 401
            assert (await r.json())["detail"] == f"the token is for {gw.url}/mcp"


async def test_a_resource_this_server_does_not_serve_is_invalid_target(tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw:
        query = {
            "response_type": "code",
            "client_id": "mcp-agent",
            "redirect_uri": CALLBACK,
            "scope": "notes.read",
            "state": "s-2",
            "resource": "https://elsewhere.example/mcp",
        }
        async with gw.http.get(
            f"{gw.url}/oauth/authorize?{urlencode(query)}", allow_redirects=False
        ) as r:
            assert r.status == 302
            sent = parse_qs(urlsplit(r.headers["Location"]).query)
        assert sent == {
            "error": ["invalid_target"],
            "error_description": ["The requested resource is not one of this server's."],
            "state": ["s-2"],
            "iss": [gw.url],
        }


async def test_a_tool_outside_the_tokens_scopes_is_403(tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw:
        # A token for notes.read alone (the SDK asks for what the 401 names: both).
        browser = Browser(gw.http)
        query = {
            "response_type": "code",
            "client_id": "mcp-agent",
            "redirect_uri": CALLBACK,
            "scope": "notes.read",
            "state": "s-1",
        }
        await browser.open(f"{gw.url}/oauth/authorize?{urlencode(query)}")
        assert browser.result is not None
        form = {
            "grant_type": "authorization_code",
            "code": browser.result.code,
            "redirect_uri": CALLBACK,
            "client_id": "mcp-agent",
            "client_secret": "agent-secret-0123456789",
        }
        async with gw.http.post(f"{gw.url}/oauth/token", data=form) as r:
            token = (await r.json())["access_token"]
        headers = {
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {token}",
            "MCP-Protocol-Version": "2025-11-25",
        }
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "writeNote", "arguments": {}},
        }
        async with gw.http.post(f"{gw.url}/mcp", json=call, headers=headers) as r:
            assert r.status == 403
            assert r.headers["WWW-Authenticate"] == (
                'Bearer error="insufficient_scope", scope="notes.write", resource_metadata='
                f'"{gw.url}/.well-known/oauth-protected-resource/mcp", error_description='
                '"the token lacks the scope notes.write"'
            )
        call["params"] = {"name": "whoami", "arguments": {}}
        async with gw.http.post(f"{gw.url}/mcp", json=call, headers=headers) as r:
            assert r.status == 200
            assert (await r.json())["result"]["structuredContent"] == {"user": "uid_ann"}
