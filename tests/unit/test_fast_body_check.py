"""Body validation with a fast yes/no (jsonschema-rs) in front of jsonschema: the same
verdict and the same error texts as jsonschema alone, for every body."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.compiler.validation import body_validator, fast_check
from gateway.snapshot import ProxyRoute
from gateway.snapshot.validation import BodyValidator
from tests.conftest import REPO

COMPONENTS = {
    "Contact": {
        "type": "object",
        "properties": {"email": {"type": "string", "format": "email"}},
        "required": ["email"],
    }
}
SCHEMA = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1, "maxLength": 20},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100},
        "when": {"type": "string", "format": "date-time"},
        "id": {"type": "string", "format": "uuid"},
        "word": {"type": "string", "pattern": "^\\w+$"},
        "contacts": {"type": "array", "items": {"$ref": "#/components/schemas/Contact"}},
        "kind": {"enum": ["lead", "deal"]},
    },
    "required": ["query"],
    "additionalProperties": False,
}
BODIES: list[Any] = [
    {"query": "leads"},
    {"query": ""},
    {"query": "x" * 21},
    {"query": "q", "limit": 0},
    {"query": "q", "limit": 5.5},
    {"query": "q", "limit": True},
    {"query": "q", "when": "2026-12-04T10:00:00Z"},
    {"query": "q", "when": "yesterday"},
    {"query": "q", "id": "2b6f0cc9-5c8e-4b8a-9d0a-2f7f1f8b1e2a"},
    {"query": "q", "id": "not-a-uuid"},
    {"query": "q", "word": "héllo"},  # Python's \w takes é; ECMA's (jsonschema-rs) does not
    {"query": "q", "word": "two words"},
    {"query": "q", "contacts": [{"email": "ann@example.com"}]},
    {"query": "q", "contacts": [{"email": "nope"}]},
    {"query": "q", "contacts": [{}]},
    {"query": "q", "kind": "other"},
    {"query": "q", "extra": 1},
    {},
    [],
    "text",
    None,
    {"query": "q", "contacts": "none"},
]


def validators() -> tuple[BodyValidator, BodyValidator]:
    schema = body_validator(SCHEMA, COMPONENTS)
    fast = fast_check(schema)
    assert fast is not None
    return BodyValidator(schema, True, fast), BodyValidator(schema, True)


@pytest.mark.parametrize("body", BODIES)
def test_the_same_errors_as_jsonschema_alone(body: Any) -> None:
    with_fast, alone = validators()
    assert with_fast.errors(body) == alone.errors(body)


def test_a_body_only_the_fast_check_refuses_is_accepted() -> None:
    with_fast, _ = validators()
    assert with_fast.fast is not None
    body = {"query": "q", "word": "héllo"}
    assert with_fast.fast.is_valid(body) is False
    assert with_fast.errors(body) == []


def test_every_shipped_body_schema_has_the_fast_check() -> None:
    from gateway.boot import boot

    snapshot = boot(REPO, environ={}, watch=False).snapshot
    bodies = [route.body for route in snapshot.routes if route.body is not None]
    assert bodies
    assert all(body.fast is not None for body in bodies)
    assert any(isinstance(route, ProxyRoute) and route.body for route in snapshot.routes)
