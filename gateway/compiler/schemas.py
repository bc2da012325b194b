"""Compile schemas/*.json: `$ref: name` resolved to components, each checked as JSON Schema."""

from __future__ import annotations

from typing import Any

import jsonschema

from gateway.compiler.collect import Compilation, schema_path
from gateway.compiler.validation import rewrite_refs

__all__ = ["compile_schemas", "unknown_schema"]


def compile_schemas(run: Compilation) -> dict[str, Any]:
    known = {schema.name for schema in run.config.schemas}
    compiled: dict[str, Any] = {}
    for loaded in run.config.schemas:
        missing: list[str] = []
        schema = rewrite_refs(loaded.schema, known, missing)
        for ref in missing:
            run.error(loaded.source, "$", unknown_schema(ref, known))
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            run.error(loaded.source, schema_path(exc), f"invalid JSON Schema: {exc.message}")
        compiled[loaded.name] = schema
    return compiled


def unknown_schema(ref: str, known: set[str]) -> str:
    listed = ", ".join(sorted(known)) or "none"
    return f"schema `{ref}` does not exist in schemas/ (known: {listed})"
