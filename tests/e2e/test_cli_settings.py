"""End to end, the real CLI as a subprocess: `serve --verbose`/`-v`, `PORT`, the config
folder's `.env` (the real environment over it, its values secret), `openapi --output` in the
format of the file's suffix."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import yaml
from openapi_spec_validator import validate

from tests.conftest import REPO, write_config
from tests.e2e.helpers import CLEAN_ENV, GATEWAY_BIN, serving, stop, wait_until_answering
from tests.upstreams.ambivo import answer
from tests.upstreams.server import Upstream, free_port

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkb3RlbnYifQ.ZG90ZW52LXNpZ25hdHVyZQ"
OTHER_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJlbnZpcm9uIn0.ZW52aXJvbi1zaWduYXR1cmU"
HINT = "not a `KEY=value` line; ignored (quote a value with spaces or `#`, close every quote)"
CRM = (
    "upstream:\n"
    "  name: crm\n"
    "  base_url: ${CRM_URL:-http://127.0.0.1:9}\n"
    '  auth: {type: bearer, token: "${CRM_TOKEN}"}\n'
    "routes:\n"
    "  - {id: ask, method: POST, path: /ask, upstream: {path: /entity/natural_query}}\n"
)


def crm_folder(folder: Path, dotenv: str | None = None) -> Path:
    write_config(folder, "defaults: {auth: none}\n", {"crm": CRM})
    if dotenv is not None:
        (folder / ".env").write_text(dotenv)
    return folder


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GATEWAY_BIN, *args],
        cwd=REPO,
        env=CLEAN_ENV if env is None else env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def ask(url: str) -> tuple[int, dict[str, object]]:
    headers = {"X-Request-ID": "ask-1"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/ask", json={"query": "leads"}, headers=headers) as r,
    ):
        return r.status, await r.json()


# --- .env -----------------------------------------------------------------------------


async def test_a_value_only_in_dotenv_configures_a_route(ambivo: Upstream, tmp_path: Path) -> None:
    folder = crm_folder(
        tmp_path / "config",
        f"# the CRM\nCRM_URL={ambivo.url}\nthis line is broken {TOKEN}\nCRM_TOKEN='{TOKEN}'\n",
    )
    log = tmp_path / "gateway.log"
    async with serving(folder, CLEAN_ENV, log) as (url, _):
        status, body = await ask(url)
        async with aiohttp.ClientSession() as http, http.get(f"{url}/health") as r:
            health_text = await r.text()
    assert (status, body) == (200, answer("leads"))
    (seen,) = ambivo.seen
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    health = json.loads(health_text)
    assert health["unconfigured"] == []
    assert health["available_tools"] == ["ask"]
    output = log.read_text()
    assert f"WARNING gateway [-] {folder}/.env:3: {HINT}" in output
    assert f"INFO gateway [-] settings: 2 variable(s) from {folder}/.env\n" in output
    # A value from .env is a secret like an environment value: never logged or shown.
    assert TOKEN not in output
    assert TOKEN not in health_text


async def test_the_real_environment_overrides_dotenv(ambivo: Upstream, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    folder = crm_folder(tmp_path / "config", f"CRM_URL={dead}\nCRM_TOKEN={TOKEN}\n")
    env = {**CLEAN_ENV, "CRM_URL": ambivo.url, "CRM_TOKEN": OTHER_TOKEN}
    log = tmp_path / "gateway.log"
    async with serving(folder, env, log) as (url, _):
        status, body = await ask(url)
    assert (status, body) == (200, answer("leads"))
    (seen,) = ambivo.seen
    assert seen.headers["Authorization"] == f"Bearer {OTHER_TOKEN}"
    output = log.read_text()
    assert (
        f"settings: 2 variable(s) from {folder}/.env"
        " (CRM_TOKEN, CRM_URL set by the environment, which wins)\n"
    ) in output
    assert TOKEN not in output
    assert OTHER_TOKEN not in output


def test_check_and_openapi_read_dotenv_and_warn_of_a_bad_line(tmp_path: Path) -> None:
    folder = crm_folder(tmp_path, f'CRM_TOKEN={TOKEN}\nBROKEN="never closed\n')
    without = crm_folder(tmp_path / "plain")
    checked = run("check", "--config-dir", str(folder))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[0] == f"warning: {folder}/.env:2: {HINT}"
    assert "note: route ask" not in checked.stdout  # CRM_TOKEN came from .env
    assert (
        'note: route ask answers 503 until configured: upstream "crm" is not configured:'
        " set CRM_TOKEN"
    ) in run("check", "--config-dir", str(without)).stdout.splitlines()
    printed = run("openapi", "--config-dir", str(folder))
    assert printed.returncode == 0
    assert printed.stderr == f"warning: {folder}/.env:2: {HINT}\n"
    assert list(json.loads(printed.stdout)["paths"]) == ["/ask"]
    assert TOKEN not in checked.stdout + checked.stderr + printed.stdout + printed.stderr


# --- serve --verbose ------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--verbose", "-v"])
async def test_verbose_logs_the_routes_and_each_upstream_call(
    ambivo: Upstream, tmp_path: Path, flag: str
) -> None:
    folder = crm_folder(tmp_path / "config")
    env = {**CLEAN_ENV, "CRM_URL": ambivo.url, "CRM_TOKEN": TOKEN, "GATEWAY_LOG_LEVEL": "ERROR"}
    log = tmp_path / "gateway.log"
    async with serving(folder, env, log, flag) as (url, _):
        assert (await ask(url))[0] == 200
    lines = log.read_text().splitlines()
    debug = [line.split(" [", 1)[1] for line in lines if " DEBUG gateway " in line]
    assert "-] route ask: POST /ask -> upstream crm, auth none, ok" in debug
    (call,) = [line for line in debug if "upstream crm POST" in line]
    assert call.startswith("ask-1] route ask: upstream crm POST /entity/natural_query -> 200 in ")
    assert call.endswith("ms")
    assert any(" INFO uvicorn.error " in line for line in lines)  # uvicorn's own lines too
    assert TOKEN not in "\n".join(lines)


async def test_without_verbose_nothing_is_logged_at_debug(ambivo: Upstream, tmp_path: Path) -> None:
    folder = crm_folder(tmp_path / "config")
    env = {**CLEAN_ENV, "CRM_URL": ambivo.url, "CRM_TOKEN": TOKEN}
    log = tmp_path / "gateway.log"
    async with serving(folder, env, log) as (url, _):
        assert (await ask(url))[0] == 200
    output = log.read_text()
    assert " DEBUG " not in output
    assert "POST /ask 200" in output


# --- PORT -----------------------------------------------------------------------------


@asynccontextmanager
async def serving_on(
    folder: Path, env: dict[str, str], log_path: Path, port: int
) -> AsyncIterator[str]:
    """`gateway serve` without `--port`; the URL once /health answers on ``port``."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [GATEWAY_BIN, "serve", "--config-dir", str(folder), "--no-watch"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_until_answering(process, url, log_path)
            yield url
        finally:
            await stop(process)
    assert process.returncode == 0, log_path.read_text()[-2000:]


async def test_port_sets_the_port_when_no_port_flag_is_given(tmp_path: Path) -> None:
    folder = crm_folder(tmp_path / "config")
    port = free_port()
    log = tmp_path / "gateway.log"
    async with serving_on(folder, {**CLEAN_ENV, "PORT": str(port)}, log, port):
        pass
    assert f"on http://127.0.0.1:{port}\n" in log.read_text()


async def test_gateway_port_wins_over_port_and_dotenv_may_set_it(tmp_path: Path) -> None:
    port, other = free_port(), free_port()
    folder = crm_folder(tmp_path / "config", f"PORT={other}\n")
    log = tmp_path / "gateway.log"
    async with serving_on(folder, CLEAN_ENV, log, other):  # PORT from .env
        pass
    env = {**CLEAN_ENV, "GATEWAY_PORT": str(port)}
    async with serving_on(folder, env, log, port):  # GATEWAY_PORT over PORT
        pass


def test_a_bad_port_is_refused_at_once(tmp_path: Path) -> None:
    folder = crm_folder(tmp_path)
    result = run("serve", "--config-dir", str(folder), env={**CLEAN_ENV, "PORT": "http"})
    assert (result.returncode, result.stderr) == (
        2,
        "PORT must be a port number (0-65535), got 'http'\n",
    )
    link = {**CLEAN_ENV, "GATEWAY_PORT": "tcp://10.96.0.12:8080"}  # a Kubernetes service link
    linked = run("serve", "--config-dir", str(folder), env=link)
    assert (linked.returncode, linked.stderr) == (
        2,
        "GATEWAY_PORT must be a port number (0-65535), got 'tcp://10.96.0.12:8080'"
        " (a Kubernetes service link? set enableServiceLinks: false)\n",
    )
    flag = run("serve", "--config-dir", str(folder), "--port", "70000")
    assert flag.returncode == 2
    assert flag.stderr.splitlines()[-1] == (
        "gateway serve: error: argument --port: expected a port number (0-65535), got '70000'"
    )


# --- openapi --output -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "extra", "kind"),
    [
        ("api.yaml", [], "yaml"),
        ("api.yml", [], "yaml"),
        ("API.YAML", [], "yaml"),
        ("api.json", [], "json"),
        ("api.txt", [], "json"),
        ("api.yaml", ["--format", "json"], "json"),
        ("api.json", ["--format", "yaml"], "yaml"),
    ],
)
def test_openapi_output_format_follows_the_suffix(
    tmp_path: Path, name: str, extra: list[str], kind: str
) -> None:
    target = tmp_path / name
    result = run("openapi", "--profile", "ambivo", "--output", str(target), *extra)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    text = target.read_text()
    expected = json.loads(run("openapi", "--profile", "ambivo").stdout)
    if kind == "yaml":
        assert not text.lstrip().startswith("{")
        assert text.startswith("openapi: 3.1.0\n")
        document = yaml.safe_load(text)
    else:
        document = json.loads(text)
    assert document == expected
    validate(copy.deepcopy(document))
    assert document["paths"]["/query"]["post"]["x-openai-isConsequential"] is False


async def test_openapi_yaml_file_matches_what_is_served(tmp_path: Path) -> None:
    target = tmp_path / "merged.yaml"
    env = {**CLEAN_ENV, "GATEWAY_PUBLIC_URL": "https://gateway.example.com"}
    assert run("openapi", "--output", str(target), env=env).returncode == 0
    log = tmp_path / "gateway.log"
    async with (
        serving(REPO, env, log) as (url, _),
        aiohttp.ClientSession() as http,
        http.get(f"{url}/openapi.yaml") as r,
    ):
        assert r.headers["Content-Type"] == "application/yaml"
        served = await r.text()
    assert served == target.read_text()


async def test_without_a_public_url_the_urls_handed_out_follow_the_port(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    async with serving(REPO, CLEAN_ENV, log) as (url, _), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/openapi.json") as r:
            assert (await r.json())["servers"] == [{"url": url}]
        async with http.get(f"{url}/actions/omi/openapi.json") as r:
            assert (await r.json())["servers"] == [{"url": url}]
        async with http.get(f"{url}/.well-known/oauth-authorization-server") as r:
            metadata = await r.json()
        async with http.get(f"{url}/.well-known/ai-plugin.json") as r:
            manifest = await r.json()
    assert metadata["issuer"] == url
    assert metadata["authorization_endpoint"] == f"{url}/oauth/authorize"
    assert manifest["api"]["url"] == f"{url}/openapi.json"
    assert (
        f"public URL {url}: a ChatGPT Action needs a public https URL; "
        "set GATEWAY_PUBLIC_URL (server.public_url)"
    ) in log.read_text()
    port = url.rsplit(":", 1)[1]
    checked = run("check", env={**CLEAN_ENV, "PORT": port})
    assert (
        f"warning: [openapi.json] servers[0].url '{url}' is not https: ChatGPT refuses it"
        " (A3); set server.public_url"
    ) in checked.stdout
