"""The human pages in a real browser: Debian's headless Chromium (`/usr/bin/chromium`,
driven by playwright; no browser is downloaded) against the real CLI (`gateway serve`) on a
copy of the shipped config. Without Chromium the tests skip, except in CI, where they fail.

Each module gets one gateway and one browser (module-scoped fixtures, so its tests share
the module's event loop); each test a fresh page whose every request is recorded. The
browser's own traffic is cut at the network edge: a request for any host but 127.0.0.1 is
recorded and answered by the test, never sent.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from tests.conftest import REPO
from tests.e2e.helpers import CLEAN_ENV, GATEWAY_BIN, stop, wait_until_answering
from tests.oauth_client import GOOD_SECRET
from tests.upstreams.server import free_port

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page, Request, Route

CHROMIUM = Path("/usr/bin/chromium")
USERNAME, PASSWORD = "ann", "ann-pass-1"
"""The one user who signs in on the pages."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = "127.0.0.1"
CLIENT_ID = "gpt-client"
# A route that answers without an upstream or a secret: Try it out gets a real 200.
BROWSER_ROUTES = """\
routes:
  - id: browserPing
    path: /browser/ping
    summary: Answer pong
    description: A static answer, for the browser test's Try it out.
    tags: [browser]
    auth: none
    static: true
    response: {body: '{{ {"pong": true} }}'}
"""


def require_chromium() -> None:
    """Skip without Chromium or playwright; in CI (`CI` set) fail instead."""
    problem = None
    if importlib.util.find_spec("playwright") is None:
        problem = "playwright is not installed: pip install -e '.[dev]'"
    elif not CHROMIUM.exists():
        problem = f"no {CHROMIUM}: apt-get install chromium"
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI runs the browser tests, but {problem}")
    pytest.skip(problem)


def shipped_config(folder: Path) -> Path:
    """The repository's config, plus one static route."""
    shutil.copy(REPO / "gateway.yaml", folder / "gateway.yaml")
    for name in ("routes.d", "plugins", "schemas"):
        shutil.copytree(REPO / name, folder / name)
    (folder / "routes.d" / "browser.yaml").write_text(BROWSER_ROUTES)
    return folder


@asynccontextmanager
async def gateway_cli(folder: Path, env: Mapping[str, str], log_path: Path) -> AsyncIterator[str]:
    """The URL of `gateway serve` on a free port, with `GATEWAY_PUBLIC_URL` set to it: the
    documents' servers[0].url, which Try it out calls."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    log = log_path.open("w")
    process = subprocess.Popen(
        [GATEWAY_BIN, "serve", "--config-dir", str(folder), "--port", str(port), "--no-watch"],
        env={**env, "GATEWAY_PUBLIC_URL": url},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        await wait_until_answering(process, url, log_path)
        yield url
    finally:
        await stop(process)
        log.close()
    assert process.returncode == 0, log_path.read_text()[-2000:]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The gateway on the shipped config; its OAuth client is `gpt-client`, its user ann."""
    require_chromium()
    folder = shipped_config(tmp_path_factory.mktemp("config"))
    env = {
        **CLEAN_ENV,
        "OAUTH_CLIENT_ID": CLIENT_ID,
        "OAUTH_CLIENT_SECRET": GOOD_SECRET,
        "OMI_USERS": f"{USERNAME}:{PASSWORD}:uid_ann",
    }
    async with gateway_cli(folder, env, folder / "gateway.log") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrowserContext]:
    """One Chromium per module, on a fresh profile (user data dir)."""
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            await context.close()


def local(url: str) -> bool:
    """Whether ``url`` stays on 127.0.0.1: a data: URL is no request, and a blob: URL is
    its page origin's."""
    if url.startswith("data:"):
        return True
    return urlsplit(url.removeprefix("blob:")).hostname == LOOPBACK


@dataclass
class Tab:
    """A page, what it asked for, and what it complained about."""

    page: Page
    requests: list[str] = field(default_factory=list)
    off_host: list[str] = field(default_factory=list)
    """Requests for another host: answered by ``answers`` (else 599), never sent."""
    answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    """An off-host URL's prefix -> (status, body) the test answers it with."""
    redirects: dict[str, str] = field(default_factory=dict)
    """A URL the browser was redirected to -> the URL that redirected it."""
    errors: list[str] = field(default_factory=list)

    def left_loopback(self) -> list[str]:
        """The URLs asked of another host than 127.0.0.1 (each was cut at the edge), once
        each: with interception on, Chromium reports a redirect's target twice."""
        return sorted({url for url in self.requests if not local(url)})

    async def screenshot(self, folder: Path, name: str) -> Path:
        """A full-page screenshot in ``folder`` (and in `$BROWSER_SCREENSHOTS`, if set),
        printed (`pytest -rA` shows it)."""
        path = folder / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        copies = os.environ.get("BROWSER_SCREENSHOTS")
        if copies:
            Path(copies).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(copies) / path.name)
        print(f"screenshot: {path}")
        return path


@pytest_asyncio.fixture(loop_scope="module")
async def tab(browser: BrowserContext) -> AsyncIterator[Tab]:
    page = await browser.new_page()
    tab = Tab(page)

    def requested(request: Request) -> None:
        tab.requests.append(request.url)
        if request.redirected_from is not None:
            tab.redirects[request.url] = request.redirected_from.url

    async def edge(route: Route) -> None:
        url = route.request.url
        if local(url):
            await route.continue_()
            return
        tab.off_host.append(url)
        found = [answer for prefix, answer in tab.answers.items() if url.startswith(prefix)]
        status, body = found[0] if found else (599, "blocked by the test")
        await route.fulfill(status=status, body=body, content_type="text/plain")

    # On the context: the page's workers (Redoc's search) are watched and cut off too.
    browser.on("request", requested)
    await browser.route("**/*", edge)
    page.on("pageerror", lambda error: tab.errors.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            tab.errors.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    try:
        yield tab
    finally:
        await page.close()
        await browser.unroute("**/*", edge)
        browser.remove_listener("request", requested)


def operation_ids(document: Mapping[str, Any]) -> list[str]:
    """The operationIds of a document, read independently of the gateway's code."""
    return sorted(op["operationId"] for item in document["paths"].values() for op in item.values())
