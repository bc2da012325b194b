"""Three gateway processes on one Redis share one budget: a limit of 100 accepts exactly 100."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp

from tests.conftest import REDIS_URL, write_config
from tests.e2e.helpers import CLEAN_ENV, serving

GATEWAY = """\
server: {access_log: false}
store: {url: "${STORE_URL}", namespace: "${STORE_NS}"}
defaults: {auth: none}
"""
ROUTES = """\
routes:
  - id: limited
    path: /limited
    static: true
    rate_limit: {limit: 100, per: 1h, key: '{{ "everyone" }}'}
    response: {body: '{{ {"ok": true} }}'}
"""


async def test_three_replicas_accept_exactly_the_limit(
    tmp_path: Path, redis_namespace: str
) -> None:
    folder = write_config(tmp_path, GATEWAY, {"r": ROUTES})
    env = {**CLEAN_ENV, "STORE_URL": REDIS_URL, "STORE_NS": redis_namespace}
    async with AsyncExitStack() as stack:
        urls = []
        for replica in range(3):
            url, _ = await stack.enter_async_context(
                serving(folder, env, tmp_path / f"replica{replica}.log")
            )
            urls.append(url)
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def call(url: str) -> int:
            async with http.get(f"{url}/limited") as r:
                await r.read()
                return r.status

        statuses = await asyncio.gather(*(call(urls[n % 3]) for n in range(300)))
    assert statuses.count(200) == 100
    assert statuses.count(429) == 200
