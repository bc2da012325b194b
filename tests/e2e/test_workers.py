"""`gateway serve --workers N`: N processes on one port (SO_REUSEPORT) sharing Redis, a
rate limit counted once across them, a worker that dies restarted, SIGTERM stopping them
all; and the memory store refusing more than one worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import aiohttp

from tests.conftest import REDIS_URL, write_config
from tests.e2e.helpers import CLEAN_ENV, GATEWAY_BIN, serving

GATEWAY = """\
store: {url: "${STORE_URL:-memory://}", namespace: "${STORE_NAMESPACE:-gateway}"}
defaults: {auth: none}
"""
ROUTES = """\
routes:
  - id: hello
    path: /hello
    static: true
    rate_limit: {limit: 5, per: 1h, key: ip}
    response: {body: '{{ {"hello": true} }}'}
"""


async def workers_seen(http: aiohttp.ClientSession, url: str, tries: int = 60) -> set[str]:
    """The workers that answered /health, each asked on a new connection."""
    seen = set()
    for _ in range(tries):
        async with http.get(f"{url}/health", headers={"Connection": "close"}) as r:
            seen.add(f"{(await r.json())['process']['worker']}")
        if len(seen) == 2:
            break
    return seen


async def test_two_workers_share_the_port_and_one_budget(
    tmp_path: Path, redis_namespace: str
) -> None:
    config = write_config(tmp_path / "config", GATEWAY, {"a": ROUTES})
    env = {**CLEAN_ENV, "STORE_URL": REDIS_URL, "STORE_NAMESPACE": redis_namespace}
    async with (
        serving(config, env, tmp_path / "gateway.log", "--workers", "2") as (url, supervisor),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
    ):
        assert await workers_seen(http, url) == {"1/2", "2/2"}

        statuses = []
        for _ in range(12):  # each on a new connection: both workers take some
            async with http.get(f"{url}/hello") as r:
                statuses.append(r.status)
        assert statuses.count(200) == 5
        assert statuses.count(429) == 7

        # A worker killed is started again; the other one serves meanwhile.
        async with http.get(f"{url}/health") as r:
            victim = (await r.json())["process"]
        os.kill(victim["pid"], signal.SIGKILL)
        for _ in range(100):  # bounded: 10 s for the restart (its pause is 0.5 s)
            async with http.get(f"{url}/health") as r:
                process = (await r.json())["process"]
            if process["worker"] == victim["worker"] and process["pid"] != victim["pid"]:
                break
            await asyncio.sleep(0.1)
        assert process["worker"] == victim["worker"]
        assert process["pid"] != victim["pid"]
        assert "exited with -9: restarting in 0.5s" in (tmp_path / "gateway.log").read_text()
    # serving() sent SIGTERM and checked the supervisor exited 0; no worker is left.
    workers = subprocess.run(
        ["pgrep", "-f", f"--config-dir {config} .*--reuse-port"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert workers.stdout == ""
    assert supervisor > 0


def test_the_memory_store_refuses_more_than_one_worker(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", GATEWAY, {"a": ROUTES})
    done = subprocess.run(
        [GATEWAY_BIN, "serve", "--config-dir", str(config), "--workers", "2"],
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "--workers 2 needs a shared store: with the memory store each worker would keep its "
        "own rate limits, sign-ins, tokens and webhook queue. Set store.url "
        "(GATEWAY_STORE_URL) to redis://..., or serve with one worker.\n"
    )
