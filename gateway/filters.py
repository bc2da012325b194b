"""The template filters and globals (`pick`, `combine`, `html_to_text`, `now_iso`, `tojson`).

Pure functions with no gateway imports: templates use them through the Jinja environment,
plugins import `html_to_text` through the plugin contract. HTML is parsed by selectolax
(Lexbor, an HTML5 parser; MIT and Apache-2.0) and walked without recursion.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = ["MAX_TEXT_CHARS", "combine", "html_to_text", "now_iso", "pick", "tojson"]

MAX_TEXT_CHARS = 100_000
"""What `html_to_text` returns at most by default (ChatGPT's answer cap)."""
MAX_HTML_CHARS = 2_000_000
"""`html_to_text` reads this much of its input at most."""
MAX_DEPTH = 200
"""Elements nested deeper than this lose their tags before parsing (their text is kept):
an HTML5 parser spends quadratic time on deep nesting."""


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


def html_to_text(value: Any, max_chars: int = MAX_TEXT_CHARS) -> str:
    """`{{ body | html_to_text }}` (or `html_to_text(500)`): the text a reader sees.

    Attributes never become text and entities are decoded. Paragraphs are separated by a
    blank line; list items start with `- ` or `1. ` (nested lists indented); each table
    row is one line, its cells separated by ` | `; a link keeps its URL as
    `text (https://...)`; `<script>`, `<style>`, `<title>` and `<head>` are dropped;
    whitespace is collapsed (kept in `<pre>`). Text without any tag keeps its lines. Any
    nesting depth works; the result has at most ``max_chars`` characters (a longer text is
    cut, ending with `…`).
    """
    text = str(value or "")
    limit = max(1, int(max_chars))
    if not _MARKUP.search(text):
        lines = (" ".join(line.split()) for line in html.unescape(text).splitlines())
        return _cut(_BLANK_LINES.sub("\n\n", "\n".join(lines)).strip(), limit)
    text = text[:MAX_HTML_CHARS]
    if text.count("<") > MAX_DEPTH:
        text = _flatten(text)
    root = LexborHTMLParser(text).root
    return _cut(_Renderer(limit).render(root) if root is not None else "", limit)


def now_iso() -> str:
    """`{{ now_iso() }}`: the current UTC time in ISO 8601."""
    return dt.datetime.now(dt.UTC).isoformat()


def tojson(value: Any, indent: int | None = None) -> str:
    """`{{ value | tojson }}`: JSON text, non-ASCII kept as is."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


# --- html_to_text ---------------------------------------------------------------------------

_MARKUP = re.compile(r"<[A-Za-z!/?]")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel", "ftp"})
_DROPPED = frozenset(
    {"script", "style", "title", "head", "noscript", "template", "svg", "math", "iframe"}
)
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "dl", "figure"}
)
_LINES = frozenset(
    {
        "div", "section", "article", "header", "footer", "nav", "aside", "main", "form",
        "fieldset", "legend", "figcaption", "details", "summary", "dt", "dd", "caption",
        "address", "center", "option",
    }
)  # fmt: skip
_LISTS = frozenset({"ul", "ol", "menu"})
_CELLS = frozenset({"td", "th"})
MAX_LIST_INDENT = 16
"""Nested lists are indented by at most this many spaces (bounded lines)."""
MAX_TABLE_DEPTH = 4
"""Tables nested deeper than this are read as plain blocks (bounded work)."""
_TAG_START = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)")
_TAG_STOP = re.compile(r"[\"'>]")
_NEVER_NESTED = frozenset(  # void elements, and those whose next start closes them
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr", "li", "p", "td", "th", "tr", "option", "optgroup", "dt", "dd", "thead",
     "tbody", "tfoot", "colgroup", "caption", "rb", "rt", "rp", "html", "head", "body"}
)  # fmt: skip


def _flatten(text: str) -> str:
    """``text`` with the tags of elements nested deeper than MAX_DEPTH removed (each becomes
    a space; quoted attribute values are skipped whole). One pass, linear."""
    pieces: list[str] = []
    depth = position = 0
    while (tag := _TAG_START.search(text, position)) is not None:
        end = _tag_end(text, tag.end())
        nests = tag[2].lower() not in _NEVER_NESTED
        if tag[1]:  # an end tag
            keep = depth <= MAX_DEPTH
            depth = max(0, depth - nests)
        else:
            depth += nests
            keep = depth <= MAX_DEPTH
        pieces += [text[position : tag.start()], text[tag.start() : end] if keep else " "]
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def _tag_end(text: str, position: int) -> int:
    """Where the tag whose name ends at ``position`` ends: after its `>` (outside quotes)."""
    while (stop := _TAG_STOP.search(text, position)) is not None:
        if stop[0] == ">":
            return stop.end()
        closing = text.find(stop[0], stop.end())
        if closing == -1:
            break
        position = closing + 1
    return len(text)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def _link(href: str | None) -> str | None:
    """The URL a link shows: web, mail and phone links, and relative ones; never a
    `javascript:` or `data:` one, nor an anchor in the page."""
    url = "".join((href or "").split())
    scheme = _SCHEME.match(url)
    if not url or url.startswith("#") or (scheme and scheme[1].lower() not in _LINK_SCHEMES):
        return None
    return url


@dataclass
class _Lines:
    """Text being written line by line: collapsed spaces, paragraph breaks, list markers."""

    left: int
    """Characters it may still take: the walk stops when they are spent."""
    parts: list[str] = field(default_factory=list)
    started: bool = False  # anything written yet
    line_open: bool = False  # the current line has text
    space: bool = False  # a space is due before the next word
    breaks: int = 0  # line breaks due before the next word (2: a blank line)
    indent: str = ""  # of the current list item's following lines
    marker: str | None = None  # a list item's `- ` or `3. `, due at its first word
    marker_indent: str = ""
    lists: list[list[int]] = field(default_factory=list)  # [ordered, next number] per level
    indents: list[str] = field(default_factory=list)

    def brk(self, count: int) -> None:
        if self.started:
            self.breaks = max(self.breaks, count)

    def line_break(self) -> None:
        """`<br>`: one more break (two make a blank line)."""
        if self.started:
            self.breaks = min(self.breaks + 1, 2)

    def _put(self, text: str) -> None:
        self.parts.append(text)
        self.left -= len(text)

    def _start(self) -> None:
        if self.breaks:
            self._put("\n" * self.breaks)
            self.breaks, self.line_open = 0, False
        if not self.line_open:
            if self.marker is not None:
                self._put(self.marker_indent + self.marker)
                self.marker = None
            else:
                self._put(self.indent)
            self.line_open, self.space = True, False
        elif self.space:
            self._put(" ")
            self.space = False
        self.started = True

    def words(self, text: str) -> None:
        """Inline text: runs of whitespace become one space."""
        for index, word in enumerate(text.split()):
            if index or text[:1].isspace():
                self.space = True
            self._start()
            self._put(word)
        if text[-1:].isspace():
            self.space = True

    def raw(self, text: str) -> None:
        """Text written as it is (preformatted; a table row)."""
        if text:
            self._start()
            self._put(text)

    def preformatted(self, text: str) -> None:
        for index, line in enumerate(text.replace("\xa0", " ").split("\n")):
            if index:
                self.breaks = min(self.breaks + 1, 2) if self.started else 0
            self.raw(line)

    def paste(self, text: str) -> None:
        """The lines of a table cell, one after the other."""
        for line in text.split("\n"):
            if line:
                self.brk(1)
                self.raw(line)
            else:
                self.brk(2)

    def open_list(self, ordered: bool, start: int) -> None:
        self.brk(1 if self.lists else 2)
        self.lists.append([int(ordered), start])

    def close_list(self) -> None:
        if self.lists:
            self.lists.pop()
        self.brk(1 if self.lists else 2)

    def open_item(self) -> None:
        self.brk(1)
        if self.lists and self.lists[-1][0]:
            self.marker = f"{self.lists[-1][1]}. "
            self.lists[-1][1] += 1
        else:
            self.marker = "- "
        # Under its parent item's text; past MAX_LIST_INDENT, no further.
        self.marker_indent = self.indent[:MAX_LIST_INDENT]
        self.indents.append(self.indent)
        self.indent = self.marker_indent + " " * len(self.marker)

    def close_item(self) -> None:
        self.indent = self.indents.pop() if self.indents else ""
        self.marker = None
        self.brk(1)

    def since(self, mark: int) -> str:
        return " ".join("".join(self.parts[mark:]).split())

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in "".join(self.parts).split("\n")).strip("\n")


@dataclass
class _Table:
    below: _Lines
    """Where its rows go."""
    cells_at: int
    """How many cells were open when it began: those after are its own."""
    row: list[str] | None = None


@dataclass
class _Renderer:
    """One walk over the parsed document, in document order, without recursion."""

    limit: int
    out: _Lines = field(init=False)
    tables: list[_Table | None] = field(default_factory=list)  # None: read as a block
    cells: list[_Lines] = field(default_factory=list)
    links: list[tuple[str, _Lines, int] | None] = field(default_factory=list)
    pre: int = 0

    def __post_init__(self) -> None:
        self.out = _Lines(self.limit + 1)

    @property
    def lines(self) -> _Lines:
        return self.cells[-1] if self.cells else self.out

    def render(self, root: LexborNode) -> str:
        node, depth = root.child, 1
        # A full writer stops the walk: a cell's text goes into the answer whole, so an
        # answer whose cell is full is full too.
        while node is not None and self.out.left > 0 and self.lines.left > 0:
            if self.enter(node) and node.child is not None:
                node, depth = node.child, depth + 1
                continue
            self.leave(node)
            while node is not None and node.next is None:  # climb to the next sibling
                node, depth = node.parent, depth - 1
                if depth == 0:
                    node = None
                elif node is not None:
                    self.leave(node)
            if node is not None:
                node = node.next
        while self.tables:  # stopped early: keep what the open cells hold
            self._close_table()
        return self.out.text()

    def enter(self, node: LexborNode) -> bool:
        """Handle an opening; whether to walk into the node's children."""
        tag = node.tag or ""
        if tag == "-text":
            text = node.text_content or ""
            (self.lines.preformatted if self.pre else self.lines.words)(text)
            return False
        if tag.startswith(("-", "!")) or tag in _DROPPED:
            return False  # comments, the doctype, what is not shown
        if tag == "br":
            self.lines.line_break()
        elif tag in _PARAGRAPHS:
            self.lines.brk(2)
            if tag == "pre":
                self.pre += 1
        elif tag in _LINES:
            self.lines.brk(1)
        elif tag in _LISTS:
            self.lines.open_list(tag == "ol", _number(node.attributes.get("start")))
        elif tag == "li":
            self.lines.open_item()
        elif tag == "table":
            self._open_table()
        elif tag == "tr":
            self._open_row()
        elif tag in _CELLS:
            self._open_cell()
        elif tag == "a":
            url = _link(node.attributes.get("href"))
            self.links.append((url, self.lines, len(self.lines.parts)) if url else None)
        return True

    def leave(self, node: LexborNode) -> None:
        tag = node.tag or ""
        if tag in _PARAGRAPHS:
            if tag == "pre" and self.pre:
                self.pre -= 1
            self.lines.brk(2)
        elif tag in _LINES:
            self.lines.brk(1)
        elif tag in _LISTS:
            self.lines.close_list()
        elif tag == "li":
            self.lines.close_item()
        elif tag == "table":
            self._close_table()
        elif tag == "tr":
            self._close_row()
        elif tag in _CELLS:
            self._close_cell()
        elif tag == "a" and self.links:
            self._close_link()

    def _close_link(self) -> None:
        link = self.links.pop()
        if link is None:
            return
        url, lines, mark = link
        shown = lines.since(mark) if lines is self.lines else ""
        if shown in (url, url.removeprefix("mailto:"), url.removeprefix("tel:")):
            return  # the text is the URL already
        if shown:
            self.lines.space = True
            self.lines.raw(f"({url})")
        else:
            self.lines.words(f" {url} ")

    def _table(self) -> _Table | None:
        return self.tables[-1] if self.tables else None

    def _open_table(self) -> None:
        if sum(table is not None for table in self.tables) >= MAX_TABLE_DEPTH:
            self.tables.append(None)  # its rows and cells are read as plain blocks
            self.lines.brk(1)
            return
        self.lines.brk(2)
        self.tables.append(_Table(self.lines, len(self.cells)))

    def _close_table(self) -> None:
        if self._table() is not None:
            self._close_row()
        self.tables.pop()
        self.lines.brk(2)

    def _open_row(self) -> None:
        table = self._table()
        if table is None:
            self.lines.brk(1)
            return
        self._close_row()
        table.row = []

    def _close_row(self) -> None:
        table = self._table()
        if table is None:
            self.lines.brk(1)
            return
        while len(self.cells) > table.cells_at:
            self._close_cell()
        cells, table.row = table.row or [], None
        while cells and not cells[-1]:
            cells.pop()  # trailing empty cells say nothing
        if any("\n" in cell for cell in cells):  # a layout table: its cells one by one
            for cell in cells:
                table.below.paste(cell)
        elif cells:
            table.below.brk(1)
            table.below.raw(re.sub(" {2,}", " ", " | ".join(cells)).strip())
        table.below.brk(1)

    def _open_cell(self) -> None:
        table = self._table()
        if table is None:
            self.lines.brk(1)
            return
        while len(self.cells) > table.cells_at:  # a cell left open before this one
            self._close_cell()
        self.cells.append(_Lines(self.limit + 1))

    def _close_cell(self) -> None:
        table = self._table()
        if table is None or len(self.cells) <= table.cells_at:
            self.lines.brk(1)
            return
        if table.row is None:
            table.row = []
        table.row.append(self.cells.pop().text())


def _number(value: str | None) -> int:
    """An `<ol start>`: the first item's number (1 when missing or not a number)."""
    try:
        return max(0, min(int(value or "1"), 10**9))
    except ValueError:
        return 1
