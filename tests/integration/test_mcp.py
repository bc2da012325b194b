"""/mcp with the SDK's own client (`mcp.Client` over Streamable HTTP) against the real app:
both protocol eras negotiate, `tools/list` is the document's operations, a call is the route
(structuredContent, isError for the route's 4xx and an upstream's failure, the JSON-RPC
error for a malformed call), a reload adds a tool, and Origin/Host are checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from mcp import Client
from mcp.shared.exceptions import MCPError

from gateway.metrics import REGISTRY
from tests.conftest import RunningGateway, run_gateway, write_config
from tests.upstreams.server import Recorder, serve_upstream

GATEWAY = """\
auth:
  - {id: key, type: api_key, keys: [k1]}
profiles:
  - {id: greet, title: Greetings, description: Say hello., tags: [greet]}
"""
ROUTES = """\
upstream: {name: backend, base_url: "${BACKEND_URL}"}
routes:
  - id: hello
    path: /hello/{name}
    summary: Say hello
    tags: [greet]
    auth: none
    static: true
    query:
      - {name: loud, type: boolean, description: Shout it.}
    response:
      body: '{{ {"greeting": "hello " ~ path.name, "loud": query.loud} }}'
      schema: {type: object, properties: {greeting: {type: string}, loud: {type: boolean}}}
  - id: note
    method: POST
    path: /notes
    summary: Keep a note
    description: Stores a short note upstream.
    auth: none
    body:
      schema:
        type: object
        properties: {text: {type: string, maxLength: 5}}
        required: [text]
    response:
      schema: {type: object, properties: {id: {type: integer}}}
  - id: secret
    path: /secret
    summary: Needs a key
    auth: key
    static: true
    response: {body: '{{ {"ok": true} }}'}
"""
ACCEPT = {"Accept": "application/json, text/event-stream"}


async def backend_app() -> tuple[web.Application, Recorder]:
    recorder = Recorder()
    app = web.Application(middlewares=[recorder.middleware])

    async def notes(request: web.Request) -> web.Response:
        payload = await request.json()
        if payload["text"] == "boom":
            return web.json_response({"error": "disk full"}, status=500)
        return web.json_response({"id": 7})

    app.router.add_post("/notes", notes)
    return app, recorder


async def serving(tmp_path: Path) -> Any:
    app, recorder = await backend_app()
    return serve_upstream(app, recorder)


def config(tmp_path: Path, routes: str = ROUTES) -> Path:
    return write_config(tmp_path, GATEWAY, {"a": routes})


@pytest.fixture
async def gw(tmp_path: Path) -> Any:
    app, recorder = await backend_app()
    async with serve_upstream(app, recorder) as backend:
        async with run_gateway(config(tmp_path), {"BACKEND_URL": backend.url}) as running:
            yield running


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_tools_list_is_the_documents_operations(gw: RunningGateway, mode: str) -> None:
    async with Client(f"{gw.url}/mcp", mode=mode) as client:
        listed = await client.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert list(tools) == ["hello", "note", "secret"]  # the document's order
    hello = tools["hello"]
    assert hello.title == "Say hello"
    assert hello.description == "Say hello"
    assert hello.input_schema == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "loud": {"type": "boolean", "description": "Shout it."},
        },
        "additionalProperties": False,
        "required": ["name"],
    }
    assert hello.output_schema == {
        "type": "object",
        "properties": {"greeting": {"type": "string"}, "loud": {"type": "boolean"}},
    }
    assert hello.annotations is not None
    assert (
        hello.annotations.read_only_hint,
        hello.annotations.destructive_hint,
        hello.annotations.idempotent_hint,
        hello.annotations.open_world_hint,
    ) == (True, False, True, False)
    note = tools["note"]
    assert note.description == "Stores a short note upstream."
    assert note.input_schema["properties"] == {"text": {"type": "string", "maxLength": 5}}
    assert note.input_schema["required"] == ["text"]
    assert note.annotations is not None
    assert (note.annotations.read_only_hint, note.annotations.open_world_hint) == (False, True)


def calls(tool: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "gateway_mcp_tool_calls_total", {"tool": tool, "outcome": outcome}
        )
        or 0.0
    )


async def test_a_call_is_the_route(gw: RunningGateway) -> None:
    before = {
        key: calls(*key) for key in (("hello", "ok"), ("note", "error"), ("hello", "invalid"))
    }
    async with Client(f"{gw.url}/mcp") as client:
        hello = await client.call_tool("hello", {"name": "ann & co", "loud": True})
        assert hello.is_error is False
        assert hello.structured_content == {"greeting": "hello ann & co", "loud": True}
        assert hello.content[0].type == "text"
        assert hello.content[0].text == '{"greeting":"hello ann & co","loud":true}'
        slash = await client.call_tool("hello", {"name": "a/b"})
        assert (slash.is_error, slash.content[0].text) == (
            True,
            "404: a path parameter (name) cannot hold `/`",
        )
        note = await client.call_tool("note", {"text": "hi"})
        assert (note.is_error, note.structured_content) == (False, {"id": 7})

        # The route's 400, its 401, and an upstream's failure: results the model can act on.
        invalid = await client.call_tool("note", {"text": "toolong"})
        assert invalid.is_error is True
        assert invalid.content[0].text == (
            "400: the request is invalid: 1 field failed\n- $.text: 'toolong' is too long"
        )
        refused = await client.call_tool("secret", {})
        assert refused.is_error is True
        assert refused.content[0].text == "401: missing API key: send it in the X-API-Key header"
        failed = await client.call_tool("note", {"text": "boom"})
        assert failed.is_error is True
        assert failed.content[0].text == '502: upstream "backend" answered 500'

        # Malformed calls are JSON-RPC errors.
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("nope", {})
        assert (unknown.value.error.code, unknown.value.error.message) == (
            -32602,
            "unknown tool: nope",
        )
        with pytest.raises(MCPError) as extra:
            await client.call_tool("hello", {"name": "x", "volume": 11})
        assert extra.value.error.message == "hello: unknown argument: volume"
        with pytest.raises(MCPError) as missing:
            await client.call_tool("hello", {})
        assert missing.value.error.message == "hello: missing argument: name"
    # /metrics counts them by tool and outcome.
    assert calls("hello", "ok") - before["hello", "ok"] == 1
    assert calls("note", "error") - before["note", "error"] == 2
    assert calls("hello", "invalid") - before["hello", "invalid"] == 2


async def test_a_profile_endpoint_and_an_unknown_one(gw: RunningGateway) -> None:
    async with Client(f"{gw.url}/mcp/greet") as client:
        assert [tool.name for tool in (await client.list_tools()).tools] == ["hello"]
        with pytest.raises(MCPError) as outside:
            await client.call_tool("note", {"text": "hi"})
        assert outside.value.error.message == "unknown tool: note"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with gw.http.post(f"{gw.url}/mcp/nothing", json=body, headers=ACCEPT) as r:
        assert r.status == 404
        assert (await r.json())["detail"] == "no MCP endpoint at /mcp/nothing"


async def test_the_2025_06_18_handshake(gw: RunningGateway) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"},
        },
    }
    async with gw.http.post(f"{gw.url}/mcp", json=initialize, headers=ACCEPT) as r:
        assert (r.status, r.content_type) == (200, "application/json")
        assert "Mcp-Session-Id" not in r.headers  # stateless: any replica answers
        answer = await r.json()
    assert answer["result"]["protocolVersion"] == "2025-06-18"
    assert answer["result"]["capabilities"]["tools"] == {"listChanged": False}
    assert answer["result"]["serverInfo"]["name"] == "yaml-gateway"


async def test_origin_and_host_are_checked(gw: RunningGateway) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    for headers, detail in (
        (
            {"Origin": "https://evil.example"},
            "Origin 'https://evil.example' may not call this MCP endpoint",
        ),
        ({"Host": "evil.example"}, "Host 'evil.example' is not this gateway's (127.0.0.1:8080)"),
    ):
        async with gw.http.post(f"{gw.url}/mcp", json=body, headers={**ACCEPT, **headers}) as r:
            assert r.status == 403
            assert (await r.json())["detail"] == detail
    for origin in ("https://chatgpt.com", "https://claude.ai"):
        async with gw.http.post(
            f"{gw.url}/mcp", json=body, headers={**ACCEPT, "Origin": origin}
        ) as r:
            assert r.status == 200, origin


async def test_a_reload_adds_a_tool(gw: RunningGateway, tmp_path: Path) -> None:
    extra = (
        ROUTES
        + """\
  - id: bye
    path: /bye
    summary: Say goodbye
    auth: none
    static: true
    response: {body: '{{ {"bye": true} }}'}
"""
    )
    (tmp_path / "routes.d" / "a.yaml").write_text(extra)
    assert gw.state.reloader is not None
    assert (await gw.state.reloader.reload("test")).outcome.value == "reloaded"
    async with Client(f"{gw.url}/mcp") as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert names == ["hello", "note", "secret", "bye"]
        assert (await client.call_tool("bye", {})).structured_content is None
