"""Live reload: the only module that calls load, compile and swap after start-up.

Triggers: file changes (watchfiles, debounced), SIGHUP and ``POST /admin/reload``. A reload
loads and compiles the whole configuration off the event loop; only a complete snapshot is
swapped in, in one assignment. A broken edit changes nothing that serves: its errors are
logged once, kept for /health and counted. An unchanged version is not swapped. Upstream
sessions whose settings disappeared are retired (closed once idle).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import watchfiles

from gateway.compiler import compile_config
from gateway.config.load import GATEWAY_FILE, PLUGINS_DIR, ROUTES_DIR, SCHEMAS_DIR, load
from gateway.diff import SnapshotDiff, diff_snapshots
from gateway.errors import ConfigError, ConfigErrors
from gateway.logs import logger
from gateway.snapshot import Snapshot

__all__ = ["ReloadOutcome", "ReloadResult", "Reloader"]

DEBOUNCE_MS = 150
# Editor droppings that never change the configuration on their own.
_IGNORED_SUFFIXES = ("~", ".swp", ".swx", ".swo", ".tmp", ".pyc")


class ReloadOutcome(enum.Enum):
    SWAPPED = "reloaded"
    UNCHANGED = "unchanged"
    FAILED = "failed"


@dataclass(frozen=True)
class ReloadResult:
    outcome: ReloadOutcome
    version: str
    seconds: float
    errors: tuple[str, ...] = ()
    diff: SnapshotDiff | None = None


@dataclass
class Reloader:
    """``await reloader.reload("SIGHUP")``; ``reloader.watch()`` runs until cancelled."""

    config_dir: Path
    current: Callable[[], Snapshot]
    swap: Callable[[Snapshot], None]
    environ: Mapping[str, str] | None = None
    watch_files: bool = True
    reloads: int = 0
    failed: int = 0
    last_errors: tuple[ConfigError, ...] = ()
    """The mistakes that refused the last reload (none once a reload succeeds)."""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def last_error(self) -> str | None:
        """The last refusal's errors in full (values from the environment redacted)."""
        return "\n".join(str(error) for error in self.last_errors) or None

    @property
    def last_error_places(self) -> str | None:
        """Where and what kind, without the values: for callers without the admin key."""
        return "\n".join(error.summary() for error in self.last_errors) or None

    def _build(self) -> Snapshot:
        return compile_config(load(self.config_dir, environ=self.environ))

    async def reload(self, reason: str) -> ReloadResult:
        async with self._lock:  # one reload at a time; the latest files always win
            started = time.perf_counter()
            previous = self.current()
            try:
                snapshot = await asyncio.to_thread(self._build)
            except ConfigErrors as exc:
                elapsed = time.perf_counter() - started
                errors = tuple(str(error) for error in exc.errors)
                self.failed += 1
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
            elapsed = time.perf_counter() - started
            if snapshot.version == previous.version:
                self.last_errors = ()
                logger.debug("reload (%s): version %s unchanged", reason, previous.version)
                return ReloadResult(ReloadOutcome.UNCHANGED, previous.version, elapsed)
            diff = diff_snapshots(previous, snapshot)
            self.swap(snapshot)
            self.reloads += 1
            self.last_errors = ()
            logger.info(
                "reloaded (%s): version %s -> %s, %s, in %.0f ms",
                reason,
                previous.version,
                snapshot.version,
                diff.summary(),
                elapsed * 1000,
            )
            return ReloadResult(ReloadOutcome.SWAPPED, snapshot.version, elapsed, diff=diff)

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
            await self.reload(f"changed: {', '.join(names)}")
