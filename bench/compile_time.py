"""Time load + compile of generated configurations of N routes, and a reload after one edit.

Cold: the first compile in a fresh process. Warm: compiling the same files again. Reload: the
Reloader's whole load + compile + swap after one route of one file was edited (what a watched
edit costs; the compiled templates of unchanged routes are re-used).

    .venv/bin/python bench/compile_time.py 100 1000
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gateway import Snapshot, compile_config, load
from gateway.reload import Reloader, ReloadOutcome

ROUTE = """  - id: route{i}
    method: {method}
    path: /svc{f}/items{i}/{{item_id}}
    tags: [svc{f}]
    query:
      - {{name: per_page, type: integer, minimum: 1, maximum: 100, default: 20}}
    upstream:
      path: "/v{i}/items/{{{{ path.item_id }}}}"
      query: {{limit: "{{{{ query.per_page }}}}"}}
    response:
      body: '{{{{ body.data{i} | map("pick", "id", "name") | list }}}}'
"""


def write_config(folder: Path, routes: int, per_file: int = 50) -> None:
    (folder / "routes.d").mkdir(parents=True)
    (folder / "gateway.yaml").write_text("defaults: {auth: none}\n")
    for f in range(0, routes, per_file):
        lines = [f"upstream: {{name: svc{f}, base_url: 'http://127.0.0.1:18081'}}\nroutes:\n"]
        for i in range(f, min(f + per_file, routes)):
            lines.append(ROUTE.format(i=i, f=f, method="GET" if i % 2 else "POST"))
        (folder / "routes.d" / f"svc{f}.yaml").write_text("".join(lines))


def measure(routes: int, runs: int = 5) -> list[tuple[float, float]]:
    """(load, compile) seconds of each run; the first is cold."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_config(folder, routes)
        timings = []
        for _ in range(runs):
            start = time.perf_counter()
            config = load(folder, environ={})
            loaded = time.perf_counter()
            snapshot = compile_config(config)
            timings.append((loaded - start, time.perf_counter() - loaded))
            assert len(snapshot.routes) == routes
        return timings


def measure_reload(routes: int, runs: int = 5) -> float:
    """Median seconds of a reload after editing one route."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_config(folder, routes)
        serving: list[Snapshot] = [compile_config(load(folder, environ={}))]

        def swap(snapshot: Snapshot) -> None:
            serving[0] = snapshot

        reloader = Reloader(
            folder, current=lambda: serving[0], swap=swap, environ={}, watch_files=False
        )
        edited = folder / "routes.d" / "svc0.yaml"
        original = edited.read_text()
        timings = []
        for run in range(runs):
            edited.write_text(original.replace("minimum: 1,", f"minimum: {run + 2},", 1))
            result = asyncio.run(reloader.reload("bench"))
            assert result.outcome is ReloadOutcome.SWAPPED, result
            timings.append(result.seconds)
        return statistics.median(timings)


if __name__ == "__main__":
    print(
        "| routes | load (ms) | compile cold (ms) | compile warm (ms) "
        "| reload, 1 route edited (ms) | cold total per route (ms) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for count in [int(arg) for arg in sys.argv[1:]] or [100, 1000]:
        timings = measure(count)
        load_s = statistics.median(t[0] for t in timings)
        cold = timings[0][1]
        warm = statistics.median(t[1] for t in timings[1:])
        per_route = (timings[0][0] + cold) * 1000 / count
        reload_s = measure_reload(count)
        print(
            f"| {count} | {load_s * 1000:.0f} | {cold * 1000:.0f} | {warm * 1000:.0f} "
            f"| {reload_s * 1000:.0f} | {per_route:.2f} |"
        )
