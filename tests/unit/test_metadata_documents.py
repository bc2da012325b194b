"""Client ID Metadata Documents fetched as a stranger names them: the URL rules, the address
guard (no loopback or private network), the size, redirect and content checks, and the
cache, against real loopback HTTP servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from gateway.oauth.metadata_documents import (
    DocumentRefused,
    MetadataDocuments,
    client_id_url_problem,
)
from tests.upstreams.server import free_port


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://apps.example/client.json", "a client id URL must be https"),
        (
            "https://u:p@apps.example/client.json",
            "a client id URL may not hold a user name or password",
        ),
        ("https://apps.example/client.json#x", "a client id URL may not hold a fragment"),
        ("https://apps.example/", "a client id URL needs a path, without . or .. segments"),
        (
            "https://apps.example/a/../b.json",
            "a client id URL needs a path, without . or .. segments",
        ),
        (
            "https://apps.example/a b.json",
            "a client id URL must be printable, without spaces or quotes",
        ),
        ("https://127.0.0.1/client.json", "the client id URL's host is not a public address"),
        ("https://10.1.2.3/client.json", "the client id URL's host is not a public address"),
        ("https://[::1]/client.json", "the client id URL's host is not a public address"),
        ("https://169.254.169.254/latest", "the client id URL's host is not a public address"),
        ("https://apps.example/client.json", None),
    ],
)
def test_client_id_urls(url: str, problem: str | None) -> None:
    assert client_id_url_problem(url, allow_private=False) == problem


def test_private_networks_may_be_allowed() -> None:
    assert client_id_url_problem("http://127.0.0.1:8000/client.json", allow_private=True) is None


async def test_a_name_resolving_to_loopback_is_refused_before_connecting() -> None:
    documents = MetadataDocuments(allow_private=False)
    with pytest.raises(DocumentRefused) as refused:
        await documents.get("https://localhost/client.json")
    assert str(refused.value) == "its host is not a public address"


@asynccontextmanager
async def document_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback server: `/good.json` is a valid document for its own URL; the others
    are each wrong in one way. Yields its URL and the paths it was asked for."""
    seen: list[str] = []
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def document(path: str, **changes: object) -> dict[str, object]:
        return {
            "client_id": f"{base}{path}",
            "client_name": "Notes\tagent",
            "redirect_uris": ["https://notes.example/callback"],
            **changes,
        }

    async def serve(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        path = request.path
        if path == "/good.json":
            return web.json_response(document(path), headers={"Cache-Control": "max-age=600"})
        if path == "/big.json":
            return web.json_response(document(path, padding="x" * 6000))
        if path == "/chunked.json":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(8):
                await response.write(b" " * 1000)
            await response.write_eof()
            return response
        if path == "/moved.json":
            raise web.HTTPFound(f"{base}/good.json")
        if path == "/other.json":
            return web.json_response(document(path, client_id=f"{base}/good.json"))
        if path == "/secret.json":
            return web.json_response(
                document(path, token_endpoint_auth_method="client_secret_post")
            )
        if path == "/redirects.json":
            return web.json_response(document(path, redirect_uris=["http://evil.example/cb"]))
        if path == "/slow.json":
            await asyncio.sleep(6)
            return web.json_response(document(path))
        if path == "/text.json":
            return web.Response(text="not json")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield base, seen
    finally:
        await runner.cleanup()


async def test_a_good_document_is_read_once_and_cached() -> None:
    async with document_server() as (base, seen):
        documents = MetadataDocuments(allow_private=True)
        first = await documents.get(f"{base}/good.json")
        again = await documents.get(f"{base}/good.json")
        assert first == again
        assert first.client_id == f"{base}/good.json"
        assert first.redirect_uris == ("https://notes.example/callback",)
        assert first.name == "Notes\tagent"
        assert seen == ["/good.json"]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/big.json", "it is larger than 5 KiB"),
        ("/chunked.json", "it is larger than 5 KiB"),
        ("/moved.json", "it answered HTTP 302"),
        ("/missing.json", "it answered HTTP 404"),
        ("/other.json", "its client_id is not the URL it was fetched from"),
        ("/secret.json", "its token_endpoint_auth_method must be none (a public client)"),
        ("/redirects.json", "a redirect URI must be https, or http on a loopback address"),
    ],
)
async def test_a_bad_document_is_refused_with_the_reason(path: str, reason: str) -> None:
    async with document_server() as (base, seen):
        documents = MetadataDocuments(allow_private=True)
        for _ in range(2):  # the refusal is cached: asked once
            with pytest.raises(DocumentRefused) as refused:
                await documents.get(f"{base}{path}")
            assert str(refused.value) == reason
        assert seen == [path]


async def test_a_document_that_is_not_json_says_so() -> None:
    async with document_server() as (base, _):
        with pytest.raises(DocumentRefused) as refused:
            await MetadataDocuments(allow_private=True).get(f"{base}/text.json")
        assert str(refused.value).startswith("it is not a client metadata document (")


async def test_a_slow_document_times_out() -> None:
    async with document_server() as (base, _):
        with pytest.raises(DocumentRefused) as refused:
            await MetadataDocuments(allow_private=True).get(f"{base}/slow.json")
        assert str(refused.value) == "it did not arrive within 5 s"


async def test_a_document_that_cannot_be_reached_says_so() -> None:
    with pytest.raises(DocumentRefused) as refused:
        await MetadataDocuments(allow_private=True).get(f"http://127.0.0.1:{free_port()}/c.json")
    assert str(refused.value) == "it could not be fetched"
