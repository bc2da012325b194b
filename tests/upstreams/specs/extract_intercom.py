"""Write intercom-2.14-schemas.json: the schemas the loopback Intercom checks against.

Source: github.com/intercom/Intercom-OpenAPI `descriptions/2.14/api.intercom.io.yaml` at
commit 8889625a7b931d8649e18726e7f872ff073520fc (MIT, (c) 2022 Intercom, Inc.), sha256
9392cc209ac7d2a592cce97b8697543e0c62479f09efff3b9aae8b359e935036. Only the named schemas and
everything they reference are kept, unchanged, so the tests carry ~100 KB, not 880 KB.

    python tests/upstreams/specs/extract_intercom.py ../shared/specs/intercom-api-2.14.yaml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOTS = [
    "admin_reply_conversation_request",
    "update_conversation_request",
    "conversation",
    "conversation_list",
    "error",
]


def refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            found |= refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= refs(value)
    return found


def main(spec_path: str) -> None:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(Path(spec_path).read_bytes(), Loader=loader)  # noqa: S506 (safe loader)
    schemas = spec["components"]["schemas"]
    keep: set[str] = set()
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(refs(schemas[name]) - keep)
    out = {"components": {"schemas": {name: schemas[name] for name in sorted(keep)}}}
    target = Path(__file__).with_name("intercom-2.14-schemas.json")
    target.write_text(json.dumps(out, indent=1, sort_keys=True, default=str) + "\n")
    print(f"{target}: {len(keep)} schemas")


if __name__ == "__main__":
    main(sys.argv[1])
