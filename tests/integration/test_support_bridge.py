"""Seed 003 end to end: Intercom webhooks (and the poller) answered by GPT Trainer.

The shipped routes.d/intercom.yaml, routes.d/gpt_trainer.yaml and
plugins/conversation_state.py, against loopback Intercom and GPT Trainer servers, with the
memory store and with the real Redis (where two replicas share one conversation state).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import REDIS_URL, REPO, GatewayFactory, RunningGateway, eventually
from tests.upstreams.desk import serve_desk
from tests.upstreams.gpt_trainer import TrainerState
from tests.upstreams.intercom import PING, IntercomState, notification, sign
from tests.upstreams.server import Upstream

CLIENT_SECRET = "client_secret_123"
CHATBOT = "5f0c8a3c2b9d4e6fa1b2c3d4e5f60718"


@dataclass
class Desk:
    intercom: IntercomState
    intercom_server: Upstream
    trainer: TrainerState
    trainer_server: Upstream

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "INTERCOM_API_URL": self.intercom_server.url,
            "INTERCOM_ACCESS_TOKEN": self.intercom.token,
            "INTERCOM_CLIENT_SECRET": CLIENT_SECRET,
            "INTERCOM_ADMIN_ID": self.intercom.admin_id,
            "GPT_TRAINER_API_URL": self.trainer_server.url,
            "GPT_TRAINER_API_KEY": self.trainer.api_key,
            "GPT_TRAINER_CHATBOT_UUID": CHATBOT,
            "GATEWAY_API_KEY": "gateway-key-1",
            **extra,
        }

    def replies(self, conversation_id: str) -> list[str]:
        return [part["body"] for part in self.intercom.admin_replies(conversation_id)]

    def sessions_created(self) -> int:
        return sum(1 for seen in self.trainer_server.seen if seen.path.endswith("/session/create"))


@pytest.fixture
async def desk() -> AsyncIterator[Desk]:
    intercom = IntercomState(token="dG9rOmludGVyY29t")
    trainer = TrainerState(api_key="gt-api-key-1", chatbot_uuid=CHATBOT, chunk_delay=0.01)
    async with serve_desk(intercom, trainer) as (ic, gt):
        yield Desk(intercom, ic, trainer, gt)


async def deliver(gw: RunningGateway, envelope: dict[str, Any]) -> tuple[int, Any]:
    raw = json.dumps(envelope).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature": sign(CLIENT_SECRET, raw),
        "User-Agent": "intercom-parrot-service-client/1.0",
    }
    async with gw.http.post(f"{gw.url}/webhook/intercom", data=raw, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def settled(*gateways: RunningGateway, timeout: float = 10.0) -> None:
    """Every queued event handled: none waiting, none being worked on, none to retry."""
    deadline = time.monotonic() + timeout
    for gw in gateways:
        while await gw.state.backend.queue.pending() or (
            gw.state.worker is not None and gw.state.worker.in_flight
        ):
            if time.monotonic() > deadline:
                raise AssertionError("the webhook queue did not drain in time")
            await asyncio.sleep(0.05)


async def conversation_state(gw: RunningGateway, conversation_id: str) -> dict[str, Any]:
    raw = await gw.state.backend.store.get(f"intercom:conversation:{conversation_id}")
    assert raw is not None
    state: dict[str, Any] = json.loads(raw)
    return state


async def check_bridge(gw: RunningGateway, desk: Desk) -> None:
    # URL validation and the Developer Hub's test ping: answered, nothing processed.
    async with gw.http.head(f"{gw.url}/webhook/intercom") as r:
        assert r.status == 200
    assert await deliver(gw, PING) == (200, {"status": "pong"})
    async with gw.http.post(f"{gw.url}/webhook/intercom", json=PING) as r:
        assert r.status == 401  # unsigned
        assert (await r.json())["detail"] == "missing signature: send the x-hub-signature header"

    # A user starts a conversation: one AI reply as the admin, the conversation marked read.
    conversation = desk.intercom.add_conversation("215", "<p>Hello, <b>where</b> is my order?</p>")
    created = notification("conversation.user.created", conversation, notification_id="notif_1")
    status, answer = await deliver(gw, created)
    assert (status, answer["status"]) == (200, "queued")
    await eventually(lambda: len(desk.replies("215")) == 1)
    assert desk.replies("215") == [
        "<p>AI answer to: Hello, where is my order?</p><!-- gateway-reply-to:source_215 -->"
    ]
    reply_part = desk.intercom.admin_replies("215")[0]
    assert reply_part["author"]["id"] == desk.intercom.admin_id
    await eventually(lambda: desk.intercom.conversations["215"]["read"] is True)
    state = await conversation_state(gw, "215")
    assert state["state"] == "AWAITING_USER_REPLY"
    assert state["answered_message"] == "source-215"
    session = state["session"]
    assert list(desk.trainer.sessions) == [session]
    assert [m["query"] for m in desk.trainer.sessions[session]] == ["Hello, where is my order?"]
    ask = next(s for s in desk.trainer_server.seen if s.path.endswith("/message/stream"))
    assert ask.headers["Authorization"] == "Bearer gt-api-key-1"
    assert ask.json() == {"query": "Hello, where is my order?"}

    # Intercom retries the same notification: a duplicate. A new notification about the
    # same message (another id): processed, but the message was answered: no second reply.
    assert (await deliver(gw, created))[1]["status"] == "duplicate"
    again = notification("conversation.user.created", conversation, notification_id="notif_1b")
    assert (await deliver(gw, again))[1]["status"] == "queued"
    await settled(gw)
    assert len(desk.replies("215")) == 1

    # The user replies: the same GPT Trainer session answers the second message.
    desk.intercom.add_user_reply("215", "<p>Order <i>#42</i>, please &amp; thanks</p>")
    replied = notification(
        "conversation.user.replied", desk.intercom.conversations["215"], notification_id="notif_2"
    )
    await deliver(gw, replied)
    await eventually(lambda: len(desk.replies("215")) == 2)
    assert desk.replies("215")[1] == (
        "<p>AI answer to: Order #42, please &amp; thanks</p><!-- gateway-reply-to:1001 -->"
    )
    assert desk.sessions_created() == 1
    assert [m["query"] for m in desk.trainer.sessions[session]][1] == "Order #42, please & thanks"

    # Topics the bridge does not answer are acknowledged and ignored.
    closed = notification(
        "conversation.admin.closed", desk.intercom.conversations["215"], notification_id="n3"
    )
    assert (await deliver(gw, closed))[0] == 200
    await settled(gw)
    assert len(desk.replies("215")) == 2

    # The per-conversation limit (INTERCOM_REPLIES_PER_HOUR=2): the third message waits.
    desk.intercom.add_user_reply("215", "<p>Hello?</p>")
    third = notification(
        "conversation.user.replied", desk.intercom.conversations["215"], notification_id="n4"
    )
    await deliver(gw, third)
    await settled(gw)
    assert len(desk.replies("215")) == 2
    assert (await conversation_state(gw, "215"))["state"] == "READY_FOR_RESPONSE"


async def test_bridge_with_the_memory_store(gateway: GatewayFactory, desk: Desk) -> None:
    async with gateway(REPO, desk.env(INTERCOM_REPLIES_PER_HOUR="2")) as gw:
        await check_bridge(gw, desk)


async def test_bridge_with_redis(gateway: GatewayFactory, desk: Desk, redis_namespace: str) -> None:
    env = desk.env(
        INTERCOM_REPLIES_PER_HOUR="2",
        GATEWAY_STORE_URL=REDIS_URL,
        GATEWAY_STORE_NAMESPACE=redis_namespace,
    )
    async with gateway(REPO, env) as gw:
        await check_bridge(gw, desk)


async def test_two_replicas_answer_one_message_once(
    gateway: GatewayFactory, desk: Desk, redis_namespace: str
) -> None:
    """The same user message reaches both replicas (two notification ids): one reply."""
    env = desk.env(GATEWAY_STORE_URL=REDIS_URL, GATEWAY_STORE_NAMESPACE=redis_namespace)
    desk.trainer.chunk_delay = 0.1  # a slower answer widens the window for a double reply
    async with gateway(REPO, env) as one, gateway(REPO, env) as two:
        for number in range(5):
            conversation_id = str(300 + number)
            item = desk.intercom.add_conversation(conversation_id, f"<p>question {number}</p>")
            await asyncio.gather(
                deliver(
                    one,
                    notification("conversation.user.created", item, notification_id=f"a{number}"),
                ),
                deliver(
                    two,
                    notification("conversation.user.created", item, notification_id=f"b{number}"),
                ),
            )
        await eventually(lambda: all(len(desk.replies(str(300 + n))) >= 1 for n in range(5)), 20)
        await settled(one, two)
        await asyncio.sleep(1.5)  # a conversation held by the other replica comes back: let it
        await settled(one, two)
        assert [len(desk.replies(str(300 + n))) for n in range(5)] == [1] * 5
        assert desk.sessions_created() == 5
        # A conversation busy on the other replica was put off, not failed.
        assert one.state.worker is not None
        assert two.state.worker is not None
        assert (one.state.worker.failed, two.state.worker.failed) == (0, 0)


async def test_polling_answers_without_webhooks_once_across_replicas(
    gateway: GatewayFactory, desk: Desk, redis_namespace: str
) -> None:
    env = desk.env(
        GATEWAY_STORE_URL=REDIS_URL,
        GATEWAY_STORE_NAMESPACE=redis_namespace,
        INTERCOM_POLLING="true",
        INTERCOM_POLLING_INTERVAL="1s",
    )
    desk.intercom.add_conversation("501", "<p>Anyone there?</p>")
    async with gateway(REPO, env) as one, gateway(REPO, env) as two:
        await eventually(lambda: len(desk.replies("501")) == 1)
        desk.intercom.add_user_reply("501", "<p>Thanks! One more thing.</p>")
        await eventually(lambda: len(desk.replies("501")) == 2)
        await asyncio.sleep(2.5)  # more polls by both replicas: nothing new to answer
        assert len(desk.replies("501")) == 2
        runs = [
            gw.state.scheduler.runs.get("pollIntercom", 0)
            for gw in (one, two)
            if gw.state.scheduler
        ]
        assert sum(runs) >= 3
    searches = [s for s in desk.intercom_server.seen if s.path == "/conversations/search"]
    assert searches[0].json()["query"]["value"][0] == {
        "field": "open",
        "operator": "=",
        "value": True,
    }


async def test_polling_is_off_by_default(gateway: GatewayFactory, desk: Desk) -> None:
    desk.intercom.add_conversation("601", "<p>Hi</p>")
    async with gateway(REPO, desk.env()) as gw:
        await asyncio.sleep(1.5)
        assert gw.state.scheduler is not None
        assert gw.state.scheduler.runs == {}
        async with gw.http.get(f"{gw.url}/health") as r:
            health = await r.json()
        assert health["schedules"]["pollIntercom"]["enabled"] is False
    assert desk.replies("601") == []
