"""Compiled templates: Jinja2 in a sandboxed environment with native types.

``{{ query.per_page }}`` renders the int 20, ``{{ {"q": body.query} }}`` a dict. The
environment (filters, globals) is one per process; the compiler (gateway.compiler.templates)
parses and checks template text against it, and the serving layer only calls ``render``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jinja2
import msgspec
from jinja2 import nodes
from jinja2.nativetypes import NativeCodeGenerator, NativeEnvironment, NativeTemplate
from jinja2.sandbox import SandboxedEnvironment

from gateway.filters import combine, html_to_text, now_iso, pick, tojson
from gateway.snapshot.shapes import Unshaped

__all__ = [
    "TEMPLATE_ERRORS",
    "TEMPLATE_GLOBALS",
    "CompiledTemplate",
    "encode_json",
    "environment",
    "path_segment",
]

TEMPLATE_ERRORS = (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError)
"""What a template can raise on data of an unexpected shape."""
TEMPLATE_GLOBALS = {"now_iso": now_iso}


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
_ENVIRONMENTS: dict[bool, _SandboxedNativeEnvironment] = {}


def path_segment(value: Any) -> str:
    """A value placed into an upstream path, as one percent-encoded segment: `/`, `?`, `#`
    and `%` never become structure (a missing value is empty)."""
    if isinstance(value, jinja2.Undefined) or value is None:
        return ""
    return quote(value if isinstance(value, str) else str(value), safe="")


def environment(*, path: bool = False) -> jinja2.Environment:
    """The process's template environments (cached templates are bound to them).

    ``path=True``: the one for upstream paths, where every ``{{ value }}`` is encoded as a
    path segment (the template's own text is kept as written).
    """
    env = _ENVIRONMENTS.get(path)
    if env is None:
        env = _SandboxedNativeEnvironment(
            undefined=jinja2.ChainableUndefined,
            autoescape=False,
            finalize=path_segment if path else None,
        )
        env.filters.update(pick=pick, combine=combine, html_to_text=html_to_text, tojson=tojson)
        env.globals.update(TEMPLATE_GLOBALS)
        _ENVIRONMENTS[path] = env
    return env


def _missing_as_null(value: Any) -> Any:
    # A template read a field the data did not have (undefined), or met data of another
    # type than expected (`body.count` on a string is the string's method): null.
    if isinstance(value, jinja2.Undefined) or callable(value):
        return None
    raise NotImplementedError(f"cannot encode {type(value).__name__} as JSON")


encode_json = msgspec.json.Encoder(enc_hook=_missing_as_null).encode
"""JSON of a template's result: what the data lacked (undefined, or of another type) is
null; anything else that is not JSON raises NotImplementedError."""


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A compiled template; ``render(context)`` returns a native Python value."""

    source: str
    template: jinja2.Template
    constant: bool
    fast: Callable[[Mapping[str, Any]], Any] | None = None
    """The same template as plain Python (gateway.compiler.shapes), when it is one of the
    common shapes; data it does not handle is rendered by Jinja."""

    def render(self, context: Mapping[str, Any]) -> Any:
        if self.constant:
            return self.source
        if self.fast is not None:
            try:
                return self.fast(context)
            except Unshaped:
                pass
        return self.template.render(context)
