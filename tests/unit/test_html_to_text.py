"""`html_to_text`: the template filter and the plugin contract's HTML cleaner (selectolax).

Exact outputs for links, attributes, lists, tables, dropped elements, entities, whitespace,
and bounded work and output on huge or deeply nested input.
"""

from __future__ import annotations

import pytest

from gateway.filters import MAX_TEXT_CHARS, html_to_text
from gateway.plugin import html_to_text as contract_html_to_text
from tests.unit.test_templates import compiled


@pytest.mark.parametrize(
    ("html", "text"),
    [
        # Links keep their URL; a link whose text is its URL, or that has no text, shows it once.
        (
            'See <a href="https://example.com/docs?a=1&amp;b=2">the docs</a>.',
            "See the docs (https://example.com/docs?a=1&b=2).",
        ),
        ('<a href="https://example.com/">https://example.com/</a>', "https://example.com/"),
        ('Go: <a href="https://example.com/x"></a>', "Go: https://example.com/x"),
        ('<a href="mailto:ada@example.com">ada@example.com</a>', "ada@example.com"),
        ('<a href="mailto:ada@example.com">Ada</a>', "Ada (mailto:ada@example.com)"),
        ('<a href="/help/orders">Orders help</a>', "Orders help (/help/orders)"),
        # ... never a script URL or an in-page anchor.
        ('<a href="javascript:alert(1)">click</a> <a href="#top">top</a>', "click top"),
        ('<a href=" JavaScript:alert(1)">x</a><a href="data:text/html,hi">y</a>', "xy"),
        # Attribute text never leaks.
        ('<p title="a > b">visible</p>', "visible"),
        ('<p title=\'x" > y\' data-z="<b>">shown</p>', "shown"),
        ('a<img src="x.png" alt="a picture">b', "ab"),
        # Lists: bullets, numbers (with `start`), nesting indented.
        (
            "<ul><li>one</li><li>two<ul><li>two a</li><li>two b</li></ul></li><li>three</li></ul>"
            "<p>after</p>",
            "- one\n- two\n  - two a\n  - two b\n- three\n\nafter",
        ),
        ('<ol start="3"><li>three</li><li>four</li></ol>', "3. three\n4. four"),
        ("<ol><li>a<ol><li>a.1</li></ol></li><li>b</li></ol>", "1. a\n   1. a.1\n2. b"),
        ("<p>Steps:</p><ol><li>Open</li><li>Close</li></ol>", "Steps:\n\n1. Open\n2. Close"),
        # Tables: one row per line, cells separated; empty trailing cells dropped.
        (
            "<table><tr><th>Name</th><th>Age</th></tr><tr><td>Ada</td><td>36</td></tr>"
            "<tr><td></td><td>x</td><td></td></tr></table>",
            "Name | Age\nAda | 36\n| x",
        ),
        (
            "<p>Order</p><table><tbody><tr><td>Item</td><td>Qty</td></tr></tbody></table>"
            "<p>Total</p>",
            "Order\n\nItem | Qty\n\nTotal",
        ),
        # A layout table (cells of several lines): its cells one after the other.
        (
            "<table><tr><td><p>Hello Ada,</p><p>Your order shipped.</p></td></tr>"
            "<tr><td>Footer</td></tr></table>",
            "Hello Ada,\n\nYour order shipped.\nFooter",
        ),
        # Dropped: script, style, title (and the head), comments.
        (
            "<html><head><title>Title</title><style>p{color:red}</style></head>"
            "<body><script>alert(1)</script><p>Body<!-- hidden --></p><noscript>x</noscript>"
            "</body></html>",
            "Body",
        ),
        ("<title>in the body</title>text", "text"),
        # Entities decoded; non-breaking spaces are spaces.
        (
            "<p>a&nbsp;&nbsp;b &mdash; c &#x27;d&#39; &eacute; &lt;tag&gt; &amp;amp;</p>",
            "a b — c 'd' é <tag> &amp;",
        ),
        # Whitespace: runs collapsed, blocks on their own lines, <br> breaks, <pre> kept.
        ("<p>  lots   of\n\n spaces </p>\n\n<p>   </p>\n<div>next</div>", "lots of spaces\n\nnext"),
        ("<div>a</div><div>b</div>text<br><br>more<br>", "a\nb\ntext\n\nmore"),
        ("<pre>  x = 1\n    y = 2</pre><p>next</p>", "  x = 1\n    y = 2\n\nnext"),
        ("<h1>Title</h1><p>Text</p><hr><p>End</p>", "Title\n\nText\n\nEnd"),
        # Text without any tag keeps its lines.
        ("Plain line one\nline   two\n\n\nthird", "Plain line one\nline two\n\nthird"),
        ("Fish &amp; chips &lt;3", "Fish & chips <3"),
        ("", ""),
        (None, ""),
        # The Intercom messages of the bridge tests.
        ("<p>Hello, <b>where</b> is my order?</p>", "Hello, where is my order?"),
        ("<p>Order <i>#42</i>, please &amp; thanks</p>", "Order #42, please & thanks"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_the_plugin_contract_exports_the_same_function() -> None:
    assert contract_html_to_text is html_to_text


def test_the_template_filter_takes_a_size() -> None:
    template = compiled("{{ body | html_to_text(12) }}")
    assert template.render({"body": "<p>one two three four</p>"}) == "one two thr…"
    assert compiled("{{ body | html_to_text }}").render({"body": "<b>x</b>"}) == "x"


def test_deep_nesting_is_read_without_recursion() -> None:
    deep = "<div>" * 10_000 + "deep <b>text</b>" + "</div>" * 10_000
    assert html_to_text(deep) == "deep text"
    assert html_to_text("<span>" * 10_000 + "unclosed") == "unclosed"
    lists = "<ul><li>" * 10_000 + "item"
    assert html_to_text(lists) == " " * 16 + "- item"  # indented by 16 spaces at most
    tables = "<table><tr><td>" * 3_000 + "cell"
    assert html_to_text(tables) == "cell"


def test_the_output_is_bounded() -> None:
    huge = "<p>" + "word " * 100_000 + "</p>"
    assert len(html_to_text(huge)) == MAX_TEXT_CHARS
    assert html_to_text(huge).endswith("word…")
    assert html_to_text(huge, 20) == "word word word word…"
    rows = "<table>" + "<tr><td>a</td><td>b</td></tr>" * 100_000 + "</table>"
    assert len(html_to_text(rows, 1000)) == 1000
    assert html_to_text("x" * 300_000, 10) == "xxxxxxxxx…"
