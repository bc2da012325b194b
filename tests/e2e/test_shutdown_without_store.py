"""Redis goes away while the gateway runs (the real `gateway serve` on a Redis store): a
SIGTERM still ends the process within its drain and shutdown bounds, exit 0, no traceback.

Held up at shutdown would be: the webhook worker (a handler in flight, its ack), the
scheduler (a run in progress), a renewed lock's heartbeat and release, the store's close.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import write_config
from tests.e2e.helpers import CLEAN_ENV, GATEWAY_BIN
from tests.upstreams.server import free_port

DRAIN = 1.0
SHUTDOWN_TIMEOUT = 4.0
# The process exits within the drain, the shutdown timeout and a margin for the work bounded
# by neither (a cancelled handler's unwinding, gateway.queue.worker.CANCEL_WAIT at most; the
# store's close; the interpreter's exit).
BOUND = DRAIN + SHUTDOWN_TIMEOUT + 5.0
SECRET = "shutdown-secret-123"
GATEWAY = f"""\
server: {{access_log: false, drain: {DRAIN:g}s, shutdown_timeout: {SHUTDOWN_TIMEOUT:g}s}}
store: {{url: "${{STORE_URL}}", namespace: shutdown}}
"""
ROUTES = f"""\
routes:
  - {{id: hello, path: /hello, static: true, response: {{body: '{{{{ {{"hi": 1}} }}}}'}}}}
webhooks:
  - id: orders
    path: /hooks/orders
    verify: {{type: hmac, algorithm: sha256, header: X-Signature, secret: {SECRET}}}
    handler: work:handle
schedules:
  - id: tick
    every: 1s
    handler: work:tick
"""
# Both hold a renewed lock (a heartbeat on the store) while they wait, and release it after;
# both outlast the shutdown timeout, so the shutdown has to cancel them.
PLUGIN = """\
import asyncio
from pathlib import Path

MARKS = Path(__file__).parents[2]  # beside the config folder: not a change it reloads on


async def handle(ctx, request):
    lock = await ctx.locks.acquire(f"order:{request.event_id}", 3, renew=True)
    (MARKS / "handling").touch()
    try:
        await asyncio.sleep(60)
    finally:
        if lock is not None:
            await lock.release()


async def tick(ctx, request):
    lock = await ctx.locks.acquire("tick-work", 3, renew=True)
    (MARKS / "ticking").touch()
    try:
        await asyncio.sleep(60)
    finally:
        if lock is not None:
            await lock.release()
"""


@pytest.fixture
def own_redis() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A Redis of this test's own (never the shared one), which the test kills."""
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--bind",
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):  # bounded: 5 s
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError(f"redis-server did not listen on {port}")
        yield port, process
    finally:
        process.kill()
        process.wait(10)


async def wait_for(path: Path, what: str) -> None:
    for _ in range(200):  # bounded: 10 s
        if path.exists():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not start")


async def test_sigterm_after_redis_died_exits_0_within_the_bounds(
    tmp_path: Path, own_redis: tuple[int, subprocess.Popen[bytes]]
) -> None:
    redis_port, redis_process = own_redis
    folder = write_config(tmp_path / "config", GATEWAY, {"work": ROUTES})
    (folder / "plugins").mkdir()
    (folder / "plugins" / "work.py").write_text(PLUGIN)
    env = {**CLEAN_ENV, "GATEWAY_DRAIN": "", "STORE_URL": f"redis://127.0.0.1:{redis_port}/0"}
    port = free_port()
    log_path = tmp_path / "gateway.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [GATEWAY_BIN, "serve", "--config-dir", str(folder), "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            for _ in range(150):  # bounded: 15 s
                assert process.poll() is None, log_path.read_text()
                try:
                    async with http.get(f"{url}/ready") as ready:
                        if ready.status == 200:
                            break
                except (aiohttp.ClientConnectionError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"not ready within 15 s:\n{log_path.read_text()}")
            body = b'{"id": "order-1"}'
            signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            async with http.post(
                f"{url}/hooks/orders", data=body, headers={"X-Signature": signature}
            ) as response:
                assert response.status == 200, await response.text()
        # A handler and a scheduled run are both under way, each with a renewed lock.
        await wait_for(tmp_path / "handling", "the webhook handler")
        await wait_for(tmp_path / "ticking", "the scheduled run")

        redis_process.kill()
        redis_process.wait(10)
        await asyncio.sleep(1.5)  # the worker, the scheduler and the leases see it gone
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            await asyncio.to_thread(process.wait, BOUND)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running {BOUND:g}s after SIGTERM:\n{log_path.read_text()[-4000:]}"
            ) from None
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    text = log_path.read_text()
    assert process.returncode == 0, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    assert "stopping (SIGTERM): draining for 1s, /ready answers 503" in text
    print(f"exited {took:.1f}s after SIGTERM (bound {BOUND:g}s)")
