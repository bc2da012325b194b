"""Build request validators: path parameters from the route's path, body schemas with their
`$ref`s resolved to components (the validators themselves are in gateway.snapshot)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jsonschema
import jsonschema_rs

from gateway.config.model import Param, Route
from gateway.snapshot.validation import FastCheck

__all__ = [
    "COMPONENTS_PREFIX",
    "PATH_PARAM",
    "body_validator",
    "fast_check",
    "path_params",
    "rewrite_refs",
]

COMPONENTS_PREFIX = "#/components/schemas/"
PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def path_params(route: Route) -> list[Param]:
    """The route's path parameters in path order; undeclared ones are required strings."""
    declared = {param.name: param for param in route.path_params}
    return [
        declared.get(name) or Param(name=name, required=True)
        for name in PATH_PARAM.findall(route.path)
    ]


def rewrite_refs(schema: Any, known: set[str], missing: list[str]) -> Any:
    """Turn `$ref: name` into `#/components/schemas/name`; note names that do not exist."""
    if isinstance(schema, dict):
        result = {}
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                name = value.removeprefix(COMPONENTS_PREFIX)
                if "/" in name or "#" in name or name not in known:
                    missing.append(value)
                result[key] = COMPONENTS_PREFIX + name
            else:
                result[key] = rewrite_refs(value, known, missing)
        return result
    if isinstance(schema, list):
        return [rewrite_refs(item, known, missing) for item in schema]
    return schema


def fast_check(validator: jsonschema.protocols.Validator) -> FastCheck | None:
    """The same schema compiled by jsonschema-rs (formats checked too), or None when it
    cannot compile it (then jsonschema alone decides, as before)."""
    schema = validator.schema
    if not isinstance(schema, dict):
        return None
    try:
        compiled: FastCheck = jsonschema_rs.validator_for(schema, validate_formats=True)
    except (ValueError, jsonschema_rs.ValidationError):
        return None
    return compiled


def body_validator(
    schema: dict[str, Any], components: Mapping[str, Any]
) -> jsonschema.protocols.Validator:
    """A Draft 2020-12 validator whose `#/components/schemas/x` refs resolve to ``components``."""
    root = {"allOf": [schema], "components": {"schemas": dict(components)}}
    validator_class = jsonschema.Draft202012Validator
    return validator_class(root, format_checker=validator_class.FORMAT_CHECKER)
