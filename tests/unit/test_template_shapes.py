"""Shaping templates compiled to plain Python give what Jinja gives, for every data shape:
the compiled ones on plain JSON data, and Jinja itself wherever the data is not plain."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.compiler.templates import TemplateCompiler
from gateway.snapshot.templates import CompiledTemplate, encode_json

NAMES = ("body", "query", "path", "status", "auth", "request", "headers")
COMPILED = [
    '{{ {"data": body.data | map("pick", "id", "name") | list, "page": body.page} }}',
    "{{ body.data | map('pick', 'id') | list }}",
    "{{ body | pick('id', 'name') }}",
    "{{ body.data[0] }}",
    "{{ body.data[1].name }}",
    '{{ body["page"] }}',
    "{{ [body.page, status, 'x', 1, none] }}",
    "{{ body.missing.deeper }}",
    "{{ body.data | list }}",
    '{{ {"owner": auth.user, "q": query.q} }}',
]
NOT_COMPILED = [
    "{{ body.data | length }}",
    "{{ body.page + 1 }}",
    "{{ body.data | map(attribute='id') | list }}",
    "{{ body.data | map('pick', 'id') }}",
    "hello {{ body.page }}",
    "{% if body.page %}1{% endif %}",
    "{{ now_iso() }}",
    "{{ body.data | tojson }}",
    "{{ body.data[-1].name }}",  # -1 is an expression (a negation), not a constant
]
BODIES: list[Any] = [
    {"data": [{"id": 1, "name": "a", "x": 0}, {"id": 2}], "page": 3},
    {"data": [], "page": None},
    {"data": "text", "page": "p"},
    {"data": [1, "two", None, {"name": "n"}], "page": 1},
    {"data": {"id": 1}},
    {"items": [1], "keys": 2, "data": [{"id": 9}]},
    {"page": 1},
    [],
    "plain text",
    None,
    {"data": [{"id": 1}], "page": {"nested": [1, 2]}},
]


def compiled(source: str) -> CompiledTemplate:
    found = TemplateCompiler().compile(source, NAMES)
    assert isinstance(found, CompiledTemplate), found
    return found


def rendered(template: CompiledTemplate, body: Any) -> bytes | str:
    context = {
        "body": body,
        "query": {"q": "leads"},
        "path": {},
        "status": 200,
        "auth": {"user": "uid_ann"},
        "request": {},
        "headers": {},
    }
    try:
        return encode_json(template.render(context))
    except Exception as exc:  # Jinja's failure is the expected answer too
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("source", COMPILED)
def test_the_common_shapes_are_compiled(source: str) -> None:
    assert compiled(source).fast is not None


@pytest.mark.parametrize("source", NOT_COMPILED)
def test_the_others_are_left_to_jinja(source: str) -> None:
    assert compiled(source).fast is None


@pytest.mark.parametrize("source", COMPILED)
@pytest.mark.parametrize("body", BODIES)
def test_compiled_or_not_the_answer_is_jinjas(source: str, body: Any) -> None:
    fast = compiled(source)
    jinja_only = dataclasses.replace(fast, fast=None)
    assert rendered(fast, body) == rendered(jinja_only, body)


def test_the_shipped_and_bench_shaping_templates_are_compiled() -> None:
    from gateway.boot import boot
    from gateway.snapshot import ProxyRoute
    from tests.conftest import REPO

    snapshot = boot(REPO / "bench" / "config", environ={}, watch=False).snapshot
    shaped = [r for r in snapshot.routes if isinstance(r, ProxyRoute) and r.shape and r.shape.body]
    assert [r.id for r in shaped] == ["shapedItems"]
    assert all(
        r.shape is not None and r.shape.body is not None and r.shape.body.fast for r in shaped
    )
