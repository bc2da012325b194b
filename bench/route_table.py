"""Matching cost against the number of parameterised routes (1, 100, 1,000, 5,000): the
first route, the last one, and a path nothing matches.

    .venv/bin/python bench/route_table.py
"""

from __future__ import annotations

import dataclasses
import pathlib
import tempfile
import timeit

from gateway.boot import boot
from gateway.compiler.table import build_table
from gateway.snapshot import RouteTable

folder = pathlib.Path(tempfile.mkdtemp())
(folder / "routes.d").mkdir()
(folder / "gateway.yaml").write_text("defaults: {auth: none}\n")
(folder / "routes.d" / "a.yaml").write_text(
    "routes:\n  - {id: a, path: '/x/{id}', static: true, response: {body: '{{ 1 }}'}}\n"
)
found = boot(folder, environ={}, watch=False).snapshot.table.match("GET", "/x/1")
assert found is not None
base = found.route


def per_call(table: RouteTable, path: str) -> float:
    """Microseconds per match (best of 5 runs of 2,000)."""
    return min(timeit.repeat(lambda: table.match("GET", path), number=2000, repeat=5)) / 2e-3


print("| routes | first µs | last µs | no match µs |")
print("|---|---|---|---|")
for n in (1, 100, 1000, 5000):
    routes = [
        dataclasses.replace(base, id=f"r{i}", path=f"/items{i}/{{item_id}}") for i in range(n)
    ]
    table = build_table(routes)
    last = f"/items{n - 1}/abc"
    hit = table.match("GET", last)
    assert hit is not None
    assert hit.route.id == f"r{n - 1}"
    first_us, last_us = per_call(table, "/items0/abc"), per_call(table, last)
    print(f"| {n:,} | {first_us:.2f} | {last_us:.2f} | {per_call(table, '/nothing/x'):.2f} |")
