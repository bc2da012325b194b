"""A loopback JSON API for the generic proxy tests: items, flaky, slow, echo and big answers."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.upstreams.server import Recorder


def items_app() -> tuple[web.Application, Recorder]:
    recorder = Recorder()
    app = web.Application(middlewares=[recorder.middleware])
    flaky_calls = {"count": 0}

    async def items(request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "3"))
        data = [{"id": index, "name": f"item {index}", "secret": "s"} for index in range(limit)]
        return web.json_response({"data": data, "total": limit})

    async def item(request: web.Request) -> web.Response:
        item_id = request.match_info["item_id"]
        if item_id == "missing":
            return web.json_response({"error": "no such item"}, status=404)
        return web.json_response({"id": item_id})

    async def flaky(request: web.Request) -> web.Response:
        flaky_calls["count"] += 1
        if flaky_calls["count"] <= 2:
            return web.json_response({"error": "try later"}, status=503)
        return web.json_response({"ok": True, "attempt": flaky_calls["count"]})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)  # cancelled when the gateway gives up
        return web.json_response({"late": True})

    async def echo_auth(request: web.Request) -> web.Response:
        # A badly behaved upstream that echoes credentials into its error body.
        return web.json_response(
            {"error": f"bad token {request.headers.get('Authorization')}"}, status=403
        )

    async def echo_auth_late(request: web.Request) -> web.Response:
        # The credential after 150 characters of text: it crosses any short excerpt window.
        text = "x" * 150 + " token " + request.headers.get("Authorization", "")
        return web.Response(text=text, status=401)

    async def big(request: web.Request) -> web.Response:
        return web.json_response([{"id": index, "text": "x" * 50} for index in range(200)])

    app.router.add_get("/v1/items", items)
    app.router.add_get("/v1/items/{item_id}", item)
    app.router.add_get("/v1/flaky", flaky)
    app.router.add_get("/v1/slow", slow)
    app.router.add_get("/v1/echo-auth", echo_auth)
    app.router.add_get("/v1/echo-auth-late", echo_auth_late)
    app.router.add_get("/v1/big", big)
    return app, recorder
