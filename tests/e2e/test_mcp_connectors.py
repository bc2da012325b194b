"""MCP clients arriving as ChatGPT's apps and Claude do, against the real `gateway serve`:
nothing pre-registered, the SDK's own `OAuthClientProvider` discovers the authorization
server from the 401, registers (Dynamic Client Registration, or a Client ID Metadata
Document on loopback https), signs the user in through the consent page with PKCE S256,
asks for a token for one endpoint (RFC 8707) and calls tools; two replicas share one Redis
behind a round-robin balancer."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx2
from aiohttp import web
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from tests.conftest import REDIS_URL, write_config
from tests.e2e.helpers import CLEAN_ENV, serving
from tests.integration.test_mcp_oauth import CALLBACK, Browser, Memory
from tests.upstreams.server import free_port
from tests.upstreams.tls import certificates

GATEWAY = """\
server: {public_url: "${PUBLIC_URL}"}
store: {url: "${STORE_URL:-memory://}", namespace: "${STORE_NAMESPACE:-gateway}"}
auth:
  - {id: oauth, type: oauth}
oauth:
  scopes: {memories.read: Read memories, mail.read: Read mail}
  users:
    - {username: ann, password: ann-pass-1, user_id: uid_ann}
  registration: {allow_private_networks: true}
defaults: {auth: oauth}
profiles:
  - {id: omi, title: OMI, description: Memories., tags: [omi]}
  - {id: gmail, title: Gmail, description: Mail., tags: [gmail]}
"""
ROUTES = """\
routes:
  - id: listMemories
    path: /memories
    summary: List the user's memories
    tags: [omi]
    scopes: [memories.read]
    static: true
    response:
      body: '{{ {"owner": auth.user, "memories": ["walked the dog"]} }}'
      schema:
        type: object
        properties:
          owner: {type: string}
          memories: {type: array, items: {type: string}}
  - id: listMessages
    path: /messages
    summary: List the user's mail
    tags: [gmail]
    scopes: [mail.read]
    static: true
    response: {body: '{{ {"messages": []} }}'}
"""
CLIENT_NAME = "Notes agent"


@dataclass
class Balancer:
    """One public URL in front of the replicas, taking turns (a load balancer)."""

    url: str
    served: list[tuple[str, str]] = field(default_factory=list)
    """(replica, path) of each request, in order."""


@asynccontextmanager
async def balancer(port: int, replicas: list[str]) -> AsyncIterator[Balancer]:
    turns = itertools.cycle(replicas)
    state = Balancer(f"http://127.0.0.1:{port}")
    hop = {"content-length", "transfer-encoding", "connection", "content-encoding"}
    async with aiohttp.ClientSession(auto_decompress=False) as http:

        async def forward(request: web.Request) -> web.StreamResponse:
            replica = next(turns)
            state.served.append((replica, request.path))
            headers = [(k, v) for k, v in request.headers.items() if k.lower() not in hop]
            async with http.request(
                request.method,
                f"{replica}{request.rel_url}",
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as answer:
                body = await answer.read()
                kept = [(k, v) for k, v in answer.headers.items() if k.lower() not in hop]
                response = web.Response(status=answer.status, body=body)
                for name, value in kept:
                    response.headers.add(name, value)
                return response

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield state
        finally:
            await runner.cleanup()


def provider(
    endpoint: str, http: aiohttp.ClientSession, storage: Memory, metadata_url: str | None = None
) -> tuple[OAuthClientProvider, Browser]:
    browser = Browser(http)
    auth = OAuthClientProvider(
        server_url=endpoint,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[CALLBACK],
            client_name=CLIENT_NAME,
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.open,
        callback_handler=browser.callback,
        client_metadata_url=metadata_url,
    )
    return auth, browser


MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-11-25",
}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


async def refusal(http: aiohttp.ClientSession, url: str, token: str) -> tuple[int, str]:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    async with http.post(url, json=LIST, headers=headers) as r:
        return r.status, (await r.json())["detail"]


async def test_two_replicas_register_sign_in_and_keep_tokens_to_their_endpoint(
    tmp_path: Path, redis_namespace: str
) -> None:
    write_config(tmp_path / "config", GATEWAY, {"a": ROUTES})
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = {
        **CLEAN_ENV,
        "PUBLIC_URL": public,
        "STORE_URL": REDIS_URL,
        "STORE_NAMESPACE": redis_namespace,
    }
    config = tmp_path / "config"
    async with (
        serving(config, env, tmp_path / "one.log") as (one, _),
        serving(config, env, tmp_path / "two.log") as (two, _),
        balancer(port, [one, two]) as front,
        aiohttp.ClientSession() as http,
    ):
        storage = Memory(client=None)
        auth, browser = provider(f"{public}/mcp/omi", http, storage)
        async with (
            httpx2.AsyncClient(auth=auth, timeout=30) as client_http,
            Client(streamable_http_client(f"{public}/mcp/omi", http_client=client_http)) as mcp,
        ):
            tools = (await mcp.list_tools()).tools
            assert [tool.name for tool in tools] == ["listMemories"]
            found = await mcp.call_tool("listMemories", {})
            assert found.is_error is False
            assert found.structured_content == {"owner": "uid_ann", "memories": ["walked the dog"]}

        # Registered by DCR as a public client, on whichever replica; used on both.
        assert storage.client is not None
        assert storage.client.client_id.startswith("mcp-")
        assert storage.client.client_secret is None
        oauth_replicas = {replica for replica, path in front.served if path.startswith("/oauth/")}
        assert oauth_replicas == {one, two}
        assert "/oauth/register" in [path for _, path in front.served]
        assert len(browser.opened) == 1

        assert storage.tokens is not None
        token = storage.tokens.access_token
        # RFC 8707: a token for /mcp/omi is refused by /mcp/gmail, /mcp and the HTTP routes.
        for url in (f"{public}/mcp/gmail", f"{public}/mcp"):
            assert await refusal(http, url, token) == (401, f"the token is for {public}/mcp/omi")
        async with http.get(
            f"{public}/memories", headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert r.status == 401

        # Revoked (RFC 7009) by the public client itself: refused on every replica.
        form = {"token": token, "client_id": storage.client.client_id}
        async with http.post(f"{public}/oauth/revoke", data=form) as r:
            assert (r.status, await r.json()) == (200, {})
        for replica in (one, two):
            url = f"{replica}/mcp/omi"
            async with http.post(
                url,
                json=LIST,
                headers={
                    **MCP_HEADERS,
                    "Authorization": f"Bearer {token}",
                    "Host": f"127.0.0.1:{port}",
                },
            ) as r:
                assert r.status == 401
                assert (await r.json())["detail"] == "Token has been revoked"


@asynccontextmanager
async def metadata_document(tmp_path: Path) -> AsyncIterator[tuple[str, Path, list[str]]]:
    """The client's metadata document on loopback https: its URL, the CA that signed the
    server's certificate, and the paths asked for."""
    import ssl

    ca, cert, key = certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    port = free_port()
    url = f"https://127.0.0.1:{port}/clients/notes.json"
    seen: list[str] = []

    async def document(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response(
            {
                "client_id": url,
                "client_name": CLIENT_NAME,
                "redirect_uris": [CALLBACK],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
            }
        )

    app = web.Application()
    app.router.add_get("/clients/notes.json", document)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield url, ca, seen
    finally:
        await runner.cleanup()


async def test_a_client_id_metadata_document_registers_the_client(tmp_path: Path) -> None:
    write_config(tmp_path / "config", GATEWAY, {"a": ROUTES})
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    async with metadata_document(tmp_path) as (url, ca, seen):
        # The gateway trusts the test's CA (and only it) for the document's https.
        env = {**CLEAN_ENV, "PUBLIC_URL": public, "SSL_CERT_FILE": str(ca)}
        async with (
            serving(tmp_path / "config", env, tmp_path / "gateway.log", port=port),
            aiohttp.ClientSession() as http,
        ):
            storage = Memory(client=None)
            auth, browser = provider(f"{public}/mcp", http, storage, metadata_url=url)
            async with (
                httpx2.AsyncClient(auth=auth, timeout=30) as client_http,
                Client(streamable_http_client(f"{public}/mcp", http_client=client_http)) as mcp,
            ):
                names = [tool.name for tool in (await mcp.list_tools()).tools]
                assert names == ["listMemories", "listMessages"]
                found = await mcp.call_tool("listMessages", {})
                # No response schema, so no outputSchema: the answer is its text copy.
                assert found.structured_content is None
                assert [json.loads(part.text) for part in found.content] == [{"messages": []}]
            assert storage.client is not None
            assert storage.client.client_id == url
            assert seen == ["/clients/notes.json"]  # fetched once: authorize, consent, token
            assert len(browser.pages) == 1
            assert f"<b>{CLIENT_NAME} (127.0.0.1)</b> asks to use" in browser.pages[0]


OPEN_GATEWAY = """\
server: {public_url: "${PUBLIC_URL}"}
"""
OPEN_ROUTES = """\
routes:
  - id: hello
    path: /hello/{name}
    summary: Say hello
    static: true
    response:
      body: '{{ {"greeting": "hello " ~ path.name} }}'
      schema: {type: object, properties: {greeting: {type: string}}}
"""
BYE = """\
  - id: bye
    path: /bye
    summary: Say goodbye
    static: true
    response: {body: '{{ {"bye": true} }}'}
"""


async def test_both_eras_and_a_reload_through_the_cli(tmp_path: Path) -> None:
    """`gateway serve` with its file watcher: the handshake era and the stateless
    2026-07-28 one list and call the same tools, and an edited routes file adds one."""
    config = write_config(tmp_path / "config", OPEN_GATEWAY, {"a": OPEN_ROUTES})
    port = free_port()
    env = {**CLEAN_ENV, "PUBLIC_URL": f"http://127.0.0.1:{port}"}
    async with serving(config, env, tmp_path / "gateway.log", port=port) as (url, _):
        for mode in ("legacy", "2026-07-28"):
            async with Client(f"{url}/mcp", mode=mode) as mcp:
                assert [tool.name for tool in (await mcp.list_tools()).tools] == ["hello"]
                found = await mcp.call_tool("hello", {"name": "ann"})
                assert found.structured_content == {"greeting": "hello ann"}

        (config / "routes.d" / "a.yaml").write_text(OPEN_ROUTES + BYE)
        names: list[str] = []
        for _ in range(150):  # bounded: 15 s for the watcher to reload
            async with Client(f"{url}/mcp") as mcp:
                names = [tool.name for tool in (await mcp.list_tools()).tools]
            if names != ["hello"]:
                break
            await asyncio.sleep(0.1)
        assert names == ["hello", "bye"]
