"""`gateway serve`: boot (gateway.boot), then serve with uvicorn (uvloop + httptools)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import time
from collections.abc import Generator, Mapping
from pathlib import Path

import uvicorn

from gateway.boot import boot, served_at
from gateway.config.dotenv import DotEnv
from gateway.config.fields import parse_duration
from gateway.errors import ConfigErrors
from gateway.logs import configure_logging, logger
from gateway.reload import Reloader
from gateway.serve.app import ASGIApp
from gateway.serve.connections import guarded_protocol
from gateway.serve.state import GatewayState
from gateway.snapshot import PluginRoute, ProxyRoute, Snapshot
from gateway.store.backend import shown_url, unreachable

__all__ = ["serve"]


def serve(
    config_dir: Path,
    host: str,
    port: int,
    *,
    watch: bool = True,
    verbose: bool = False,
    environ: Mapping[str, str] | None = None,
    dotenv: DotEnv | None = None,
    log_format: str = "text",
    log_level: str | None = None,
    reuse_port: bool = False,
) -> int:
    """``environ``: what the configuration interpolates (default: the process environment);
    ``dotenv``: the `.env` it was merged from, reported at start. ``verbose``: DEBUG logs.
    ``reuse_port``: bind with SO_REUSEPORT, as each of `--workers N` does."""
    env = os.environ if environ is None else environ
    level = "DEBUG" if verbose else log_level or env.get("GATEWAY_LOG_LEVEL", "INFO")
    configure_logging(level, log_format)
    if dotenv is not None:
        _report_dotenv(dotenv)
    try:
        booted = boot(config_dir, environ=environ, watch=watch, served_at=served_at(host, port))
    except ConfigErrors as exc:
        for error in exc.errors:
            logger.error("%s", error)
        logger.error("not starting: %d configuration error(s) in %s", len(exc.errors), config_dir)
        return 1
    snapshot, state = booted.snapshot, booted.state
    reason = unreachable(snapshot.store_url)
    if reason is not None:
        logger.error("store %s is unreachable: %s", shown_url(snapshot.store_url), reason)
        return 1
    if state.backend.durable:
        logger.info("store: %s (namespace %s)", state.backend.kind, snapshot.store_namespace)
    else:
        logger.warning("store: memory (not durable: state is lost on restart and not shared)")
    for route_id, reason in snapshot.unconfigured.items():
        logger.warning("route %s answers 503: %s", route_id, reason)
    if not snapshot.public_url.startswith("https://"):
        logger.warning(
            "public URL %s: a ChatGPT Action needs a public https URL; "
            "set GATEWAY_PUBLIC_URL (server.public_url)",
            snapshot.public_url,
        )
    if logger.isEnabledFor(logging.DEBUG):
        _log_routes(snapshot)
    app: ASGIApp = booted.app
    tracing = None
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from gateway.tracing import Tracing  # only now: off, tracing is not even imported

        tracing = Tracing.start(env, booted)
        app = tracing.app
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=guarded_protocol(
            snapshot.startup.idle_timeout,
            snapshot.startup.header_timeout,
            lambda: state.switch.current.max_header_bytes,
        ),
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # X-Forwarded-* are not trusted unless a deployment says so
        log_level=logging.DEBUG if verbose else logging.WARNING,
        timeout_graceful_shutdown=math.ceil(snapshot.startup.shutdown_timeout),
    )
    for webhook in snapshot.webhooks.values():
        if webhook.unconfigured:
            logger.warning("webhook %s answers 503: %s", webhook.id, webhook.unconfigured)
    off = sum(1 for schedule in snapshot.schedules if not schedule.enabled)
    logger.info(
        "serving %d routes, %d webhooks, %d schedules (%d off) (version %s) on http://%s:%d",
        len(snapshot.routes),
        len(snapshot.webhooks),
        len(snapshot.schedules),
        off,
        snapshot.version,
        host,
        port,
    )
    # run(), not asyncio.run(serve()): run() builds the loop from `loop="uvloop"`.
    drain = snapshot.startup.drain
    if env.get("GATEWAY_DRAIN"):  # over `server.drain`: e.g. 0 for a quick local stop
        try:
            drain = parse_duration(env["GATEWAY_DRAIN"])
        except ValueError as exc:
            logger.error("GATEWAY_DRAIN: %s", exc)
            return 1
    try:
        sockets = [_reusable_socket(host, port)] if reuse_port else None
        _Server(config, booted.reloader, state, drain).run(sockets=sockets)
    finally:
        if tracing is not None:
            tracing.shutdown()  # the spans still queued are exported
    return 0


def _reusable_socket(host: str, port: int) -> socket.socket:
    """A listening socket other processes may bind too (the kernel spreads connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _report_dotenv(dotenv: DotEnv) -> None:
    """Names only: a value from `.env` is as secret as one from the environment."""
    for warning in dotenv.warnings:
        logger.warning("%s", warning)
    overridden = dotenv.overridden(os.environ)
    logger.info(
        "settings: %d variable(s) from %s%s",
        len(dotenv.values),
        dotenv.path,
        f" ({', '.join(overridden)} set by the environment, which wins)" if overridden else "",
    )
    logger.debug("settings from %s: %s", dotenv.path, ", ".join(sorted(dotenv.values)) or "none")


def _log_routes(snapshot: Snapshot) -> None:
    for route in snapshot.routes:
        if isinstance(route, ProxyRoute):
            target = f"upstream {route.upstream.name}"
        elif isinstance(route, PluginRoute):
            target = f"plugin {route.plugin.name}"
        else:
            target = "static"
        logger.debug(
            "route %s: %s %s -> %s, auth %s, %s",
            route.id,
            route.method,
            route.path,
            target,
            route.auth_text,
            route.status_text,
        )


class _Server(uvicorn.Server):
    """uvicorn's server, draining on SIGTERM/SIGINT and then exiting 0.

    The first signal starts the drain: `/ready` answers 503 at once while the listener keeps
    serving for `server.drain` seconds (load balancers notice), then uvicorn stops accepting
    and waits up to `server.shutdown_timeout` for requests in flight; the lifespan stops the
    webhook worker (its unfinished entries stay in the queue for another replica). A second
    SIGINT exits at once. uvicorn re-raises the captured signal after shutdown (so the
    process dies "by signal"); a gateway that drained cleanly has succeeded.
    """

    def __init__(
        self, config: uvicorn.Config, reloader: Reloader, state: GatewayState, drain: float
    ) -> None:
        super().__init__(config)
        self.reloader = reloader
        self.state = state
        self.drain = drain
        self._reloads: set[asyncio.Task[object]] = set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def _reload(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reloader.reload("SIGHUP"))
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    def _stop(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if self.state.draining:
            if sig == signal.SIGINT:  # a second Ctrl-C: now
                self.force_exit = self.should_exit = True
            return
        self.state.draining = True
        logger.info("stopping (%s): draining for %gs, /ready answers 503", name, self.drain)
        asyncio.get_running_loop().call_later(self.drain, self._close, name)

    def _close(self, name: str) -> None:
        # Requests in flight and webhook handlers share one budget from here (Worker.stop).
        self.state.stop_by = time.monotonic() + (self.config.timeout_graceful_shutdown or 0)
        self.should_exit = True
        logger.info("stopping (%s): finishing requests in flight", name)
