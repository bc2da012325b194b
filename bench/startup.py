"""Start to ready, and idle memory, of `gateway serve` on a config (default: the shipped one).

    .venv/bin/python bench/startup.py [config-dir] [runs]

Each run starts the real CLI (memory store, no watcher), times it from the exec to the
first `200` of `/ready`, waits a second, reads the process's resident memory (VmRSS) and
stops it. Prints the median and the range of each.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GATEWAY = str(Path(sys.executable).parent / "gateway")
PORT = 18120


def one_run(config: Path) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))}
    env["GATEWAY_LOG_LEVEL"] = "WARNING"
    env["GATEWAY_DRAIN"] = "0"
    started = time.perf_counter()
    process = subprocess.Popen(
        [GATEWAY, "serve", "--config-dir", str(config), "--port", str(PORT), "--no-watch"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.01)
            if time.perf_counter() - started > 30:
                raise SystemExit("not ready within 30 s")
        ready = time.perf_counter() - started
        time.sleep(1)
        status = Path(f"/proc/{process.pid}/status").read_text()
        rss_kib = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
        )
        return ready, rss_kib / 1024
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def main() -> None:
    config = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    results = [one_run(config) for _ in range(runs)]
    readies = [ready for ready, _ in results]
    rss = [memory for _, memory in results]
    print(f"config {config}, {runs} runs")
    print(
        f"start to ready: median {statistics.median(readies):.2f} s "
        f"({min(readies):.2f}-{max(readies):.2f})"
    )
    print(f"idle RSS: median {statistics.median(rss):.1f} MiB ({min(rss):.1f}-{max(rss):.1f})")


if __name__ == "__main__":
    main()
