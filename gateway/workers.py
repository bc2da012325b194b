"""`gateway serve --workers N`: N serving processes on one port, one per core.

Python serves one core per process, so the supervisor starts N copies of `gateway serve`,
each binding the port with SO_REUSEPORT (the kernel spreads new connections over them). Each
worker is a whole gateway: it boots, watches the files and reloads on its own, drains on
SIGTERM. They share state the way replicas do, through the store, so more than one needs
Redis: the memory store would give each worker its own rate limits, sessions and queue.

The supervisor forwards SIGTERM/SIGINT (drain and stop) and SIGHUP (reload) to every
worker, restarts one that dies, and gives up when one keeps dying right after its start.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from gateway.logs import logger

__all__ = ["available_cores", "supervise", "worker_count"]

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
"""cgroup v2's CPU quota: `<quota> <period>` in µs, or `max <period>` (none)."""
RESTART_PAUSES = (0.5, 1.0, 2.0, 5.0, 10.0)
"""Pauses before restarting a worker that died; past the last, the supervisor gives up."""
HEALTHY_AFTER = 30.0
"""A worker that lived this long has its restart count forgotten."""
POLL = 0.2


def available_cores(cpu_max: Path = CPU_MAX) -> int:
    """The cores this process may use: its CPU affinity, capped by a container's quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    found = cores or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            found = min(found, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota here
    return found


def worker_count(requested: str, durable_store: bool) -> int:
    """``--workers`` as a number: `auto` is one per core with a shared store, else one.
    Raises ValueError (with what to do) for a number the store cannot serve."""
    if requested == "auto":
        return available_cores() if durable_store else 1
    try:
        count = int(requested)
    except ValueError:
        raise ValueError(f"--workers must be a number or auto, got {requested!r}") from None
    if count < 1:
        raise ValueError(f"--workers must be at least 1, got {count}")
    if count > 1 and not durable_store:
        raise ValueError(
            f"--workers {count} needs a shared store: with the memory store each worker would "
            "keep its own rate limits, sign-ins, tokens and webhook queue. Set store.url "
            "(GATEWAY_STORE_URL) to redis://..., or serve with one worker."
        )
    return count


def _die_with_parent() -> None:
    """In the worker, before exec: SIGTERM when the supervisor dies (Linux prctl)."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Worker:
    def __init__(self, index: int, command: Sequence[str], env: Mapping[str, str]) -> None:
        self.index = index
        self.command = list(command)
        self.env = dict(env)
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.deaths = 0
        self.restart_at: float | None = None

    def start(self, count: int) -> None:
        env = {**self.env, "GATEWAY_WORKER": f"{self.index}/{count}"}
        # Its own session: a terminal's Ctrl-C reaches the supervisor alone, which passes it
        # on once; PDEATHSIG: a worker does not outlive a supervisor that was killed.
        self.process = subprocess.Popen(
            self.command, env=env, start_new_session=True, preexec_fn=_die_with_parent
        )
        self.started = time.monotonic()
        self.restart_at = None
        logger.info("worker %d/%d: pid %d", self.index, count, self.process.pid)

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)


def supervise(
    arguments: Sequence[str], count: int, env: Mapping[str, str], stop_grace: float
) -> int:
    """Run ``count`` workers of `gateway <arguments>` until SIGTERM/SIGINT; 0 when every
    worker stopped cleanly. ``stop_grace``: how long workers may take to drain and stop
    before they are killed."""
    command = [sys.executable, "-m", "gateway", *arguments]
    workers = [_Worker(index, command, env) for index in range(1, count + 1)]
    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        if not stopping:
            logger.info("workers: stopping (%s)", signal.Signals(signum).name)
        stopping.append(signum)
        for worker in workers:
            worker.signal(signum)  # a second SIGINT stops the workers at once, as it does one

    def reload(_signum: int, _frame: FrameType | None) -> None:
        for worker in workers:
            worker.signal(signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    logger.info("workers: %d processes sharing the port (SO_REUSEPORT)", count)
    for worker in workers:
        worker.start(count)
    failed = False
    while not stopping and not failed:
        time.sleep(POLL)
        now = time.monotonic()
        for worker in workers:
            failed = failed or _tend(worker, count, now)
    if failed:
        for worker in workers:
            worker.signal(signal.SIGTERM)
    deadline = time.monotonic() + stop_grace
    codes = [_wait(worker, deadline) for worker in workers]
    return 1 if failed or any(code != 0 for code in codes) else 0


def _tend(worker: _Worker, count: int, now: float) -> bool:
    """Restart a worker that died (after a pause); True when it keeps dying."""
    process = worker.process
    if worker.restart_at is not None:
        if now >= worker.restart_at:
            worker.start(count)
        return False
    if process is None or process.poll() is None:
        if now - worker.started > HEALTHY_AFTER:
            worker.deaths = 0
        return False
    if worker.deaths >= len(RESTART_PAUSES):
        logger.error(
            "worker %d died %d times in a row (last exit %s): stopping the others",
            worker.index,
            worker.deaths + 1,
            process.returncode,
        )
        return True
    pause = RESTART_PAUSES[worker.deaths]
    worker.deaths += 1
    worker.restart_at = now + pause
    logger.warning(
        "worker %d (pid %d) exited with %s: restarting in %gs",
        worker.index,
        process.pid,
        process.returncode,
        pause,
    )
    return False


def _wait(worker: _Worker, deadline: float) -> int:
    process = worker.process
    if process is None:
        return 0
    try:
        return process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        logger.error("worker %d (pid %d) did not stop in time: killed", worker.index, process.pid)
        process.kill()
        process.wait()
        return 1
