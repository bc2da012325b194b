"""The served documents are valid OpenAPI 3.1 and every profile lints clean for ChatGPT."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from gateway.compiler.build import compile_config
from gateway.compiler.lint import lint_document
from gateway.config.load import load
from gateway.snapshot import Snapshot
from tests.conftest import REPO, write_config

PUBLIC = "https://gw.example.com"


@pytest.fixture(scope="module")
def shipped() -> Snapshot:
    return compile_config(load(REPO, environ={"GATEWAY_PUBLIC_URL": PUBLIC}))


def test_merged_document_and_profiles_validate(shipped: Snapshot) -> None:
    for document in [shipped.openapi, *shipped.profiles.values()]:
        validate(copy.deepcopy(dict(document)))
        assert document["openapi"] == "3.1.0"
        assert document["servers"] == [{"url": PUBLIC}]
    for profile in shipped.profiles.values():
        assert len(profile["components"].get("securitySchemes", {})) <= 1


def test_every_profile_lints_clean(shipped: Snapshot) -> None:
    # The API-key profiles' MCP endpoints are warned of (tests/unit/test_mcp_tools.py).
    assert [issue for issue in shipped.lint if not issue.document.startswith("mcp/")] == []


def test_http_public_url_is_a_warning_not_an_error() -> None:
    snapshot = compile_config(load(REPO, environ={}))
    assert {issue.level for issue in snapshot.lint} == {"warning"}
    assert str(snapshot.lint[0]) == (
        "warning: [openapi.json] servers[0].url 'http://127.0.0.1:8080' is not https:"
        " ChatGPT refuses it (A3); set server.public_url"
    )


def test_consequential_flags_and_security(shipped: Snapshot) -> None:
    paths = shipped.profiles["ambivo"]["paths"]
    # Every Ambivo operation only reads: ChatGPT may offer "Always allow" on each.
    assert {
        f"{method.upper()} {path}": operation["x-openai-isConsequential"]
        for path, item in paths.items()
        for method, operation in item.items()
    } == {
        "POST /query": False,
        "GET /tools": False,
        "POST /tools": False,
        "POST /tools/natural-query": False,
    }
    assert paths["/query"]["post"]["security"] == [{"bearer": []}]
    assert shipped.profiles["ambivo"]["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }


def test_consequential_setting_over_the_method_default(tmp_path: Path) -> None:
    answer = "static: true, response: {body: '{{ 1 }}'}"
    routes = (
        "routes:\n"
        f"  - {{id: readPost, method: POST, path: /a, consequential: false, {answer}}}\n"
        f"  - {{id: writePost, method: POST, path: /b, {answer}}}\n"
        f"  - {{id: plainGet, path: /c, {answer}}}\n"
        f"  - {{id: riskyGet, path: /d, consequential: true, {answer}}}\n"
        f"  - {{id: deleteIt, method: DELETE, path: /e, {answer}}}\n"
    )
    folder = write_config(tmp_path, "defaults: {auth: none}\n", {"a": routes})
    paths = compile_config(load(folder, environ={})).openapi["paths"]
    assert {
        operation["operationId"]: operation["x-openai-isConsequential"]
        for item in paths.values()
        for operation in item.values()
    } == {
        "readPost": False,
        "writePost": True,
        "plainGet": False,
        "riskyGet": True,
        "deleteIt": True,
    }


def operation(**extra: Any) -> dict[str, Any]:
    return {
        "operationId": "op",
        "responses": {"200": {"description": "ok"}},
        "x-openai-isConsequential": False,
        **extra,
    }


def document(paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": PUBLIC}],
        "paths": paths,
        "components": {"schemas": {}},
        **extra,
    }


def messages(doc: dict[str, Any]) -> list[str]:
    return [issue.message for issue in lint_document("d", doc, {"op": ("routes.d/x.yaml", 7)})]


def test_clean_document_has_no_issues() -> None:
    assert messages(document({"/a": {"get": operation()}})) == []


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param(
            document({"/a": {"get": operation()}}, openapi="3.0.1"),
            ["`openapi` must be 3.1.0, got '3.0.1' (A1)"],
            id="version",
        ),
        pytest.param(
            document({f"/p{i}": {"get": operation(operationId=f"op{i}")} for i in range(31)}),
            [
                "has 31 operations; an action allows at most 30 (A5): take routes out of it. "
                "Its routes: " + ", ".join(f"op{i}" for i in range(31))
            ],
            id="too-many-operations",
        ),
        pytest.param(
            document({"/a": {"get": operation()}, "/b": {"get": operation()}}),
            ["GET /a: operationId `op` is not unique", "GET /b: operationId `op` is not unique"],
            id="duplicate-operation-id",
        ),
        pytest.param(
            document({"/a": {"get": operation(operationId="bad id!")}}),
            ["GET /a: operationId 'bad id!' must match [A-Za-z0-9_-]{1,64}"],
            id="operation-id",
        ),
        pytest.param(
            document({"/a": {"get": operation(summary="s" * 301)}}),
            ["GET /a: summary has 301 characters (max 300)"],
            id="long-summary",
        ),
        pytest.param(
            document(
                {
                    "/a": {
                        "get": operation(
                            parameters=[
                                {
                                    "name": "q",
                                    "in": "query",
                                    "description": "d" * 701,
                                    "schema": {"type": "string"},
                                }
                            ]
                        )
                    }
                }
            ),
            ["GET /a: parameter `q` description is over 700 characters"],
            id="long-param",
        ),
        pytest.param(
            {**document({"/a": {"get": operation()}}), "components": {}},
            [
                "`components.schemas` must be an object "
                "(ChatGPT: schemas subsection is not an object) (A8)"
            ],
            id="no-schemas",
        ),
        pytest.param(
            document(
                {
                    "/a": {
                        "post": operation(
                            requestBody={
                                "content": {"application/json": {"schema": {"type": "object"}}}
                            }
                        )
                    }
                }
            ),
            [
                "POST /a: object schema at $.requestBody.content.application/json.schema has no"
                " `properties` (free-form objects fail in ChatGPT)"
            ],
            id="free-form-object",
        ),
        pytest.param(
            document(
                {"/a": {"get": operation()}},
                components={"schemas": {"X": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}},
            ),
            ["components.schemas.X: schema at $ uses `oneOf`, which ChatGPT does not support"],
            id="one-of",
        ),
        pytest.param(
            document(
                {
                    "/a": {
                        "get": operation(
                            parameters=[{"name": "ids", "in": "query", "schema": {"type": "array"}}]
                        )
                    }
                }
            ),
            ["GET /a: parameter `ids` is an array query parameter; ChatGPT mis-serializes those"],
            id="array-query",
        ),
        pytest.param(
            document(
                {
                    "/a": {
                        "get": operation(
                            parameters=[
                                {"name": "X-Key", "in": "header", "schema": {"type": "string"}}
                            ]
                        )
                    }
                }
            ),
            ["GET /a: parameter `X-Key` is a header parameter; ChatGPT ignores those"],
            id="header-param",
        ),
        pytest.param(
            document({"/a": {"get": {"operationId": "op", "responses": {}}}}),
            ["GET /a: `x-openai-isConsequential` is not set"],
            id="consequential",
        ),
        pytest.param(
            document(
                {"/a": {"get": operation()}},
                components={
                    "schemas": {},
                    "securitySchemes": {
                        "a": {"type": "http", "scheme": "bearer"},
                        "b": {"type": "apiKey", "in": "header", "name": "k"},
                    },
                },
            ),
            ["uses 2 security schemes (a, b); an action supports one (A13)"],
            id="two-schemes",
        ),
    ],
)
def test_lint_catches_each_rule(doc: dict[str, Any], expected: list[str]) -> None:
    assert messages(doc) == expected


def test_operation_issues_carry_the_route_place() -> None:
    (issue,) = lint_document(
        "profile p",
        document({"/a": {"get": operation(summary="s" * 400)}}),
        {"op": ("routes.d/x.yaml", 7)},
    )
    assert (
        str(issue)
        == "routes.d/x.yaml:7: error: [profile p] GET /a: summary has 400 characters (max 300)"
    )
