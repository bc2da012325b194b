"""The MCP Inspector's CLI (npm `@modelcontextprotocol/inspector`, another implementation
than the Python SDK) lists and calls the tools of the real `gateway serve`. `.ci/run`
installs it from npm (0.15.0, the last release for Node.js 20) and names it in
MCP_INSPECTOR; without it, these tests skip."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_config
from tests.e2e.helpers import CLEAN_ENV, serving
from tests.upstreams.server import free_port

INSPECTOR = os.environ.get("MCP_INSPECTOR") or shutil.which("mcp-inspector")
pytestmark = pytest.mark.skipif(
    INSPECTOR is None,
    reason="no MCP Inspector CLI: npm install @modelcontextprotocol/inspector@0.15.0 (.ci/run does)",
)
GATEWAY = """\
server: {public_url: "${PUBLIC_URL}"}
"""
ROUTES = """\
routes:
  - id: greet
    method: POST
    path: /greetings
    summary: Greet someone
    description: Says hello to the person named.
    static: true
    body:
      schema:
        type: object
        properties: {name: {type: string, maxLength: 40}}
        required: [name]
    response:
      body: '{{ {"hello": body.name} }}'
      schema: {type: object, properties: {hello: {type: string}}}
  - id: listNotes
    path: /notes
    summary: List the notes
    static: true
    response: {body: '{{ {"notes": []} }}'}
"""


async def inspector(url: str, *args: str) -> dict[str, Any]:
    assert INSPECTOR is not None
    process = await asyncio.create_subprocess_exec(
        INSPECTOR,
        "--cli",
        url,
        "--transport",
        "http",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    found: dict[str, Any] = json.loads(out)
    return found


async def test_the_inspector_lists_and_calls_the_tools(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path / "config", GATEWAY, {"a": ROUTES})
    env = {**CLEAN_ENV, "PUBLIC_URL": f"http://127.0.0.1:{port}"}
    async with serving(config, env, tmp_path / "gateway.log", port=port) as (url, _):
        listed = await inspector(f"{url}/mcp", "--method", "tools/list")
        tools = {tool["name"]: tool for tool in listed["tools"]}
        assert list(tools) == ["greet", "listNotes"]
        assert tools["greet"]["description"] == "Says hello to the person named."
        assert tools["greet"]["inputSchema"] == {
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 40}},
            "required": ["name"],
            "additionalProperties": False,
        }
        assert tools["listNotes"]["annotations"] == {
            "title": "List the notes",
            "readOnlyHint": True,
            "destructiveHint": False,
            "idempotentHint": True,
            "openWorldHint": False,
        }

        called = await inspector(
            f"{url}/mcp", "--method", "tools/call", "--tool-name", "greet", "--tool-arg", "name=Ann"
        )
        assert called == {
            "content": [{"type": "text", "text": '{"hello":"Ann"}'}],
            "structuredContent": {"hello": "Ann"},
            "isError": False,
        }

        refused = await inspector(
            f"{url}/mcp",
            "--method",
            "tools/call",
            "--tool-name",
            "greet",
            "--tool-arg",
            "name=" + "x" * 41,
        )
        assert refused["isError"] is True
        assert refused["content"][0]["text"].startswith("400: the request is invalid")
