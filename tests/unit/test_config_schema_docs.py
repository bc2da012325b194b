"""Field docstrings of the config Structs are the `description`s of the generated JSON Schemas."""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import json
import sys
import typing
from pathlib import Path
from typing import Any

import msgspec

from gateway.config.jsonschema import config_schemas
from gateway.config.model import GatewayFile, RouteFile

REPO = Path(__file__).resolve().parents[2]


def schemas() -> dict[str, dict[str, Any]]:
    return {name: json.loads(text) for name, text in config_schemas().items()}


def prop(schema_file: str, struct: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = schemas()[schema_file]["$defs"][struct]["properties"][name]
    return found


def test_field_docstring_is_the_property_description() -> None:
    assert prop("gateway.schema.json", "Server", "public_url")["description"] == (
        "The URL clients (ChatGPT) reach the gateway at; written as `servers[0].url`. Empty"
        " (the default): where `gateway serve` listens, `http://127.0.0.1:<port>`; a ChatGPT"
        " Action needs a public https URL."
    )
    assert prop("routes.schema.json", "Upstream", "timeout")["description"] == (
        "Time a call may take, per attempt (default `defaults.timeout`, else 30s)."
    )


def test_wrapped_docstring_becomes_one_line() -> None:
    assert prop("gateway.schema.json", "QueueSettings", "consume")["description"] == (
        "Run handlers in this process; `false` makes a receive-only replica (with Redis,"
        " other replicas process the events)."
    )


def test_reload_settle_is_documented_with_its_default() -> None:
    settle = prop("gateway.schema.json", "ReloadSettings", "settle")
    assert settle["default"] is None
    assert settle["description"] == (
        "How long a watched file that vanished or lost all its contents (routes, webhooks,"
        " schedules; for gateway.yaml: any setting) must stay so before that is applied"
        " (default 1s); an editor's save or a `cp` over it within that time applies only the"
        " new content."
    )
    assert prop("gateway.schema.json", "GatewayFile", "reload")["$ref"] == (
        "#/$defs/ReloadSettings"
    )


def test_the_field_docstring_comes_before_its_type_description() -> None:
    assert prop("routes.schema.json", "Route", "id")["description"] == (
        "Unique across all files; the OpenAPI operationId. A name of letters, digits, `_`"
        " and `-`, starting with a letter (max 64)."
    )
    assert prop("routes.schema.json", "Webhook", "path")["description"] == (
        "The path the sender calls; it has no parameters (use `query`). A path starting with `/`."
    )


def test_tag_field_names_its_variant() -> None:
    assert prop("routes.schema.json", "HmacVerify", "type") == {
        "enum": ["hmac"],
        "description": "`hmac`: An HMAC of the raw request bytes in a header, compared in"
        " constant time.",
    }


def test_every_property_has_a_description() -> None:
    undocumented = [
        f"{file}: {struct}.{name}"
        for file, schema in schemas().items()
        for struct, definition in schema["$defs"].items()
        for name, value in definition.get("properties", {}).items()
        if not value.get("description")
    ]
    assert undocumented == []


def test_every_field_has_its_own_docstring() -> None:
    """Stricter than the schema check: a type's own description does not document a field."""
    defined = {
        struct: [field.name for field in msgspec.structs.fields(struct)]
        for struct in _structs(GatewayFile, RouteFile)
    }
    schema_props = {
        name: set(definition.get("properties", {}))
        for schema in schemas().values()
        for name, definition in schema["$defs"].items()
    }
    assert {struct.__name__ for struct in defined} == set(schema_props)
    undocumented = [
        f"{struct.__name__}.{name}"
        for struct, names in defined.items()
        for name in names
        if not _has_docstring(struct, name)
    ]
    assert undocumented == []


def test_committed_schemas_are_current() -> None:
    for name, text in config_schemas().items():
        committed = (REPO / "schemas" / "config" / name).read_text(encoding="utf-8")
        assert committed == text, f"run `gateway schema`: schemas/config/{name} is stale"


def _structs(*roots: type[msgspec.Struct]) -> set[type[msgspec.Struct]]:
    """The roots and every Struct reachable through their fields' types."""
    found: set[type[msgspec.Struct]] = set()
    pending: list[Any] = list(roots)
    while pending:
        type_ = pending.pop()
        if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
            if type_ not in found:
                found.add(type_)
                pending += [field.type for field in msgspec.structs.fields(type_)]
        elif typing.get_origin(type_) is not typing.Literal:
            pending += typing.get_args(type_)
    return found


def _has_docstring(struct: type[msgspec.Struct], name: str) -> bool:
    """A string literal statement right after the field, in the class declaring it."""
    return any(
        name in _documented(cls.__module__).get(cls.__qualname__, ()) for cls in struct.__mro__
    )


@functools.cache
def _documented(module: str) -> dict[str, set[str]]:
    """Class name -> the attributes followed by a docstring, for the top-level classes."""
    tree = ast.parse(inspect.getsource(sys.modules[module]))
    found: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            found[node.name] = {
                ast.unparse(statement.target)
                for statement, following in itertools.pairwise(node.body)
                if isinstance(statement, ast.AnnAssign)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            }
    return found
