"""Edits that leave a file half-written for a moment, under ~200 req/s: count what callers saw.

Starts ``gateway serve`` (``--gateway``: any tree's console script, e.g. an older checkout's)
on a fresh config folder whose ``routes.d/edited.yaml`` declares the route ``/hot``, sends a
steady paced load to ``/hot`` and, while it runs:

(a) truncates the file, waits 250 ms, writes the new content (three times);
(b) deletes the file, waits 300 ms, writes it again (six times);
(c) deletes it for good, and reports when ``/hot`` starts answering 404.

Prints, per scenario, the number of requests and their answers by status. A gateway that
never serves a half-written state answers (a) and (b) with 200 only.

    .venv/bin/python bench/reload_edits.py [--gateway PATH] [--rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp


def content(step: str) -> str:
    """The edited file: the hot route plus one route naming the step (to see it is live)."""
    return (
        "routes:\n"
        "  - {id: hot, path: /hot, static: true, response: {body: '{{ {\"hot\": true} }}'}}\n"
        f"  - {{id: {step}, path: /{step}, static: true, response: {{body: '{{{{ 1 }}}}'}}}}\n"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Load:
    """``rate`` GETs a second to ``url``, paced (not back to back); statuses counted."""

    def __init__(self, http: aiohttp.ClientSession, url: str, rate: float) -> None:
        self.http, self.url, self.rate = http, url, rate
        self.counts: collections.Counter[str] = collections.Counter()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        interval = 1 / self.rate
        tick = time.monotonic()
        while not self._stop.is_set():
            task = asyncio.create_task(self._one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            tick += interval
            await asyncio.sleep(max(0.0, tick - time.monotonic()))

    async def _one(self) -> None:
        try:
            async with self.http.get(self.url) as r:
                await r.read()
                self.counts[str(r.status)] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.counts[type(exc).__name__] += 1

    def take(self) -> collections.Counter[str]:
        """The counts so far, starting a new tally."""
        counts, self.counts = self.counts, collections.Counter()
        return counts

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def live(http: aiohttp.ClientSession, url: str, status: int, limit: float = 10) -> float:
    """Seconds until ``url`` answers ``status``."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        async with http.get(url) as r:
            if r.status == status:
                return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise SystemExit(f"{url} did not answer {status} within {limit}s")


async def scenario(
    load: Load, http: aiohttp.ClientSession, base: str, edited: Path, kind: str, times: int
) -> collections.Counter[str]:
    load.take()
    for step in range(times):
        name = f"{kind}{step}"
        if kind == "truncate":
            with edited.open("r+") as f:  # truncated in place, as an editor saving does
                f.truncate(0)
            await asyncio.sleep(0.25)
            edited.write_text(content(name))
        else:
            edited.unlink()
            await asyncio.sleep(0.30)
            edited.write_text(content(name))
        await live(http, f"{base}/{name}", 200)
        await asyncio.sleep(0.3)
    return load.take()


def line(label: str, counts: collections.Counter[str]) -> str:
    total = sum(counts.values())
    answers = ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))
    return f"{label:<34} {total:>5} requests  ({answers})  non-200: {total - counts['200']}"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default=str(Path(sys.executable).parent / "gateway"))
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="reload-edits-"))
    (folder / "routes.d").mkdir()
    (folder / "gateway.yaml").write_text("defaults: {auth: none}\nserver: {access_log: false}\n")
    edited = folder / "routes.d" / "edited.yaml"
    edited.write_text(content("start"))
    port = free_port()
    log = (folder / "gateway.log").open("w")
    process = subprocess.Popen(
        [args.gateway, "serve", "--config-dir", str(folder), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(150):  # bounded: 15 s
                try:
                    async with http.get(f"{base}/health") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            load = Load(http, f"{base}/hot", args.rate)
            runner = asyncio.create_task(load.run())
            await asyncio.sleep(1.0)
            print(f"gateway: {args.gateway}; load: {args.rate:.0f} req/s to /hot")
            print(line("(warm-up, no edit)", load.take()))
            truncated = await scenario(load, http, base, edited, "truncate", 3)
            print(line("(a) 3 x truncate, 250 ms, write", truncated))
            recreated = await scenario(load, http, base, edited, "recreate", 6)
            print(line("(b) 6 x delete, 300 ms, recreate", recreated))
            edited.unlink()
            gone_after = await live(http, f"{base}/hot", 404)
            await load.stop()
            await runner
            print(f"(c) delete that stays: /hot answers 404 after {gone_after:.2f} s")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        log.close()
    removal = [text for text in (folder / "gateway.log").read_text().splitlines() if "gone" in text]
    print("log:", removal[-1].strip() if removal else "(no removal line)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(asyncio.run(main()))
