"""A route's own error shape (`response.error_body`): compiled with the names it may read,
rendered over the problem, and never a failure of its own."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from gateway.compiler.build import compile_config
from gateway.config.load import load
from gateway.errors import ConfigErrors
from gateway.serve.problems import PROBLEM_CONTENT_TYPE, problem_fields, templated_error
from gateway.snapshot import CompiledTemplate, ProxyRoute
from tests.conftest import REPO, write_config

ROUTE = """\
routes:
  - id: hello
    path: /hello
    static: true
    response:
      body: '{{ {"hi": 1} }}'
      error_body: '{error_body}'
"""


def compiled(tmp_path: Path, error_body: str) -> CompiledTemplate:
    folder = write_config(tmp_path, "", {"hello": ROUTE.replace("{error_body}", error_body)})
    match = compile_config(load(folder, environ={})).table.match("GET", "/hello")
    assert match is not None
    assert match.route.error_body is not None
    return match.route.error_body


def openai_chat(environ: dict[str, str]) -> ProxyRoute:
    match = compile_config(load(REPO, environ=environ)).table.match("POST", "/openai/chat")
    assert match is not None
    assert isinstance(match.route, ProxyRoute)
    return match.route


def test_error_body_reads_only_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as raised:
        compiled(tmp_path, '{{ {"message": detail} }}')
    assert str(raised.value) == (
        "routes.d/hello.yaml:7:19: template uses unknown variable `detail` (available: problem)"
        " - at `$.routes[0].response.error_body`"
    )


def test_error_body_renders_the_problem_in_the_route_shape(tmp_path: Path) -> None:
    template = compiled(
        tmp_path,
        '{{ {"status": "error", "message": problem.detail}'
        ' | combine({"errors": problem.errors} if problem.errors else {}) }}',
    )
    fields = problem_fields(404, "plugin-refused", "not here", route="hello", request_id="r1")
    assert templated_error(template, fields) == (
        b"application/json",
        b'{"status":"error","message":"not here"}',
    )
    fields["errors"] = [{"in": "body", "field": "$.x", "message": "is required"}]
    _, body = templated_error(template, fields)
    assert msgspec.json.decode(body)["errors"] == fields["errors"]


def test_a_failing_error_body_answers_the_problem(tmp_path: Path) -> None:
    template = compiled(tmp_path, "{{ 1 / 0 }}")
    fields = problem_fields(500, "internal-error", "internal error", route="hello")
    assert templated_error(template, fields) == (
        PROBLEM_CONTENT_TYPE,
        msgspec.json.encode(fields),
    )


def test_shipped_chatbeto_routes_answer_errors_in_the_original_shape() -> None:
    snapshot = compile_config(load(REPO, environ={}))
    shaped = {route.id for route in snapshot.routes if route.error_body is not None}
    assert shaped == {
        "chatbetoStatus",
        "createChatbetoConversation",
        "listChatbetoConversations",
        "getChatbetoConversation",
        "addChatbetoMessage",
        "chatbetoCompletion",
        "startChatbetoSync",
        "getChatbetoSync",
    }


def test_an_empty_upstream_header_is_not_sent() -> None:
    environ = {"OPENAI_API_KEY": "sk-1"}
    assert "OpenAI-Organization" not in openai_chat(environ).upstream.headers
    environ["OPENAI_ORG_ID"] = "org-1"
    assert openai_chat(environ).upstream.headers["OpenAI-Organization"] == "org-1"
