"""Templates: native types, the gateway's filters, the sandbox, compile-time name checks."""

from __future__ import annotations

import jinja2.exceptions
import pytest

from gateway.compiler.templates import REQUEST_NAMES, TemplateCompiler
from gateway.filters import html_to_text
from gateway.snapshot import CompiledTemplate


def compiled(source: str) -> CompiledTemplate:
    result = TemplateCompiler().compile(source, REQUEST_NAMES)
    assert isinstance(result, CompiledTemplate), result
    return result


def test_native_types_are_kept() -> None:
    assert compiled("{{ query.per_page }}").render({"query": {"per_page": 20}}) == 20
    assert compiled('{{ {"q": body.q, "n": [1, 2]} }}').render({"body": {"q": "x"}}) == {
        "q": "x",
        "n": [1, 2],
    }
    assert compiled("/items/{{ path.id }}").render({"path": {"id": 7}}) == "/items/7"
    assert compiled("/static").constant is True


def test_pick_and_combine_filters() -> None:
    source = '{{ body | map("pick", "id", "name") | list }}'
    rows = [{"id": 1, "name": "a", "secret": "x"}, {"id": 2}]
    assert compiled(source).render({"body": rows}) == [{"id": 1, "name": "a"}, {"id": 2}]
    merged = compiled('{{ {"a": 1, "b": 1} | combine(body) }}').render({"body": {"b": 2}})
    assert merged == {"a": 1, "b": 2}


def test_tojson_filter_with_indent() -> None:
    assert compiled("{{ body | tojson(2) }}").render({"body": {"a": 1}}) == '{\n  "a": 1\n}'


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Hello <b>there</b></p><p>Second</p>", "Hello there\n\nSecond"),
        ("line one<br>line two", "line one\nline two"),
        ("Fish &amp; chips &lt;3", "Fish & chips <3"),
        ("<script>alert(1)</script>Safe", "Safe"),
        ("", ""),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_sandbox_blocks_attribute_escapes() -> None:
    template = compiled("{{ body.__class__.__subclasses__() }}")
    with pytest.raises(jinja2.exceptions.SecurityError):
        template.render({"body": ""})
    assert compiled("x{{ body.__class__ }}").render({"body": ""}) == "x"


def test_unknown_variable_is_a_compile_error() -> None:
    assert TemplateCompiler().compile("{{ bdy.x }}", REQUEST_NAMES) == (
        "template uses unknown variable `bdy` (available: auth, body, headers, path, query,"
        " request_id, route)"
    )


def test_set_variables_are_not_unknown() -> None:
    template = compiled("{% set rows = body.rows %}{{ rows | length }}")
    assert template.render({"body": {"rows": [1, 2, 3]}}) == 3
