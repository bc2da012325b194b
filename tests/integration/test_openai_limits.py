"""The shipped OpenAI route spends the operator's key only on the allowed models (default:
the configured default model) and on bounded requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import REPO, GatewayFactory
from tests.upstreams.server import Recorder, Upstream, serve_upstream


@pytest.fixture
async def openai() -> AsyncIterator[Upstream]:
    recorder = Recorder()
    app = web.Application(middlewares=[recorder.middleware])

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi", "refusal": None},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    app.router.add_post("/v1/chat/completions", completions)
    async with serve_upstream(app, recorder) as upstream:
        yield upstream


async def ask(gw: Any, body: dict[str, Any]) -> tuple[int, Any]:
    headers = {"X-API-Key": "gateway-key-1"}
    async with gw.http.post(f"{gw.url}/openai/chat", json=body, headers=headers) as response:
        return response.status, await response.json()


async def test_only_allowed_models_and_bounded_messages(
    gateway: GatewayFactory, openai: Upstream
) -> None:
    env = {
        "OPENAI_API_KEY": "sk-operator-0123456789",
        "OPENAI_API_URL": f"{openai.url}/v1",
        "OPENAI_MODEL": "gpt-4o-mini",
        "GATEWAY_API_KEY": "gateway-key-1",
    }
    hello = [{"role": "user", "content": "hello"}]
    async with gateway(REPO, env) as gw:
        assert await ask(gw, {"messages": hello}) == (
            200,
            {"answer": "hi", "model": "gpt-4o-mini", "finish_reason": "stop", "total_tokens": 2},
        )
        status, problem = await ask(gw, {"messages": hello, "model": "o1-pro"})
        assert status == 400
        assert problem["errors"] == [
            {"in": "body", "field": "$.model", "message": "'o1-pro' is not one of ['gpt-4o-mini']"}
        ]
        status, problem = await ask(gw, {"messages": [{"role": "user", "content": "x" * 20_001}]})
        assert status == 400
        assert problem["errors"][0]["field"] == "$.messages[0].content"
    assert len(openai.seen) == 1  # the refused ones cost the operator nothing
