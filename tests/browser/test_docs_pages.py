"""/docs (Swagger UI) and /redoc, merged and per profile, render every operation of their
document in headless Chromium from the gateway's own assets, with no request leaving
127.0.0.1; Try it out calls the gateway and shows the real answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.browser.conftest import Tab, operation_ids

pytestmark = pytest.mark.asyncio(loop_scope="module")
PROFILE = "ambivo"
RENDERED = 20_000  # ms: how long a page may take to render its operations


async def document(site: str, prefix: str = "") -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{site}{prefix}/openapi.json") as r:
        assert r.status == 200
        found: dict[str, Any] = await r.json()
        return found


async def swagger_operations(tab: Tab) -> list[str]:
    """The operationIds Swagger UI shows, one per operation block."""
    await tab.page.wait_for_selector(".opblock .opblock-summary-operation-id", timeout=RENDERED)
    shown = await tab.page.locator(".opblock .opblock-summary-operation-id").all_inner_texts()
    return sorted(shown)


async def redoc_operations(tab: Tab) -> list[str]:
    """The operationIds Redoc renders, one section per operation (`tag/T/operation/ID`)."""
    sections = tab.page.locator('[data-section-id*="/operation/"]')
    await sections.first.wait_for(timeout=RENDERED)
    ids = [await s.get_attribute("data-section-id") or "" for s in await sections.all()]
    return sorted(section.rpartition("/operation/")[2] for section in ids)


async def test_docs_renders_every_operation_and_try_it_out_calls_the_gateway(
    site: str, tab: Tab, tmp_path: Path
) -> None:
    merged = await document(site)
    assert "browserPing" in operation_ids(merged)
    await tab.page.goto(f"{site}/docs")
    assert await tab.page.title() == "Integration Gateway - API docs"
    assert await swagger_operations(tab) == operation_ids(merged)
    # The server Try it out calls: servers[0].url, this gateway (GATEWAY_PUBLIC_URL).
    assert merged["servers"] == [{"url": site}]
    assert await tab.page.locator(".servers select").input_value() == site

    block = tab.page.locator("#operations-browser-browserPing")
    await block.locator(".opblock-summary").click()
    await block.locator("button.execute").click()  # tryItOutEnabled: no "Try it out" first
    status = block.locator(".live-responses-table .response .response-col_status")
    await status.wait_for(timeout=RENDERED)
    assert (await status.inner_text()).strip() == "200"
    body = block.locator(".live-responses-table tbody .response-col_description").first
    assert '"pong": true' in await body.inner_text()
    assert f"{site}/browser/ping" in tab.requests

    await tab.screenshot(tmp_path, "docs")
    assert tab.left_loopback() == []
    assert tab.errors == []


async def test_redoc_renders_every_operation(site: str, tab: Tab, tmp_path: Path) -> None:
    merged = await document(site)
    await tab.page.goto(f"{site}/redoc")
    assert await tab.page.title() == "Integration Gateway - Redoc"
    assert await redoc_operations(tab) == operation_ids(merged)
    await tab.screenshot(tmp_path, "redoc")
    assert tab.left_loopback() == []
    assert tab.errors == []


async def test_a_profiles_pages_render_exactly_its_operations(
    site: str, tab: Tab, tmp_path: Path
) -> None:
    merged, profile = await document(site), await document(site, f"/actions/{PROFILE}")
    expected = operation_ids(profile)
    assert expected == ["execute_natural_query", "listTools", "naturalQuery", "runTool"]
    assert set(expected) < set(operation_ids(merged))

    await tab.page.goto(f"{site}/actions/{PROFILE}/docs")
    assert await swagger_operations(tab) == expected
    assert f"{site}/actions/{PROFILE}/openapi.json" in tab.requests
    await tab.screenshot(tmp_path, f"{PROFILE}-docs")

    await tab.page.goto(f"{site}/actions/{PROFILE}/redoc")
    assert await redoc_operations(tab) == expected
    await tab.screenshot(tmp_path, f"{PROFILE}-redoc")
    assert f"{site}/openapi.json" not in tab.requests
    assert tab.left_loopback() == []
    assert tab.errors == []
