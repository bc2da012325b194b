"""The one reference to the serving snapshot.

A request reads ``switch.current`` once and keeps it, so a swap never changes the routes a
request in flight is using. Swapping is a single attribute assignment.
"""

from __future__ import annotations

from gateway.snapshot import Snapshot

__all__ = ["Switch"]


class Switch:
    """``switch = Switch(first); switch.swap(next_snapshot)``."""

    __slots__ = ("current",)

    def __init__(self, snapshot: Snapshot) -> None:
        self.current = snapshot

    def get(self) -> Snapshot:
        """The current snapshot (for those who hold a function rather than the switch)."""
        return self.current

    def swap(self, snapshot: Snapshot) -> Snapshot:
        """Serve ``snapshot`` from now on; return the one it replaces."""
        previous, self.current = self.current, snapshot
        return previous
