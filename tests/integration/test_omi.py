"""Seed 002, first half: OMI memory webhooks stored per user, read back by the user's key.

The shipped routes.d/omi.yaml and plugins/omi_memories.py, with the memory store and Redis;
ChatGPT reads with OAuth tokens of the gateway's authorization server, one user each.
Payloads follow UPSTREAMS.md 3.1, with the field-name variants of older and newer OMI builds.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL, REPO, RunningGateway, run_gateway
from tests.oauth_client import GOOD_SECRET, token_for
from tests.upstreams.server import free_port

UID, OTHER_UID = "uid_ada_1", "uid_bob_2"
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


def omi_config(tmp_path: Path) -> Path:
    """The shipped config, with a second OAuth user (the shipped file has one, from env)."""
    for name in ("routes.d", "plugins", "schemas"):
        shutil.copytree(REPO / name, tmp_path / name)
    text = (REPO / "gateway.yaml").read_text()
    one_user = (
        '    - {username: "${OMI_LOGIN_USER:-}", password: "${OMI_LOGIN_PASSWORD:-}", '
        'user_id: "${OMI_UID:-}"}\n'
    )
    assert one_user in text
    two_users = (
        f"    - {{username: ada, password: ada-pass-1, user_id: {UID}}}\n"
        f"    - {{username: bob, password: bob-pass-2, user_id: {OTHER_UID}}}\n"
    )
    (tmp_path / "gateway.yaml").write_text(text.replace(one_user, two_users))
    return tmp_path


def env(port: int, **extra: str) -> dict[str, str]:
    return {
        "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "OAUTH_CLIENT_ID": "gpt-client",
        "OAUTH_CLIENT_SECRET": GOOD_SECRET,
        "GATEWAY_API_KEY": "k",
        **extra,
    }


async def webhook(gw: RunningGateway, body: Any, query: str) -> tuple[int, Any]:
    async with gw.http.post(f"{gw.url}/chatgpt/webhook/memory{query}", json=body) as response:
        return response.status, await response.json(content_type=None)


async def read(gw: RunningGateway, path: str, token: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with gw.http.get(f"{gw.url}{path}", headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def listed(gw: RunningGateway, token: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        status, body = await read(gw, "/api/conversations", token)
        assert status == 200
        if len(body["conversations"]) >= count or time.monotonic() > deadline:
            conversations: list[dict[str, Any]] = body["conversations"]
            return conversations
        await asyncio.sleep(0.05)


async def check_omi(gw: RunningGateway) -> None:
    ada = (await token_for(gw, "ada", "ada-pass-1"))["access_token"]
    bob = (await token_for(gw, "bob", "bob-pass-2"))["access_token"]
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

    assert await listed(gw, ada, 2) == [
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
    status, detail = await read(gw, "/api/conversations/memory_abc123", ada)
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
    status, newer = await read(gw, "/api/conversations/4711", ada)
    assert newer["transcript"] == "[1:00:01 - 1:00:03] Speaker 2: Buy milk."
    assert newer["apps_results"] == [{"app_id": "shopper", "content": "added to list"}]

    # Each user sees only their own memories.
    assert [c["id"] for c in await listed(gw, bob, 1)] == ["bobs"]
    assert (await read(gw, "/api/conversations/bobs", bob))[0] == 200
    assert (await read(gw, "/api/conversations/memory_abc123", bob))[0] == 404
    status, problem = await read(gw, "/api/conversations/bobs", ada)
    assert status == 404
    assert problem.pop("request_id")
    assert problem == {
        "type": "urn:problem:gateway:plugin-refused",
        "title": "Not Found",
        "status": 404,
        "detail": "Conversation not found",
        "route": "getOmiConversation",
    }
    status, problem = await read(gw, "/api/conversations", "not-a-token")
    assert (status, problem["detail"]) == (401, "Invalid access token")
    status, problem = await read(gw, "/api/conversations", "")
    assert status == 401


async def test_omi_memories_with_the_memory_store(tmp_path: Path) -> None:
    port = free_port()
    async with run_gateway(omi_config(tmp_path), env(port), port) as gw:
        await check_omi(gw)


async def test_omi_memories_with_redis(tmp_path: Path, redis_namespace: str) -> None:
    port = free_port()
    extra = env(port, GATEWAY_STORE_URL=REDIS_URL, GATEWAY_STORE_NAMESPACE=redis_namespace)
    folder = omi_config(tmp_path)
    async with run_gateway(folder, extra, port) as gw:
        await check_omi(gw)
    async with run_gateway(folder, extra, port) as restarted:  # durable across a restart
        ada = (await token_for(restarted, "ada", "ada-pass-1"))["access_token"]
        assert len(await listed(restarted, ada, 2)) == 2


def shipped_config(tmp_path: Path) -> Path:
    """The shipped config folder, unchanged (its users come from the environment)."""
    for name in ("routes.d", "plugins", "schemas"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "gateway.yaml", tmp_path / "gateway.yaml")
    return tmp_path


async def test_omi_servers_environment_moves_unchanged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The OMI server's variables and URLs on the shipped config: the client from
    OPENAI_CLIENT_ID/SECRET, several users from OMI_USERS beside the single-user variables,
    sign-in through /chatgpt/oauth/*; each user sees only their own memories, and a uid
    that is not listed is refused."""
    caplog.set_level(logging.DEBUG)
    port = free_port()
    environ = {
        "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "OPENAI_CLIENT_ID": "gpt-client",
        "OPENAI_CLIENT_SECRET": GOOD_SECRET,
        "GATEWAY_API_KEY": "k",
        "OMI_USERS": f"ada:ada-pass-1:{UID}\nbob:bob:pass:2:{OTHER_UID}\n",
        "OMI_LOGIN_USER": "cy",
        "OMI_LOGIN_PASSWORD": "cy-pass-3",
        "OMI_UID": "uid_cy_3",
    }
    aliases = {"authorize_path": "/chatgpt/oauth/authorize", "token_path": "/chatgpt/oauth/token"}
    async with run_gateway(shipped_config(tmp_path), environ, port) as gw:
        ada = (await token_for(gw, "ada", "ada-pass-1", **aliases))["access_token"]
        bob = (await token_for(gw, "bob", "bob:pass:2", **aliases))["access_token"]
        cy = (await token_for(gw, "cy", "cy-pass-3", **aliases))["access_token"]
        ok = {"status": "success", "message": "Memory data received and logged"}
        assert await webhook(gw, MEMORY, f"?uid={UID}") == (200, ok)
        assert await webhook(gw, {**MEMORY, "id": "bobs"}, f"?uid={OTHER_UID}") == (200, ok)
        assert await webhook(gw, NEWER, "?uid=uid_cy_3") == (200, ok)
        status, problem = await webhook(gw, MEMORY, "?uid=uid_eve_9")
        assert (status, problem["detail"]) == (403, '"uid_eve_9" is not a user of this gateway')

        assert [c["id"] for c in await listed(gw, ada, 1)] == ["memory_abc123"]
        assert [c["id"] for c in await listed(gw, bob, 1)] == ["bobs"]
        assert [c["id"] for c in await listed(gw, cy, 1)] == ["4711"]
        assert (await read(gw, "/api/conversations/bobs", ada))[0] == 404
        assert (await read(gw, "/api/conversations/memory_abc123", bob))[0] == 404
        assert (await read(gw, "/api/conversations/memory_abc123", ada))[0] == 200
    # The passwords never reach the log.
    assert "ada-pass-1" not in caplog.text
    assert "bob:pass:2" not in caplog.text
