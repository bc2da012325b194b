"""Keep answers under a route's character cap, cut cleanly and marked.

ChatGPT refuses answers over 100,000 characters. A JSON list keeps as many whole items as fit
and ends with a marker item; an object has its largest list cut the same way; anything else is
cut at a line break with a marker line. The result is always valid JSON when the input was.
"""

from __future__ import annotations

from typing import Any

from gateway.snapshot.templates import encode_json

__all__ = ["cap_json", "cap_text"]

_encode = encode_json


def _marker(shown: int, total: int) -> dict[str, Any]:
    return {
        "truncated": True,
        "shown": shown,
        "total": total,
        "note": "answer cut to fit the size limit; narrow the request to see the rest",
    }


def cap_text(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    marker = f"\n[truncated: {len(text):,} characters, showing the first {{shown:,}}]"
    budget = max(0, max_chars - len(marker) - 12)
    cut = text.rfind("\n", 0, budget)
    shown = cut if cut > budget // 2 else budget
    return text[:shown] + marker.format(shown=shown)


def cap_json(value: Any, max_chars: int) -> bytes:
    """``value`` encoded as JSON of at most ``max_chars`` characters (approximately, by bytes)."""
    encoded = _encode(value)
    if len(encoded) <= max_chars or len(encoded.decode()) <= max_chars:
        return encoded
    if isinstance(value, list):
        return _encode(_cut_list(value, max_chars))
    if isinstance(value, dict):
        lists = [(len(_encode(item)), key) for key, item in value.items() if isinstance(item, list)]
        if lists:
            _, key = max(lists)
            rest = len(_encode({**value, key: []}))
            if rest < max_chars:
                return _encode({**value, key: _cut_list(value[key], max_chars - rest)})
    # Encoding escapes quotes and control characters, so the text is cut until its JSON fits.
    text = encoded.decode()
    budget = max_chars - 40
    while True:
        capped = _encode({"truncated": True, "text": cap_text(text, budget)})
        size = len(capped.decode())
        if size <= max_chars or budget <= 0:
            return capped
        budget = min(budget - 16, budget * max_chars // size)  # shrinks every round


def _cut_list(items: list[Any], budget: int) -> list[Any]:
    marker_size = len(_encode(_marker(len(items), len(items)))) + 2
    used, kept = 2 + marker_size, 0
    for item in items:
        size = len(_encode(item)) + 1
        if used + size > budget:
            break
        used += size
        kept += 1
    return [*items[:kept], _marker(kept, len(items))]
