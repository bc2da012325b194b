"""Read one YAML file into plain data, keeping where every value stands.

msgspec's own YAML decoder drops line numbers, so we run ``yaml.compose`` (its nodes keep
``start_mark``), build the Python value ourselves while interpolating ``${...}``, and keep a
map from msgspec-style paths (``$.routes[0].upstream.timeout``) to ``(line, column)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.config.interpolate import Interpolator, MissingVariable
from gateway.errors import ConfigError, ConfigErrors

__all__ = ["SourceFile", "read_yaml"]

_SCALARS = yaml.SafeLoader  # the constructor/resolver pair we reuse for plain scalars
# libyaml's parser keeps marks too and is ~10x faster; fall back when it is not built in.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class SourceFile:
    """One configuration file as read: its data plus where each value stands."""

    name: str
    data: Any
    marks: dict[str, tuple[int, int]]
    key_marks: dict[str, tuple[int, int]]
    """Where the key of a mapping entry stands (unknown-key errors point there)."""
    missing: tuple[MissingVariable, ...]
    secrets: frozenset[str]
    digest: str
    defaulted: tuple[MissingVariable, ...] = ()
    """Variables that were unset and took their `:-default`, with where they stand."""

    def locate(self, path: str) -> tuple[int, int]:
        """Line and column (1-based) of ``path``, or of its nearest known parent."""
        probe = path
        while probe:
            if probe in self.marks:
                return self.marks[probe]
            probe = _parent(probe)
        return self.marks.get("$", (1, 1))

    def error(self, path: str, message: str, *, at_key: bool = False) -> ConfigError:
        key_mark = self.key_marks.get(path) if at_key else None
        line, column = key_mark or self.locate(path)
        return ConfigError(self.name, line, column, message, path)


def _parent(path: str) -> str:
    if path == "$":
        return ""
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path[: path.rindex(".")] if "." in path else "$"


def read_yaml(file: Path, name: str, interpolator: Interpolator) -> SourceFile:
    """Parse ``file``; every mistake found is raised together as ConfigErrors."""
    raw = file.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        node = yaml.compose(raw.decode("utf-8"), Loader=_FAST_LOADER)
    except UnicodeDecodeError as exc:
        raise ConfigErrors([ConfigError(name, 0, 0, f"not UTF-8 text: {exc.reason}")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        message = f"YAML syntax error: {problem}{context}"
        raise ConfigErrors([ConfigError(name, line, column, message)]) from None
    walker = _Walker(name, interpolator)
    data = walker.value(node, "$") if node is not None else {}
    if walker.errors:
        raise ConfigErrors(walker.errors)
    return SourceFile(
        name=name,
        data=data,
        marks=walker.marks,
        key_marks=walker.key_marks,
        missing=tuple(interpolator.missing),
        secrets=frozenset(interpolator.secrets),
        digest=digest,
        defaulted=tuple(interpolator.defaulted),
    )


class _Walker:
    def __init__(self, name: str, interpolator: Interpolator) -> None:
        self.name = name
        self.interpolator = interpolator
        self.marks: dict[str, tuple[int, int]] = {}
        self.key_marks: dict[str, tuple[int, int]] = {}
        self.errors: list[ConfigError] = []
        self._constructor = _SCALARS("")

    def _error(self, node: yaml.Node, path: str, message: str) -> None:
        mark = node.start_mark
        self.errors.append(ConfigError(self.name, mark.line + 1, mark.column + 1, message, path))

    def value(self, node: yaml.Node, path: str) -> Any:
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, f"{path}[{index}]") for index, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: str) -> dict[str, Any]:
        self._constructor.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._constructor.construct_object(key_node)
            if not isinstance(key, str):
                self._error(key_node, path, f"keys must be strings, got `{key!r}`")
                continue
            child = f"{path}.{key}"
            self.key_marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result:
                self._error(key_node, child, f"duplicate key `{key}`")
                continue
            result[key] = self.value(value_node, child)
        return result

    def _scalar(self, node: yaml.ScalarNode, path: str) -> Any:
        if node.tag != "tag:yaml.org,2002:str" or "${" not in node.value:
            return self._constructor.construct_object(node)
        try:
            text, whole = self.interpolator.expand(node.value, path)
        except ValueError as exc:
            self._error(node, path, str(exc))
            return None
        if whole and not node.style:  # plain (unquoted); libyaml reports "" where PyYAML says None
            # `enabled: ${POLLING:-false}` is a bool, as if the value had been written there.
            tag = self._constructor.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
            return self._constructor.construct_object(yaml.ScalarNode(tag, text))
        return text
