"""Compiling the shipped and small configs: routes, versions, unconfigured routes, secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.compiler.build import compile_config
from gateway.compiler.validation import body_validator
from gateway.config.load import load
from gateway.config.model import Param
from gateway.errors import ConfigErrors
from gateway.snapshot import ProxyRoute
from gateway.snapshot.validation import FieldError, ParamValidator, body_errors
from tests.conftest import REPO, write_config

CRM = """\
upstream:
  name: crm
  base_url: ${CRM_URL:-http://127.0.0.1:9}
  auth: {type: bearer, token: "${CRM_TOKEN}"}
routes:
  - {id: listItems, path: /items}
  - {id: getItem, path: '/items/{item_id}'}
  - {id: putItem, method: PUT, path: '/items/{item_id}'}
"""
PUBLIC = (
    "routes:\n  - {id: hello, path: /hello, static: true, response: {body: '{{ {\"hi\": 1} }}'}}\n"
)


def test_shipped_config_compiles_without_secrets() -> None:
    snapshot = compile_config(load(REPO, environ={}))
    assert len(snapshot.routes) == 30  # 21 + ChatBETO's 8 + the original Gmail callback path
    assert set(snapshot.profiles) == {
        "ambivo",
        "support",
        "openai",
        "apps",
        "omi",
        "gmail",
        "assistant",
    }
    assert snapshot.webhooks["intercomEvents"].unconfigured == (
        'webhook "intercomEvents" is not configured: set GPT_TRAINER_CHATBOT_UUID or '
        "CHATBOT_UUID, INTERCOM_ADMIN_ID, INTERCOM_CLIENT_SECRET"
    )
    assert snapshot.webhooks["omiMemoryCreated"].unconfigured is None  # OMI signs nothing
    assert snapshot.unconfigured["listGmailMessages"] == (
        'upstream "gmail" is not configured: set GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET'
    )
    assert snapshot.table.match("GET", "/api/conversations").route.scopes == ("read:memories",)
    (poll,) = snapshot.schedules
    assert (poll.id, poll.every, poll.enabled) == ("pollIntercom", 60.0, False)
    assert snapshot.unconfigured["listModels"] == (
        'upstream "openai" is not configured: set OPENAI_API_KEY'
    )
    assert "naturalQuery" not in snapshot.unconfigured  # Ambivo needs no gateway secret


def test_version_is_a_content_hash(tmp_path: Path) -> None:
    folder = write_config(tmp_path, "", {"crm": CRM})
    first = compile_config(load(folder, environ={})).version
    assert compile_config(load(folder, environ={})).version == first
    assert compile_config(load(folder, environ={"CRM_URL": "http://10.0.0.1"})).version != first
    (folder / "routes.d" / "crm.yaml").write_text(CRM.replace("/items}", "/things}"))
    assert compile_config(load(folder, environ={})).version != first


def test_route_table_matches_exact_and_parameterised_paths(tmp_path: Path) -> None:
    snapshot = compile_config(load(write_config(tmp_path, "", {"crm": CRM}), environ={}))
    exact = snapshot.table.match("GET", "/items")
    assert exact is not None
    assert exact.route.id == "listItems"
    assert exact.params == {}
    found = snapshot.table.match("PUT", "/items/42")
    assert found is not None
    assert found.route.id == "putItem"
    assert found.params == {"item_id": "42"}
    assert snapshot.table.match("GET", "/items/42/more") is None
    assert snapshot.table.match("POST", "/items") is None
    assert snapshot.table.allowed_methods("/items/7") == {"GET", "PUT"}


def test_missing_secret_marks_the_upstream_unconfigured(tmp_path: Path) -> None:
    folder = write_config(tmp_path, "", {"crm": CRM, "public": PUBLIC})
    snapshot = compile_config(load(folder, environ={}))
    message = 'upstream "crm" is not configured: set CRM_TOKEN'
    assert snapshot.unconfigured == {"listItems": message, "getItem": message, "putItem": message}
    hello = next(route for route in snapshot.routes if route.id == "hello")
    assert hello.status_text == "ok"
    assert snapshot.routes[0].status_text == f"unconfigured: {message}"


def test_secrets_are_redacted_and_never_served(tmp_path: Path) -> None:
    folder = write_config(tmp_path, "", {"crm": CRM})
    snapshot = compile_config(load(folder, environ={"CRM_TOKEN": "sk-very-secret-token"}))
    assert snapshot.unconfigured == {}
    assert "sk-very-secret-token" in snapshot.secrets
    assert snapshot.redact("echo: Bearer sk-very-secret-token!") == "echo: Bearer ***!"
    served = json.dumps([snapshot.openapi, dict(snapshot.profiles), snapshot.ai_plugin])
    assert "sk-very-secret-token" not in served


def test_file_and_default_interpolation(tmp_path: Path) -> None:
    (tmp_path / "token.txt").write_text("from-a-file\n")
    routes = CRM.replace("${CRM_TOKEN}", "${file:token.txt}").replace(
        "routes:", "  headers: {X-Mode: '${MODE:-fast}', X-Raw: '$${NOT_A_VAR}'}\nroutes:"
    )
    snapshot = compile_config(load(write_config(tmp_path, "", {"crm": routes}), environ={}))
    route = snapshot.routes[0]
    assert isinstance(route, ProxyRoute)
    assert route.upstream.headers == {
        "X-Mode": "fast",
        "X-Raw": "${NOT_A_VAR}",
        "Authorization": "Bearer from-a-file",
    }
    assert "from-a-file" in snapshot.secrets


def test_whole_expression_takes_the_type_of_its_value(tmp_path: Path) -> None:
    plain = write_config(tmp_path / "plain", "server:\n  access_log: ${LOG:-false}\n", {})
    assert compile_config(load(plain, environ={})).access_log is False
    assert compile_config(load(plain, environ={"LOG": "true"})).access_log is True
    quoted = write_config(tmp_path / "quoted", "server:\n  access_log: '${LOG:-false}'\n", {})
    with pytest.raises(ConfigErrors) as caught:
        load(quoted, environ={})
    assert str(caught.value) == (
        "gateway.yaml:2:15: Expected `bool`, got `str` - at `$.server.access_log`"
    )


def test_param_validator_coerces_and_collects_every_error() -> None:
    validator = ParamValidator.build(
        "query",
        [
            Param(name="per_page", type="integer", minimum=1, maximum=150, default=20),
            Param(name="state", enum=["open", "closed"]),
            Param(name="unread", type="boolean"),
            Param(name="code", pattern="^[A-Z]{3}$", required=True),
            Param(name="ratio", type="number", maximum=1),
        ],
    )
    errors: list[FieldError] = []
    values = validator({"unread": "yes", "code": "ABC"}, errors)
    assert errors == []
    assert values == {"per_page": 20, "unread": True, "code": "ABC"}
    values = validator(
        {"per_page": "0", "state": "lost", "unread": "maybe", "code": "abc", "ratio": "x"}, errors
    )
    assert [(error.field, error.message) for error in errors] == [
        ("per_page", "must be >= 1, got 0"),
        ("state", "must be one of open, closed, got 'lost'"),
        ("unread", "Expected `boolean`, got 'maybe'"),
        ("code", "must match '^[A-Z]{3}$'"),
        ("ratio", "Expected `number`, got 'x'"),
    ]
    errors.clear()
    validator({}, errors)
    assert errors == [FieldError("query", "code", "is required")]


def test_body_validator_reports_every_failing_field() -> None:
    schema = {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "format": {"enum": ["table", "both"]},
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
        },
        "required": ["query"],
    }
    item = {"type": "object", "properties": {"n": {"type": "integer"}}}
    validator = body_validator(schema, {"Item": item})
    found = body_errors(validator, {"format": "csv", "items": [{"n": 1}, {"n": "two"}]})
    assert [(error.field, error.message) for error in found] == [
        ("$.format", "'csv' is not one of ['table', 'both']"),
        ("$.items[1].n", "'two' is not of type 'integer'"),
        ("$.query", "is required"),
    ]
