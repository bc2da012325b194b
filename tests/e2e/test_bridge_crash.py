"""`kill -9` in the middle of answering an Intercom user, then a restart: exactly one reply.

The real `gateway serve` on the real Redis, with the shipped routes.d/intercom.yaml,
routes.d/gpt_trainer.yaml and plugins/conversation_state.py (gateway.yaml only shortens the
queue's visibility timeout, so the restarted process takes the dead one's event over at
once, while the dead worker's conversation lease still runs: it meets a busy conversation).

* Killed while GPT Trainer is answering: nothing was posted; the restarted gateway answers.
* Killed while Intercom stores the reply (stored, not yet answered): the reply exists but
  was never recorded; the restarted gateway finds it and does not post a second one.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import REDIS_URL, REPO
from tests.e2e.helpers import CLEAN_ENV, serving
from tests.upstreams.desk import serve_desk
from tests.upstreams.gpt_trainer import TrainerState
from tests.upstreams.intercom import IntercomState, notification, sign
from tests.upstreams.server import Upstream

SECRET = "client-secret-crash"
CHATBOT = "0123456789abcdef0123456789abcdef"
GATEWAY = """\
server: {access_log: false}
store: {url: "${GATEWAY_STORE_URL}", namespace: "${GATEWAY_STORE_NAMESPACE}"}
queue: {visibility_timeout: 1s}
"""
ANSWER = "<p>AI answer to: Where is my order?</p><!-- gateway-reply-to:source_900 -->"


@dataclass
class Desk:
    intercom: IntercomState
    intercom_server: Upstream
    trainer: TrainerState
    trainer_server: Upstream

    def replies(self) -> list[str]:
        return [part["body"] for part in self.intercom.admin_replies("900")]

    def questions(self) -> list[str]:
        seen = self.trainer_server.seen
        return [s.json()["query"] for s in seen if s.path.endswith("/message/stream")]

    def sessions_created(self) -> int:
        return sum(1 for s in self.trainer_server.seen if s.path.endswith("/session/create"))


@pytest.fixture
async def desk() -> AsyncIterator[Desk]:
    intercom = IntercomState(token="ic-token-crash")
    trainer = TrainerState(api_key="gt-key-crash", chatbot_uuid=CHATBOT, chunk_delay=0.01)
    async with serve_desk(intercom, trainer) as (ic, gt):
        yield Desk(intercom, ic, trainer, gt)


def config(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    (folder / "routes.d").mkdir(parents=True)
    (folder / "plugins").mkdir()
    (folder / "gateway.yaml").write_text(GATEWAY)
    for name in ("intercom.yaml", "gpt_trainer.yaml"):
        shutil.copy(REPO / "routes.d" / name, folder / "routes.d" / name)
    shutil.copy(REPO / "plugins" / "conversation_state.py", folder / "plugins")
    return folder


def environment(desk: Desk, namespace: str) -> dict[str, str]:
    return {
        **CLEAN_ENV,
        "GATEWAY_STORE_URL": REDIS_URL,
        "GATEWAY_STORE_NAMESPACE": namespace,
        "INTERCOM_API_URL": desk.intercom_server.url,
        "INTERCOM_ACCESS_TOKEN": desk.intercom.token,
        "INTERCOM_CLIENT_SECRET": SECRET,
        "INTERCOM_ADMIN_ID": desk.intercom.admin_id,
        "GPT_TRAINER_API_URL": desk.trainer_server.url,
        "GPT_TRAINER_API_KEY": desk.trainer.api_key,
        "GPT_TRAINER_CHATBOT_UUID": CHATBOT,
    }


async def deliver(url: str, envelope: dict[str, Any]) -> str:
    raw = json.dumps(envelope).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature": sign(SECRET, raw)}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/webhook/intercom", data=raw, headers=headers) as r:
            answer = await r.json()
    assert (r.status, answer["status"]) == (200, "queued")
    event_id: str = answer["id"]
    return event_id


async def start_and_kill(
    desk: Desk, folder: Path, env: dict[str, str], log: Path, stalled: asyncio.Event
) -> str:
    """Queue the user's message, wait until the call ``stalled`` marks is under way, kill -9."""
    item = desk.intercom.add_conversation("900", "<p>Where is my <b>order</b>?</p>")
    async with serving(folder, env, log, killed=True) as (url, pid):
        event_id = await deliver(
            url, notification("conversation.user.created", item, notification_id="n1")
        )
        await asyncio.wait_for(stalled.wait(), 15)
        os.kill(pid, signal.SIGKILL)
    return event_id


async def health(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/health") as r:
            webhooks: dict[str, Any] = (await r.json())["webhooks"]
            return webhooks


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float, what: str) -> None:
    """Polls ``check()`` (bounded) until it is true."""
    deadline = time.monotonic() + timeout
    while not await _value(check()):
        assert time.monotonic() < deadline, f"not within {timeout:g}s of the restart: {what}"
        await asyncio.sleep(0.1)


async def settled(url: str) -> bool:
    """Nothing queued, delayed or in flight, and the one event processed."""
    return await health(url) == {
        "ids": ["intercomEvents"],
        "pending": 0,
        "processed": 1,
        "failed_attempts": 0,
    }


async def test_killed_during_the_gpt_trainer_call_the_user_gets_one_reply(
    tmp_path: Path, desk: Desk, redis_namespace: str
) -> None:
    folder, env = config(tmp_path), environment(desk, redis_namespace)
    desk.trainer.hold = asyncio.Event()  # GPT Trainer takes the question and says nothing
    event_id = await start_and_kill(desk, folder, env, tmp_path / "first.log", desk.trainer.asked)
    assert desk.replies() == []
    desk.trainer.hold.set()
    desk.trainer.hold = None

    async with serving(folder, env, tmp_path / "second.log") as (url, _):
        await until(lambda: len(desk.replies()) == 1, 60, "one reply")
        await until(lambda: settled(url), 60, "the event processed")
        assert desk.replies() == [ANSWER]
        assert desk.intercom.conversations["900"]["read"] is True
    assert desk.questions() == ["Where is my order?", "Where is my order?"]
    assert desk.sessions_created() == 1  # the session saved before the kill is reused
    second = (tmp_path / "second.log").read_text()
    assert f"event {event_id} processed (attempt 1)" in second  # busy retries spent nothing


async def test_killed_after_intercom_stored_the_reply_no_second_reply(
    tmp_path: Path, desk: Desk, redis_namespace: str
) -> None:
    folder, env = config(tmp_path), environment(desk, redis_namespace)
    desk.intercom.reply_hold = asyncio.Event()  # stores the reply, then does not answer
    event_id = await start_and_kill(
        desk, folder, env, tmp_path / "first.log", desk.intercom.reply_stored
    )
    assert desk.replies() == [ANSWER]  # posted; the killed worker never learned it
    assert desk.intercom.conversations["900"]["read"] is False
    desk.intercom.reply_hold.set()
    desk.intercom.reply_hold = None

    async with serving(folder, env, tmp_path / "second.log") as (url, _):
        await until(lambda: settled(url), 60, "the event processed")
        assert desk.replies() == [ANSWER]
        assert desk.intercom.conversations["900"]["read"] is True
    assert desk.questions() == ["Where is my order?"]  # not asked again either
    second = (tmp_path / "second.log").read_text()
    assert f"event {event_id} processed (attempt 1)" in second
    assert "message source-900 was answered before a crash; recorded" in second


async def _value(result: bool | Awaitable[bool]) -> bool:
    return await result if inspect.isawaitable(result) else result
