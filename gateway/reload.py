"""Live reload: the only module that calls load, compile and swap after start-up.

Triggers: file changes (watchfiles, debounced), SIGHUP and ``POST /admin/reload``. A reload
loads and compiles the whole configuration off the event loop; only a complete snapshot is
swapped in, in one assignment. A broken edit changes nothing that serves: its errors are
logged once, kept for /health and counted. An unchanged version is not swapped. Upstream
sessions whose settings disappeared are retired (closed once idle).

A watcher trigger also waits for the files to be caught whole: it reloads only once the
watched files have kept their size and mtime for ``QUIET_MS``, and a file that vanished or
lost everything it declared (an editor's truncate-then-write, a delete-and-recreate, a `cp`
over it) is held back until it has stayed so for ``reload.settle`` (default 1 s). If it comes
back meanwhile, only its new content is applied; otherwise the removal is, with a WARNING
naming the file and what it removed. SIGHUP and ``POST /admin/reload`` are explicit: they
apply what the files say at once (a removal logs the same WARNING).
"""

from __future__ import annotations

import asyncio
import enum
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path

import watchfiles

from gateway import metrics
from gateway.compiler import DEFAULT_SERVED_AT, compile_config
from gateway.config.load import (
    GATEWAY_FILE,
    PLUGINS_DIR,
    ROUTES_DIR,
    SCHEMAS_DIR,
    Config,
    load,
)
from gateway.diff import SnapshotDiff, diff_snapshots
from gateway.errors import ConfigError, ConfigErrors
from gateway.logs import logger
from gateway.snapshot import Snapshot

__all__ = ["ReloadOutcome", "ReloadResult", "Reloader"]

DEBOUNCE_MS = 150
QUIET_MS = 100
"""A watcher reload waits until the watched files kept their size and mtime this long."""
QUIET_LIMIT_S = 5.0
"""Files that keep changing are read anyway after this long (a broken read is refused)."""
DEFAULT_SETTLE_S = 1.0
"""`reload.settle` when gateway.yaml does not set it."""
_POLL_S = 0.05
# Editor droppings that never change the configuration on their own.
_IGNORED_SUFFIXES = ("~", ".swp", ".swx", ".swo", ".tmp", ".pyc")

Fingerprint = frozenset[tuple[str, int, int, int]]
"""(path, size, mtime_ns, inode) of every watched file."""


class ReloadOutcome(enum.Enum):
    SWAPPED = "reloaded"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    HELD = "held"
    """A watcher reload found a file gone or emptied within `reload.settle`: nothing applied."""


@dataclass(frozen=True)
class ReloadResult:
    outcome: ReloadOutcome
    version: str
    seconds: float
    errors: tuple[str, ...] = ()
    diff: SnapshotDiff | None = None
    held: tuple[str, ...] = ()
    """HELD: the files waited for (`routes.d/x.yaml`)."""


@dataclass(frozen=True)
class _Built:
    config: Config
    snapshot: Snapshot


Declared = dict[str, frozenset[tuple[str, str]]]
"""File -> what it declares: (`routes`, id), (`webhooks`, id), (`schedules`, id), and
(`settings`, ``""``) for a gateway.yaml that sets anything."""


def _declared(config: Config) -> Declared:
    """What each file of ``config`` declares (files declaring nothing are left out)."""
    found: Declared = {}
    if config.gateway_source is not None and config.gateway_source.data:
        found[config.gateway_source.name] = frozenset({("settings", "")})
    for loaded in config.route_files:
        items = {("routes", route.id) for route in loaded.content.routes}
        items |= {("webhooks", webhook.id) for webhook in loaded.content.webhooks}
        items |= {("schedules", schedule.id) for schedule in loaded.content.schedules}
        if items:
            found[loaded.source.name] = frozenset(items)
    return found


def _lost(before: Declared, after: Declared) -> Declared:
    """The files that declare nothing any more, with what is not declared anywhere now.

    A file renamed, or whose routes moved to another file, loses nothing."""
    still = frozenset().union(*after.values())
    lost = {name: items - still for name, items in before.items() if name not in after}
    return {name: items for name, items in lost.items() if items}


def _describe(items: frozenset[tuple[str, str]]) -> str:
    """`routes a, b; webhooks w`, or `its settings (the defaults apply)`."""
    if ("settings", "") in items:
        return "its settings (the defaults apply)"
    kinds = ("routes", "webhooks", "schedules")
    parts = [
        f"{kind} {', '.join(sorted(id_ for k, id_ in items if k == kind))}"
        for kind in kinds
        if any(k == kind for k, _ in items)
    ]
    return "; ".join(parts)


@dataclass
class Reloader:
    """``await reloader.reload("SIGHUP")``; ``reloader.watch()`` runs until cancelled.

    ``loaded``: the configuration the first snapshot was compiled from (what each file
    declared, and `reload.settle`), so the first watcher reload can tell a file that vanished.
    """

    config_dir: Path
    current: Callable[[], Snapshot]
    swap: Callable[[Snapshot], None]
    environ: Mapping[str, str] | None = None
    watch_files: bool = True
    loaded: InitVar[Config | None] = None
    served_at: str = DEFAULT_SERVED_AT
    """Where this process listens: the public URL of a configuration without one."""
    reloads: int = 0
    failed: int = 0
    last_errors: tuple[ConfigError, ...] = ()
    """The mistakes that refused the last reload (none once a reload succeeds)."""
    settle: float = DEFAULT_SETTLE_S
    """`reload.settle` of the configuration serving now."""
    _applied: Declared = field(default_factory=dict)
    """What each file declared in the configuration serving now."""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self, loaded: Config | None) -> None:
        if loaded is not None:
            self._applied_from(loaded)

    @property
    def last_error(self) -> str | None:
        """The last refusal's errors in full (values from the environment redacted)."""
        return "\n".join(str(error) for error in self.last_errors) or None

    @property
    def last_error_places(self) -> str | None:
        """Where and what kind, without the values: for callers without the admin key."""
        return "\n".join(error.summary() for error in self.last_errors) or None

    def _applied_from(self, config: Config) -> None:
        self._applied = _declared(config)
        settle = config.gateway.reload.settle
        self.settle = DEFAULT_SETTLE_S if settle is None else float(settle)

    def _build(self) -> _Built:
        config = load(self.config_dir, environ=self.environ)
        return _Built(config, compile_config(config, self.served_at))

    async def reload(self, reason: str) -> ReloadResult:
        """Apply what the files say now (SIGHUP, ``POST /admin/reload``): never held."""
        return await self._attempt(reason, None)

    async def _attempt(self, reason: str, pending: dict[str, float] | None) -> ReloadResult:
        """One load -> compile -> swap. ``pending`` (watcher only): file -> when it was first
        seen gone or emptied; such a file is held back until it has been so for `settle`."""
        async with self._lock:  # one reload at a time; the latest files always win
            started = time.perf_counter()
            previous = self.current()
            try:
                built = await asyncio.to_thread(self._build)
            except ConfigErrors as exc:
                elapsed = time.perf_counter() - started
                errors = tuple(str(error) for error in exc.errors)
                self.failed += 1
                metrics.reloaded("refused")
                self.last_errors = tuple(exc.errors)
                logger.error(
                    "reload (%s) refused, still serving version %s: %d error(s)",
                    reason,
                    previous.version,
                    len(errors),
                )
                for error in errors:  # one line each: log values never carry line breaks
                    logger.error("  %s", error)
                return ReloadResult(ReloadOutcome.FAILED, previous.version, elapsed, errors)
            snapshot = built.snapshot
            elapsed = time.perf_counter() - started
            emptied = _lost(self._applied, _declared(built.config))
            if pending is not None:
                held = self._held(reason, emptied, pending)
                if held:
                    return ReloadResult(
                        ReloadOutcome.HELD, previous.version, elapsed, held=tuple(held)
                    )
            self._applied_from(built.config)
            self.last_errors = ()
            for name, items in sorted(emptied.items()):
                state = self._state(name)
                logger.warning("reload: %s is %s; removed %s", name, state, _describe(items))
            if snapshot.version == previous.version:
                logger.debug("reload (%s): version %s unchanged", reason, previous.version)
                metrics.reloaded("unchanged")
                return ReloadResult(ReloadOutcome.UNCHANGED, previous.version, elapsed)
            diff = diff_snapshots(previous, snapshot)
            self.swap(snapshot)
            self.reloads += 1
            metrics.reloaded("ok")
            logger.info(
                "reloaded (%s): version %s -> %s, %s, in %.0f ms",
                reason,
                previous.version,
                snapshot.version,
                diff.summary(),
                elapsed * 1000,
            )
            return ReloadResult(ReloadOutcome.SWAPPED, snapshot.version, elapsed, diff=diff)

    def _held(self, reason: str, emptied: Declared, pending: dict[str, float]) -> list[str]:
        """The emptied files still inside their settle window (``pending`` updated)."""
        now = time.monotonic()
        for name in list(pending):
            if name not in emptied:  # it came back
                del pending[name]
        for name in sorted(emptied):
            if name not in pending:
                pending[name] = now
                logger.info(
                    "reload (%s): %s is %s; waiting up to %.1f s for it to come back",
                    reason,
                    name,
                    self._state(name),
                    self.settle,
                )
        return [name for name in sorted(emptied) if now - pending[name] < self.settle]

    def _state(self, name: str) -> str:
        return "empty" if (self.config_dir / name).is_file() else "gone"

    def watched_paths(self) -> list[Path]:
        """The config folder (for gateway.yaml and a ConfigMap's `..data`) and its sub-folders."""
        folders = [self.config_dir / name for name in (ROUTES_DIR, SCHEMAS_DIR, PLUGINS_DIR)]
        return [self.config_dir, *(folder for folder in folders if folder.is_dir())]

    def _relevant(self, change: watchfiles.Change, path: str) -> bool:
        name = Path(path).name
        if name.endswith(_IGNORED_SUFFIXES) or name.startswith(".#"):
            return False
        parent = Path(path).parent.resolve()
        if parent == self.config_dir.resolve():
            # Only gateway.yaml and a Kubernetes ConfigMap's `..data` swap matter at the top.
            return name == GATEWAY_FILE or name.startswith("..")
        return True

    def fingerprint(self) -> Fingerprint:
        """Size, mtime and inode of every watched file (through symlinks)."""
        found: set[tuple[str, int, int, int]] = set()
        for folder in self.watched_paths():
            try:
                entries = list(os.scandir(folder))
            except OSError:  # the folder itself is being replaced
                continue
            for entry in entries:
                if not self._relevant(watchfiles.Change.modified, entry.path):
                    continue
                try:
                    stat = entry.stat()
                except OSError:  # vanished since the listing, or a dangling symlink
                    continue
                found.add((entry.path, stat.st_size, stat.st_mtime_ns, stat.st_ino))
        return frozenset(found)

    async def settled(self) -> Fingerprint:
        """Wait until the watched files have not changed for ``QUIET_MS`` (bounded)."""
        deadline = time.monotonic() + QUIET_LIMIT_S
        last = self.fingerprint()
        while True:
            await asyncio.sleep(QUIET_MS / 1000)
            seen = self.fingerprint()
            if seen == last or time.monotonic() > deadline:
                return seen
            last = seen

    async def reload_settled(self, reason: str) -> ReloadResult:
        """A watcher reload: wait for quiet files, then hold a vanished or emptied file back
        until it has stayed so for `reload.settle`; a change meanwhile starts over."""
        pending: dict[str, float] = {}
        while True:
            seen = await self.settled()
            result = await self._attempt(reason, pending)
            if result.outcome is not ReloadOutcome.HELD:
                return result
            await self._changed(
                seen, until=max(pending[name] for name in result.held) + self.settle
            )

    async def _changed(self, seen: Fingerprint, until: float) -> None:
        """Return once a watched file differs from ``seen``, or at ``until`` (monotonic)."""
        while (left := until - time.monotonic()) > 0:
            await asyncio.sleep(min(_POLL_S, left))
            if self.fingerprint() != seen:
                return

    async def watch(self, stop: asyncio.Event | None = None) -> None:
        """Reload on every relevant change until cancelled (or ``stop`` is set)."""
        paths = self.watched_paths()
        logger.info("watching %s for changes", ", ".join(str(path) for path in paths))
        async for changes in watchfiles.awatch(
            *paths,
            watch_filter=self._relevant,
            debounce=DEBOUNCE_MS,
            step=50,
            recursive=False,
            stop_event=stop,
        ):
            names = sorted({Path(path).name for _, path in changes})
            await self.reload_settled(f"changed: {', '.join(names)}")
