"""What the process holds beyond the snapshot: the switch, its clients, its backend, its
reloader, its workers."""

from __future__ import annotations

import gc
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

__all__ = ["GatewayState", "freeze_heap", "log_warnings"]


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
        freeze_heap()


def freeze_heap() -> None:
    """Move what is alive now (modules, the snapshot, compiled templates and schemas) out
    of the collector's sight: full collections otherwise walk it all and paused the loop
    65-130 ms every 2 s or so under load (p99). After a reload the previous freeze is
    lifted first, so that the replaced snapshot can still be freed: that one collection is
    part of the reload's cost, not of a request's."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def log_warnings(snapshot: Snapshot, previous: Snapshot | None = None) -> None:
    """Tell the operator, once, what the configuration leaves open (a check that is off for
    want of a secret); a reload repeats only what is new."""
    seen = set() if previous is None else _warnings(previous)
    for warning in sorted(_warnings(snapshot) - seen):
        logger.warning("%s", warning)


def _warnings(snapshot: Snapshot) -> set[str]:
    found = {warning for webhook in snapshot.webhooks.values() for warning in webhook.warnings}
    return found | set(snapshot.warnings)
