"""The webhook guards on any webhook (not only OMI's), through the real gateway: a secret in
the URL under another parameter name, the event's user among api keys' users, a rate limit
per client IP. The handler never sees the secret."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayFactory, RunningGateway, eventually, write_config
from tests.integration.test_webhooks import PLUGIN, recorded, sink_app
from tests.upstreams.server import Upstream, serve_upstream

GATEWAY = """\
auth:
  - {id: key, type: api_key, keys: [plain-key-1, {key: ada-key-1, user: ada}]}
"""
HOOKS = """\
upstream:
  name: sink
  base_url: ${SINK_URL}
webhooks:
  - id: guarded
    path: /hooks/guarded
    url_secret: {param: token, secrets: [first-secret-1, "${HOOK_TOKEN}"]}
    user: "{{ body.user }}"
    rate_limit: {limit: 3, per: 1m}
    handler: sink:record
"""


@pytest.fixture
async def sink() -> AsyncIterator[Upstream]:
    app, recorder = sink_app()
    async with serve_upstream(app, recorder) as upstream:
        yield upstream


async def post(gw: RunningGateway, query: str, body: Any) -> tuple[int, dict[str, str], Any]:
    async with gw.http.post(f"{gw.url}/hooks/guarded{query}", json=body) as response:
        return response.status, dict(response.headers), json.loads(await response.read())


async def test_url_secret_user_and_ip_rate_limit_on_any_webhook(
    gateway: GatewayFactory, tmp_path: Path, sink: Upstream
) -> None:
    folder = write_config(tmp_path, GATEWAY, {"hooks": HOOKS})
    (folder / "plugins").mkdir()
    (folder / "plugins" / "sink.py").write_text(PLUGIN)
    environ = {"SINK_URL": sink.url, "HOOK_TOKEN": "second-secret-2"}
    async with gateway(folder, environ) as gw:
        # Either secret (rotation); the handler gets the query without it.
        status, _, answer = await post(gw, "?token=first-secret-1&n=1", {"user": "ada"})
        assert (status, answer["status"]) == (200, "queued")
        status, _, _ = await post(gw, "?token=second-secret-2", {"user": "ada"})
        assert status == 200
        await eventually(lambda: len(recorded(sink)) == 2)
        assert [seen["query"] for seen in recorded(sink)] == [{"n": "1"}, {}]

        # Another parameter name: `key` is not the secret here.
        status, _, problem = await post(gw, "?key=first-secret-1", {"user": "ada"})
        assert (status, problem["detail"]) == (
            401,
            "missing webhook secret: add `token=<secret>` to the webhook URL's query",
        )
        # A user that only a plain key (no user) or nobody stands for: 403, value escaped.
        status, _, problem = await post(gw, "?token=first-secret-1", {"user": 'eve"\n'})
        assert (status, problem["type"], problem["detail"]) == (
            403,
            "urn:problem:gateway:unknown-user",
            '"eve\\"\\n" is not a user of this gateway',
        )
        status, _, problem = await post(gw, "?token=first-secret-1", {"no": "user"})
        assert (status, problem["detail"]) == (403, '"" is not a user of this gateway')

        # Per client IP: the third accepted event spends the budget, the next is a 429.
        status, _, _ = await post(gw, "?token=first-secret-1", {"user": "ada"})
        assert status == 200
        await eventually(lambda: len(recorded(sink)) == 3)
        status, headers, problem = await post(gw, "?token=first-secret-1", {"user": "ada"})
        assert (status, headers["Retry-After"], problem["type"], problem["detail"]) == (
            429,
            "20",
            "urn:problem:gateway:rate-limited",
            "rate limit of 3 per 60s reached; retry in 20s",
        )
        assert await gw.state.backend.queue.pending() == 0
        assert len(recorded(sink)) == 3
