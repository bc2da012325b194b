"""The loopback OpenAI answers in the spec's shapes and refuses what the spec refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.upstreams.openai import OpenAIState, component_errors, openai_app, schema_errors
from tests.upstreams.server import Upstream, serve_upstream

KEY = "sk-test-0123456789abcdef"


@pytest.fixture
async def openai() -> AsyncIterator[tuple[Upstream, OpenAIState, aiohttp.ClientSession]]:
    state = OpenAIState(api_key=KEY)
    app, recorder = openai_app(state)
    async with serve_upstream(app, recorder) as upstream, aiohttp.ClientSession() as http:
        yield upstream, state, http


async def call(
    context: tuple[Upstream, OpenAIState, aiohttp.ClientSession],
    method: str,
    path: str,
    body: Any = None,
    key: str = KEY,
    **headers: str,
) -> tuple[int, dict[str, str], Any]:
    upstream, _, http = context
    sent = {"Authorization": f"Bearer {key}", **headers}
    async with http.request(method, upstream.url + path, json=body, headers=sent) as response:
        return response.status, dict(response.headers), await response.json()


async def test_conversation_responses_and_items_match_the_spec(openai: Any) -> None:
    status, _, conversation = await call(
        openai,
        "POST",
        "/conversations",
        {
            "metadata": {"topic": "demo"},
            "items": [{"type": "message", "role": "user", "content": "Hi"}],
        },
    )
    assert status == 200
    assert schema_errors("POST /conversations", "response", conversation) == []
    conversation_id = conversation["id"]
    status, _, fetched = await call(openai, "GET", f"/conversations/{conversation_id}")
    assert (status, fetched) == (200, conversation)
    assert schema_errors("GET /conversations/{conversation_id}", "response", fetched) == []

    body = {
        "model": "gpt-4o-mini",
        "conversation": conversation_id,
        "input": [{"type": "message", "role": "user", "content": "And now?"}],
        "max_output_tokens": 100,
    }
    assert schema_errors("POST /responses", "request", body) == []
    status, _, response = await call(openai, "POST", "/responses", body)
    assert status == 200
    assert schema_errors("POST /responses", "response", response) == []
    assert (
        response["output"][0]["content"][0]["text"] == "AI answer to: And now? (history: 1 items)"
    )
    assert response["conversation"] == {"id": conversation_id}

    path = f"/conversations/{conversation_id}/items"
    status, _, added = await call(
        openai, "POST", path, {"items": [{"type": "message", "role": "assistant", "content": "x"}]}
    )
    assert status == 200
    assert (
        schema_errors(
            f"POST {path.replace(conversation_id, '{conversation_id}')}", "response", added
        )
        == []
    )
    status, _, listed = await call(openai, "GET", f"{path}?order=asc&limit=3")
    assert schema_errors("GET /conversations/{conversation_id}/items", "response", listed) == []
    assert [item["role"] for item in listed["data"]] == ["user", "user", "assistant"]
    assert listed["has_more"] is True
    status, _, rest = await call(openai, "GET", f"{path}?order=asc&after={listed['last_id']}")
    assert [item["content"][0]["text"] for item in rest["data"]] == ["x"]


async def test_chat_completions_and_models_match_the_spec(openai: Any) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
    status, _, completion = await call(openai, "POST", "/chat/completions", body)
    assert status == 200
    assert schema_errors("POST /chat/completions", "response", completion) == []
    assert (
        completion["choices"][0]["message"]["content"] == "AI answer to: hello (history: 0 items)"
    )
    status, _, models = await call(openai, "GET", "/models")
    assert status == 200
    assert schema_errors("GET /models", "response", models) == []


async def test_refusals_are_the_spec_error_envelope(openai: Any) -> None:
    _, state, _ = openai
    answers = [
        await call(openai, "GET", "/models", key="sk-wrong-key-0000"),
        await call(openai, "GET", "/models", **{"OpenAI-Organization": "org-other"}),
        await call(openai, "POST", "/chat/completions", {"messages": []}),
        await call(
            openai, "POST", "/responses", {"model": "gpt-4o", "input": "x", "max_output_tokens": 1}
        ),
        await call(
            openai,
            "POST",
            "/chat/completions",
            {"model": "o1-pro", "messages": [{"role": "user", "content": "x"}]},
        ),
        await call(openai, "GET", "/conversations/conv_missing"),
    ]
    state.throttle(1, retry_after=3)
    answers.append(await call(openai, "GET", "/models"))
    state.outage = 503
    answers.append(await call(openai, "GET", "/models"))
    for _, _, body in answers:
        assert component_errors("ErrorResponse", body) == []
    statuses = [status for status, _, _ in answers]
    assert statuses == [401, 401, 400, 400, 404, 404, 429, 503]
    assert answers[0][2]["error"]["code"] == "invalid_api_key"
    assert "0000" in answers[0][2]["error"]["message"]  # as OpenAI: part of the key is shown
    assert (
        answers[2][2]["error"]["param"] == "model" or "model" in answers[2][2]["error"]["message"]
    )
    assert answers[3][2]["error"]["param"] == "max_output_tokens"
    assert answers[4][2]["error"]["code"] == "model_not_found"
    assert answers[6][1]["Retry-After"] == "3"
    assert answers[7][2]["error"]["type"] == "server_error"
