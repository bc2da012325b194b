"""JSON Schemas of gateway.yaml and routes.d/*.yaml, generated from the config Structs.

Editors (the YAML language server) use them for completion and checking as you type.
`gateway schema` writes them; `gateway schema --check` fails when they are out of date.

msgspec describes a property only from a ``Meta(description=...)``; the docstring written
under a field in model.py (its documentation) is added as the property's ``description``
here, unless a Meta already gives one (the Meta wins).
"""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import json
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from gateway.config.fields import schema_hook
from gateway.config.model import GatewayFile, RouteFile

__all__ = ["config_schemas", "write_schemas"]

_FILES: dict[str, tuple[type[msgspec.Struct], str]] = {
    "gateway.schema.json": (GatewayFile, "gateway.yaml: the gateway's global configuration"),
    "routes.schema.json": (RouteFile, "routes.d/*.yaml: one upstream and its routes"),
}


def config_schemas() -> dict[str, str]:
    """File name -> schema text (stable, so the files can be compared in CI)."""
    schemas = {}
    for name, (struct, title) in _FILES.items():
        schema: dict[str, Any] = msgspec.json.schema(struct, schema_hook=schema_hook)
        schema = _accepting_variables(_with_field_docs(schema, struct))
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": title,
            **schema,
        }
        schemas[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return schemas


VARIABLE = {
    "type": "string",
    "pattern": r"^\$\{.+\}$",  # defaults nest: `${A:-${B:-60s}}`
    "description": "A `${VARIABLE}` (or `${VARIABLE:-default}`, `${file:PATH}`), set at load.",
}
_TYPED = {"integer", "number", "boolean"}


def _accepting_variables(schema: Any) -> Any:
    """Every non-string value may be written as one `${...}` expression (interpolated before
    the types are checked), so an editor does not flag `enabled: ${POLLING:-false}`."""
    if isinstance(schema, list):
        return [_accepting_variables(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    walked = {
        key: _accepting_variables(value) if key != "properties" else _each(value)
        for key, value in schema.items()
    }
    types = walked.get("type")
    kinds = set(types) if isinstance(types, list) else {types} if isinstance(types, str) else set()
    constrained = "string" in kinds and ("pattern" in walked or "enum" in walked)
    if (kinds & _TYPED and "string" not in kinds) or constrained:
        described = {key: walked[key] for key in ("description", "default") if key in walked}
        typed = {key: value for key, value in walked.items() if key not in described}
        return {**described, "anyOf": [typed, VARIABLE]}
    return walked


def _each(properties: Any) -> Any:
    """A `properties` map: its keys are names, its values schemas."""
    if not isinstance(properties, dict):
        return properties
    return {name: _accepting_variables(value) for name, value in properties.items()}


def _with_field_docs(schema: dict[str, Any], root: type[msgspec.Struct]) -> dict[str, Any]:
    """``schema`` with each field docstring as its property's description (Meta ones kept)."""
    structs = {struct.__name__: struct for struct in _reachable_structs(root)}
    definitions = {
        name: _described(
            _cleaned(definition), _field_docs(structs[name]) if name in structs else {}
        )
        for name, definition in schema.get("$defs", {}).items()
    }
    return {**schema, "$defs": definitions}


def _cleaned(definition: dict[str, Any]) -> dict[str, Any]:
    """The class docstring msgspec copied, its indentation dropped: Python 3.13 strips it when
    compiling, 3.11 and 3.12 do not, and the files must be the same on all of them."""
    doc = definition.get("description")
    if not isinstance(doc, str):
        return definition
    return {**definition, "description": inspect.cleandoc(doc)}


def _described(definition: dict[str, Any], docs: Mapping[str, str]) -> dict[str, Any]:
    properties = definition.get("properties")
    if not properties or not docs:
        return definition
    described = {
        name: {**prop, "description": _joined(docs[name], prop.get("description"))}
        if name in docs
        else prop
        for name, prop in properties.items()
    }
    return {**definition, "properties": described}


def _joined(field_doc: str, type_doc: str | None) -> str:
    """The field's own docstring first; a shared type's description (a `Meta` on an alias
    such as `Identifier`) follows it."""
    return field_doc if not type_doc else f"{field_doc} {type_doc}"


def _field_docs(struct: type[msgspec.Struct]) -> dict[str, str]:
    """Encoded field name -> the docstring written under the field (inherited ones included).

    A tagged Struct's tag field (`type`) is described by the tag and the class summary.
    """
    written: dict[str, str] = {}
    for cls in reversed(struct.__mro__):
        if issubclass(cls, msgspec.Struct) and cls is not msgspec.Struct:
            written.update(_attribute_docstrings(cls))
    docs = {
        field.encode_name: written[field.name]
        for field in msgspec.structs.fields(struct)
        if field.name in written
    }
    config = struct.__struct_config__
    if config.tag_field is not None and config.tag_field not in docs:
        docs[config.tag_field] = _tag_doc(struct, config.tag)
    return docs


def _tag_doc(struct: type[msgspec.Struct], tag: object) -> str:
    """The tag field of a union member: its value, and what it stands for (the class summary)."""
    summary = _unwrapped(struct.__doc__ or "").split("\n\n")[0]
    return f"`{tag}`: {summary}" if summary else f"`{tag}`"


def _unwrapped(docstring: str) -> str:
    """A docstring as description text: indentation dropped, each paragraph on one line."""
    paragraphs = inspect.cleandoc(docstring).split("\n\n")
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


def _attribute_docstrings(cls: type) -> dict[str, str]:
    """Attribute name -> the string literal statement right after it in the class body."""
    node = _class_nodes(cls.__module__).get(cls.__qualname__)
    docs: dict[str, str] = {}
    body = node.body if node is not None else []
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = _unwrapped(following.value.value)
    return docs


@functools.cache
def _class_nodes(module: str) -> Mapping[str, ast.ClassDef]:
    """Qualified name -> class statement, for the classes of ``module`` (parsed once).

    ``inspect.getsource(cls)`` would parse the whole module again for every class.
    """
    tree = ast.parse(inspect.getsource(sys.modules[module]))
    found: dict[str, ast.ClassDef] = {}
    pending: list[tuple[str, ast.stmt]] = [("", statement) for statement in tree.body]
    while pending:
        prefix, statement = pending.pop()
        if isinstance(statement, ast.ClassDef):
            name = prefix + statement.name
            found[name] = statement
            pending += [(name + ".", inner) for inner in statement.body]
    return found


def _reachable_structs(root: type[msgspec.Struct]) -> list[type[msgspec.Struct]]:
    """``root`` and every Struct its fields refer to, through unions, lists and dicts."""
    found: list[type[msgspec.Struct]] = []
    pending: list[Any] = [root]
    while pending:
        type_ = pending.pop()
        if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
            if type_ not in found:
                found.append(type_)
                pending += [field.type for field in msgspec.structs.fields(type_)]
        else:
            pending += _type_arguments(type_)
    return found


def _type_arguments(type_: Any) -> tuple[Any, ...]:
    """The types inside a generic, union or Annotated type (not metadata, not literals)."""
    origin = typing.get_origin(type_)
    if origin is typing.Literal:
        return ()
    if origin is typing.Annotated:
        return typing.get_args(type_)[:1]
    return typing.get_args(type_)


def write_schemas(folder: Path, *, check: bool = False) -> list[Path]:
    """Write the schemas into ``folder``; return the files that differed (were stale)."""
    stale = []
    for name, text in config_schemas().items():
        path = folder / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(path)
            if not check:
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return stale
