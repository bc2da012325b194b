"""Start the real `gateway serve` as a subprocess and wait until it answers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.upstreams.server import free_port

GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")
# The environment of a fresh machine: none of the upstreams' secrets or the gateway's settings.
_CONFIG_PREFIXES = (
    "GATEWAY_",
    "AMBIVO_",
    "OPENAI_",
    "INTERCOM_",
    "GPT_TRAINER_",
    "GMAIL_",
    "OMI_",
    "OAUTH_",
    "CHATBETO_",
    "OIDC_",  # the sign-in provider (oauth.identity)
    "OTEL_",  # a developer's own collector: tests/e2e/test_traces.py sets its own
)
_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_URL", "_UUID")
CLEAN_ENV = {
    key: value
    for key, value in os.environ.items()
    if not key.startswith(_CONFIG_PREFIXES) and not key.endswith(_SECRET_SUFFIXES)
}
# Tests stop many gateways: no drain window unless a test asks for one (test_drain.py).
CLEAN_ENV["GATEWAY_DRAIN"] = "0"


@asynccontextmanager
async def serving(
    folder: Path,
    env: dict[str, str],
    log_path: Path,
    *args: str,
    killed: bool = False,
    port: int | None = None,
) -> AsyncIterator[tuple[str, int]]:
    """``(url, pid)`` of a running gateway; stopped with SIGTERM, which must exit 0.

    ``killed``: the test kills the process itself (SIGKILL), so it exits -9.
    ``port``: listen there (a test that must know the URL before the start, e.g. to
    register a redirect URI); by default a free port.
    """
    port = port or free_port()
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
        await wait_until_answering(process, url, log_path)
        yield url, process.pid
    finally:
        await stop(process)
        log.close()
    expected = -signal.SIGKILL if killed else 0
    assert process.returncode == expected, log_path.read_text()[-2000:]


async def wait_until_answering(
    process: subprocess.Popen[bytes], url: str, log_path: Path, path: str = "/health"
) -> None:
    """Until ``url + path`` answers 200 (bounded: 15 s); the log if the process exits first."""
    deadline = time.monotonic() + 15
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(
                    f"gateway exited with {process.returncode}:\n{log_path.read_text()}"
                )
            try:
                async with http.get(f"{url}{path}") as answer:
                    if answer.status == 200:
                        return
            except (aiohttp.ClientConnectionError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"gateway did not answer {path} within 15 s:\n{log_path.read_text()}")


async def stop(process: subprocess.Popen[bytes], grace: float = 15) -> None:
    """SIGTERM, then wait without blocking the loop (loopback upstreams run on it); kill at the end."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    for _ in range(int(grace * 20)):  # bounded: `grace` seconds
        if process.poll() is not None:
            return
        await asyncio.sleep(0.05)
    process.kill()  # never leave it behind; the caller's assertion reports the exit code
    process.wait(timeout=5)
