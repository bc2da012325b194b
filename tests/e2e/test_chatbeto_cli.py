"""ChatBETO through the real `gateway serve` of the shipped config, on the real Redis: create a
conversation in a project, add a message, read it back (and list the project)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.conftest import REDIS_URL, REPO
from tests.e2e.helpers import CLEAN_ENV, serving
from tests.upstreams.openai import OpenAIState, openai_app
from tests.upstreams.server import serve_upstream

KEY = "chatbeto-e2e-key"


async def test_chatbeto_conversation_through_the_cli(tmp_path: Path, redis_namespace: str) -> None:
    state = OpenAIState(api_key="sk-e2e-0123456789")
    app, recorder = openai_app(state)
    async with serve_upstream(app, recorder) as upstream:
        env = {
            **CLEAN_ENV,
            "GATEWAY_STORE_URL": REDIS_URL,
            "GATEWAY_STORE_NAMESPACE": redis_namespace,
            "GATEWAY_API_KEY": KEY,
            "OPENAI_API_KEY": state.api_key,
            "OPENAI_API_URL": upstream.url,
        }
        log = tmp_path / "gateway.log"
        headers = {"X-API-Key": KEY}
        base = "/api/v1/openai"
        async with serving(REPO, env, log) as (url, _), aiohttp.ClientSession() as http:
            new = {"projectId": "proj-e2e", "title": "E2E", "initialMessage": "Hello"}
            async with http.post(f"{url}{base}/conversations", json=new, headers=headers) as r:
                assert r.status == 201, await r.text()
                created = (await r.json())["data"]
            conversation = created["conversation"]
            assert created["response"]["content"] == "AI answer to: Hello (history: 0 items)"
            path = f"{url}{base}/conversations/{conversation['id']}"
            async with http.post(
                f"{path}/messages", json={"message": "More please"}, headers=headers
            ) as r:
                assert r.status == 200, await r.text()
                reply = (await r.json())["data"]["response"]
            assert reply["content"] == "AI answer to: More please (history: 2 items)"
            async with http.get(path, headers=headers) as r:
                assert r.status == 200
                read = (await r.json())["data"]["conversation"]
            async with http.get(
                f"{url}{base}/projects/proj-e2e/conversations", headers=headers
            ) as r:
                listed = (await r.json())["data"]["conversations"]
    assert [(m["role"], m["content"]) for m in read["messages"]] == [
        ("user", "Hello"),
        ("assistant", "AI answer to: Hello (history: 0 items)"),
        ("user", "More please"),
        ("assistant", "AI answer to: More please (history: 2 items)"),
    ]
    assert (read["id"], read["projectId"], read["title"]) == (conversation["id"], "proj-e2e", "E2E")
    assert [item["id"] for item in listed] == [conversation["id"]]
    assert listed[0]["message_count"] == 4
    assert state.api_key not in log.read_text()
