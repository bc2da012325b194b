"""What changed between two snapshots: routes and OpenAPI operations added, removed, changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.snapshot import Snapshot

__all__ = ["SnapshotDiff", "diff_snapshots"]


@dataclass(frozen=True)
class SnapshotDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    operations_added: tuple[str, ...]
    operations_removed: tuple[str, ...]
    operations_changed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (
            self.added
            or self.removed
            or self.changed
            or self.operations_added
            or self.operations_removed
            or self.operations_changed
        )

    def summary(self) -> str:
        """`routes +2 -1 ~3` with the ids, for the one reload log line."""
        parts = []
        for sign, ids in (("+", self.added), ("-", self.removed), ("~", self.changed)):
            if ids:
                parts.append(f"{sign}{len(ids)} ({', '.join(ids)})")
        return "routes " + (" ".join(parts) if parts else "unchanged")

    def lines(self) -> list[str]:
        """One line per change, for `gateway check --diff-against`."""
        out = [f"route added: {i}" for i in self.added]
        out += [f"route removed: {i}" for i in self.removed]
        out += [f"route changed: {i}" for i in self.changed]
        out += [f"operation added: {o}" for o in self.operations_added]
        out += [f"operation removed: {o}" for o in self.operations_removed]
        out += [f"operation changed: {o}" for o in self.operations_changed]
        return out


def diff_snapshots(old: Snapshot, new: Snapshot) -> SnapshotDiff:
    added, removed, changed = _compare(old.route_hashes, new.route_hashes)
    ops_added, ops_removed, ops_changed = _compare(
        _operations(old.openapi), _operations(new.openapi)
    )
    return SnapshotDiff(added, removed, changed, ops_added, ops_removed, ops_changed)


def _compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[tuple[str, ...], ...]:
    added = tuple(sorted(set(new) - set(old)))
    removed = tuple(sorted(set(old) - set(new)))
    changed = tuple(sorted(key for key in set(old) & set(new) if old[key] != new[key]))
    return added, removed, changed


def _operations(document: Mapping[str, Any]) -> dict[str, bytes]:
    """`GET /path (operationId)` -> the operation's JSON."""
    found = {}
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            key = f"{method.upper()} {path} ({operation.get('operationId')})"
            found[key] = msgspec.json.encode(operation)
    return found
