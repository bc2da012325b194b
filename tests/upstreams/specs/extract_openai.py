"""Write openai-2.3.0-schemas.json: the schemas the loopback OpenAI checks against.

Source: github.com/openai/openai-openapi `openapi.yaml` at commit
f85dbe223d40e1a31cba812ab2d755c7e98a92a3 (OpenAPI 3.1.0, info.version 2.3.0, MIT), sha256
db5d7478feae10b4d331834c60d9765a8aa042e38419f9b1694288c11aa8ebc8 (shared/specs/SOURCES.md).
Kept: each used operation's request and success-response schema as the spec's paths give them
(`operations`), every component schema they reference, and nothing that validation does not
read: the documentation keywords (`description`, `example`, `examples`, `title`,
`deprecated`, `x-oai*`, `x-stainless-const`) are dropped, so the tests carry ~170 KB, not
3 MB. Property names are never dropped (a property called `description` stays). The
schemas are JSON Schema 2020-12 (OpenAPI 3.1): validate with Draft202012Validator.

    python tests/upstreams/specs/extract_openai.py ../shared/specs/openai-openapi.yaml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

# (method, path) of every call the gateway makes and the loopback serves.
OPERATIONS = [
    ("get", "/models"),
    ("post", "/conversations"),
    ("get", "/conversations/{conversation_id}"),
    ("get", "/conversations/{conversation_id}/items"),
    ("post", "/conversations/{conversation_id}/items"),
    ("post", "/responses"),
    ("post", "/chat/completions"),
]
EXTRA = ["ErrorResponse"]  # the error envelope every operation answers with
DOCUMENTATION = {"description", "example", "examples", "title", "deprecated", "externalDocs"}
# Keys whose value maps names to schemas: their keys are names, not keywords.
NAMED = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}


def refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            found |= refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= refs(value)
    return found


def lean(node: Any, names: bool = False) -> Any:
    """``node`` without documentation keywords (``names``: a map of names to schemas)."""
    if isinstance(node, list):
        return [lean(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if names:
            out[key] = lean(value)
        elif key in DOCUMENTATION or key.startswith("x-oai") or key == "x-stainless-const":
            continue
        elif key in ("enum", "const", "default"):
            out[key] = value  # values, not schemas
        else:
            out[key] = lean(value, names=key in NAMED)
    return out


def main(spec_path: str) -> None:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(Path(spec_path).read_bytes(), Loader=loader)  # noqa: S506 (safe loader)
    schemas = spec["components"]["schemas"]
    operations: dict[str, dict[str, Any]] = {}
    for method, path in OPERATIONS:
        operation = spec["paths"][path][method]
        found: dict[str, Any] = {"operationId": operation["operationId"]}
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            found["request"] = lean(body["schema"])
        found["response"] = lean(
            operation["responses"]["200"]["content"]["application/json"]["schema"]
        )
        operations[f"{method.upper()} {path}"] = found
    keep: set[str] = set()
    todo = [*refs(operations), *EXTRA]
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(refs(schemas[name]) - keep)
    out = {
        "info": {"version": spec["info"]["version"]},
        "operations": operations,
        "components": {"schemas": {name: lean(schemas[name]) for name in sorted(keep)}},
    }
    target = Path(__file__).with_name("openai-2.3.0-schemas.json")
    target.write_text(json.dumps(out, indent=1, sort_keys=True, default=str) + "\n")
    print(f"{target}: {len(operations)} operations, {len(keep)} schemas")


if __name__ == "__main__":
    main(sys.argv[1])
