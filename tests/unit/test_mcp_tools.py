"""MCP tools compiled from the served documents: names, one input schema from path, query
and body, output schemas, explicit annotations, per-route `mcp:` overrides, and what
`gateway check` says of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.compiler.build import compile_config
from gateway.config.load import load
from gateway.snapshot import Snapshot
from tests.conftest import REPO, write_config


@pytest.fixture(scope="module")
def shipped() -> Snapshot:
    return compile_config(load(REPO, environ={"GATEWAY_PUBLIC_URL": "https://gw.example.com"}))


def test_the_merged_endpoint_offers_every_operation(shipped: Snapshot) -> None:
    toolset = shipped.mcp[None]
    names = [tool.name for tool in toolset.tools]
    operations = [
        operation["operationId"]
        for item in shipped.openapi["paths"].values()
        for operation in item.values()
    ]
    assert names == operations
    assert (toolset.scheme, toolset.scheme_type) == ("oauth", "oauth")
    assert set(toolset.scopes) == {
        "crm",
        "mail.read",
        "mail.send",
        "read:memories",
        "support",
        "apps",
        "openai",
    }
    assert set(shipped.mcp) == {None, *shipped.profiles}


def test_annotations_follow_the_method_and_consequential(shipped: Snapshot) -> None:
    tools = shipped.mcp[None].by_name
    hints = {
        name: tuple(tools[name].annotations.values())
        for name in ("naturalQuery", "listGmailMessages", "sendGmailMessage", "controlApp")
    }
    # (readOnly, destructive, idempotent, openWorld)
    assert hints == {
        "naturalQuery": (True, False, True, True),  # a POST that only reads
        "listGmailMessages": (True, False, True, True),
        "sendGmailMessage": (False, False, False, True),
        "controlApp": (False, False, False, True),
    }
    assert tools["listTools"].annotations["openWorldHint"] is False  # a static answer


def test_shared_schemas_are_inlined(shipped: Snapshot) -> None:
    schema = shipped.mcp[None].by_name["naturalQuery"].input_schema
    assert "$ref" not in str(schema)
    assert schema["required"] == ["query"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["query"]["maxLength"] == 4000


def test_api_key_endpoints_are_warned_of(shipped: Snapshot) -> None:
    warned = sorted(issue.document for issue in shipped.lint if issue.document.startswith("mcp"))
    assert warned == ["mcp/apps", "mcp/assistant", "mcp/gmail", "mcp/openai", "mcp/support"]
    issue = next(issue for issue in shipped.lint if issue.document == "mcp/apps")
    assert str(issue) == (
        "warning: [mcp/apps] its tools take an API key: ChatGPT's MCP client sends only OAuth"
        " tokens (or nothing), so only clients that can send the key header can use it"
    )


GATEWAY = "auth:\n  - {id: key, type: api_key, keys: [k1]}\n"
ROUTES = """\
routes:
  - id: put
    method: PUT
    path: /items/{id}
    summary: Replace an item
    auth: none
    static: true
    body: {schema: {type: array, items: {type: string}}}
    response: {body: '{{ {"ok": true} }}'}
  - id: clash
    method: POST
    path: /clash
    summary: A field named like a parameter
    auth: none
    static: true
    query: [{name: id}]
    body: {schema: {type: object, properties: {id: {type: string}}}, required: false}
    response: {body: '{{ {"ok": true} }}'}
  - id: renamed
    path: /renamed
    summary: Renamed
    auth: none
    static: true
    mcp: {name: fetch_it, description: Fetch it., read_only: false, open_world: true}
    response: {body: '{{ {"ok": true} }}'}
  - id: hidden
    path: /hidden
    summary: Not a tool
    auth: none
    static: true
    mcp: {enabled: false}
    response: {body: '{{ {"ok": true} }}'}
  - id: bare
    method: DELETE
    path: /bare
    auth: none
    static: true
    response: {body: '{{ {"ok": true} }}'}
"""


def compiled(tmp_path: Path, routes: str = ROUTES) -> Snapshot:
    write_config(tmp_path, GATEWAY, {"a": routes})
    return compile_config(load(tmp_path, environ={}))


def test_bodies_parameters_and_overrides(tmp_path: Path) -> None:
    toolset = compiled(tmp_path).mcp[None]
    assert [tool.name for tool in toolset.tools] == ["put", "clash", "fetch_it", "bare"]
    put = toolset.by_name["put"]
    assert put.input_schema == {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "body": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": False,
        "required": ["id", "body"],
    }
    assert (put.path_params, put.body_argument) == (("id",), "body")
    assert tuple(put.annotations.values()) == (False, True, True, False)  # PUT
    clash = toolset.by_name["clash"]
    assert clash.body_argument == "body"  # `id` is a query parameter already
    assert set(clash.input_schema["properties"]) == {"id", "body"}
    renamed = toolset.by_name["fetch_it"]
    assert (renamed.route, renamed.description) == ("renamed", "Fetch it.")
    assert tuple(renamed.annotations.values()) == (False, False, True, True)
    bare = toolset.by_name["bare"]
    assert bare.description == "DELETE /bare"
    assert tuple(bare.annotations.values()) == (False, True, True, False)


def test_tool_names_are_linted(tmp_path: Path) -> None:
    routes = (
        ROUTES
        + """\
  - id: twin
    path: /twin
    summary: Twin
    auth: none
    static: true
    mcp: {name: put}
    response: {body: '{{ {"ok": true} }}'}
"""
    )
    issues = [str(issue) for issue in compiled(tmp_path, routes).lint if issue.document == "mcp"]
    assert issues == [
        "routes.d/a.yaml:33: warning: [mcp] tool `bare` has no description: give its route"
        " `summary` or `description` (the model reads it to choose the tool)",
        "routes.d/a.yaml:39: error: [mcp] tool name `put` is not unique",
    ]
