"""JSON Schemas of gateway.yaml and routes.d/*.yaml, generated from the config Structs.

Editors (the YAML language server) use them for completion and checking as you type.
`gateway schema` writes them; `gateway schema --check` fails when they are out of date.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from gateway.config.fields import schema_hook
from gateway.config.model import GatewayFile, RouteFile

__all__ = ["config_schemas", "write_schemas"]

_FILES: dict[str, tuple[type[msgspec.Struct], str]] = {
    "gateway.schema.json": (GatewayFile, "gateway.yaml: the gateway's global configuration"),
    "routes.schema.json": (RouteFile, "routes.d/*.yaml: one upstream and its routes"),
}


def config_schemas() -> dict[str, str]:
    """File name -> schema text (stable, so the files can be compared in CI)."""
    schemas = {}
    for name, (struct, title) in _FILES.items():
        schema: dict[str, Any] = msgspec.json.schema(struct, schema_hook=schema_hook)
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": title,
            **schema,
        }
        schemas[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return schemas


def write_schemas(folder: Path, *, check: bool = False) -> list[Path]:
    """Write the schemas into ``folder``; return the files that differed (were stale)."""
    stale = []
    for name, text in config_schemas().items():
        path = folder / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(path)
            if not check:
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return stale
