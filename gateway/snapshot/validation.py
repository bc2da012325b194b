"""Request validators, built once per route: query and path parameters, and the JSON body.

Every failing field is reported, not just the first: parameters are checked by hand against
their small schema; bodies by jsonschema (Draft 2020-12), whose ``iter_errors`` walks the
whole document.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jsonschema
import msgspec

__all__ = ["BodyValidator", "FastCheck", "FieldError", "ParamRule", "ParamValidator", "body_errors"]


class FieldError(msgspec.Struct, frozen=True):
    """One failing field: where (`query`, `path`, `body`), which, and why."""

    location: str
    field: str
    message: str


class _ParamLike(Protocol):
    """A declared parameter (the config's `Param`), read once into a :class:`ParamRule`."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def required(self) -> bool: ...
    @property
    def default(self) -> Any: ...
    @property
    def enum(self) -> list[Any] | None: ...
    @property
    def minimum(self) -> float | None: ...
    @property
    def maximum(self) -> float | None: ...
    @property
    def min_length(self) -> int | None: ...
    @property
    def max_length(self) -> int | None: ...
    @property
    def pattern(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ParamRule:
    """One parameter's checks, compiled (``pattern`` anchored by the compiler's rules)."""

    name: str
    type: str
    required: bool
    default: Any
    enum: tuple[Any, ...] | None
    minimum: float | None
    maximum: float | None
    min_length: int | None
    max_length: int | None
    pattern: str | None
    regex: re.Pattern[str] | None

    @classmethod
    def of(cls, param: _ParamLike) -> ParamRule:
        return cls(
            name=param.name,
            type=param.type,
            required=param.required,
            default=param.default,
            enum=tuple(param.enum) if param.enum is not None else None,
            minimum=param.minimum,
            maximum=param.maximum,
            min_length=param.min_length,
            max_length=param.max_length,
            pattern=param.pattern,
            regex=re.compile(param.pattern) if param.pattern else None,
        )


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True, slots=True)
class ParamValidator:
    """Coerces and checks the raw string values of one location's parameters.

    ``ParamValidator.build("query", params)({"per_page": "20"}, errors)`` -> ``{"per_page": 20}``
    """

    location: str
    rules: tuple[ParamRule, ...]

    @classmethod
    def build(cls, location: str, params: Iterable[_ParamLike]) -> ParamValidator:
        return cls(location, tuple(ParamRule.of(param) for param in params))

    def __call__(self, raw: Mapping[str, str], errors: list[FieldError]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for rule in self.rules:
            text = raw.get(rule.name)
            if text is None:
                if rule.required:
                    errors.append(FieldError(self.location, rule.name, "is required"))
                elif rule.default is not None:
                    values[rule.name] = rule.default
                continue
            value = self._check(rule, text, errors)
            if value is not None:
                values[rule.name] = value
        return values

    def _check(self, rule: ParamRule, text: str, errors: list[FieldError]) -> Any:
        def fail(message: str) -> None:
            errors.append(FieldError(self.location, rule.name, message))

        value: Any = text
        if rule.type == "integer":
            try:
                value = int(text)
            except ValueError:
                return fail(f"Expected `integer`, got {text!r}")
        elif rule.type == "number":
            try:
                value = float(text)
            except ValueError:
                return fail(f"Expected `number`, got {text!r}")
        elif rule.type == "boolean":
            lowered = text.lower()
            if lowered not in _TRUE | _FALSE:
                return fail(f"Expected `boolean`, got {text!r}")
            value = lowered in _TRUE
        if rule.enum is not None and value not in rule.enum:
            return fail(f"must be one of {', '.join(map(str, rule.enum))}, got {text!r}")
        if rule.minimum is not None and value < rule.minimum:
            return fail(f"must be >= {rule.minimum}, got {text}")
        if rule.maximum is not None and value > rule.maximum:
            return fail(f"must be <= {rule.maximum}, got {text}")
        if rule.min_length is not None and len(text) < rule.min_length:
            return fail(f"must be at least {rule.min_length} characters long")
        if rule.max_length is not None and len(text) > rule.max_length:
            return fail(f"must be at most {rule.max_length} characters long")
        if rule.regex is not None and not rule.regex.fullmatch(text):
            return fail(f"must match {rule.pattern!r}")
        return value


class FastCheck(Protocol):
    """A compiled validator that only says yes or no (jsonschema-rs): 0.3 µs where walking
    the schema for errors takes 18."""

    def is_valid(self, instance: Any) -> bool: ...


@dataclass(frozen=True, slots=True)
class BodyValidator:
    """A route's JSON body schema, compiled: ``validator.errors(body)`` lists every failure.

    ``fast`` answers the common case, a valid body; a body it refuses is walked by
    ``schema`` for the error texts (so they are jsonschema's, and a body the fast check
    alone would refuse is still accepted when jsonschema finds nothing wrong)."""

    schema: jsonschema.protocols.Validator
    required: bool
    fast: FastCheck | None = None

    def errors(self, body: Any) -> list[FieldError]:
        if self.fast is not None and self.fast.is_valid(body):
            return []
        return body_errors(self.schema, body)


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


def _json_path(parts: Iterable[Any]) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path
