"""Both seed flows through the real `gateway serve` of the shipped config, on the real Redis.

OMI posts a memory and ChatGPT reads it back with an OAuth token (authorize, login, code); Intercom posts a user message and the
loopback Intercom receives one AI reply from the loopback GPT Trainer's answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from tests.conftest import REDIS_URL, REPO, RunningGateway
from tests.e2e.helpers import CLEAN_ENV, serving
from tests.oauth_client import GOOD_SECRET, token_for
from tests.upstreams.gpt_trainer import TrainerState, gpt_trainer_app
from tests.upstreams.intercom import IntercomState, intercom_app, notification, sign
from tests.upstreams.server import serve_upstream

CHATBOT = "0123456789abcdef0123456789abcdef"


async def test_seed_flows_through_the_cli(tmp_path: Path, redis_namespace: str) -> None:
    intercom = IntercomState(token="ic-token-e2e")
    trainer = TrainerState(api_key="gt-key-e2e", chatbot_uuid=CHATBOT, chunk_delay=0.01)
    intercom_server, intercom_recorder = intercom_app(intercom)
    trainer_server, trainer_recorder = gpt_trainer_app(trainer)
    async with (
        serve_upstream(intercom_server, intercom_recorder) as ic,
        serve_upstream(trainer_server, trainer_recorder) as gt,
    ):
        env = {
            **CLEAN_ENV,
            "GATEWAY_STORE_URL": REDIS_URL,
            "GATEWAY_STORE_NAMESPACE": redis_namespace,
            "OAUTH_CLIENT_ID": "gpt-client",
            "OAUTH_CLIENT_SECRET": GOOD_SECRET,
            "OMI_LOGIN_USER": "ada",
            "OMI_LOGIN_PASSWORD": "ada-pass-e2e",
            "OMI_UID": "uid-e2e",
            "INTERCOM_API_URL": ic.url,
            "INTERCOM_ACCESS_TOKEN": intercom.token,
            "INTERCOM_CLIENT_SECRET": "client-secret-e2e",
            "INTERCOM_ADMIN_ID": intercom.admin_id,
            "GPT_TRAINER_API_URL": gt.url,
            "GPT_TRAINER_API_KEY": trainer.api_key,
            "GPT_TRAINER_CHATBOT_UUID": CHATBOT,
        }
        async with serving(REPO, env, tmp_path / "gateway.log") as (url, _):
            async with aiohttp.ClientSession() as http:
                memory = {
                    "id": "m-1",
                    "created_at": "2024-07-22T23:59:45+00:00",
                    "transcript_segments": [
                        {"text": "Hi", "speakerId": 0, "is_user": True, "start": 1, "end": 2}
                    ],
                    "structured": {"title": "Greeting", "overview": "Hi.", "category": "other"},
                }
                async with http.post(f"{url}/chatgpt/webhook/memory?uid=uid-e2e", json=memory) as r:
                    assert r.status == 200

                conversation = intercom.add_conversation("77", "<p>Is it <b>open</b>?</p>")
                raw = json.dumps(
                    notification("conversation.user.created", conversation, notification_id="e1")
                ).encode()
                async with http.post(
                    f"{url}/webhook/intercom",
                    data=raw,
                    headers={
                        "Content-Type": "application/json",
                        "X-Hub-Signature": sign("client-secret-e2e", raw),
                    },
                ) as r:
                    assert (r.status, (await r.json())["status"]) == (200, "queued")

                gateway = RunningGateway(url, None, http)  # type: ignore[arg-type]
                token = (await token_for(gateway, "ada", "ada-pass-e2e"))["access_token"]
                deadline = time.monotonic() + 15
                detail = None
                while time.monotonic() < deadline:
                    async with http.get(
                        f"{url}/api/conversations/m-1",
                        headers={"Authorization": f"Bearer {token}"},
                    ) as r:
                        if r.status == 200:
                            detail = await r.json()
                    if detail is not None and intercom.admin_replies("77"):
                        break
                    await asyncio.sleep(0.1)
                assert detail is not None
                assert detail["transcript"] == "[0:00:01 - 0:00:02] User: Hi"
                assert [p["body"] for p in intercom.admin_replies("77")] == [
                    "<p>AI answer to: Is it open?</p><!-- gateway-reply-to:source_77 -->"
                ]
    log = (tmp_path / "gateway.log").read_text()
    assert "client-secret-e2e" not in log
    assert "gt-key-e2e" not in log
    assert GOOD_SECRET not in log
    assert "ada-pass-e2e" not in log
    assert "store: redis" in log
