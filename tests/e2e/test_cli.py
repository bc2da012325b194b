"""End to end: the real `gateway` CLI as a subprocess."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
import yarl

from tests.conftest import REPO, write_config
from tests.e2e.helpers import CLEAN_ENV, GATEWAY_BIN, serving
from tests.upstreams.ambivo import answer
from tests.upstreams.server import Upstream, free_port

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiMSJ9.c2lnbmF0dXJl"


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GATEWAY_BIN, *args],
        cwd=cwd,
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_serve_proxies_ambivo_and_reports_unconfigured(
    ambivo: Upstream, tmp_path: Path
) -> None:
    env = {**CLEAN_ENV, "AMBIVO_API_BASE_URL": ambivo.url}
    log = tmp_path / "gateway.log"
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "e2e-1"}
    async with serving(REPO, env, log) as (url, pid), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/health") as r:
            health = await r.json()
        async with http.post(f"{url}/query", json={"query": "leads"}, headers=headers) as r:
            assert r.status == 200
            assert r.headers["X-Request-ID"] == "e2e-1"
            body = await r.json()
        async with http.get(f"{url}/openai/models") as r:
            assert r.status == 503
            assert r.content_type == "application/problem+json"
            assert (await r.json())["detail"] == (
                'upstream "openai" is not configured: set OPENAI_API_KEY'
            )
        async with http.get(f"{url}/apps/list", headers={"X-API-Key": "k"}) as r:
            assert r.status == 503
            assert (await r.json())["detail"] == (
                'auth "api_key" is not configured: set GATEWAY_API_KEY or API_KEY'
            )
        async with http.get(f"{url}/apps/list") as r:  # signed-in users are served
            assert r.status == 401
            assert r.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'
            assert (await r.json())["detail"] == (
                "credentials required: send `Authorization: Bearer <token>` with a token of"
                " this gateway's sign-in or an API key in the X-API-Key header"
            )
    # serving() sent SIGTERM and asserted exit status 0; the process is gone.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert health["status"] == "ok"
    assert health["routes"] == 30
    assert health["webhooks"]["ids"] == ["chatbetoEvents", "intercomEvents", "omiMemoryCreated"]
    assert health["store"] == "memory"
    unconfigured = {item["route"] for item in health["unconfigured"]}
    assert {"listModels", "chatCompletion"} <= unconfigured
    assert not unconfigured & {"naturalQuery", "listTools", "runTool", "execute_natural_query"}
    assert body["success"] is True
    assert body["query"] == "leads"
    assert body["result"] == "Natural Query Results:\n\n" + json.dumps(answer("leads"), indent=2)
    (seen,) = ambivo.seen
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["X-Request-ID"] == "e2e-1"
    assert seen.json() == {"query": "leads", "response_format": "both"}
    output = log.read_text()
    assert (
        'route listModels answers 503: upstream "openai" is not configured: set OPENAI_API_KEY'
        in output
    )
    assert "serving 30 routes, 3 webhooks, 1 schedules (1 off)" in output
    assert "store: memory (not durable: state is lost on restart and not shared)" in output
    assert output.count('webhook "omiMemoryCreated" is unauthenticated') == 1  # once, at start
    assert TOKEN not in output


def test_check_is_clean_on_the_shipped_config() -> None:
    result = run("check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith(": ok")
    assert result.stderr == ""
    # No OMI secrets in a clean environment: the webhook is open, and `check` says so.
    assert (
        'warning: webhook "omiMemoryCreated" is unauthenticated: anyone who can reach '
        "/chatgpt/webhook/memory can post to it (set OMI_WEBHOOK_SECRET or OMI_SIGNING_SECRET)"
    ) in result.stdout.splitlines()


def test_check_lists_every_error_and_fails(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        "",
        {
            "a": "upstream: {name: a, base_url: 'http://127.0.0.1:9', timeout: 3x}\n"
            "routes:\n  - {id: one, path: one}\n",
        },
    )
    result = run("check", "--config-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "routes.d/a.yaml:1:62: Expected a duration like `10s`, `200ms` or `1.5m`, got '3x'"
        " - at `$.upstream.timeout`",
        "routes.d/a.yaml:3:21: Invalid value: A path starting with `/`; `{name}` marks a path"
        " parameter. - at `$.routes[0].path`",
        f"2 errors in {tmp_path}",
    ]


def test_check_reports_mistakes_of_every_compile_phase_in_one_run(tmp_path: Path) -> None:
    """An upstream, a route, the OAuth section and the store: all four in one `check`."""
    gateway_yaml = (
        "store: {url: 'postgres://db'}\n"
        "oauth:\n"
        "  scopes: {read: Read things}\n"
        "  clients:\n"
        "    - {id: gpt, scopes: [write]}\n"
    )
    write_config(
        tmp_path,
        gateway_yaml,
        {
            "a": "upstream: {name: a, base_url: 'ftp://127.0.0.1:9'}\n"
            "routes:\n  - {id: one, path: /one, auth: nobody}\n",
        },
    )
    result = run("check", "--config-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "gateway.yaml:1:14: expected memory:// or redis://host:port/db (or rediss://, unix://,"
        " redis+sentinel://, redis+cluster://, rediss+cluster://), got 'postgres://db'"
        " - at `$.store.url`",
        "gateway.yaml:5:26: scope `write` is not declared in `oauth.scopes`"
        " - at `$.oauth.clients[0].scopes[0]`",
        "routes.d/a.yaml:1:31: expected an absolute http(s) URL, got 'ftp://127.0.0.1:9'"
        " - at `$.upstream.base_url`",
        "routes.d/a.yaml:3:33: auth scheme `nobody` is not declared in gateway.yaml"
        " (known: none) - at `$.routes[0].auth`",
        f"4 errors in {tmp_path}",
    ]


def test_routes_table() -> None:
    result = run("routes")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(
        r"ID {2,}METHOD {2}PATH {2,}UPSTREAM {2,}AUTH {2,}TOOL {2,}STATUS", lines[0]
    )
    assert lines[1].split() == [
        "naturalQuery",
        "POST",
        "/query",
        "ambivo",
        "oauth,bearer",
        "naturalQuery",
        "ok",
    ]
    # A route no MCP endpoint offers (not in any served document).
    assert next(line for line in lines if line.startswith("gmailAuthCallback ")).split()[5] == "-"
    assert len(lines) == 1 + 30
    # Columns line up: every row starts its METHOD where the header does.
    column = lines[0].index("METHOD")
    assert all(line[column - 2 : column] == "  " for line in lines)
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["listModels"].endswith(
        'unconfigured: upstream "openai" is not configured: set OPENAI_API_KEY'
    )


def test_mcp_tools_lists_each_endpoints_tools() -> None:
    result = run("mcp", "tools")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "naturalQuery",
        "R-IO",
        "POST",
        "/query",
        "(query,",
        "response_format,",
        "enable_memory,",
        "session_id)",
    ]
    assert lines[-1] == (
        "24 tools at /mcp (R read-only, D destructive, I idempotent, O open world); auth: oauth"
    )
    listed = json.loads(run("mcp", "tools", "--profile", "omi", "--json").stdout)
    assert listed["endpoint"] == "/mcp/omi"
    assert [tool["name"] for tool in listed["tools"]] == [
        "listOmiConversations",
        "getOmiConversation",
    ]
    first = listed["tools"][0]
    assert first["annotations"] == {
        "readOnlyHint": True,
        "destructiveHint": False,
        "idempotentHint": True,
        "openWorldHint": True,
    }
    assert first["inputSchema"]["additionalProperties"] is False
    assert first["scopes"] == ["read:memories"]
    unknown = run("mcp", "tools", "--profile", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == (
        "no profile `nope` (known: ambivo, apps, assistant, gmail, omi, openai, support)"
    )


def test_openapi_profile_as_yaml_and_unknown_profile() -> None:
    result = run("openapi", "--profile", "ambivo", "--format", "yaml")
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/query", "/tools", "/tools/natural-query"}
    missing = run("openapi", "--profile", "nope")
    assert missing.returncode == 1
    assert (
        missing.stderr
        == "no profile `nope` (known: ambivo, apps, assistant, gmail, omi, openai, support)\n"
    )
    assert missing.stdout == ""


def test_schema_files_are_current() -> None:
    result = run("schema", "--check")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_module_entry_point_matches_the_console_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "openapi", "--profile", "ambivo"],
        cwd=REPO,
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(run("openapi", "--profile", "ambivo").stdout)


def test_check_diff_against_lists_what_a_reload_would_change(tmp_path: Path) -> None:
    old = write_config(
        tmp_path / "old",
        "defaults: {auth: none}\n",
        {
            "a": "routes:\n"
            "  - {id: kept, path: /kept, static: true, response: {body: '{{ 1 }}'}}\n"
            "  - {id: moved, path: /before, static: true, response: {body: '{{ 2 }}'}}\n"
            "  - {id: gone, path: /gone, static: true, response: {body: '{{ 3 }}'}}\n",
        },
    )
    new = write_config(
        tmp_path / "new",
        "defaults: {auth: none}\n",
        {
            "a": "routes:\n"
            "  - {id: kept, path: /kept, static: true, response: {body: '{{ 1 }}'}}\n"
            "  - {id: moved, path: /after, static: true, response: {body: '{{ 2 }}'}}\n"
            "  - {id: fresh, path: /fresh, static: true, response: {body: '{{ 4 }}'}}\n",
        },
    )
    result = run("check", "--config-dir", str(new), "--diff-against", str(old))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:7] == [
        "route added: fresh",
        "route removed: gone",
        "route changed: moved",
        "operation added: GET /after (moved)",
        "operation added: GET /fresh (fresh)",
        "operation removed: GET /before (moved)",
        "operation removed: GET /gone (gone)",
    ]
    same = run("check", "--config-dir", str(new), "--diff-against", str(new))
    assert same.stdout.splitlines()[0] == f"no changes against {new}"


def test_serve_with_an_unreachable_redis_says_so_in_one_line_and_exits_1(
    tmp_path: Path,
) -> None:
    port = free_port()
    write_config(tmp_path, f"store: {{url: 'redis://:hunter2-secret@127.0.0.1:{port}/0'}}\n", {})
    result = subprocess.run(
        [GATEWAY_BIN, "serve", "--config-dir", str(tmp_path), "--port", str(free_port())],
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1
    assert errors[0].endswith(
        f"store redis://127.0.0.1:{port}/0 is unreachable: Error 111 connecting to"
        f" 127.0.0.1:{port}. Connection refused."
    )
    assert "Traceback" not in result.stderr
    assert "hunter2-secret" not in result.stderr


async def test_a_line_break_in_a_request_path_cannot_forge_a_log_line(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    async with serving(REPO, CLEAN_ENV, log) as (url, _), aiohttp.ClientSession() as http:
        forged = "/gmail/messages/x%0D%0A2026-01-01%2000:00:00,000%20INFO%20gateway%20FORGED"
        async with http.get(yarl.URL(url + forged, encoded=True)) as response:
            assert response.status == 503  # gmail is not configured here; it is logged
    lines = log.read_text().splitlines()
    assert not [line for line in lines if line.startswith("2026-01-01")]
    logged = [line for line in lines if "FORGED" in line]
    assert len(logged) == 1  # the access log line, with the line break escaped
    assert "/gmail/messages/x\\r\\n2026-01-01 00:00:00,000 INFO gateway FORGED 503" in logged[0]


def test_check_and_serve_refuse_a_config_folder_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    for command in ("check", "serve"):
        result = run(command, "--config-dir", str(missing))
        assert (result.returncode, result.stderr) == (
            1,
            f"config folder {missing} does not exist (give one with --config-dir)\n",
        )


def test_an_unclosed_variable_is_a_config_error(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        "",
        {
            "a": 'upstream:\n  name: a\n  base_url: http://x\n  auth: {type: bearer, token: "${TOKEN"}\n'
        },
    )
    result = run("check", "--config-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "routes.d/a.yaml:4:31: unclosed `${` in '${TOKEN': expected `${NAME}`,"
        " `${NAME:-default}` or `${file:PATH}` (write `$${` for a literal `${`)"
        " - at `$.upstream.auth.token`",
        f"1 error in {tmp_path}",
    ]


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"gateway {importlib.metadata.version('yaml-gateway')}"


def test_routes_as_json_lists_routes_webhooks_and_schedules() -> None:
    result = run("routes", "--json")
    assert result.returncode == 0, result.stderr
    inventory = json.loads(result.stdout)
    assert len(inventory["routes"]) == 30
    assert inventory["routes"][0] == {
        "id": "naturalQuery",
        "method": "POST",
        "path": "/query",
        "target": "ambivo",
        "auth": "oauth,bearer",
        "scopes": ["crm"],
        "tool": "naturalQuery",
        "file": "routes.d/ambivo.yaml",
        "line": 21,
        "status": "ok",
    }
    assert [w["id"] for w in inventory["webhooks"]] == [
        "intercomEvents",
        "omiMemoryCreated",
        "chatbetoEvents",
    ]
    assert inventory["schedules"] == [
        {
            "id": "pollIntercom",
            "every_seconds": 60.0,
            "enabled": False,
            "status": 'unconfigured: schedule "pollIntercom" is not configured: set'
            " GPT_TRAINER_CHATBOT_UUID or CHATBOT_UUID, INTERCOM_ADMIN_ID",
        }
    ]
