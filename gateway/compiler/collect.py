"""The one error collector of a compile run, and what every phase shares.

Phases record mistakes here (each with its file:line:col) and return values; nothing raises
in the middle. ``compile_config`` raises once, at the end, with everything recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jsonschema

from gateway.compiler.templates import TemplateCompiler
from gateway.config.interpolate import MissingVariable
from gateway.config.load import Config
from gateway.config.source import SourceFile
from gateway.errors import ConfigError
from gateway.snapshot import CompiledTemplate

__all__ = ["Compilation", "missing_under", "schema_path"]


@dataclass
class Compilation:
    """``Compilation(config)``: the config being compiled and the mistakes found so far."""

    config: Config
    errors: list[ConfigError] = field(default_factory=list)
    templates: TemplateCompiler = field(default_factory=TemplateCompiler)
    seen_ids: dict[str, list[tuple[SourceFile, str]]] = field(default_factory=dict)
    """Route, webhook and schedule id -> where each was declared (for duplicate reports)."""
    seen_paths: dict[tuple[str, str], list[tuple[SourceFile, str, str]]] = field(
        default_factory=dict
    )
    """(method, path shape) -> (file, $.path, id) of each route or webhook serving it."""

    @property
    def gateway_source(self) -> SourceFile | None:
        return self.config.gateway_source

    def error(self, source: SourceFile | None, path: str, message: str) -> None:
        if source is None:  # defaults of a missing gateway.yaml
            self.errors.append(ConfigError("gateway.yaml", 0, 0, message, path))
        else:
            self.errors.append(source.error(path, message))

    def mark(self) -> int:
        """A position to ask ``failed_since`` about: did this item add mistakes?"""
        return len(self.errors)

    def failed_since(self, mark: int) -> bool:
        return len(self.errors) > mark

    def template(
        self,
        source: SourceFile,
        path: str,
        text: str | None,
        names: frozenset[str],
        *,
        upstream_path: bool = False,
    ) -> CompiledTemplate | None:
        """``text`` compiled (None for None); a broken template is recorded at ``path``.
        ``upstream_path``: its values are encoded as path segments."""
        if text is None:
            return None
        compiled = self.templates.compile(text, names, path=upstream_path)
        if isinstance(compiled, str):
            self.error(source, path, compiled)
            return None
        return compiled

    def declare_id(self, item_id: str, source: SourceFile, path: str) -> None:
        self.seen_ids.setdefault(item_id, []).append((source, path))

    def declare_path(
        self, method: str, shape: str, source: SourceFile, path: str, item_id: str
    ) -> None:
        self.seen_paths.setdefault((method, shape), []).append((source, path, item_id))


def missing_under(missing: tuple[MissingVariable, ...], prefix: str) -> list[str]:
    """The unset variables interpolated at ``prefix`` or below it, sorted."""
    found = [
        item.variable
        for item in missing
        if item.path == prefix or item.path.startswith((prefix + ".", prefix + "["))
    ]
    return sorted(set(found))


def schema_path(exc: jsonschema.SchemaError) -> str:
    """The `$.a[0].b` path inside a schema where ``exc`` was found."""
    path = "$"
    for part in exc.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path
