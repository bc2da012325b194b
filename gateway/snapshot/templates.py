"""Compiled templates: Jinja2 in a sandboxed environment with native types.

``{{ query.per_page }}`` renders the int 20, ``{{ {"q": body.query} }}`` a dict. The
environment (filters, globals) is one per process; the compiler (gateway.compiler.templates)
parses and checks template text against it, and the serving layer only calls ``render``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.nativetypes import NativeCodeGenerator, NativeEnvironment, NativeTemplate
from jinja2.sandbox import SandboxedEnvironment

from gateway.filters import combine, html_to_text, now_iso, pick, tojson

__all__ = ["TEMPLATE_ERRORS", "TEMPLATE_GLOBALS", "CompiledTemplate", "environment"]

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
_ENVIRONMENT: _SandboxedNativeEnvironment | None = None


def environment() -> jinja2.Environment:
    """The process's one template environment (cached templates are bound to it)."""
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        env = _SandboxedNativeEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False)
        env.filters.update(pick=pick, combine=combine, html_to_text=html_to_text, tojson=tojson)
        env.globals.update(TEMPLATE_GLOBALS)
        _ENVIRONMENT = env
    return _ENVIRONMENT


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
