"""Size caps cut cleanly: whole items, a marker, valid JSON."""

from __future__ import annotations

import json

from gateway.serve.shaping import cap_json, cap_text


def test_small_answers_are_unchanged() -> None:
    assert json.loads(cap_json({"a": [1, 2]}, 1000)) == {"a": [1, 2]}
    assert cap_text("short", 100) == "short"


def test_list_keeps_whole_items_and_ends_with_a_marker() -> None:
    items = [{"id": index, "name": "x" * 40} for index in range(100)]
    encoded = cap_json(items, 1000)
    assert len(encoded) <= 1000
    value = json.loads(encoded)
    kept, marker = value[:-1], value[-1]
    assert kept == items[: len(kept)]
    assert len(kept) > 5
    assert marker["truncated"] is True
    assert marker["shown"] == len(kept)
    assert marker["total"] == 100


def test_object_has_its_largest_list_cut() -> None:
    value = {"total": 500, "rows": [{"id": index} for index in range(500)], "tags": ["a"]}
    result = json.loads(cap_json(value, 600))
    assert result["total"] == 500
    assert result["tags"] == ["a"]
    assert result["rows"][-1]["truncated"] is True
    assert len(json.dumps(result, separators=(",", ":"))) <= 600


def test_text_is_cut_at_a_line_with_a_marker() -> None:
    text = "\n".join(f"line {index}" for index in range(1000))
    cut = cap_text(text, 200)
    assert len(cut) <= 200
    assert cut.endswith("]")
    assert "[truncated: 8,889 characters, showing the first" in cut
    assert cut.split("\n[truncated")[0] == text[: len(cut.split("\n[truncated")[0])]
