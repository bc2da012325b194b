"""The Intercom bridge's own environment (seed 003) on the shipped config, unchanged:
`CHATBOT_UUID` (for GPT_TRAINER_CHATBOT_UUID), `POLLING_INTERVAL` (seconds between polls)
and `MAX_CONVERSATIONS` (conversations handled per poll), against the loopback Intercom and
GPT Trainer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.compiler.build import compile_config
from gateway.config.load import load
from tests.conftest import REPO, GatewayFactory, RunningGateway, eventually
from tests.integration.test_support_bridge import CHATBOT, Desk, deliver, settled
from tests.integration.test_support_bridge import desk as desk  # the same fixture
from tests.upstreams.intercom import notification
from tests.upstreams.server import Seen


def bridge_env(desk: Desk, **extra: str) -> dict[str, str]:
    """The bridge's variables as its users set them: CHATBOT_UUID, not the gateway's name."""
    env = desk.env(**extra)
    del env["GPT_TRAINER_CHATBOT_UUID"]
    return {**env, "CHATBOT_UUID": CHATBOT}


async def health(gw: RunningGateway) -> dict[str, Any]:
    async with gw.http.get(f"{gw.url}/health") as response:
        body: dict[str, Any] = await response.json()
        return body


async def test_chatbot_uuid_names_the_chatbot(gateway: GatewayFactory, desk: Desk) -> None:
    async with gateway(REPO, bridge_env(desk)) as gw:
        snapshot = gw.state.switch.current
        assert snapshot.webhooks["intercomEvents"].unconfigured is None
        assert "createTrainerSession" not in snapshot.unconfigured
        conversation = desk.intercom.add_conversation("801", "<p>Is it <b>open</b>?</p>")
        created = notification("conversation.user.created", conversation, notification_id="c1")
        assert (await deliver(gw, created))[0] == 200
        await eventually(lambda: len(desk.replies("801")) == 1)
        await settled(gw)
        creates = [s.path for s in desk.trainer_server.seen if s.path.endswith("/create")]
        assert creates == [f"/chatbot/{CHATBOT}/session/create"]
        # The declared route to start a session uses it too.
        async with gw.http.post(
            f"{gw.url}/gpt-trainer/sessions", headers={"X-API-Key": "gateway-key-1"}
        ) as response:
            assert response.status == 200, await response.text()
        assert desk.trainer_server.seen[-1].path == f"/chatbot/{CHATBOT}/session/create"


@pytest.mark.parametrize(
    ("environ", "every"),
    [
        ({}, 60.0),
        ({"POLLING_INTERVAL": "15"}, 15.0),  # the bridge's: seconds
        ({"POLLING_INTERVAL": "15", "INTERCOM_POLLING_INTERVAL": "2m"}, 120.0),  # ours wins
    ],
)
def test_the_poll_interval_comes_from_polling_interval(
    environ: dict[str, str], every: float
) -> None:
    (poll,) = compile_config(load(REPO, environ=environ)).schedules
    assert (poll.id, poll.every) == ("pollIntercom", every)


async def test_polling_interval_paces_the_poller(gateway: GatewayFactory, desk: Desk) -> None:
    slow = bridge_env(desk, INTERCOM_POLLING="true", POLLING_INTERVAL="3600")
    async with gateway(REPO, slow) as gw:
        await eventually(lambda: gw.state.scheduler is not None and gw.state.scheduler.runs != {})
        await asyncio.sleep(2.5)  # ticks every second: a 1 s period would have run again
        schedule = (await health(gw))["schedules"]["pollIntercom"]
        assert (schedule["every_seconds"], schedule["runs"]) == (3600.0, 1)
    fast = bridge_env(desk, INTERCOM_POLLING="true", POLLING_INTERVAL="1")
    async with gateway(REPO, fast) as gw:
        await eventually(
            lambda: (
                (gw.state.scheduler.runs if gw.state.scheduler else {}).get("pollIntercom", 0) >= 3
            )
        )
        assert (await health(gw))["schedules"]["pollIntercom"]["every_seconds"] == 1.0


def polls(seen: list[Seen]) -> list[list[Seen]]:
    """The requests Intercom received, cut at each search (one poll each)."""
    cut: list[list[Seen]] = []
    for request in seen:
        if request.path == "/conversations/search":
            cut.append([])
        if cut:
            cut[-1].append(request)
    return cut


async def test_max_conversations_caps_each_poll(gateway: GatewayFactory, desk: Desk) -> None:
    """Five waiting conversations, at most two per poll: the oldest first, each answered
    once, none skipped."""
    now = int(time.time())
    ids = [str(701 + n) for n in range(5)]
    for number, conversation_id in enumerate(ids):
        at = now - 50 + 10 * number  # 701 is the oldest
        desk.intercom.add_conversation(conversation_id, f"<p>question {number}</p>", created_at=at)
    env = bridge_env(desk, INTERCOM_POLLING="true", POLLING_INTERVAL="1", MAX_CONVERSATIONS="2")
    async with gateway(REPO, env):
        await eventually(lambda: all(desk.replies(c) for c in ids), 30)
        await asyncio.sleep(1.5)  # another poll: nothing left to answer
    assert [len(desk.replies(c)) for c in ids] == [1] * 5
    cut = polls(desk.intercom_server.seen)
    read = [
        [r.path.rsplit("/", 1)[1] for r in poll if r.method == "GET" and r.query] for poll in cut
    ]
    replied = [[r.path.split("/")[2] for r in poll if r.path.endswith("/reply")] for poll in cut]
    assert max(len(conversations) for conversations in read) == 2
    assert read[0] == ["701", "702"]  # the oldest updates first
    assert [c for poll in replied for c in poll] == ids  # in order, each once
    assert all(len(poll) <= 2 for poll in replied)
