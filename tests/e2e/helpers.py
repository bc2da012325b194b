"""Start the real `gateway serve` as a subprocess and wait until it answers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.upstreams.server import free_port

GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")
# The environment of a fresh machine: none of the upstreams' secrets.
CLEAN_ENV = {
    key: value
    for key, value in os.environ.items()
    if not key.endswith(("_API_KEY", "_TOKEN", "_URL", "_UUID"))
}


@asynccontextmanager
async def serving(
    folder: Path, env: dict[str, str], log_path: Path, *args: str
) -> AsyncIterator[tuple[str, int]]:
    """``(url, pid)`` of a running gateway; stopped with SIGTERM, which must exit 0."""
    port = free_port()
    # Logs go to a file: an unread pipe fills up under load and would stall the server.
    log = log_path.open("w")
    process = subprocess.Popen(
        [GATEWAY_BIN, "serve", "--config-dir", str(folder), "--port", str(port), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(150):  # bounded: 15 s
                try:
                    async with http.get(f"{url}/health") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(
                    f"gateway did not answer /health within 15 s:\n{log_path.read_text()}"
                )
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        log.close()
    assert process.returncode == 0, log_path.read_text()[-2000:]
