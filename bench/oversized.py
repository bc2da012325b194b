"""Memory and sockets under hostile input, against the real `gateway serve` (issue 10).

    .venv/bin/python bench/oversized.py

Starts the gateway (memory store, default limits) in front of a loopback upstream that
answers 100 MB, then: 8 concurrent requests with a 32 MB header each, the 100 MB answer,
a JSON body nested 1,000 levels, 2,000 idle sockets and 40 clients sending their headers a
byte a second. Prints the answers, the gateway's RSS and peak RSS (VmHWM), and how many
sockets are still open after the idle and header timeouts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

GATEWAY = "server: {access_log: false}\ndefaults: {auth: none}\n"
ROUTES = """\
upstream: {name: big, base_url: "http://127.0.0.1:%d"}
routes:
  - {id: big, path: /big, upstream: {path: /big}}
  - {id: echo, method: POST, path: /echo, static: true, response: {body: '{{ {"ok": 1} }}'}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memory(pid: int) -> str:
    """RSS and peak RSS in MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    rss, peak = (int(fields[name].split()[0]) // 1024 for name in ("VmRSS", "VmHWM"))
    return f"RSS {rss} MiB, peak {peak} MiB"


def open_sockets(pid: int) -> int:
    return sum(1 for fd in Path(f"/proc/{pid}/fd").iterdir() if "socket" in os.readlink(fd))


async def raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    line = await reader.readline()
    writer.close()
    return line.strip()


async def main() -> None:
    async def big(_: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(_)
        chunk = b" " * (1 << 20)
        for _n in range(100):
            await response.write(chunk)
        return response

    app = web.Application()
    app.router.add_get("/big", big)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    upstream_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", upstream_port).start()

    folder = Path(tempfile.mkdtemp())
    (folder / "gateway.yaml").write_text(GATEWAY)
    (folder / "routes.d").mkdir()
    (folder / "routes.d" / "r.yaml").write_text(ROUTES % upstream_port)
    port = free_port()
    gateway = str(Path(sys.executable).parent / "gateway")
    process = subprocess.Popen(
        [gateway, "serve", "--config-dir", str(folder), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"{url}/health") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            print(f"at start: {memory(process.pid)}")

            header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (32 << 20) + b"\r\n\r\n"
            lines = await asyncio.gather(*(raw(port, header) for _ in range(8)))
            print(f"8 x 32 MB header: {sorted(set(lines))}; {memory(process.pid)}")

            async with http.get(f"{url}/big") as r:
                print(f"100 MB upstream answer: {r.status}; {memory(process.pid)}")

            nested = b"[" * 1000 + b"]" * 1000
            async with http.post(
                f"{url}/echo", data=nested, headers={"Content-Type": "application/json"}
            ) as r:
                print(f"JSON nested 1,000 levels: {r.status} {r.content_type}")

        before = open_sockets(process.pid)
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2000)]
        await asyncio.sleep(0.5)
        print(f"2,000 idle sockets: {open_sockets(process.pid) - before} open after 0.5 s")
        await asyncio.sleep(6)
        print(f"  {open_sockets(process.pid) - before} open after 6.5 s (idle_timeout 5s)")
        for _, writer in idle:
            writer.close()

        async def dribble() -> None:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /health HTTP/1.1\r\n")
            try:
                for _ in range(30):
                    writer.write(b"X")
                    await writer.drain()
                    await asyncio.sleep(1)
            except ConnectionError:
                return
            finally:
                writer.close()

        await asyncio.sleep(1)
        before = open_sockets(process.pid)
        started = time.monotonic()
        slow = [asyncio.create_task(dribble()) for _ in range(40)]
        await asyncio.sleep(12.5)
        print(
            f"40 byte-a-second clients: {open_sockets(process.pid) - before} open after "
            f"{time.monotonic() - started:.1f} s (header_timeout 10s + 2 s linger)"
        )
        for task in slow:
            task.cancel()
        print(f"at the end: {memory(process.pid)}")
    finally:
        process.terminate()
        process.wait(20)
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
