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
from gateway.compiler import DEFAULT_SERVED_AT, compile_config
from gateway.config.load import load
from gateway.reload import Reloader
from gateway.serve.app import GatewayApp, build_app
from gateway.serve.state import GatewayState, log_warnings
from gateway.serve.switch import Switch
from gateway.snapshot import Snapshot
from gateway.upstream.clients import ClientPool

__all__ = ["Booted", "boot", "served_at"]


@dataclass(frozen=True)
class Booted:
    """A gateway ready to serve: its first snapshot, its state and its ASGI app."""

    snapshot: Snapshot
    state: GatewayState
    app: GatewayApp
    reloader: Reloader


def boot(
    config_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
    watch: bool = True,
    served_at: str = DEFAULT_SERVED_AT,
) -> Booted:
    """Raises ConfigErrors when the configuration is refused (nothing is opened then).

    ``served_at``: the URL this process listens at, the public URL unless `server.public_url`
    sets one."""
    config = load(config_dir, environ=environ)
    snapshot = compile_config(config, served_at)
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
        served_at=served_at,
    )
    state.reloader = reloader
    return Booted(snapshot, state, build_app(state), reloader)


def served_at(host: str, port: int) -> str:
    """The URL this process answers at, from where it listens: a wildcard address is
    reached at the loopback one (the URL is a local default; a public one is configured)."""
    if host in ("0.0.0.0", "", "*"):  # noqa: S104 (a comparison, not a bind)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
