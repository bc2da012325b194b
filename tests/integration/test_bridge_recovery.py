"""The bridge after something went wrong: a conversation held by a dead worker, a reply that
was posted but not recorded, a GPT Trainer session that is gone; and two quick user
messages, which both get their answer. The shipped config, loopback Intercom and GPT
Trainer, the real Redis where the state must be shared."""

from __future__ import annotations

import copy
import json
from typing import Any

from plugins.conversation_state import replied_after, reply_marker
from tests.conftest import REDIS_URL, REPO, GatewayFactory, RunningGateway, eventually
from tests.integration.test_support_bridge import (
    Desk,
    conversation_state,
    deliver,
    settled,
)
from tests.integration.test_support_bridge import desk as desk  # the same fixture
from tests.upstreams.intercom import notification


def redis_env(desk: Desk, namespace: str) -> dict[str, str]:
    return desk.env(GATEWAY_STORE_URL=REDIS_URL, GATEWAY_STORE_NAMESPACE=namespace)


def questions(desk: Desk) -> list[str]:
    return [s.json()["query"] for s in desk.trainer_server.seen if s.path.endswith("/stream")]


async def seed_state(gw: RunningGateway, conversation_id: str, **fields: Any) -> None:
    """The conversation's state as a worker left it (e.g. killed mid-answer)."""
    raw = json.dumps({"state": "READY_FOR_RESPONSE", **fields}).encode()
    await gw.state.backend.store.set(f"intercom:conversation:{conversation_id}", raw)


async def test_a_conversation_held_by_a_dead_worker_is_answered_once_on_attempt_1(
    gateway: GatewayFactory, desk: Desk, redis_namespace: str
) -> None:
    async with gateway(REPO, redis_env(desk, redis_namespace)) as gw:
        assert gw.state.worker is not None
        # A worker took the conversation and died: its lease is not renewed any more.
        dead = await gw.state.backend.locks.acquire("intercom:700", 3.0)
        assert dead is not None
        item = desk.intercom.add_conversation("700", "<p>Is anyone there?</p>")
        await deliver(gw, notification("conversation.user.created", item, notification_id="d1"))
        await eventually(lambda: gw.state.worker is not None and gw.state.worker.deferred >= 1)
        assert desk.replies("700") == []  # busy: put off, not failed
        await eventually(lambda: len(desk.replies("700")) == 1, 15)
        await settled(gw)
        assert desk.replies("700") == [
            "<p>AI answer to: Is anyone there?</p><!-- gateway-reply-to:source_700 -->"
        ]
        assert (gw.state.worker.processed, gw.state.worker.failed) == (1, 0)
        assert await gw.state.backend.queue.dead(10) == []


async def test_a_reply_posted_before_a_crash_is_recorded_not_posted_again(
    gateway: GatewayFactory, desk: Desk, redis_namespace: str
) -> None:
    item = copy.deepcopy(desk.intercom.add_conversation("710", "<p>Where is my parcel?</p>"))
    # The killed worker posted this (as our admin) and died before recording it.
    desk.intercom.add_admin_reply("710", "<p>AI answer to: Where is my parcel?</p>")
    async with gateway(REPO, redis_env(desk, redis_namespace)) as gw:
        await seed_state(gw, "710", pending_message="source-710")
        await deliver(gw, notification("conversation.user.created", item, notification_id="c1"))
        await eventually(lambda: desk.intercom.conversations["710"]["read"] is True)
        await settled(gw)
        assert desk.replies("710") == ["<p>AI answer to: Where is my parcel?</p>"]
        assert questions(desk) == []  # not even asked again
        state = await conversation_state(gw, "710")
        assert (state["state"], state["answered_message"], state["pending_message"]) == (
            "AWAITING_USER_REPLY",
            "source-710",
            None,
        )


async def test_a_late_redelivery_of_a_message_answered_before_a_crash_is_skipped(
    gateway: GatewayFactory, desk: Desk, redis_namespace: str
) -> None:
    """m1 was answered and the worker died; the user's m2 is handled before m1 comes back."""
    first = copy.deepcopy(desk.intercom.add_conversation("720", "<p>first question</p>"))
    desk.intercom.add_admin_reply("720", "<p>AI answer to: first question</p>")
    desk.intercom.add_user_reply("720", "<p>second question</p>")
    second = copy.deepcopy(desk.intercom.conversations["720"])
    async with gateway(REPO, redis_env(desk, redis_namespace)) as gw:
        await seed_state(gw, "720", pending_message="source-720")
        await deliver(gw, notification("conversation.user.replied", second, notification_id="l2"))
        await eventually(lambda: len(desk.replies("720")) == 2)
        await deliver(gw, notification("conversation.user.created", first, notification_id="l1"))
        await settled(gw)
        assert desk.replies("720") == [
            "<p>AI answer to: first question</p>",
            "<p>AI answer to: second question</p><!-- gateway-reply-to:1001 -->",
        ]
        assert questions(desk) == ["second question"]
        state = await conversation_state(gw, "720")
        assert state["answered_recently"] == ["source-720", second_part_id(second)]


def second_part_id(conversation: dict[str, Any]) -> str:
    return str(conversation["conversation_parts"]["conversation_parts"][-1]["id"])


async def test_two_quick_user_messages_each_get_their_answer(
    gateway: GatewayFactory, desk: Desk, redis_namespace: str
) -> None:
    """The answer to the first lands after the second message: the second is still answered."""
    first = copy.deepcopy(desk.intercom.add_conversation("730", "<p>one</p>"))
    desk.intercom.add_user_reply("730", "<p>two</p>")
    second = copy.deepcopy(desk.intercom.conversations["730"])
    async with gateway(REPO, redis_env(desk, redis_namespace)) as gw:
        await deliver(gw, notification("conversation.user.created", first, notification_id="q1"))
        await deliver(gw, notification("conversation.user.replied", second, notification_id="q2"))
        await eventually(lambda: len(desk.replies("730")) == 2, 15)
        await settled(gw)
        assert sorted(desk.replies("730")) == [
            "<p>AI answer to: one</p><!-- gateway-reply-to:source_730 -->",
            "<p>AI answer to: two</p><!-- gateway-reply-to:1000 -->",
        ]


async def test_a_session_gpt_trainer_forgot_is_replaced_and_the_message_answered(
    gateway: GatewayFactory, desk: Desk
) -> None:
    async with gateway(REPO, desk.env()) as gw:
        item = desk.intercom.add_conversation("740", "<p>hello</p>")
        await deliver(gw, notification("conversation.user.created", item, notification_id="s1"))
        await eventually(lambda: len(desk.replies("740")) == 1)
        await settled(gw)
        old = (await conversation_state(gw, "740"))["session"]
        desk.trainer.forget(old)  # expired or deleted at GPT Trainer

        desk.intercom.add_user_reply("740", "<p>still there?</p>")
        again = desk.intercom.conversations["740"]
        await deliver(gw, notification("conversation.user.replied", again, notification_id="s2"))
        await eventually(lambda: len(desk.replies("740")) == 2)
        await settled(gw)
        assert desk.replies("740") == [
            "<p>AI answer to: hello</p><!-- gateway-reply-to:source_740 -->",
            "<p>AI answer to: still there?</p><!-- gateway-reply-to:1001 -->",
        ]
        new = (await conversation_state(gw, "740"))["session"]
        assert new != old
        assert list(desk.trainer.sessions) == [new]
        assert [m["query"] for m in desk.trainer.sessions[new]] == ["still there?"]
        assert desk.sessions_created() == 2
        gone = [s for s in desk.trainer_server.seen if s.path == f"/session/{old}/message/stream"]
        assert len(gone) == 2  # the first answer, then the 404 that started a new session
        assert gw.state.worker is not None
        assert gw.state.worker.failed == 0


def part(part_id: str, author: str, author_id: str, part_type: str = "comment") -> dict[str, Any]:
    return {"id": part_id, "part_type": part_type, "author": {"type": author, "id": author_id}}


def conversation(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"conversation_parts": {"conversation_parts": list(parts)}}


def test_replied_after_is_our_admins_comment_after_the_message() -> None:
    ours, human = "991267459", "123"
    thread = conversation(
        part("1", "user", "u1"),
        part("2", "admin", ours, "note"),  # a note is no reply
        part("3", "admin", human),  # another teammate's comment is not ours
        part("4", "user", "u1"),
        part("5", "admin", ours),
        part("6", "user", "u1"),
    )
    assert replied_after(thread, "1", ours) is True  # 5 comes after 1
    assert replied_after(thread, "4", ours) is True
    assert replied_after(thread, "6", ours) is False  # nothing after the newest message
    assert replied_after(thread, "source-9", ours) is True  # the first message: every part
    assert replied_after(thread, "404", ours) is False  # not among the parts: not known
    assert replied_after(conversation(part("1", "user", "u1")), "source-9", ours) is False
    assert replied_after(thread, "1", human) is True
    assert replied_after(thread, "4", human) is False


def test_replied_after_finds_the_marker_of_the_message_anywhere() -> None:
    ours = "991267459"
    marked = part("9", "admin", "someone-else") | {"body": "<p>hi</p>" + reply_marker("4")}
    thread = conversation(part("4", "user", "u1"), marked, part("5", "user", "u1"))
    assert replied_after(thread, "4", ours) is True  # the marker names message 4
    assert replied_after(thread, "5", ours) is False
    assert reply_marker("source-77") == "<!-- gateway-reply-to:source_77 -->"
    assert reply_marker("a--b>") == "<!-- gateway-reply-to:a__b_ -->"  # stays a comment
