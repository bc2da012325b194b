"""ChatBETO, the OpenAI conversations listener: the shipped routes.d/openai.yaml over real HTTP,
against the loopback OpenAI (tests/upstreams/openai.py), on the memory store and real Redis.

Answers are the original service's `{"status": "success", "data": ...}`; every error is
`{"status": "error", "message": ...}` with a real 4xx/5xx status.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from tests.conftest import REDIS_URL, REPO, RunningGateway, eventually, run_gateway
from tests.upstreams.openai import OpenAIState, openai_app
from tests.upstreams.server import Upstream, serve_upstream

KEY = "chatbeto-key-1"
OPENAI_KEY = "sk-operator-0123456789abcdef"
BASE = "/api/v1/openai"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
async def openai() -> AsyncIterator[tuple[Upstream, OpenAIState]]:
    state = OpenAIState(api_key=OPENAI_KEY)
    app, recorder = openai_app(state)
    async with serve_upstream(app, recorder) as upstream:
        yield upstream, state


def env(upstream: Upstream, **extra: str) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_API_URL": upstream.url,
        "GATEWAY_API_KEY": KEY,
        **extra,
    }


def redis_env(upstream: Upstream, namespace: str, **extra: str) -> dict[str, str]:
    return env(upstream, GATEWAY_STORE_URL=REDIS_URL, GATEWAY_STORE_NAMESPACE=namespace, **extra)


async def call(
    gw: RunningGateway, method: str, path: str, body: Any = None, *, key: str | None = KEY
) -> tuple[int, Mapping[str, str], Any]:
    headers = {"X-API-Key": key} if key is not None else {}
    async with gw.http.request(method, f"{gw.url}{BASE}{path}", json=body, headers=headers) as r:
        return r.status, CIMultiDict(r.headers), await r.json(content_type=None)


def seen(upstream: Upstream, method: str, path: str) -> list[Any]:
    """The JSON bodies (None for none) of the upstream's requests to ``method path``."""
    return [
        item.json() if item.body else None
        for item in upstream.seen
        if (item.method, item.path) == (method, path)
    ]


def error(message: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "message": message, **extra}


async def create(
    gw: RunningGateway, project: str, text: str, title: str = "Launch plan"
) -> dict[str, Any]:
    status, _, body = await call(
        gw,
        "POST",
        "/conversations",
        {"projectId": project, "title": title, "initialMessage": text},
    )
    assert status == 201, body
    data: dict[str, Any] = body["data"]
    return data


# --- conversations ------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_conversations_create_message_read_and_list(
    openai: tuple[Upstream, OpenAIState], store: str, redis_namespace: str
) -> None:
    upstream, state = openai
    environ = env(upstream) if store == "memory" else redis_env(upstream, redis_namespace)
    async with run_gateway(REPO, environ) as gw:
        status, headers, body = await call(
            gw,
            "POST",
            "/conversations",
            {"projectId": "proj-1", "title": "Launch plan", "initialMessage": "Hello there"},
        )
        assert (status, headers["Content-Type"]) == (201, "application/json")
        data = body["data"]
        conversation_id = data["conversation"]["id"]
        assert re.fullmatch(r"chat_[0-9a-f]{24}", conversation_id)
        created_at = data["conversation"]["created_at"]
        assert ISO.match(created_at)
        reply_id = data["response"]["id"]
        assert body == {
            "status": "success",
            "data": {
                "conversation": {
                    "id": conversation_id,
                    "title": "Launch plan",
                    "projectId": "proj-1",
                    "created_at": created_at,
                    "updated_at": data["response"]["created_at"],
                    "message_count": 2,
                },
                "response": {
                    "id": reply_id,
                    "role": "assistant",
                    "content": "AI answer to: Hello there (history: 0 items)",
                    "created_at": data["response"]["created_at"],
                    "model": "gpt-4o-mini",
                    "finish_reason": "stop",
                    "usage": {"input_tokens": 2, "output_tokens": 8, "total_tokens": 10},
                },
            },
        }
        # Upstream: an OpenAI conversation, then a response in it (the spec's bodies).
        (openai_id,) = state.conversations
        assert seen(upstream, "POST", "/conversations") == [
            {
                "metadata": {
                    "gateway_id": conversation_id,
                    "project_id": "proj-1",
                    "title": "Launch plan",
                },
                "items": [],
            }
        ]
        assert seen(upstream, "POST", "/responses") == [
            {
                "model": "gpt-4o-mini",
                "conversation": openai_id,
                "input": [{"type": "message", "role": "user", "content": "Hello there"}],
                "max_output_tokens": 1000,
                "store": True,
                "temperature": 0.7,
            }
        ]
        assert all(
            "openai-organization" not in {k.lower() for k in s.headers} for s in upstream.seen
        )
        assert {s.headers["Authorization"] for s in upstream.seen} == {f"Bearer {OPENAI_KEY}"}

        # A message: the model sees the history (the first question and its answer).
        status, _, body = await call(
            gw, "POST", f"/conversations/{conversation_id}/messages", {"message": "And then?"}
        )
        assert status == 200, body
        message, response = body["data"]["message"], body["data"]["response"]
        assert body == {
            "status": "success",
            "data": {
                "conversationId": conversation_id,
                "message": {
                    "id": message["id"],
                    "role": "user",
                    "content": "And then?",
                    "created_at": message["created_at"],
                },
                "response": {
                    "id": response["id"],
                    "role": "assistant",
                    "content": "AI answer to: And then? (history: 2 items)",
                    "created_at": response["created_at"],
                    "model": "gpt-4o-mini",
                    "finish_reason": "stop",
                    "usage": {"input_tokens": 12, "output_tokens": 8, "total_tokens": 20},
                },
            },
        }
        assert [text for _, text in state.texts(openai_id)] == [
            "Hello there",
            "AI answer to: Hello there (history: 0 items)",
            "And then?",
            "AI answer to: And then? (history: 2 items)",
        ]

        # Reading and listing come from the store: no OpenAI call.
        calls = len(upstream.seen)
        status, _, body = await call(gw, "GET", f"/conversations/{conversation_id}")
        assert status == 200
        stored = body["data"]["conversation"]
        assert stored == {
            "id": conversation_id,
            "title": "Launch plan",
            "projectId": "proj-1",
            "created_at": created_at,
            "updated_at": response["created_at"],
            "message_count": 4,
            "messages": [
                {
                    "id": stored["messages"][0]["id"],
                    "role": "user",
                    "content": "Hello there",
                    "created_at": created_at,
                },
                {
                    "id": reply_id,
                    "role": "assistant",
                    "content": "AI answer to: Hello there (history: 0 items)",
                    "created_at": stored["messages"][1]["created_at"],
                    "model": "gpt-4o-mini",
                },
                {**message},
                {
                    "id": response["id"],
                    "role": "assistant",
                    "content": "AI answer to: And then? (history: 2 items)",
                    "created_at": response["created_at"],
                    "model": "gpt-4o-mini",
                },
            ],
        }
        second = (await create(gw, "proj-1", "Second one", title="Budget"))["conversation"]
        await create(gw, "proj-2", "Elsewhere")
        calls = len(upstream.seen)
        status, _, body = await call(gw, "GET", "/projects/proj-1/conversations")
        assert status == 200
        assert body == {
            "status": "success",
            "data": {
                "projectId": "proj-1",
                "conversations": [second, {key: stored[key] for key in second}],
                "count": 2,
            },
        }
        status, _, body = await call(gw, "GET", "/projects/proj-1/conversations?limit=1")
        assert [c["id"] for c in body["data"]["conversations"]] == [second["id"]]
        status, _, body = await call(gw, "GET", "/projects/nobody/conversations")
        assert (status, body) == (
            200,
            {"status": "success", "data": {"projectId": "nobody", "conversations": [], "count": 0}},
        )
        assert len(upstream.seen) == calls

        status, headers, body = await call(gw, "GET", "/conversations/chat_nope")
        assert (status, headers["Content-Type"], body) == (
            404,
            "application/json",
            error("conversation chat_nope not found"),
        )
        status, _, body = await call(
            gw, "POST", "/conversations/chat_nope/messages", {"message": "hi"}
        )
        assert (status, body) == (404, error("conversation chat_nope not found"))


async def test_create_without_initial_message_then_system_and_assistant_roles(
    gateway: Any, openai: tuple[Upstream, OpenAIState]
) -> None:
    upstream, state = openai
    async with gateway(REPO, env(upstream)) as gw:
        status, _, body = await call(gw, "POST", "/conversations", {"projectId": "p"})
        assert status == 201
        conversation = body["data"]["conversation"]
        assert body == {"status": "success", "data": {"conversation": conversation}}
        assert (conversation["title"], conversation["message_count"]) == ("New conversation", 0)
        path = f"/conversations/{conversation['id']}/messages"
        status, _, body = await call(gw, "POST", path, {"message": "Be brief.", "role": "system"})
        assert body["data"]["response"]["content"] == "AI answer to:  (history: 0 items)"
        status, _, body = await call(gw, "POST", path, {"message": "Hi", "role": "user"})
        assert body["data"]["response"]["content"] == "AI answer to: Hi (history: 2 items)"
        (openai_id,) = state.conversations
        assert [role for role, _ in state.texts(openai_id)] == [
            "system",
            "assistant",
            "user",
            "assistant",
        ]


async def test_a_conversation_gone_upstream_is_recreated_with_its_history(
    gateway: Any, openai: tuple[Upstream, OpenAIState]
) -> None:
    upstream, state = openai
    async with gateway(REPO, env(upstream)) as gw:
        conversation_id = (await create(gw, "p", "First"))["conversation"]["id"]
        (old,) = state.conversations
        state.forget(old)  # deleted or expired at OpenAI
        status, _, body = await call(
            gw, "POST", f"/conversations/{conversation_id}/messages", {"message": "Still there?"}
        )
        assert status == 200, body
        assert (
            body["data"]["response"]["content"] == "AI answer to: Still there? (history: 2 items)"
        )
        (new,) = state.conversations
        assert new != old
        assert seen(upstream, "POST", "/conversations")[-1] == {
            "metadata": {"gateway_id": conversation_id, "project_id": "p", "title": "Launch plan"},
            "items": [
                {"type": "message", "role": "user", "content": "First"},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": "AI answer to: First (history: 0 items)",
                },
            ],
        }
        status, _, body = await call(
            gw, "POST", f"/conversations/{conversation_id}/messages", {"message": "Good"}
        )
        assert body["data"]["response"]["content"] == "AI answer to: Good (history: 4 items)"
        assert len(state.conversations) == 1  # the new one is kept


async def test_a_long_history_is_recreated_in_batches_of_twenty(
    gateway: Any, openai: tuple[Upstream, OpenAIState]
) -> None:
    upstream, state = openai
    async with gateway(REPO, env(upstream)) as gw:
        conversation_id = (await create(gw, "p", "m0"))["conversation"]["id"]
        path = f"/conversations/{conversation_id}/messages"
        for number in range(1, 12):
            assert (await call(gw, "POST", path, {"message": f"m{number}"}))[0] == 200
        state.forget(next(iter(state.conversations)))
        _, _, body = await call(gw, "POST", path, {"message": "last"})
        assert body["data"]["response"]["content"] == "AI answer to: last (history: 24 items)"
        (new,) = state.conversations
        assert len(seen(upstream, "POST", f"/conversations/{new}/items")) == 1
        assert [text for _, text in state.texts(new)][:3] == [
            "m0",
            "AI answer to: m0 (history: 0 items)",
            "m1",
        ]


# --- direct completions, models, environment ----------------------------------------------


async def test_chat_completion_reply_is_at_data_response_content(
    gateway: Any, openai: tuple[Upstream, OpenAIState]
) -> None:
    upstream, _ = openai
    messages = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"}]
    async with gateway(REPO, env(upstream)) as gw:
        extra = [messages[0], {**messages[1], "tool_call_id": "x"}]  # not passed on
        status, _, body = await call(
            gw, "POST", "/chat/completions", {"messages": extra, "projectId": "proj-1"}
        )
        assert status == 200
        assert body == {
            "status": "success",
            "data": {
                "response": {
                    "role": "assistant",
                    "content": "AI answer to: hi (history: 1 items)",
                    "model": "gpt-4o-mini",
                    "finish_reason": "stop",
                    "usage": {"input_tokens": 3, "output_tokens": 7, "total_tokens": 10},
                },
                "projectId": "proj-1",
            },
        }
        status, _, body = await call(gw, "POST", "/chat/completions", {"messages": messages[1:]})
        assert body["data"]["projectId"] is None
    assert seen(upstream, "POST", "/chat/completions") == [
        {
            "model": "gpt-4o-mini",
            "messages": messages,
            "max_completion_tokens": 1000,
            "temperature": 0.7,
            "metadata": {"project_id": "proj-1"},
        },
        {
            "model": "gpt-4o-mini",
            "messages": messages[1:],
            "max_completion_tokens": 1000,
            "temperature": 0.7,
        },
    ]


async def test_defaults_from_the_environment_and_the_organization_header(
    gateway: Any, openai: tuple[Upstream, OpenAIState]
) -> None:
    upstream, state = openai
    environ = env(
        upstream,
        OPENAI_MODEL="gpt-4.1-mini",
        OPENAI_MAX_TOKENS="256",
        OPENAI_TEMPERATURE="0.2",
        OPENAI_ORG_ID=state.organization,
    )
    async with gateway(REPO, environ) as gw:
        data = await create(gw, "p", "Hi")
        assert data["response"]["model"] == "gpt-4.1-mini"
        hello = [{"role": "user", "content": "x"}]
        _, _, body = await call(gw, "POST", "/chat/completions", {"messages": hello})
        assert body["data"]["response"]["model"] == "gpt-4.1-mini"
        # The existing ChatGPT route shares the upstream: it sends the organization too.
        async with gw.http.get(f"{gw.url}/openai/models", headers={"X-API-Key": KEY}) as r:
            assert (r.status, await r.json()) == (200, ["gpt-4.1-mini", "gpt-4o", "gpt-4o-mini"])
    (response,) = seen(upstream, "POST", "/responses")
    assert (response["model"], response["max_output_tokens"], response["temperature"]) == (
        "gpt-4.1-mini",
        256,
        0.2,
    )
    (completion,) = seen(upstream, "POST", "/chat/completions")
    assert (completion["max_completion_tokens"], completion["temperature"]) == (256, 0.2)
    assert {item.headers.get("OpenAI-Organization") for item in upstream.seen} == {"org-loopback"}


async def test_only_allowlisted_models_cost_the_operator(
    gateway: Any, openai: tuple[Upstream, OpenAIState]
) -> None:
    upstream, _ = openai
    refused = error(
        "the request is invalid: 1 field failed",
        errors=[
            {"in": "body", "field": "$.model", "message": "'gpt-4o' is not one of ['gpt-4o-mini']"}
        ],
    )
    async with gateway(REPO, env(upstream)) as gw:
        conversation_id = (await create(gw, "p", "Hi"))["conversation"]["id"]
        calls = len(upstream.seen)
        for path, body in [
            ("/chat/completions", {"messages": [{"role": "user", "content": "x"}]}),
            ("/conversations", {"projectId": "p", "initialMessage": "x"}),
            (f"/conversations/{conversation_id}/messages", {"message": "x"}),
        ]:
            status, headers, answer = await call(gw, "POST", path, {**body, "model": "gpt-4o"})
            assert (status, headers["Content-Type"], answer) == (400, "application/json", refused)
            status, _, answer = await call(gw, "POST", path, {**body, "model": "gpt-4o-mini"})
            assert status in (200, 201), answer
        status, _, answer = await call(
            gw, "POST", "/conversations", {"projectId": "../etc", "initialMessage": "x"}
        )
        assert status == 400
        assert answer["errors"][0]["field"] == "$.projectId"
    assert len(upstream.seen) == calls + 4  # the refused ones never reached OpenAI


# --- errors -------------------------------------------------------------------------------


async def test_errors_keep_the_original_shape_and_a_real_status(
    gateway: Any, openai: tuple[Upstream, OpenAIState]
) -> None:
    upstream, state = openai
    hello = {"messages": [{"role": "user", "content": "hi"}]}
    async with gateway(REPO, env(upstream)) as gw:
        status, headers, body = await call(gw, "GET", "/status", key=None)
        assert (status, headers["Content-Type"]) == (401, "application/json")
        assert body == error(
            "credentials required: send `Authorization: Bearer <token>` with a token of this"
            " gateway's sign-in or an API key in the X-API-Key header"
        )
        status, _, body = await call(gw, "GET", "/status", key="wrong")
        assert (status, body) == (401, error("invalid API key"))
        status, _, body = await call(gw, "POST", "/chat/completions", {"messages": []})
        assert (status, body["status"], body["errors"][0]["field"]) == (400, "error", "$.messages")

        state.throttle(1, retry_after=7)
        status, headers, body = await call(gw, "POST", "/chat/completions", hello)
        assert (status, headers["Retry-After"]) == (429, "7")
        assert body == error(
            "OpenAI is rate limiting this gateway: Rate limit reached for requests. "
            "Please try again in 7s."
        )
        state.outage = 500
        status, _, body = await call(gw, "POST", "/chat/completions", hello)
        assert (status, body) == (
            502,
            error(
                "OpenAI is unavailable (500): The server had an error while processing your "
                "request. Sorry about that!"
            ),
        )
        status, _, body = await call(gw, "POST", "/conversations", {"projectId": "p"})
        assert status == 502
        state.outage = None
        status, _, body = await call(gw, "GET", "/projects/p/conversations")
        assert body["data"]["count"] == 0  # nothing half-made was stored
    async with gateway(REPO, env(upstream, OPENAI_API_KEY="sk-wrong-key-98765")) as gw:
        status, _, body = await call(gw, "POST", "/chat/completions", hello)
        assert (status, body) == (
            502,
            error("OpenAI refused the gateway's API key (401 invalid_api_key)"),
        )
        assert "8765" not in str(body)  # OpenAI's message echoes part of the key: not passed on
    unset = {key: value for key, value in env(upstream).items() if key != "OPENAI_API_KEY"}
    async with gateway(REPO, unset) as gw:
        status, _, body = await call(gw, "GET", "/conversations/chat_1")
        assert (status, body) == (
            503,
            error('upstream "openai" is not configured: set OPENAI_API_KEY'),
        )
        # The ChatGPT routes of the same file keep their problem+json.
        async with gw.http.get(f"{gw.url}/openai/models", headers={"X-API-Key": KEY}) as r:
            assert (r.status, r.content_type) == (503, "application/problem+json")


# --- status -------------------------------------------------------------------------------


async def test_status_is_healthy_only_after_a_real_call_and_is_cached(
    gateway: Any, openai: tuple[Upstream, OpenAIState]
) -> None:
    upstream, state = openai
    healthy = {"status": "success", "data": {"openai": {"status": "healthy"}, "initialized": True}}
    async with gateway(REPO, env(upstream)) as gw:
        assert (await call(gw, "GET", "/status"))[::2] == (200, healthy)
        state.outage = 503
        assert (await call(gw, "GET", "/status"))[::2] == (200, healthy)  # cached (30 s)
    assert len(seen(upstream, "GET", "/models")) == 1


async def test_status_says_why_openai_is_unhealthy(
    gateway: Any, openai: tuple[Upstream, OpenAIState]
) -> None:
    upstream, state = openai
    state.outage = 503
    environ = env(upstream, CHATBETO_STATUS_CACHE_SECONDS="1")
    async with gateway(REPO, environ) as gw:
        status, _, body = await call(gw, "GET", "/status")
        assert (status, body) == (
            200,
            {
                "status": "success",
                "data": {
                    "openai": {
                        "status": "unhealthy",
                        "error": "OpenAI is unavailable (503): The server had an error while "
                        "processing your request. Sorry about that!",
                    },
                    "initialized": True,
                },
            },
        )
        assert len(seen(upstream, "GET", "/models")) == 2  # GET is retried once on 503
        await call(gw, "GET", "/status")
        assert len(seen(upstream, "GET", "/models")) == 2  # a failure is remembered too
        state.outage = None
        checks: list[Any] = []

        async def healthy() -> None:
            checks.append((await call(gw, "GET", "/status"))[2]["data"]["openai"])

        for _ in range(60):  # bounded: the 1 s cache runs out
            await healthy()
            if checks[-1] == {"status": "healthy"}:
                break
            await asyncio.sleep(0.1)
        assert checks[-1] == {"status": "healthy"}
    async with gateway(REPO, env(upstream, OPENAI_API_KEY="sk-wrong-key-98765")) as gw:
        status, _, body = await call(gw, "GET", "/status")
        assert body["data"]["openai"] == {
            "status": "unhealthy",
            "error": "OpenAI refused the gateway's API key (401 invalid_api_key)",
        }


# --- rate limit ---------------------------------------------------------------------------


async def test_rate_limit_is_50_per_15_minutes_per_api_key(
    gateway: Any, openai: tuple[Upstream, OpenAIState]
) -> None:
    upstream, _ = openai
    environ = env(upstream, GATEWAY_API_KEY_NEXT="chatbeto-key-2")
    async with gateway(REPO, environ) as gw:
        for number in range(50):
            status, headers, _ = await call(gw, "GET", "/status")
            assert status == 200
            assert headers["RateLimit-Limit"] == "50"
            assert headers["RateLimit-Remaining"] == str(49 - number)
        status, headers, body = await call(gw, "GET", "/status")
        assert (status, headers["Content-Type"]) == (429, "application/json")
        assert body == error("rate limit of 50 per 900s reached; retry in 18s")
        assert headers["Retry-After"] == "18"  # one request every 15 min / 50
        assert headers["RateLimit-Remaining"] == "0"
        # Another key has its own budget.
        assert (await call(gw, "GET", "/status", key="chatbeto-key-2"))[0] == 200


async def test_rate_limit_is_shared_by_replicas_on_redis(
    openai: tuple[Upstream, OpenAIState], redis_namespace: str
) -> None:
    upstream, _ = openai
    environ = redis_env(upstream, redis_namespace, CHATBETO_RATE_LIMIT="3")
    async with run_gateway(REPO, environ) as one, run_gateway(REPO, environ) as two:
        assert (await call(one, "GET", "/status"))[0] == 200
        assert (await call(two, "GET", "/status"))[0] == 200
        status, headers, _ = await call(one, "GET", "/status")
        assert (status, headers["RateLimit-Remaining"]) == (200, "0")
        status, headers, body = await call(two, "GET", "/status")
        assert status == 429
        assert body == error("rate limit of 3 per 900s reached; retry in 300s")


# --- sync ---------------------------------------------------------------------------------


async def test_sync_recreates_the_conversations_openai_lost(
    gateway: Any, openai: tuple[Upstream, OpenAIState]
) -> None:
    upstream, state = openai
    async with gateway(REPO, env(upstream)) as gw:
        kept = (await create(gw, "p", "Keep me"))["conversation"]["id"]
        lost = (await create(gw, "p", "Lose me"))["conversation"]["id"]
        lost_openai = seen(upstream, "POST", "/responses")[-1]["conversation"]
        state.forget(lost_openai)
        state.throttle(1, retry_after=1)  # the job waits OpenAI's Retry-After and goes on

        status, headers, body = await call(gw, "POST", "/sync")
        assert status == 202
        job = body["data"]
        assert headers["Location"] == f"{BASE}/sync/{job['jobId']}"
        assert re.fullmatch(r"sync_[0-9a-f]{24}", job["jobId"])
        assert body == {
            "status": "success",
            "data": {
                "jobId": job["jobId"],
                "status": "running",
                "total": 0,
                "processed": 0,
                "existing": 0,
                "recreated": 0,
                "failed": 0,
                "errors": [],
                "started_at": job["started_at"],
                "finished_at": None,
            },
        }
        progress: list[dict[str, Any]] = []

        async def finished() -> bool:
            status, _, body = await call(gw, "GET", f"/sync/{job['jobId']}")
            assert status == 200
            progress.append(body["data"])
            return bool(body["data"]["status"] != "running")

        for _ in range(200):  # bounded: 10 s
            if await finished():
                break
            await asyncio.sleep(0.05)
        assert progress[-1] == {
            **job,
            "status": "completed",
            "total": 2,
            "processed": 2,
            "existing": 1,
            "recreated": 1,
            "finished_at": progress[-1]["finished_at"],
        }
        assert ISO.match(progress[-1]["finished_at"])
        kept_openai = seen(upstream, "POST", "/responses")[0]["conversation"]
        assert len(seen(upstream, "GET", f"/conversations/{kept_openai}")) == 2  # 429, then ok
        # The recreated conversation holds its history; the next message sees it.
        recreated = list(state.conversations)[-1]
        assert recreated not in (kept_openai, lost_openai)
        assert state.texts(recreated) == [
            ("user", "Lose me"),
            ("assistant", "AI answer to: Lose me (history: 0 items)"),
        ]
        status, _, body = await call(
            gw, "POST", f"/conversations/{lost}/messages", {"message": "ok"}
        )
        assert body["data"]["response"]["content"] == "AI answer to: ok (history: 2 items)"
        status, _, body = await call(
            gw, "POST", f"/conversations/{kept}/messages", {"message": "k"}
        )
        assert body["data"]["response"]["content"] == "AI answer to: k (history: 2 items)"

        status, _, body = await call(gw, "GET", "/sync/sync_nope")
        assert (status, body) == (404, error("sync job sync_nope not found"))


async def test_one_sync_at_a_time(gateway: Any, openai: tuple[Upstream, OpenAIState]) -> None:
    upstream, state = openai
    async with gateway(REPO, env(upstream)) as gw:
        await create(gw, "p", "One")
        (openai_id,) = state.conversations
        state.hold = asyncio.Event()  # OpenAI is slow: the job is still checking
        first = (await call(gw, "POST", "/sync"))[2]["data"]
        await eventually(lambda: bool(seen(upstream, "GET", f"/conversations/{openai_id}")))
        status, _, body = await call(gw, "POST", "/sync")
        assert (status, body["data"]["jobId"]) == (202, first["jobId"])  # the running one
        status, _, body = await call(gw, "GET", f"/sync/{first['jobId']}")
        assert body["data"] | {"started_at": None} == first | {"total": 1, "started_at": None}
        state.hold.set()

        async def done() -> dict[str, Any]:
            return dict((await call(gw, "GET", f"/sync/{first['jobId']}"))[2]["data"])

        for _ in range(200):  # bounded: 10 s
            if (job := await done())["status"] != "running":
                break
            await asyncio.sleep(0.05)
        assert (job["status"], job["existing"]) == ("completed", 1)
        second = (await call(gw, "POST", "/sync"))[2]["data"]
        assert second["jobId"] != first["jobId"]  # the lock was released


# --- restarts and replicas ----------------------------------------------------------------


async def test_conversations_survive_a_restart_on_redis(
    openai: tuple[Upstream, OpenAIState], redis_namespace: str
) -> None:
    upstream, _ = openai
    environ = redis_env(upstream, redis_namespace)
    async with run_gateway(REPO, environ) as gw:
        conversation = (await create(gw, "proj-r", "Before the restart"))["conversation"]
        status, _, body = await call(gw, "POST", "/sync")
        job_id = body["data"]["jobId"]
    async with run_gateway(REPO, environ) as gw:
        status, _, body = await call(gw, "GET", f"/conversations/{conversation['id']}")
        assert status == 200
        assert [m["content"] for m in body["data"]["conversation"]["messages"]] == [
            "Before the restart",
            "AI answer to: Before the restart (history: 0 items)",
        ]
        status, _, body = await call(gw, "GET", "/projects/proj-r/conversations")
        assert body["data"]["conversations"] == [conversation]
        status, _, body = await call(
            gw, "POST", f"/conversations/{conversation['id']}/messages", {"message": "After"}
        )
        assert body["data"]["response"]["content"] == "AI answer to: After (history: 2 items)"
        # The job of the stopped process: finished, or reported as interrupted.
        status, _, body = await call(gw, "GET", f"/sync/{job_id}")
        assert (status, body["data"]["status"] in ("completed", "interrupted")) == (200, True)


def test_config_dir_is_the_shipped_one() -> None:
    assert (Path(REPO) / "routes.d" / "openai.yaml").is_file()


# --- the signed webhook -------------------------------------------------------------------

SECRET = "chatbeto-webhook-secret-7f3a"
HOOK = "/webhook/chatgpt"


def signed(
    event: dict[str, Any], *, secret: str = SECRET, at_ms: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """An event as ChatBETO sends it: `X-Webhook-Signature: sha256=<hex HMAC-SHA256>` of
    `"<X-Webhook-Timestamp>.<raw body>"`, the timestamp in milliseconds."""
    raw = json.dumps(event, separators=(",", ":")).encode()
    timestamp = str(int(time.time() * 1000) if at_ms is None else at_ms)
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256)
    return raw, {
        "Content-Type": "application/json",
        "X-Event-Type": event["type"],
        "X-Webhook-Timestamp": timestamp,
        "X-Webhook-Signature": "sha256=" + digest.hexdigest(),
    }


async def post_event(
    gw: RunningGateway, raw: bytes, headers: dict[str, str]
) -> tuple[int, str, Any]:
    async with gw.http.post(f"{gw.url}{HOOK}", data=raw, headers=headers) as response:
        return response.status, response.content_type, await response.json(content_type=None)


def conversation_created(event_id: str, conversation_id: str, title: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "conversation.created",
        "data": {"conversation": {"id": conversation_id, "projectId": "proj-w", "title": title}},
    }


def message_created(
    event_id: str, conversation_id: str, text: str, **message: str
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "message.created",
        "data": {
            "conversationId": conversation_id,
            "message": {"role": "user", "content": text, **message},
        },
    }


async def stored(gw: RunningGateway, conversation_id: str) -> dict[str, Any] | None:
    status, _, body = await call(gw, "GET", f"/conversations/{conversation_id}")
    return dict(body["data"]["conversation"]) if status == 200 else None


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_webhook_signed_forged_stale_and_duplicate(
    openai: tuple[Upstream, OpenAIState], store: str, redis_namespace: str
) -> None:
    upstream, state = openai
    extra = {"CHATBETO_WEBHOOK_SECRET": SECRET}
    environ = (
        env(upstream, **extra)
        if store == "memory"
        else redis_env(upstream, redis_namespace, **extra)
    )
    async with run_gateway(REPO, environ) as gw:
        raw, headers = signed(conversation_created("evt_1", "chat_hook", "From ChatGPT"))
        status, _, body = await post_event(gw, raw, headers)
        assert (status, body["status"]) == (200, "queued")
        first_id = body["id"]
        assert await post_event(gw, raw, headers) == (  # delivered again: not queued again
            200,
            "application/json",
            {"status": "duplicate", "id": first_id},
        )
        found: list[Any] = []

        async def recorded(count: int) -> None:
            for _ in range(200):  # bounded: 10 s
                found.append(await stored(gw, "chat_hook"))
                if found[-1] is not None and found[-1]["message_count"] == count:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"not recorded: {found[-1]}")

        await recorded(0)
        assert found[-1] | {"created_at": None, "updated_at": None} == {
            "id": "chat_hook",
            "title": "From ChatGPT",
            "projectId": "proj-w",
            "created_at": None,
            "updated_at": None,
            "message_count": 0,
            "messages": [],
        }
        # The same message under two event ids is recorded once (by its id).
        for event_id in ("evt_2", "evt_3"):
            raw, headers = signed(message_created(event_id, "chat_hook", "Hi from GPT", id="m-1"))
            assert (await post_event(gw, raw, headers))[0] == 200
        await recorded(1)
        # A message without an id is named after its event.
        raw, headers = signed(message_created("evt_4", "chat_hook", "Second"))
        assert (await post_event(gw, raw, headers))[0] == 200
        await recorded(2)
        assert [(m["id"], m["content"]) for m in found[-1]["messages"]] == [
            ("m-1", "Hi from GPT"),
            ("msg_evt_4", "Second"),
        ]

        # Forged (another secret), stale (10 minutes old), unsigned: 401, nothing queued.
        event = message_created("evt_5", "chat_hook", "forged")
        raw, headers = signed(event, secret="not-the-secret")
        status, content_type, body = await post_event(gw, raw, headers)
        assert (status, content_type, body["detail"]) == (
            401,
            "application/problem+json",
            "the signature does not match the body",
        )
        raw, headers = signed(event, at_ms=int(time.time() * 1000) - 600_000)
        status, _, body = await post_event(gw, raw, headers)
        assert (status, body["detail"]) == (
            401,
            "the request timestamp is more than 300s from now (a replay, or a wrong clock)",
        )
        raw, headers = signed(event)
        del headers["X-Webhook-Signature"]
        status, _, body = await post_event(gw, raw, headers)
        assert (status, body["detail"]) == (
            401,
            "missing signature: send the x-webhook-signature header",
        )
        tampered = raw.replace(b"forged", b"f0rged")
        status, _, body = await post_event(gw, tampered, signed(event)[1])
        assert status == 401
        await asyncio.sleep(0.3)
        assert (await stored(gw, "chat_hook") or {})["message_count"] == 2

        # The model sees what the webhook recorded: the conversation is created upstream
        # with its history on its next message.
        assert state.conversations == {}
        status, _, body = await call(
            gw, "POST", "/conversations/chat_hook/messages", {"message": "Continue"}
        )
        assert body["data"]["response"]["content"] == "AI answer to: Continue (history: 2 items)"


async def test_webhook_message_before_its_conversation_is_retried(
    gateway: Any, openai: tuple[Upstream, OpenAIState]
) -> None:
    upstream, _ = openai
    async with gateway(REPO, env(upstream, CHATBETO_WEBHOOK_SECRET=SECRET)) as gw:
        raw, headers = signed(message_created("evt_a", "chat_late", "Early bird"))
        assert (await post_event(gw, raw, headers))[0] == 200
        raw, headers = signed(conversation_created("evt_b", "chat_late", "Late"))
        assert (await post_event(gw, raw, headers))[0] == 200
        seen_messages: list[Any] = []

        async def check() -> bool:
            conversation = await stored(gw, "chat_late")
            seen_messages.append(conversation and conversation["messages"])
            return bool(seen_messages[-1])

        for _ in range(300):  # bounded: 15 s (the first retry comes after 2 s)
            if await check():
                break
            await asyncio.sleep(0.05)
        assert [m["content"] for m in seen_messages[-1]] == ["Early bird"]
        # A malformed event goes to the dead letters, never retried.
        raw, headers = signed({"id": "evt_c", "type": "conversation.created", "data": {}})
        assert (await post_event(gw, raw, headers))[0] == 200
        queue = gw.state.backend.queue
        for _ in range(200):  # bounded: 10 s
            if dead := await queue.dead(10):
                break
            await asyncio.sleep(0.05)
        (letter,) = dead
        assert (letter.webhook, letter.attempt) == ("chatbetoEvents", 1)
        assert "a conversation.created event needs" in str(letter.error)


async def test_webhook_answers_503_until_its_secret_is_set(
    gateway: Any, openai: tuple[Upstream, OpenAIState]
) -> None:
    upstream, _ = openai
    async with gateway(REPO, env(upstream)) as gw:
        raw, headers = signed(conversation_created("evt_1", "chat_x", "x"))
        status, _, body = await post_event(gw, raw, headers)
        assert (status, body["detail"]) == (
            503,
            'webhook "chatbetoEvents" is not configured: set CHATBETO_WEBHOOK_SECRET',
        )
