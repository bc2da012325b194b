"""Request validators built once per route from its declared parameters and body schema.

Every failing field is reported, not just the first: query and path parameters are checked by
hand against their small schema; bodies by jsonschema (Draft 2020-12), whose ``iter_errors``
walks the whole document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import msgspec

from gateway.config.model import Param, Route

__all__ = [
    "PATH_PARAM",
    "FieldError",
    "ParamValidator",
    "body_errors",
    "body_validator",
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


class FieldError(msgspec.Struct, frozen=True):
    """One failing field: where (`query`, `path`, `body`), which, and why."""

    location: str
    field: str
    message: str


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True, slots=True)
class ParamValidator:
    """Coerces and checks the raw string values of one location's parameters."""

    location: str
    params: tuple[Param, ...]
    patterns: tuple[re.Pattern[str] | None, ...]

    @classmethod
    def build(cls, location: str, params: list[Param]) -> ParamValidator:
        patterns = tuple(re.compile(param.pattern) if param.pattern else None for param in params)
        return cls(location, tuple(params), patterns)

    def __call__(self, raw: Mapping[str, str], errors: list[FieldError]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for param, pattern in zip(self.params, self.patterns, strict=True):
            text = raw.get(param.name)
            if text is None:
                if param.required:
                    errors.append(FieldError(self.location, param.name, "is required"))
                elif param.default is not None:
                    values[param.name] = param.default
                continue
            value = self._check(param, pattern, text, errors)
            if value is not None:
                values[param.name] = value
        return values

    def _check(
        self, param: Param, pattern: re.Pattern[str] | None, text: str, errors: list[FieldError]
    ) -> Any:
        def fail(message: str) -> None:
            errors.append(FieldError(self.location, param.name, message))

        value: Any = text
        if param.type == "integer":
            try:
                value = int(text)
            except ValueError:
                return fail(f"Expected `integer`, got {text!r}")
        elif param.type == "number":
            try:
                value = float(text)
            except ValueError:
                return fail(f"Expected `number`, got {text!r}")
        elif param.type == "boolean":
            lowered = text.lower()
            if lowered not in _TRUE | _FALSE:
                return fail(f"Expected `boolean`, got {text!r}")
            value = lowered in _TRUE
        if param.enum is not None and value not in param.enum:
            return fail(f"must be one of {', '.join(map(str, param.enum))}, got {text!r}")
        if param.minimum is not None and value < param.minimum:
            return fail(f"must be >= {param.minimum}, got {text}")
        if param.maximum is not None and value > param.maximum:
            return fail(f"must be <= {param.maximum}, got {text}")
        if param.min_length is not None and len(text) < param.min_length:
            return fail(f"must be at least {param.min_length} characters long")
        if param.max_length is not None and len(text) > param.max_length:
            return fail(f"must be at most {param.max_length} characters long")
        if pattern is not None and not pattern.search(text):
            return fail(f"must match {param.pattern!r}")
        return value


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


def body_validator(
    schema: dict[str, Any], components: Mapping[str, Any]
) -> jsonschema.protocols.Validator:
    """A Draft 2020-12 validator whose `#/components/schemas/x` refs resolve to ``components``."""
    root = {"allOf": [schema], "components": {"schemas": dict(components)}}
    validator_class = jsonschema.Draft202012Validator
    return validator_class(root, format_checker=validator_class.FORMAT_CHECKER)


_REQUIRED = re.compile(r"^'(.+)' is a required property$")


def body_errors(validator: jsonschema.protocols.Validator, body: Any) -> list[FieldError]:
    found = []
    for error in validator.iter_errors(body):
        path = _json_path(error.absolute_path)
        missing = _REQUIRED.match(error.message) if error.validator == "required" else None
        if missing:  # name the missing field itself, not the object that lacks it
            found.append(FieldError("body", f"{path}.{missing[1]}", "is required"))
        else:
            found.append(FieldError("body", path, error.message))
    return sorted(found, key=lambda error: error.field)


def _json_path(parts: Any) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path
