"""The loopback Intercom and GPT Trainer upstreams behave as their wire facts say."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.upstreams.gpt_trainer import TrainerState, gpt_trainer_app
from tests.upstreams.intercom import (
    PING,
    IntercomState,
    intercom_app,
    notification,
    schema_errors,
    sign,
)
from tests.upstreams.server import Upstream, serve_upstream

TOKEN, API_KEY, CHATBOT = "tok_123", "key_456", "c0ffee"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def intercom() -> AsyncIterator[tuple[Upstream, IntercomState]]:
    state = IntercomState(token=TOKEN)
    state.add_conversation("101", "<p>old question</p>", created_at=1_700_000_000)
    state.add_conversation("102", "<p>new question</p>", created_at=1_700_000_500)
    app, recorder = intercom_app(state)
    async with serve_upstream(app, recorder) as upstream:
        yield upstream, state


@pytest.fixture
async def trainer() -> AsyncIterator[tuple[Upstream, TrainerState]]:
    state = TrainerState(api_key=API_KEY, chatbot_uuid=CHATBOT)
    app, recorder = gpt_trainer_app(state)
    async with serve_upstream(app, recorder) as upstream:
        yield upstream, state


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    http: aiohttp.ClientSession, method: str, url: str, token: str = TOKEN, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, url, headers=bearer(token), **kwargs) as response:
        return response.status, await response.json()


async def test_intercom_auth_and_not_found(
    http: aiohttp.ClientSession, intercom: tuple[Upstream, IntercomState]
) -> None:
    upstream, _ = intercom
    status, body = await call(http, "GET", f"{upstream.url}/me", token="wrong")
    assert status == 401
    assert body["type"] == "error.list"
    assert body["errors"] == [{"code": "unauthorized", "message": "Access Token Invalid"}]
    async with http.get(f"{upstream.url}/conversations") as response:  # no header at all
        assert response.status == 401
    status, body = await call(http, "GET", f"{upstream.url}/me")
    assert (status, body["type"], body["id"]) == (200, "admin", "991267459")
    status, body = await call(http, "GET", f"{upstream.url}/conversations/nope")
    assert status == 404
    assert body["errors"] == [{"code": "not_found", "message": "Resource Not Found"}]
    status, body = await call(http, "PUT", f"{upstream.url}/conversations/101/read")
    assert (status, body["errors"][0]["code"]) == (404, "not_found")  # in no spec version


async def test_intercom_list_and_retrieve_match_the_spec(
    http: aiohttp.ClientSession, intercom: tuple[Upstream, IntercomState]
) -> None:
    upstream, state = intercom
    state.add_user_reply("101", "<p>any news?</p>")
    status, page = await call(http, "GET", f"{upstream.url}/conversations?per_page=1")
    assert status == 200
    assert schema_errors("conversation_list", page) == []
    assert [item["id"] for item in page["conversations"]] == ["101"]  # newest update first
    assert "conversation_parts" not in page["conversations"][0]
    cursor = page["pages"]["next"]["starting_after"]
    _, page = await call(
        http, "GET", f"{upstream.url}/conversations?starting_after={cursor}&per_page=1"
    )
    assert [item["id"] for item in page["conversations"]] == ["102"]
    assert "next" not in page["pages"]
    status, body = await call(http, "GET", f"{upstream.url}/conversations?per_page=151")
    assert (status, body["errors"][0]["code"]) == (400, "parameter_invalid")

    status, conversation = await call(
        http, "GET", f"{upstream.url}/conversations/101?display_as=plaintext"
    )
    assert status == 200
    assert schema_errors("conversation", conversation) == []
    parts = conversation["conversation_parts"]["conversation_parts"]
    assert [part["body"] for part in parts] == ["any news?"]
    assert parts[0]["author"]["type"] == "user"
    assert conversation["source"]["body"] == "old question"


async def test_intercom_search_filters_on_updated_at(
    http: aiohttp.ClientSession, intercom: tuple[Upstream, IntercomState]
) -> None:
    upstream, state = intercom
    state.conversations["102"].update(open=False, state="closed")
    state.add_conversation("103", "<p>hello</p>", created_at=1_700_000_900)

    def open_since(since: int) -> dict[str, Any]:
        filters = [
            {"field": "open", "operator": "=", "value": True},
            {"field": "updated_at", "operator": ">", "value": since},
        ]
        return {"query": {"operator": "AND", "value": filters}, "pagination": {"per_page": 20}}

    url = f"{upstream.url}/conversations/search"
    status, page = await call(http, "POST", url, json=open_since(1_700_000_100))
    assert status == 200
    assert page["type"] == "conversation.list"
    assert [item["id"] for item in page["conversations"]] == ["103"]  # 101 too old, 102 closed
    _, page = await call(http, "POST", url, json=open_since(0))
    assert [item["id"] for item in page["conversations"]] == ["103", "101"]
    closed = {"field": "state", "operator": "=", "value": "closed"}
    old = {"field": "updated_at", "operator": "<", "value": 1_700_000_100}
    either = {"operator": "OR", "value": [closed, old]}
    _, page = await call(http, "POST", url, json={"query": either})
    assert [item["id"] for item in page["conversations"]] == ["102", "101"]
    status, body = await call(http, "POST", url, json={"query": {"field": "x", "operator": "="}})
    assert (status, body["errors"][0]["code"]) == (400, "parameter_invalid")


async def test_intercom_reply_is_validated_against_the_spec(
    http: aiohttp.ClientSession, intercom: tuple[Upstream, IntercomState]
) -> None:
    upstream, state = intercom
    url = f"{upstream.url}/conversations/101/reply"
    missing_admin = {"message_type": "comment", "type": "admin", "body": "<p>hi</p>"}
    status, body = await call(http, "POST", url, json=missing_admin)
    assert status == 400
    assert body["errors"][0]["code"] == "parameter_invalid"
    assert "admin_id" in body["errors"][0]["message"]
    assert state.admin_replies("101") == []

    reply = {**missing_admin, "admin_id": state.admin_id}
    status, conversation = await call(http, "POST", url, json=reply)
    assert status == 200
    last = conversation["conversation_parts"]["conversation_parts"][-1]
    assert (last["part_type"], last["body"]) == ("comment", "<p>hi</p>")
    assert last["author"]["type"] == "admin"
    assert last["author"]["id"] == "991267459"
    assert state.admin_replies("101") == [last]
    assert schema_errors("conversation", conversation) == []


async def test_intercom_mark_read(
    http: aiohttp.ClientSession, intercom: tuple[Upstream, IntercomState]
) -> None:
    upstream, state = intercom
    assert state.conversations["101"]["read"] is False
    status, conversation = await call(
        http, "PUT", f"{upstream.url}/conversations/101", json={"read": True}
    )
    assert (status, conversation["read"]) == (200, True)
    assert state.conversations["101"]["read"] is True
    status, body = await call(
        http, "PUT", f"{upstream.url}/conversations/101", json={"read": "yes"}
    )
    assert (status, body["errors"][0]["code"]) == (400, "parameter_invalid")
    state.add_user_reply("101", "<p>one more thing</p>")
    assert state.conversations["101"]["read"] is False


def test_webhook_signature_and_envelopes() -> None:
    vector = (
        b'{"type":"notification_event","topic":"ping","data":{"type":"notification_event_data",'
        b'"item":{"type":"ping","message":"hi"}}}'
    )
    assert sign("client_secret_123", vector) == "sha1=49eb476f14c022e67bbd4cfa9f35eaca158589b4"
    assert (PING["topic"], PING["id"], PING["data"]["item"]["type"]) == ("ping", None, "ping")
    state = IntercomState(token=TOKEN)
    conversation = state.add_conversation("21322009097", "<p>hello</p>")
    envelope = notification(
        "conversation.user.created", conversation, notification_id="notif_1", created_at=5
    )
    assert envelope == {
        "type": "notification_event",
        "app_id": "i6wc9ipe",
        "id": "notif_1",
        "topic": "conversation.user.created",
        "delivery_status": "pending",
        "delivery_attempts": 1,
        "delivered_at": 0,
        "first_sent_at": 5,
        "created_at": 5,
        "self": None,
        "links": {},
        "data": {"type": "notification_event_data", "item": conversation},
    }
    assert json.loads(json.dumps(envelope)) == envelope


async def test_gpt_trainer_session_and_streamed_answer(
    http: aiohttp.ClientSession, trainer: tuple[Upstream, TrainerState]
) -> None:
    upstream, state = trainer
    status, body = await call(
        http, "POST", f"{upstream.url}/chatbot/{CHATBOT}/session/create", token="wrong"
    )
    assert (status, body) == (401, {"error": "Invalid API key"})
    status, _ = await call(
        http, "POST", f"{upstream.url}/chatbot/other/session/create", token=API_KEY
    )
    assert status == 404
    status, session = await call(
        http, "POST", f"{upstream.url}/chatbot/{CHATBOT}/session/create", token=API_KEY
    )
    assert status == 200
    assert set(session) == {"created_at", "modified_at", "uuid"}
    assert len(session["uuid"]) == 32
    int(session["uuid"], 16)

    stream_url = f"{upstream.url}/session/{session['uuid']}/message/stream"
    status, _ = await call(http, "POST", stream_url, token=API_KEY, json={"stream": False})
    assert status == 400
    status, _ = await call(
        http,
        "POST",
        f"{upstream.url}/session/nope/message/stream",
        token=API_KEY,
        json={"query": "q"},
    )
    assert status == 404

    query = {"query": "How do I reset my password?", "stream": False}
    async with http.post(stream_url, headers=bearer(API_KEY), json=query) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.headers["Transfer-Encoding"] == "chunked"
        chunks = [chunk async for chunk in response.content.iter_any()]
    assert len(chunks) > 1
    assert b"".join(chunks).decode() == "AI answer to: How do I reset my password?"

    status, messages = await call(
        http, "GET", f"{upstream.url}/session/{session['uuid']}/messages", token=API_KEY
    )
    assert status == 200
    assert messages == state.sessions[session["uuid"]]
    assert len(messages) == 1
    message = messages[0]
    assert message["query"] == "How do I reset my password?"
    assert message["response"] == "AI answer to: How do I reset my password?"
    assert (message["finish_reason"], message["cite_data_json"], message["meta_json"]) == (
        "stop",
        "{}",
        "{}",
    )
    assert set(message) == {
        "uuid",
        "created_at",
        "modified_at",
        "query",
        "response",
        "finish_reason",
        "cite_data_json",
        "meta_json",
    }
