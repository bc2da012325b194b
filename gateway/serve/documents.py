"""The served OpenAPI documents as bytes, JSON and YAML, encoded once per snapshot.

``await documents.of(switch.current).yaml_bytes("ambivo")``: the first request after a swap
encodes a document; every later one gets the same bytes. YAML (libyaml's emitter: 290 ms
for 1,000 operations, where PyYAML's own took 735) is rendered in a worker thread, once
however many ask at the same time, so that the loop goes on serving meanwhile. Only the
newest snapshot's encodings are kept, so a reload frees the previous ones.
`gateway openapi` writes the same text (``json_text``, ``yaml_text``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import msgspec
import yaml

from gateway.snapshot import Snapshot

__all__ = [
    "HEALTH_TOOLS_LIMIT",
    "EncodedDocuments",
    "ServedDocuments",
    "json_text",
    "operation_ids",
    "yaml_text",
]

HEALTH_TOOLS_LIMIT = 100
"""At most this many operationIds per list in /health (a profile holds at most 30)."""
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


_SafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""libyaml's emitter where PyYAML was built with it (its wheels are): the same text."""


class _Dumper(_SafeDumper):  # type: ignore[valid-type,misc]
    """Safe YAML without `&id001` anchors: a schema used twice is written out twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def yaml_text(document: Mapping[str, Any]) -> str:
    """The document as YAML, keys in the document's order."""
    text: str = yaml.dump(dict(document), Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    return text


def json_text(document: Mapping[str, Any]) -> str:
    """The document as indented JSON (what `gateway openapi` prints)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def operation_ids(document: Mapping[str, Any]) -> list[str]:
    """Every operationId of ``document``, sorted."""
    return sorted(
        operation["operationId"]
        for item in document.get("paths", {}).values()
        for method, operation in item.items()
        if method in _METHODS and "operationId" in operation
    )


class EncodedDocuments:
    """One snapshot's documents, each encoded on first use. ``profile=None`` is the merged
    document; a profile the snapshot does not have is a KeyError."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._json: dict[str | None, bytes] = {}
        self._yaml: dict[str | None, bytes] = {}
        self._rendering: dict[str | None, asyncio.Future[bytes]] = {}
        self._tools: dict[str, Any] | None = None

    def _document(self, profile: str | None) -> Mapping[str, Any]:
        return self.snapshot.openapi if profile is None else self.snapshot.profiles[profile]

    def json(self, profile: str | None = None) -> bytes:
        found = self._json.get(profile)
        if found is None:
            found = self._json[profile] = msgspec.json.encode(self._document(profile))
        return found

    def yaml(self, profile: str | None = None) -> bytes:
        found = self._yaml.get(profile)
        if found is None:
            found = self._yaml[profile] = yaml_text(self._document(profile)).encode()
        return found

    async def yaml_bytes(self, profile: str | None = None) -> bytes:
        """:meth:`yaml`, rendered off the event loop; concurrent callers share one render."""
        found = self._yaml.get(profile)
        if found is not None:
            return found
        self._document(profile)  # an unknown profile is a KeyError here, not in the thread
        rendering = self._rendering.get(profile)
        if rendering is None:
            task = asyncio.ensure_future(asyncio.to_thread(self.yaml, profile))
            rendering = self._rendering[profile] = task
            task.add_done_callback(lambda _: self._rendering.pop(profile, None))
        return await asyncio.shield(rendering)

    def tools(self) -> dict[str, Any]:
        """/health's tool list: the operationIds the merged document and each profile serve
        (names only; each list at most HEALTH_TOOLS_LIMIT long, the total said)."""
        if self._tools is None:
            merged = operation_ids(self.snapshot.openapi)
            self._tools = {
                "available_tools": merged[:HEALTH_TOOLS_LIMIT],
                "available_tools_total": len(merged),
                "profiles": {
                    name: operation_ids(document)[:HEALTH_TOOLS_LIMIT]
                    for name, document in sorted(self.snapshot.profiles.items())
                },
            }
        return self._tools


class ServedDocuments:
    """``ServedDocuments().of(switch.current)``: the current snapshot's EncodedDocuments,
    kept until the next snapshot is asked for."""

    def __init__(self) -> None:
        self._newest: EncodedDocuments | None = None

    def of(self, snapshot: Snapshot) -> EncodedDocuments:
        newest = self._newest
        if newest is None or newest.snapshot is not snapshot:
            newest = self._newest = EncodedDocuments(snapshot)
        return newest
