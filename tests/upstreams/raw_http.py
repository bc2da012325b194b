"""A raw asyncio TCP server on 127.0.0.1 for answers a real HTTP server would not send:
malformed, cut short, never finished. Each connection runs a script written by the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class RawRequest:
    """One request as read off the wire."""

    connection: int  # 0 for the server's first connection, 1 for the next...
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class RawConnection:
    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server: RawServer

    async def request(self) -> RawRequest | None:
        """The next request on this connection, or None once the client closed it."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        method, target, _ = line.split(" ")
        pairs = [item.split(":", 1) for item in lines]
        headers = [(name.strip(), value.strip()) for name, value in pairs]
        request = RawRequest(self.index, method, target, headers, b"")
        length = request.header("Content-Length")
        if length:
            request.body = await self.reader.readexactly(int(length))
        self.server.requests.append(request)
        return request

    async def closed_by_client(self) -> bool:
        """Wait for the client to close (True), or for extra bytes (False)."""
        try:
            return await self.reader.read(1) == b""
        except ConnectionError:
            return True

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


Script = Callable[[RawConnection], Awaitable[None]]


@dataclass
class RawServer:
    script: Script
    port: int = 0
    connections: int = 0
    requests: list[RawRequest] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = RawConnection(self.connections, reader, writer, self)
        self.connections += 1
        try:
            await self.script(conn)
        finally:
            writer.close()


def answer(status: str = "200 OK", body: bytes = b"", *headers: str) -> bytes:
    """A well-formed answer with a Content-Length."""
    lines = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


def keep_answering(make: Callable[[RawRequest], bytes]) -> Script:
    """A script that answers every request on the connection with ``make(request)``."""

    async def script(conn: RawConnection) -> None:
        while (request := await conn.request()) is not None:
            await conn.write(make(request))

    return script


@asynccontextmanager
async def serve_raw(script: Script) -> AsyncIterator[RawServer]:
    raw = RawServer(script)
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await raw._serve(reader, writer)
        except asyncio.CancelledError:
            pass  # the test is over (ending normally keeps asyncio's streams from logging it)
        except ConnectionError:
            pass  # the client went away mid-script
        finally:
            tasks.discard(task)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    raw.port = server.sockets[0].getsockname()[1]
    try:
        yield raw
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks)
        await server.wait_closed()
