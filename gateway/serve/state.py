"""What the process holds beyond the snapshot: the switch, its clients, its backend, its
reloader, its workers."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gateway.backend import Backend
from gateway.logs import logger
from gateway.queue.scheduler import Scheduler
from gateway.queue.worker import Worker
from gateway.reload import Reloader
from gateway.serve.switch import Switch
from gateway.snapshot import Snapshot
from gateway.upstream.clients import ClientPool

__all__ = ["GatewayState", "log_warnings"]


@dataclass
class GatewayState:
    """What the process holds beyond the snapshot: its clients, its reloader, its age."""

    switch: Switch
    pool: ClientPool
    backend: Backend
    reloader: Reloader | None = None
    started_at: float = field(default_factory=time.time)
    worker: Worker | None = None
    scheduler: Scheduler | None = None
    draining: bool = False
    """SIGTERM arrived: `/ready` answers 503 while requests are still served."""
    stop_by: float | None = None
    """``time.monotonic()`` by which the shutdown is to be done: set as the listener closes
    (the drain's end + `server.shutdown_timeout`), read by the lifespan's shutdown."""

    def swap(self, snapshot: Snapshot) -> None:
        """Serve ``snapshot``; retire the upstream sessions it no longer uses."""
        previous = self.switch.swap(snapshot)
        log_warnings(snapshot, previous)
        changed = snapshot.startup.changed(previous.startup)
        if changed:
            logger.warning("%s changed: read at start only, restart to apply", ", ".join(changed))
        retired = self.pool.retain(snapshot.upstreams.values())
        if retired:
            logger.info("retiring upstream clients: %s", ", ".join(sorted(retired)))


def log_warnings(snapshot: Snapshot, previous: Snapshot | None = None) -> None:
    """Tell the operator, once, what the configuration leaves open (a check that is off for
    want of a secret); a reload repeats only what is new."""
    seen = set() if previous is None else _warnings(previous)
    for warning in sorted(_warnings(snapshot) - seen):
        logger.warning("%s", warning)


def _warnings(snapshot: Snapshot) -> set[str]:
    found = {warning for webhook in snapshot.webhooks.values() for warning in webhook.warnings}
    return found | set(snapshot.warnings)
