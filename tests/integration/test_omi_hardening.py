"""The OMI memory webhook, hardened: the shipped routes.d/omi.yaml through real HTTP.

A secret in the webhook URL (`?key=`, OMI_WEBHOOK_SECRET; failed guesses throttled per IP),
OMI's signature when OMI_SIGNING_SECRET is set (`X-Omi-Signature` over
`<X-Omi-Timestamp>.<body>`), the uid must be a user of the gateway, and a per-uid rate limit
(OMI_WEBHOOK_RATE_LIMIT per OMI_WEBHOOK_RATE_PERIOD) shared by replicas on Redis. Refusals
queue nothing and do not spend the dedupe key; the secrets never show in logs, answers,
/health or the documents.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL, RunningGateway, run_gateway
from tests.integration.test_omi import MEMORY, NEWER, OTHER_UID, UID, env, listed, omi_config
from tests.oauth_client import token_for
from tests.upstreams.server import free_port

URL_SECRET = "omi-url-secret-4f1c9a77e2"
SIGNING_SECRET = "omi-signing-secret-b83d0e55"
HOOK = "/chatgpt/webhook/memory"
OK = {"status": "success", "message": "Memory data received and logged"}
ACCESS_LOG = "  access_log: ${GATEWAY_ACCESS_LOG:-true}\n"


def config(tmp_path: Path, server: str = "") -> Path:
    """The shipped config with users ada (UID) and bob (OTHER_UID); ``server`` adds lines
    to gateway.yaml `server:` (such as a smaller failed_auth_limit)."""
    folder = omi_config(tmp_path)
    text = (folder / "gateway.yaml").read_text()
    assert ACCESS_LOG in text
    (folder / "gateway.yaml").write_text(text.replace(ACCESS_LOG, ACCESS_LOG + server))
    return folder


def secured(port: int, **extra: str) -> dict[str, str]:
    return env(
        port,
        OMI_WEBHOOK_SECRET=URL_SECRET,
        OMI_SIGNING_SECRET=SIGNING_SECRET,
        GATEWAY_ADMIN_KEY="admin-key-omi-1",
        **extra,
    )


def signed(
    body: Any, *, secret: str = SIGNING_SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body, separators=(",", ":")).encode()
    timestamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256)
    return raw, {
        "Content-Type": "application/json",
        "X-Omi-Timestamp": timestamp,
        "X-Omi-Signature": "sha256=" + digest.hexdigest(),
    }


async def post(
    gw: RunningGateway, query: str, raw: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    async with gw.http.post(f"{gw.url}{HOOK}{query}", data=raw, headers=headers) as response:
        return response.status, dict(response.headers), await response.json(content_type=None)


async def memory(gw: RunningGateway, body: Any, uid: str = UID) -> tuple[int, Any]:
    """A memory as OMI sends it: signed, to the URL with the secret, `uid` appended."""
    raw, headers = signed(body)
    status, _, answer = await post(gw, f"?key={URL_SECRET}&uid={uid}", raw, headers)
    return status, answer


def problem_of(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer.pop("request_id")
    return answer


def refused(status: int, slug: str, detail: str) -> dict[str, Any]:
    titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests"}
    return {
        "type": f"urn:problem:gateway:{slug}",
        "title": titles[status],
        "status": status,
        "detail": detail,
        "route": "omiMemoryCreated",
    }


async def check_guards(gw: RunningGateway, folder: Path) -> None:
    queue = gw.state.backend.queue
    ada = (await token_for(gw, "ada", "ada-pass-1"))["access_token"]

    # The right secret and signature: answered, processed once (OMI sent it twice).
    assert await memory(gw, MEMORY) == (200, OK)
    assert await memory(gw, MEMORY) == (200, OK)
    assert [c["id"] for c in await listed(gw, ada, 1)] == ["memory_abc123"]

    # No secret, a wrong one, an empty one: 401, nothing queued, the dedupe key not spent.
    raw, headers = signed(NEWER)
    missing = refused(
        401,
        "secret-missing",
        "missing webhook secret: add `key=<secret>` to the webhook URL's query",
    )
    wrong = refused(
        401, "secret-invalid", "the webhook secret in the `key` query parameter is wrong"
    )
    for query, expected in [
        (f"?uid={UID}", missing),
        (f"?key=&uid={UID}", missing),
        (f"?key={URL_SECRET}x&uid={UID}", wrong),
        (f"?key={URL_SECRET[:-1]}&uid={UID}", wrong),
    ]:
        status, headers_back, answer = await post(gw, query, raw, headers)
        assert (status, problem_of(answer)) == (401, expected)
        assert headers_back["Content-Type"] == "application/problem+json"
    assert await queue.pending() == 0

    # The signature: wrong, stale, not a number, missing.
    raw, headers = signed(NEWER)
    cases = [
        (
            signed(NEWER, secret="not-the-signing-secret"),
            refused(401, "signature-invalid", "the signature does not match the body"),
        ),
        (
            signed(NEWER, at=time.time() - 3600),
            refused(
                401,
                "timestamp-outside-tolerance",
                "the request timestamp is more than 300s from now (a replay, or a wrong clock)",
            ),
        ),
        (
            (raw, {**headers, "X-Omi-Timestamp": "nan"}),
            refused(400, "timestamp-invalid", "the x-omi-timestamp header is not a number"),
        ),
        (
            (raw, {k: v for k, v in headers.items() if k != "X-Omi-Signature"}),
            refused(401, "signature-missing", "missing signature: send the x-omi-signature header"),
        ),
    ]
    for (body, sent_headers), expected in cases:
        status, _, answer = await post(gw, f"?key={URL_SECRET}&uid={UID}", body, sent_headers)
        assert (status, problem_of(answer)) == (expected["status"], expected)
    assert await queue.pending() == 0

    # A uid that is no user of this gateway: 403, nothing stored, the dedupe key not spent.
    stranger = "uid_eve_9"
    status, answer = await memory(gw, NEWER, stranger)
    assert (status, problem_of(answer)) == (
        403,
        refused(403, "unknown-user", f'"{stranger}" is not a user of this gateway'),
    )
    assert await queue.pending() == 0
    # ... until the operator adds her: the same memory is then kept.
    text = (folder / "gateway.yaml").read_text()
    bob = f"    - {{username: bob, password: bob-pass-2, user_id: {OTHER_UID}}}\n"
    eve = f"    - {{username: eve, password: eve-pass-3, user_id: {stranger}}}\n"
    (folder / "gateway.yaml").write_text(text.replace(bob, bob + eve))
    assert gw.state.reloader is not None
    assert (await gw.state.reloader.reload("test")).outcome.value == "reloaded"
    eve_token = (await token_for(gw, "eve", "eve-pass-3"))["access_token"]
    assert await listed(gw, eve_token, 0) == []  # nothing was stored for her before
    assert await memory(gw, NEWER, stranger) == (200, OK)
    assert [c["id"] for c in await listed(gw, eve_token, 1)] == ["4711"]

    # The newer memory of ada, accepted now; the valid requests were processed, once each.
    assert await memory(gw, NEWER) == (200, OK)
    assert [c["id"] for c in await listed(gw, ada, 2)] == ["4711", "memory_abc123"]

    # No secret in /health or the served documents.
    for path in ("/health", "/openapi.json", "/openapi.yaml", "/actions/omi/openapi.json"):
        async with gw.http.get(f"{gw.url}{path}") as response:
            text = await response.text()
            assert response.status == 200, path
            assert URL_SECRET not in text
            assert SIGNING_SECRET not in text


async def test_secret_signature_and_users_with_the_memory_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    folder = config(tmp_path)
    async with run_gateway(folder, secured(port), port) as gw:
        await check_guards(gw, folder)
    assert URL_SECRET not in caplog.text
    assert URL_SECRET[:-1] not in caplog.text  # nor a near miss a guesser sent
    assert SIGNING_SECRET not in caplog.text
    assert (
        "webhook omiMemoryCreated: refused: the webhook secret in the `key` query parameter is wrong"
        in caplog.text
    )
    assert "is unauthenticated" not in caplog.text  # both secrets are set: no warning


async def test_secret_signature_and_users_with_redis(
    tmp_path: Path, redis_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    folder = config(tmp_path)
    extra = secured(port, GATEWAY_STORE_URL=REDIS_URL, GATEWAY_STORE_NAMESPACE=redis_namespace)
    async with run_gateway(folder, extra, port) as gw:
        await check_guards(gw, folder)
    assert URL_SECRET not in caplog.text
    assert SIGNING_SECRET not in caplog.text


async def test_the_url_secret_never_reaches_the_queue_or_the_handler(tmp_path: Path) -> None:
    """A memory the handler refuses (not an object) is a dead letter: its query has the uid
    and not the secret."""
    port = free_port()
    async with run_gateway(config(tmp_path), secured(port), port) as gw:
        assert await memory(gw, [1, 2]) == (200, OK)
        for _ in range(200):
            letters = await gw.state.backend.queue.dead(10)
            if letters:
                break
            await asyncio.sleep(0.05)
        (letter,) = letters
        assert letter.query == {"uid": UID}
        assert letter.error == "422: an OMI memory is a JSON object"
        assert URL_SECRET not in json.dumps(letter.headers)


async def check_lockout(first: RunningGateway, second: RunningGateway) -> None:
    raw, headers = signed(MEMORY)
    guesses = [await post(first, f"?key=guess-{n}&uid={UID}", raw, headers) for n in range(3)]
    assert [status for status, _, _ in guesses] == [401, 401, 401]
    status, sent, answer = await post(first, f"?key=guess-4&uid={UID}", raw, headers)
    expected = refused(
        429, "too-many-failed-attempts", "too many failed credential checks; retry in 2s"
    )
    assert (status, sent["Retry-After"], problem_of(answer)) == (429, "2", expected)
    # Locked out: the right secret gets the same 429 (on the other replica too on Redis).
    status, sent, answer = await post(second, f"?key={URL_SECRET}&uid={UID}", raw, headers)
    assert (status, sent["Retry-After"]) == (429, "2")
    assert await first.state.backend.queue.pending() == 0
    await asyncio.sleep(2.2)
    assert await memory(second, MEMORY) == (200, OK)


async def test_guessing_the_url_secret_is_locked_out_per_ip(tmp_path: Path) -> None:
    port = free_port()
    folder = config(tmp_path, "  failed_auth_limit: 3\n  failed_auth_window: 2s\n")
    async with run_gateway(folder, secured(port), port) as gw:
        await check_lockout(gw, gw)


async def test_two_replicas_on_redis_share_the_url_secret_lockout(
    tmp_path: Path, redis_namespace: str
) -> None:
    folder = config(tmp_path, "  failed_auth_limit: 3\n  failed_auth_window: 2s\n")
    first_port, second_port = free_port(), free_port()
    store = {"GATEWAY_STORE_URL": REDIS_URL, "GATEWAY_STORE_NAMESPACE": redis_namespace}
    async with (
        run_gateway(folder, secured(first_port, **store), first_port) as first,
        run_gateway(folder, secured(second_port, **store), second_port) as second,
    ):
        await check_lockout(first, second)


async def check_rate_limit(first: RunningGateway, second: RunningGateway) -> None:
    """2 memories per second per uid: the third is refused (nothing queued, its dedupe key
    not spent), another uid still passes, and the refused one is taken a moment later."""
    ada = (await token_for(first, "ada", "ada-pass-1"))["access_token"]
    bob = (await token_for(first, "bob", "bob-pass-2"))["access_token"]
    assert await memory(first, {**MEMORY, "id": "m1"}) == (200, OK)
    assert await memory(second, {**MEMORY, "id": "m2"}) == (200, OK)
    raw, headers = signed({**MEMORY, "id": "m3"})
    status, sent, answer = await post(second, f"?key={URL_SECRET}&uid={UID}", raw, headers)
    assert (status, sent["Retry-After"], problem_of(answer)) == (
        429,
        "1",
        refused(429, "rate-limited", "rate limit of 2 per 1s reached; retry in 1s"),
    )
    assert await memory(first, {**MEMORY, "id": "b1"}, OTHER_UID) == (200, OK)
    assert [c["id"] for c in await listed(first, bob, 1)] == ["b1"]
    assert sorted(c["id"] for c in await listed(first, ada, 2)) == ["m1", "m2"]
    await asyncio.sleep(1.1)
    assert await memory(first, {**MEMORY, "id": "m3"}) == (200, OK)
    assert sorted(c["id"] for c in await listed(first, ada, 3)) == ["m1", "m2", "m3"]


async def test_the_rate_limit_is_per_uid(tmp_path: Path) -> None:
    port = free_port()
    limits = {"OMI_WEBHOOK_RATE_LIMIT": "2", "OMI_WEBHOOK_RATE_PERIOD": "1s"}
    async with run_gateway(config(tmp_path), secured(port, **limits), port) as gw:
        await check_rate_limit(gw, gw)


async def test_two_replicas_on_redis_share_the_rate_limit(
    tmp_path: Path, redis_namespace: str
) -> None:
    folder = config(tmp_path)
    first_port, second_port = free_port(), free_port()
    extra = {
        "OMI_WEBHOOK_RATE_LIMIT": "2",
        "OMI_WEBHOOK_RATE_PERIOD": "1s",
        "GATEWAY_STORE_URL": REDIS_URL,
        "GATEWAY_STORE_NAMESPACE": redis_namespace,
    }
    async with (
        run_gateway(folder, secured(first_port, **extra), first_port) as first,
        run_gateway(folder, secured(second_port, **extra), second_port) as second,
    ):
        await check_rate_limit(first, second)


async def test_unset_secrets_turn_the_checks_off_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The shipped config with neither secret: OMI's unsigned posts are taken as before."""
    caplog.set_level(logging.WARNING)
    port = free_port()
    async with run_gateway(config(tmp_path), env(port), port) as gw:
        body = json.dumps(MEMORY).encode()
        status, _, answer = await post(
            gw, f"?uid={UID}", body, {"Content-Type": "application/json"}
        )
        assert (status, answer) == (200, OK)
        ada = (await token_for(gw, "ada", "ada-pass-1"))["access_token"]
        assert [c["id"] for c in await listed(gw, ada, 1)] == ["memory_abc123"]
    warnings = [r.getMessage() for r in caplog.records if "omiMemoryCreated" in r.getMessage()]
    assert warnings == [
        'webhook "omiMemoryCreated" is unauthenticated: anyone who can reach '
        "/chatgpt/webhook/memory can post to it (set OMI_WEBHOOK_SECRET or OMI_SIGNING_SECRET)"
    ]


async def test_without_a_signing_secret_only_the_url_secret_is_checked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    port = free_port()
    environ = env(port, OMI_WEBHOOK_SECRET=URL_SECRET)
    async with run_gateway(config(tmp_path), environ, port) as gw:
        unsigned = {"Content-Type": "application/json"}
        body = json.dumps(MEMORY).encode()
        status, _, answer = await post(gw, f"?key={URL_SECRET}&uid={UID}", body, unsigned)
        assert (status, answer) == (200, OK)
        status, _, answer = await post(gw, f"?uid={UID}", body, unsigned)
        assert status == 401
        ada = (await token_for(gw, "ada", "ada-pass-1"))["access_token"]
        assert [c["id"] for c in await listed(gw, ada, 1)] == ["memory_abc123"]
    warnings = [r.getMessage() for r in caplog.records if "omiMemoryCreated" in r.getMessage()]
    assert warnings[0] == (
        'webhook "omiMemoryCreated" checks no signature (set OMI_SIGNING_SECRET); '
        "only its URL secret is checked"
    )
    assert URL_SECRET not in caplog.text
