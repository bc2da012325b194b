"""Webhooks and schedules in config (golden errors) and signature checks (constant-time HMAC)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.compiler.build import compile_config
from gateway.config.load import load
from gateway.errors import ConfigErrors
from gateway.serve.signatures import SignatureRefused, sign, verify_signature
from gateway.snapshot import HmacSpec
from tests.conftest import write_config

GATEWAY = "auth:\n  - {id: key, type: api_key, keys: [k1]}\n"
HANDLER = "async def run(ctx, request):\n    return None\n"

CASES = [
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n",
        ["routes.d/a.yaml:2:5: Object missing required field `handler` - at `$.webhooks[0]`"],
        id="no-handler",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    verify: {type: hmac, header: X-Sig}\n",
        [
            "routes.d/a.yaml:5:13: hmac verification needs `secret` or `secrets` - at `$.webhooks[0].verify`"
        ],
        id="hmac-no-secret",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    verify: {type: hmac, header: X-Sig, secret: s, algorithm: md5}\n",
        [
            'routes.d/a.yaml:5:63: Invalid enum value \'md5\' (expected one of: "sha1", "sha256", "sha512") - at `$.webhooks[0].verify.algorithm`'
        ],
        id="bad-algorithm",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    verify: {type: hmac, header: X-Sig, secret: s, timestamp_header: X-T, signed: '{timestamp}'}\n",
        ["routes.d/a.yaml:5:83: `signed` must contain `{body}` - at `$.webhooks[0].verify.signed`"],
        id="signed-without-body",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    verify: {type: hmac, header: X-Sig, secret: s, signed: '{timestamp}.{body}'}\n",
        [
            "routes.d/a.yaml:5:60: `signed` uses `{timestamp}`: set `timestamp_header` too - at `$.webhooks[0].verify.signed`"
        ],
        id="timestamp-without-header",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w/{id}\n    handler: h:run\n",
        [
            "routes.d/a.yaml:3:11: a webhook path has no parameters (use `query`) - at `$.webhooks[0].path`"
        ],
        id="path-param",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /admin/w\n    handler: h:run\n",
        [
            "routes.d/a.yaml:3:11: path `/admin/w` is reserved by the gateway - at `$.webhooks[0].path`"
        ],
        id="reserved",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    response: {status: 500}\n",
        [
            "routes.d/a.yaml:5:24: a webhook answers 2xx once queued - at `$.webhooks[0].response.status`"
        ],
        id="non-2xx",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: nothere:run\n",
        [
            "routes.d/a.yaml:4:14: plugin module `nothere` not found: expected plugins/nothere.py - at `$.webhooks[0].handler`"
        ],
        id="missing-plugin",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    dedupe_key: '{{ body.id '\n",
        [
            "routes.d/a.yaml:5:17: template syntax error on its line 1: unexpected end of template, expected 'end of print statement'. - at `$.webhooks[0].dedupe_key`"
        ],
        id="bad-template",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    dedupe_key: '{{ route }}'\n",
        [
            "routes.d/a.yaml:5:17: template uses unknown variable `route` (available: body, headers, query) - at `$.webhooks[0].dedupe_key`"
        ],
        id="unknown-name",
    ),
    pytest.param(
        "routes:\n  - {id: w, path: /r, static: true, response: {body: '{{ 1 }}'}}\nwebhooks:\n  - id: w\n    path: /w\n    handler: h:run\n",
        [
            "routes.d/a.yaml:4:9: route id `w` is already used at routes.d/a.yaml:2:10 - at `$.webhooks[0].id`"
        ],
        id="dup-id-with-route",
    ),
    pytest.param(
        "routes:\n  - {id: r, method: GET, path: /w, static: true, response: {body: '{{ 1 }}'}}\n"
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n",
        [
            "routes.d/a.yaml:5:11: path `/w` is also a route's path; give the webhook its own - at `$.webhooks[0].path`"
        ],
        id="shared-with-a-route",
    ),
    pytest.param(
        "schedules:\n  - id: s\n    every: 100ms\n    handler: h:run\n",
        ["routes.d/a.yaml:3:12: a schedule runs at most once a second - at `$.schedules[0].every`"],
        id="schedule-too-often",
    ),
    pytest.param(
        "schedules:\n  - id: s\n    every: often\n    handler: h:run\n",
        [
            "routes.d/a.yaml:3:12: Expected a duration like `10s`, `200ms` or `1.5m`, got 'often' - at `$.schedules[0].every`"
        ],
        id="schedule-bad-every",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    url_secret: {param: key, secrets: ['${HOOK_KEY:-}']}\n",
        [
            "routes.d/a.yaml:5:17: `url_secret` needs `secret` or `secrets` (or `optional: true` to accept requests without one) - at `$.webhooks[0].url_secret`"
        ],
        id="url-secret-empty",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    url_secret: {secret: s3cret, optinal: true}\n",
        [
            "routes.d/a.yaml:5:34: Object contains unknown field `optinal` - at `$.webhooks[0].url_secret.optinal`"
        ],
        id="url-secret-typo",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    query: [{name: key}]\n    url_secret: {param: key, secret: s3cret}\n",
        [
            "routes.d/a.yaml:6:25: parameter `key` carries the URL secret: remove it from `query` - at `$.webhooks[0].url_secret.param`"
        ],
        id="url-secret-declared-in-query",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    verify: {type: hmac, header: X-Sig, secrets: ['${S:-}'], optional: yes please}\n",
        ["routes.d/a.yaml:5:72: Expected `bool`, got `str` - at `$.webhooks[0].verify.optional`"],
        id="hmac-optional-not-a-bool",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    rate_limit: {limit: 5, per: 1m, key: api_key}\n",
        [
            "routes.d/a.yaml:5:42: a webhook's rate limit key is `ip` or a template such as `{{ query.uid }}`, got 'api_key' - at `$.webhooks[0].rate_limit.key`"
        ],
        id="rate-limit-key",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    rate_limit: {limit: 5, per: 0s}\n",
        [
            "routes.d/a.yaml:5:33: a rate limit's `per` must be more than 0s - at `$.webhooks[0].rate_limit.per`"
        ],
        id="rate-limit-per-zero",
    ),
    pytest.param(
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    user: '{{ auth.user }}'\n",
        [
            "routes.d/a.yaml:5:11: template uses unknown variable `auth` (available: body, headers, query) - at `$.webhooks[0].user`"
        ],
        id="user-template-name",
    ),
]


@pytest.mark.parametrize(("routes", "expected"), CASES)
def test_webhook_mistakes_are_refused_with_their_place(
    tmp_path: Path, routes: str, expected: list[str]
) -> None:
    write_config(tmp_path, GATEWAY, {"a": routes})
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "h.py").write_text(HANDLER)
    with pytest.raises(ConfigErrors) as caught:
        compile_config(load(tmp_path, environ={}))
    assert [str(error) for error in caught.value.errors] == expected


def test_a_webhook_missing_its_secret_answers_503_until_set(tmp_path: Path) -> None:
    routes = (
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n"
        "    verify: {type: hmac, header: X-Sig, secret: '${HOOK_SECRET}'}\n"
    )
    write_config(tmp_path, GATEWAY, {"a": routes})
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "h.py").write_text(HANDLER)
    unset = compile_config(load(tmp_path, environ={}))
    assert unset.webhooks["w"].unconfigured == 'webhook "w" is not configured: set HOOK_SECRET'
    configured = compile_config(load(tmp_path, environ={"HOOK_SECRET": "s3cret-value"}))
    assert configured.webhooks["w"].unconfigured is None
    assert "s3cret-value" in configured.secrets  # redacted from errors and logs


def compiled(tmp_path: Path, routes: str, environ: dict[str, str], gateway: str = GATEWAY) -> Any:
    write_config(tmp_path, gateway, {"a": routes})
    (tmp_path / "plugins").mkdir(exist_ok=True)
    (tmp_path / "plugins" / "h.py").write_text(HANDLER)
    return compile_config(load(tmp_path, environ=environ)).webhooks["w"]


OPTIONAL = (
    "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n"
    "    url_secret: {secrets: ['${HOOK_KEY}', '${HOOK_KEY_OLD:-}'], optional: true}\n"
    "    verify: {type: hmac, header: X-Sig, secret: '${HOOK_SIGNING}', optional: true}\n"
)


def test_optional_checks_are_off_while_their_secrets_are_unset(tmp_path: Path) -> None:
    """Unset (with or without a default), an optional check is off: never a 503, a warning."""
    webhook = compiled(tmp_path, OPTIONAL, {})
    assert (webhook.url_secret, webhook.hmac, webhook.unconfigured) == (None, None, None)
    assert webhook.warnings == (
        'webhook "w" is unauthenticated: anyone who can reach /w can post to it '
        "(set HOOK_KEY or HOOK_SIGNING)",
    )
    webhook = compiled(tmp_path, OPTIONAL, {"HOOK_KEY_OLD": "old-key-1"})
    assert webhook.url_secret.secrets == (b"old-key-1",)
    assert webhook.hmac is None
    assert webhook.warnings == (
        'webhook "w" checks no signature (set HOOK_SIGNING); only its URL secret is checked',
    )
    webhook = compiled(tmp_path, OPTIONAL, {"HOOK_SIGNING": "signing-1"})
    assert webhook.url_secret is None
    assert webhook.hmac.secrets == (b"signing-1",)
    assert webhook.warnings == (
        'webhook "w" asks for no URL secret (set HOOK_KEY); only its signature is checked',
    )
    both = compiled(tmp_path, OPTIONAL, {"HOOK_KEY": "key-1", "HOOK_SIGNING": "signing-1"})
    assert (both.url_secret.param, both.warnings, both.unconfigured) == ("key", (), None)


def test_a_required_url_secret_unset_answers_503_until_set(tmp_path: Path) -> None:
    routes = (
        "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n"
        "    url_secret: {param: token, secret: '${HOOK_KEY}'}\n"
    )
    unset = compiled(tmp_path, routes, {})
    assert unset.unconfigured == 'webhook "w" is not configured: set HOOK_KEY'
    assert unset.warnings == ()
    configured = compiled(tmp_path, routes, {"HOOK_KEY": "key-value-1"})
    assert configured.unconfigured is None
    assert configured.url_secret.param == "token"
    write_config(tmp_path, GATEWAY, {"a": routes})
    snapshot = compile_config(load(tmp_path, environ={"HOOK_KEY": "key-value-1"}))
    assert "key-value-1" in snapshot.secrets  # redacted from answers and logs
    assert "key-value-1" not in repr(snapshot.webhooks["w"])


def test_the_users_of_a_webhook_are_the_gateways_users(tmp_path: Path) -> None:
    gateway = (
        "auth:\n  - {id: key, type: api_key, keys: [plain-key, {key: k-ada, user: ada},"
        " {key: '${UNSET_KEY:-}', user: nobody}]}\n"
        "oauth:\n  clients: [{id: c}]\n  scopes: {read: Read}\n  users:\n"
        "    - {username: bob, password: pw-bob, user_id: uid-bob}\n"
        "    - {username: '${NO_USER:-}', password: pw, user_id: uid-nobody}\n"
        "  users_from: '${OMI_USERS:-}'\n"
    )
    routes = "webhooks:\n  - id: w\n    path: /w\n    handler: h:run\n    user: '{{ query.uid }}'\n"
    webhook = compiled(tmp_path, routes, {}, gateway)
    assert webhook.users == frozenset({"ada", "uid-bob"})
    assert webhook.warnings == ()
    # Accounts from `users_from` (the environment) are users too.
    from_env = compiled(
        tmp_path, routes, {"OMI_USERS": "cy:pw-cy:uid-cy, di:pw-di:uid-di"}, gateway
    )
    assert from_env.users == frozenset({"ada", "uid-bob", "uid-cy", "uid-di"})
    lonely = compiled(tmp_path, routes, {})
    assert lonely.users == frozenset()
    assert lonely.warnings == (
        'webhook "w" refuses every event: `user` must be a user of this gateway and none is '
        "configured (oauth.users, oauth.users_from, api keys with a user)",
    )


def spec(**changes: object) -> HmacSpec:
    values: dict[str, object] = {
        "header": "x-hub-signature",
        "algorithm": "sha1",
        "prefix": "sha1=",
        "encoding": "hex",
        "secrets": (b"client_secret_123",),
        "timestamp_header": None,
        "tolerance": 300.0,
        "signed": b"{body}",
    }
    values.update(changes)
    return HmacSpec(**values)  # type: ignore[arg-type]


PING = (
    b'{"type":"notification_event","topic":"ping","data":{"type":"notification_event_data",'
    b'"item":{"type":"ping","message":"hi"}}}'
)


def test_intercoms_test_vector_verifies() -> None:
    header = "sha1=49eb476f14c022e67bbd4cfa9f35eaca158589b4"
    assert sign(spec(), b"client_secret_123", PING) == header
    verify_signature(spec(), {"x-hub-signature": header}, PING)
    verify_signature(spec(), {"x-hub-signature": header.upper().replace("SHA1=", "sha1=")}, PING)
    with pytest.raises(SignatureRefused) as refused:
        verify_signature(spec(), {"x-hub-signature": header}, PING + b" ")
    assert (refused.value.status, refused.value.detail) == (
        401,
        "the signature does not match the body",
    )


def test_base64_sha256_with_a_timestamp_and_rotation() -> None:
    checked = spec(
        header="x-sig",
        algorithm="sha256",
        prefix="v1,",
        encoding="base64",
        secrets=(b"new-secret", b"old-secret"),
        timestamp_header="x-ts",
        tolerance=60.0,
        signed=b"{timestamp}.{body}",
    )
    now = 1_700_000_000.0
    body = b'{"a":1}'
    digest = hmac.new(b"old-secret", b"1700000000." + body, hashlib.sha256).digest()
    header = "v1," + base64.b64encode(digest).decode()
    verify_signature(checked, {"x-sig": header, "x-ts": "1700000000"}, body, now=now)
    verify_signature(checked, {"x-sig": header, "x-ts": "1700000000"}, body, now=now + 59)
    # Milliseconds are understood as well.
    digest_ms = hmac.new(b"new-secret", b"1700000000000." + body, hashlib.sha256).digest()
    header_ms = "v1," + base64.b64encode(digest_ms).decode()
    verify_signature(checked, {"x-sig": header_ms, "x-ts": "1700000000000"}, body, now=now)
    refusals = [
        (
            {"x-sig": header, "x-ts": "1700000000"},
            now + 61,
            401,
            "the request timestamp is more than 60s from now (a replay, or a wrong clock)",
        ),
        (
            {"x-sig": header, "x-ts": "1700000000"},
            now - 61,
            401,
            "the request timestamp is more than 60s from now (a replay, or a wrong clock)",
        ),
        ({"x-sig": header}, now, 401, "missing timestamp: send the x-ts header"),
        ({"x-sig": header, "x-ts": "soon"}, now, 400, "the x-ts header is not a number"),
        # Not finite: `nan` compares false with everything and would skip the tolerance.
        ({"x-sig": header, "x-ts": "nan"}, now, 400, "the x-ts header is not a number"),
        ({"x-sig": header, "x-ts": "inf"}, now, 400, "the x-ts header is not a number"),
        ({"x-sig": header, "x-ts": "-Infinity"}, now, 400, "the x-ts header is not a number"),
        # The timestamp is signed: moving it forward breaks the signature.
        (
            {"x-sig": header, "x-ts": "1700000030"},
            now,
            401,
            "the signature does not match the body",
        ),
    ]
    for headers, at, status, detail in refusals:
        with pytest.raises(SignatureRefused) as refused:
            verify_signature(checked, headers, body, now=at)
        assert (refused.value.status, refused.value.detail) == (status, detail)


def test_the_clock_defaults_to_now() -> None:
    checked = spec(timestamp_header="x-ts", signed=b"{timestamp}.{body}", tolerance=5.0)
    stamp = str(int(time.time())).encode()
    header = sign(checked, b"client_secret_123", b"{}", stamp)
    verify_signature(checked, {"x-hub-signature": header, "x-ts": stamp.decode()}, b"{}")
