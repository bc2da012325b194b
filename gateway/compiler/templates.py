"""Jinja2 templates in a sandboxed environment with native types, compiled once per snapshot.

``{{ query.per_page }}`` renders the int 20, ``{{ {"q": body.query} }}`` a dict. Templates may
only read the variables their place offers (``request`` names for request templates, the
upstream answer for response templates); anything else is a compile error, not a 500.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.nativetypes import NativeCodeGenerator, NativeEnvironment, NativeTemplate
from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "REQUEST_NAMES",
    "RESPONSE_NAMES",
    "CompiledTemplate",
    "TemplateCompiler",
    "html_to_text",
]

REQUEST_NAMES = frozenset({"query", "path", "headers", "body", "route", "request_id", "auth"})
RESPONSE_NAMES = REQUEST_NAMES | {"status", "request"}


def _concat(values: Iterable[Any]) -> Any:
    """One expression keeps its Python type; text mixed with expressions is a string.

    Jinja's own native concat also ``literal_eval``s strings, so `{{ x | tojson }}` would come
    back as a dict; a string result here is always the string the template wrote.
    """
    parts = list(itertools.islice(values, 2))
    if len(parts) == 1:
        return parts[0]
    return "".join(str(part) for part in itertools.chain(parts, values))


class _CodeGenerator(NativeCodeGenerator):
    """Evaluates expressions at render time, so a constant `{{ {...} }}` stays a dict.

    Jinja folds constant expressions into their text at compile time and relies on
    ``literal_eval`` to get the value back, which `_concat` deliberately does not do.
    """

    def _output_child_to_const(self, node: nodes.Expr, frame: Any, finalize: Any) -> str:
        if isinstance(node, nodes.TemplateData):
            return str(node.as_const(frame.eval_ctx))
        raise nodes.Impossible()


class _SandboxedNativeEnvironment(SandboxedEnvironment, NativeEnvironment):
    """Sandboxed (no attribute escapes) and native (values keep their Python type)."""

    concat = staticmethod(_concat)
    code_generator_class = _CodeGenerator


class _NativeTemplate(NativeTemplate):
    environment_class = _SandboxedNativeEnvironment


_SandboxedNativeEnvironment.template_class = _NativeTemplate


def pick(value: Any, *keys: str) -> Any:
    """`{{ item | pick('id', 'title') }}`: a dict with only these keys (missing keys skipped)."""
    if isinstance(value, Mapping):
        return {key: value[key] for key in keys if key in value}
    return value


def combine(*values: Any) -> dict[str, Any]:
    """`{{ a | combine(b) }}`: the mappings merged, later keys winning."""
    merged: dict[str, Any] = {}
    for value in values:
        if isinstance(value, Mapping):
            merged.update(value)
    return merged


_BLOCK_TAGS = re.compile(r"</?(p|div|br|li|tr|h[1-6])\b[^>]*>", re.I)
_TAGS = re.compile(r"<[^>]+>")
_SCRIPTS = re.compile(r"<(script|style)\b.*?</\1\s*>", re.I | re.S)
_BLANK_LINES = re.compile(r"\n\s*\n+")


def html_to_text(value: Any) -> str:
    """`{{ body | html_to_text }}`: tags dropped, blocks become lines, entities decoded."""
    text = _SCRIPTS.sub("", str(value or ""))
    text = _BLOCK_TAGS.sub("\n", text)
    text = html.unescape(_TAGS.sub("", text))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


_GLOBALS = {"now_iso": now_iso}


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _free_names(tree: nodes.Template) -> set[str]:
    """Names a template reads but never sets (cheaper than jinja2.meta's code generation)."""
    read: set[str] = set()
    stored: set[str] = set()
    for name in tree.find_all(nodes.Name):
        (read if name.ctx == "load" else stored).add(name.name)
    return read - stored - set(_GLOBALS)


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A compiled template; ``render(context)`` returns a native Python value."""

    source: str
    template: jinja2.Template
    constant: bool

    def render(self, context: Mapping[str, Any]) -> Any:
        if self.constant:
            return self.source
        return self.template.render(context)


_CACHE_SIZE = 10_000
_CACHE: dict[tuple[str, frozenset[str]], CompiledTemplate | str] = {}


class TemplateCompiler:
    """Compiles templates for one snapshot; errors are returned as text, never raised."""

    _env: _SandboxedNativeEnvironment | None = None

    def __init__(self) -> None:
        if TemplateCompiler._env is None:  # one environment per process: cached templates use it
            TemplateCompiler._env = self._environment()

    @staticmethod
    def _environment() -> _SandboxedNativeEnvironment:
        env = _SandboxedNativeEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False)
        env.filters.update(pick=pick, combine=combine, html_to_text=html_to_text, tojson=_tojson)
        env.globals.update(_GLOBALS)
        return env

    def compile(self, source: str, allowed: Iterable[str]) -> CompiledTemplate | str:
        """A compiled template, or the message saying why ``source`` is not one.

        Results are cached by text: a reload re-uses every template it did not change
        (compiling Jinja to Python code is most of a cold compile's time).
        """
        key = (source, frozenset(allowed))
        cached = _CACHE.get(key)
        if cached is None:
            cached = self._compile(source, key[1])
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = cached
        return cached

    def _compile(self, source: str, allowed: frozenset[str]) -> CompiledTemplate | str:
        try:
            env = self._env
            assert env is not None
            tree = env.parse(source)
            unknown = sorted(_free_names(tree) - set(allowed))
            if unknown:
                names = ", ".join(f"`{name}`" for name in unknown)
                available = ", ".join(sorted(allowed))
                return f"template uses unknown variable {names} (available: {available})"
            template = env.from_string(tree)
        except jinja2.TemplateSyntaxError as exc:
            return f"template syntax error on its line {exc.lineno}: {exc.message}"
        constant = "{{" not in source and "{%" not in source and "{#" not in source
        return CompiledTemplate(source, template, constant)
