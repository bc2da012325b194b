"""The template filters and globals (`pick`, `combine`, `html_to_text`, `now_iso`, `tojson`).

Pure functions with no gateway imports: templates use them through the Jinja environment,
plugins import `html_to_text` through the plugin contract.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["combine", "html_to_text", "now_iso", "pick", "tojson"]


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
    """`{{ now_iso() }}`: the current UTC time in ISO 8601."""
    return dt.datetime.now(dt.UTC).isoformat()


def tojson(value: Any, indent: int | None = None) -> str:
    """`{{ value | tojson }}`: JSON text, non-ASCII kept as is."""
    return json.dumps(value, ensure_ascii=False, indent=indent)
