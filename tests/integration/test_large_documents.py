"""A large config's YAML document: rendered off the loop, once for callers that ask at the
same time, the same document as the JSON one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from tests.conftest import run_gateway, write_config

ROUTES = "routes:\n" + "".join(
    f"  - {{id: item{i}, path: '/items{i}/{{item_id}}', summary: Item {i}, static: true,"
    f" query: [{{name: q, type: string}}], response: {{body: '{{{{ {{\"n\": {i}}} }}}}'}}}}\n"
    for i in range(600)
)


async def test_the_yaml_document_of_600_routes(tmp_path: Path) -> None:
    write_config(tmp_path, "defaults: {auth: none}\n", {"a": ROUTES})
    async with run_gateway(tmp_path, {}) as gw:

        async def fetch(path: str) -> bytes:
            async with gw.http.get(f"{gw.url}{path}") as r:
                assert r.status == 200
                return await r.read()

        rendering = [asyncio.create_task(fetch("/openapi.yaml")) for _ in range(4)]
        # Served alongside (the render runs in a worker thread).
        assert await fetch("/items7/x") == b'{"n":7}'
        first, *others = await asyncio.gather(*rendering)
        assert all(other == first for other in others)
        async with gw.http.get(f"{gw.url}/openapi.json") as r:
            assert yaml.safe_load(first) == await r.json()
        assert await fetch("/openapi.yaml") == first
