"""A loopback Ambivo API: POST /entity/natural_query, as the Ambivo clients call it.

Wire facts (shared/UPSTREAMS.md section 1): `Authorization: Bearer <JWT>`, body
`{"query", "response_format"}`; answers JSON. An error may come inside a 200 body
(`{"success": false, "error": ...}`), which the gateway must surface as an error.

``refused``: JWTs (without ``Bearer``) this Ambivo no longer takes (revoked, expired): 401,
as for a token that is not a JWT. The caller's set is read at each request.
"""

from __future__ import annotations

import re
from collections.abc import Container
from typing import Any

from aiohttp import web

from tests.upstreams.server import Recorder

JWT = re.compile(r"^Bearer [A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
ROWS = [
    {"id": "lead_1", "name": "Ada Lovelace", "status": "new"},
    {"id": "lead_2", "name": "Alan Turing", "status": "contacted"},
]


def answer(query: str) -> dict[str, Any]:
    """The JSON this upstream answers a successful ``query`` with (key order as sent)."""
    return {
        "success": True,
        "data": ROWS,
        "natural_response": f"Found {len(ROWS)} leads for: {query}",
    }


def ambivo_app(refused: Container[str] = frozenset()) -> tuple[web.Application, Recorder]:
    recorder = Recorder()
    app = web.Application(middlewares=[recorder.middleware])

    async def natural_query(request: web.Request) -> web.Response:
        if "Authorization" not in request.headers:
            return web.json_response({"detail": "Authorization header required"}, status=401)
        authorization = request.headers["Authorization"]
        if not JWT.match(authorization) or authorization.removeprefix("Bearer ") in refused:
            return web.json_response({"detail": "Invalid or expired token"}, status=401)
        payload = await request.json()
        query = payload.get("query", "")
        if "boom" in query:
            return web.json_response({"detail": "internal failure"}, status=500)
        if "fail" in query:
            return web.json_response({"success": False, "error": "Query could not be parsed"})
        return web.json_response(answer(query))

    app.router.add_post("/entity/natural_query", natural_query)
    return app, recorder
