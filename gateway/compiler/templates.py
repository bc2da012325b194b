"""Compile template text once per snapshot, checking the names it reads.

Templates may only read the variables their place offers (``request`` names for request
templates, the upstream answer for response templates); anything else is a compile error,
not a 500. Results are cached by text across reloads.
"""

from __future__ import annotations

from collections.abc import Iterable

import jinja2
from jinja2 import nodes

from gateway.compiler.shapes import compile_shape
from gateway.snapshot.templates import TEMPLATE_GLOBALS, CompiledTemplate, environment

__all__ = ["ERROR_NAMES", "REQUEST_NAMES", "RESPONSE_NAMES", "TemplateCompiler"]

REQUEST_NAMES = frozenset({"query", "path", "headers", "body", "route", "request_id", "auth"})
RESPONSE_NAMES = REQUEST_NAMES | {"status", "request"}
ERROR_NAMES = frozenset({"problem"})
"""A route's `response.error_body` sees the problem it replaces, as a dict."""


def _free_names(tree: nodes.Template) -> set[str]:
    """Names a template reads but never sets (cheaper than jinja2.meta's code generation)."""
    read: set[str] = set()
    stored: set[str] = set()
    for name in tree.find_all(nodes.Name):
        (read if name.ctx == "load" else stored).add(name.name)
    return read - stored - set(TEMPLATE_GLOBALS)


_CACHE_SIZE = 10_000
_CACHE: dict[tuple[str, frozenset[str], bool], CompiledTemplate | str] = {}


class TemplateCompiler:
    """``TemplateCompiler().compile("{{ query.q }}", REQUEST_NAMES)``: a template, or the
    message saying why not."""

    def compile(
        self, source: str, allowed: Iterable[str], *, path: bool = False
    ) -> CompiledTemplate | str:
        """A compiled template, or the message saying why ``source`` is not one.

        Results are cached by text: a reload re-uses every template it did not change
        (compiling Jinja to Python code is most of a cold compile's time). ``path=True``:
        an upstream path, whose values are encoded as path segments.
        """
        key = (source, frozenset(allowed), path)
        cached = _CACHE.get(key)
        if cached is None:
            cached = self._compile(source, key[1], path)
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = cached
        return cached

    @staticmethod
    def _compile(source: str, allowed: frozenset[str], path: bool) -> CompiledTemplate | str:
        env = environment(path=path)
        try:
            tree = env.parse(source)
            unknown = sorted(_free_names(tree) - set(allowed))
            if unknown:
                names = ", ".join(f"`{name}`" for name in unknown)
                available = ", ".join(sorted(allowed))
                return f"template uses unknown variable {names} (available: {available})"
            # Paths encode every value as a segment (the environment's finalize): Jinja's.
            fast = None if path else compile_shape(tree)
            template = env.from_string(tree)
        except jinja2.TemplateSyntaxError as exc:
            return f"template syntax error on its line {exc.lineno}: {exc.message}"
        constant = "{{" not in source and "{%" not in source and "{#" not in source
        return CompiledTemplate(source, template, constant, fast)
