"""The one boot path: load -> compile -> open long-lived resources -> build the app.

``gateway serve``, the importable ASGI app (gateway.asgi) and the tests all start here, so
they cannot drift apart. The resources (store and queue, upstream client pool) are opened
from the first snapshot's settings; a reload that changes one of those says "restart to
apply" (GatewayState.swap).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.backend import open_backend
from gateway.compiler import compile_config
from gateway.config.load import load
from gateway.reload import Reloader
from gateway.serve.app import GatewayApp, build_app
from gateway.serve.state import GatewayState, log_warnings
from gateway.serve.switch import Switch
from gateway.snapshot import Snapshot
from gateway.upstream.clients import ClientPool

__all__ = ["Booted", "boot"]


@dataclass(frozen=True)
class Booted:
    """A gateway ready to serve: its first snapshot, its state and its ASGI app."""

    snapshot: Snapshot
    state: GatewayState
    app: GatewayApp
    reloader: Reloader


def boot(
    config_dir: Path, *, environ: Mapping[str, str] | None = None, watch: bool = True
) -> Booted:
    """Raises ConfigErrors when the configuration is refused (nothing is opened then)."""
    config = load(config_dir, environ=environ)
    snapshot = compile_config(config)
    log_warnings(snapshot)
    startup = snapshot.startup
    backend = open_backend(
        startup.store_url, startup.store_namespace, startup.dead_letters, startup.memory_limit
    )
    state = GatewayState(switch=Switch(snapshot), pool=ClientPool(), backend=backend)
    reloader = Reloader(
        config_dir,
        current=state.switch.get,
        swap=state.swap,
        environ=environ,
        watch_files=watch,
        loaded=config,
    )
    state.reloader = reloader
    return Booted(snapshot, state, build_app(state), reloader)
