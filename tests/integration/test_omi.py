"""Seed 002, first half: OMI memory webhooks stored per user, read back by the user's key.

The shipped routes.d/omi.yaml and plugins/omi_memories.py, with the memory store and Redis.
Payloads follow UPSTREAMS.md 3.1, with the field-name variants of older and newer OMI builds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.conftest import REDIS_URL, REPO, GatewayFactory, RunningGateway

UID, OTHER_UID = "uid_ada_1", "uid_bob_2"
KEY = {"X-API-Key": "omi-key-ada"}
MEMORY = {
    "id": "memory_abc123",
    "created_at": "2024-07-22T23:59:45.910559+00:00",
    "started_at": "2024-07-21T22:34:43.384323+00:00",
    "finished_at": "2024-07-21T22:35:43.384323+00:00",
    "transcript_segments": [
        {
            "text": "Let's discuss the project timeline.",
            "speaker": "SPEAKER_00",
            "speakerId": 0,
            "is_user": False,
            "start": 10.0,
            "end": 15.0,
        },
        {
            "text": "Friday works for me.",
            "speaker": "SPEAKER_01",
            "speaker_id": 1,
            "is_user": True,
            "start": 75.5,
            "end": 78.2,
        },
    ],
    "photos": [],
    "structured": {
        "title": "Project Timeline Discussion",
        "overview": "Brief overview of the timeline.",
        "emoji": "📅",
        "category": "work",
        "action_items": [{"description": "Send project proposal by Friday", "completed": False}],
        "events": [],
    },
    "plugins_results": [{"plugin_id": "test-app-id", "content": "Test app response"}],
    "discarded": False,
}
NEWER = {  # a newer build: integer id, apps_response, speaker_id, another category
    "id": 4711,
    "created_at": "2024-07-23T08:00:00+00:00",
    "started_at": None,
    "finished_at": None,
    "transcript_segments": [
        {
            "text": "Buy milk.",
            "speaker": "SPEAKER_02",
            "speaker_id": 2,
            "is_user": False,
            "start": 3601.0,
            "end": 3603.9,
        }
    ],
    "structured": {
        "title": "Groceries",
        "overview": "Milk.",
        "emoji": "🥛",
        "category": "personal",
    },
    "apps_response": [{"app_id": "shopper", "content": "added to list"}],
    "discarded": False,
}


def env(**extra: str) -> dict[str, str]:
    return {"OMI_API_KEY": "omi-key-ada", "OMI_UID": UID, "GATEWAY_API_KEY": "k", **extra}


async def webhook(gw: RunningGateway, body: Any, query: str) -> tuple[int, Any]:
    async with gw.http.post(f"{gw.url}/chatgpt/webhook/memory{query}", json=body) as response:
        return response.status, await response.json(content_type=None)


async def read(gw: RunningGateway, path: str, headers: dict[str, str] = KEY) -> tuple[int, Any]:
    async with gw.http.get(f"{gw.url}{path}", headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def listed(gw: RunningGateway, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        status, body = await read(gw, "/api/conversations")
        assert status == 200
        if len(body["conversations"]) >= count or time.monotonic() > deadline:
            conversations: list[dict[str, Any]] = body["conversations"]
            return conversations
        await asyncio.sleep(0.05)


async def check_omi(gw: RunningGateway) -> None:
    ok = {"status": "success", "message": "Memory data received and logged"}
    assert await webhook(gw, MEMORY, f"?uid={UID}") == (200, ok)
    assert await webhook(gw, MEMORY, f"?uid={UID}") == (200, ok)  # OMI sent it twice
    assert await webhook(gw, NEWER, f"?uid={UID}") == (200, ok)
    assert await webhook(gw, {**MEMORY, "id": "bobs"}, f"?uid={OTHER_UID}") == (200, ok)

    status, problem = await webhook(gw, MEMORY, "")
    assert status == 400
    assert problem["errors"] == [{"in": "query", "field": "uid", "message": "is required"}]
    status, problem = await webhook(gw, MEMORY, "?uid=../../etc")
    assert status == 400

    assert await listed(gw, 2) == [
        {
            "id": "4711",
            "title": "Groceries",
            "created_at": "2024-07-23T08:00:00+00:00",
            "category": "personal",
            "overview": "Milk.",
        },
        {
            "id": "memory_abc123",
            "title": "Project Timeline Discussion",
            "created_at": "2024-07-22T23:59:45.910559+00:00",
            "category": "work",
            "overview": "Brief overview of the timeline.",
        },
    ]
    status, detail = await read(gw, "/api/conversations/memory_abc123")
    assert status == 200
    assert detail["transcript"] == (
        "[0:00:10 - 0:00:15] Speaker 0: Let's discuss the project timeline.\n\n"
        "[0:01:15 - 0:01:18] User: Friday works for me."
    )
    assert detail["structured"]["action_items"] == [
        {"description": "Send project proposal by Friday", "completed": False}
    ]
    assert detail["started_at"] == "2024-07-21T22:34:43.384323+00:00"
    assert detail["apps_results"] == [{"app_id": "test-app-id", "content": "Test app response"}]
    status, newer = await read(gw, "/api/conversations/4711")
    assert newer["transcript"] == "[1:00:01 - 1:00:03] Speaker 2: Buy milk."
    assert newer["apps_results"] == [{"app_id": "shopper", "content": "added to list"}]

    # Another user's memory is not this key's; unknown ids and keys are refused.
    status, problem = await read(gw, "/api/conversations/bobs")
    assert status == 404
    assert problem.pop("request_id")
    assert problem == {
        "type": "urn:problem:gateway:plugin-refused",
        "title": "Not Found",
        "status": 404,
        "detail": "Conversation not found",
        "route": "getOmiConversation",
    }
    status, problem = await read(gw, "/api/conversations", {"X-API-Key": "wrong"})
    assert (status, problem["detail"]) == (401, "invalid API key")


async def test_omi_memories_with_the_memory_store(gateway: GatewayFactory) -> None:
    async with gateway(REPO, env()) as gw:
        await check_omi(gw)


async def test_omi_memories_with_redis(gateway: GatewayFactory, redis_namespace: str) -> None:
    extra = env(GATEWAY_STORE_URL=REDIS_URL, GATEWAY_STORE_NAMESPACE=redis_namespace)
    async with gateway(REPO, extra) as gw:
        await check_omi(gw)
    async with gateway(REPO, extra) as restarted:  # durable: still there after a restart
        assert len(await listed(restarted, 2)) == 2


async def test_omi_reads_answer_503_until_a_key_is_configured(gateway: GatewayFactory) -> None:
    async with gateway(REPO, {"GATEWAY_API_KEY": "k"}) as gw:
        status, problem = await read(gw, "/api/conversations")
        assert (status, problem["detail"]) == (
            503,
            'auth "omi" is not configured: set OMI_API_KEY, OMI_UID',
        )
