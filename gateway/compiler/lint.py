"""Lint an OpenAPI document against the rules a ChatGPT Action must meet (DESIGN.md section 8).

Each issue names the rule, the operation and, where an operation is at fault, the route's
file:line. Errors make the import or the call fail in ChatGPT; warnings are what an operator
must fix before publishing (such as a non-https public URL during local development).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from gateway.snapshot import LintIssue

__all__ = ["MAX_DESCRIPTION", "MAX_OPERATIONS", "MAX_PARAM_DESCRIPTION", "lint_document"]

MAX_OPERATIONS = 30
MAX_DESCRIPTION = 300
MAX_PARAM_DESCRIPTION = 700
OPERATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def lint_document(
    name: str,
    document: Mapping[str, Any],
    origins: Mapping[str, tuple[str, int]],
    advice: str = "take routes out of it",
) -> list[LintIssue]:
    """Every rule ``document`` breaks (CHATGPT.md section 1 numbers them); ``origins`` maps
    operationId -> (file, line); ``advice`` says how to make a document smaller."""
    issues: list[LintIssue] = []

    def add(message: str, operation_id: str | None = None, level: str = "error") -> None:
        file, line = origins.get(operation_id or "", ("", 0))
        issues.append(LintIssue(level, name, message, file, line))

    if document.get("openapi") not in ("3.1.0", "3.1.1"):
        add(f"`openapi` must be 3.1.0, got {document.get('openapi')!r} (A1)")
    servers = document.get("servers") or []
    url = servers[0].get("url", "") if servers else ""
    if not url.startswith("https://"):
        add(
            f"servers[0].url {url!r} is not https: ChatGPT refuses it (A3); set server.public_url",
            level="warning",
        )
    components = document.get("components")
    if not isinstance(components, dict) or not isinstance(components.get("schemas"), dict):
        add(
            "`components.schemas` must be an object "
            "(ChatGPT: schemas subsection is not an object) (A8)"
        )
    schemes = (components or {}).get("securitySchemes", {})
    if len(schemes) > 1:
        add(
            f"uses {len(schemes)} security schemes ({', '.join(sorted(schemes))}); "
            "an action supports one (A13)"
        )

    operations = list(_operations(document))
    if len(operations) > MAX_OPERATIONS:
        names = ", ".join(str(op.get("operationId")) for _, _, op in operations)
        add(
            f"has {len(operations)} operations; an action allows at most {MAX_OPERATIONS} "
            f"(A5): {advice}. Its routes: {names}"
        )
    counts = Counter(op.get("operationId") for _, _, op in operations)
    for path, method, operation in operations:
        operation_id = operation.get("operationId")
        where = f"{method.upper()} {path}"
        if not isinstance(operation_id, str) or not OPERATION_ID.match(operation_id):
            add(
                f"{where}: operationId {operation_id!r} must match [A-Za-z0-9_-]{{1,64}}",
                operation_id,
            )
        elif counts[operation_id] > 1:
            add(f"{where}: operationId `{operation_id}` is not unique", operation_id)
        for key in ("summary", "description"):
            text = operation.get(key) or ""
            if len(text) > MAX_DESCRIPTION:
                add(
                    f"{where}: {key} has {len(text)} characters (max {MAX_DESCRIPTION})",
                    operation_id,
                )
        if "x-openai-isConsequential" not in operation:
            add(f"{where}: `x-openai-isConsequential` is not set", operation_id)
        for parameter in operation.get("parameters", []):
            label = f"{where}: parameter `{parameter.get('name')}`"
            if len(parameter.get("description") or "") > MAX_PARAM_DESCRIPTION:
                add(f"{label} description is over {MAX_PARAM_DESCRIPTION} characters", operation_id)
            if parameter.get("in") in ("header", "cookie"):
                add(
                    f"{label} is a {parameter['in']} parameter; ChatGPT ignores those", operation_id
                )
            if (
                parameter.get("in") == "query"
                and (parameter.get("schema") or {}).get("type") == "array"
            ):
                add(
                    f"{label} is an array query parameter; ChatGPT mis-serializes those",
                    operation_id,
                )
        for problem in _schema_problems(operation):
            add(f"{where}: {problem}", operation_id)
    for schema_name, schema in ((components or {}).get("schemas") or {}).items():
        for problem in _schema_problems(schema):
            add(f"components.schemas.{schema_name}: {problem}")
    return issues


def _operations(document: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in (document.get("paths") or {}).items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def _schema_problems(value: Any, where: str = "$") -> Iterator[str]:
    """Free-form objects, oneOf/anyOf and non-local refs anywhere below ``value``."""
    if isinstance(value, dict):
        if value.get("type") == "object" and "properties" not in value:
            yield (
                f"object schema at {where} has no `properties` (free-form objects fail in ChatGPT)"
            )
        for keyword in ("oneOf", "anyOf"):
            if keyword in value:
                yield f"schema at {where} uses `{keyword}`, which ChatGPT does not support"
        ref = value.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#/components/"):
            yield f"$ref {ref!r} at {where} is not local"
        for key, child in value.items():
            if key not in ("example", "examples", "default", "enum", "const"):
                yield from _schema_problems(child, f"{where}.{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _schema_problems(child, f"{where}[{index}]")
