"""The docs pages over real HTTP (issue 12): /docs (Swagger UI) and /redoc for the merged
document and each profile, their headers (a Content-Security-Policy of this origin only),
and their pinned assets (content types, cached for a year, ETag, 304). tests/browser
renders them in Chromium."""

from __future__ import annotations

import re
from pathlib import Path

from selectolax.lexbor import LexborHTMLParser

from gateway.serve.docs_pages import docs_assets
from tests.conftest import REPO, GatewayFactory, write_config
from tests.unit.test_load_errors import errors_of

PROBLEM = "application/problem+json"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; worker-src blob:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
IMMUTABLE = "public, max-age=31536000, immutable"
PAGES = {  # kind -> (stylesheets, scripts) the page loads
    "docs": (["swagger-ui.css", "docs.css"], ["swagger-ui-bundle.js", "swagger-init.js"]),
    "redoc": (["docs.css"], ["redoc.standalone.js", "redoc-init.js"]),
}
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


async def test_every_page_loads_its_document_and_assets_from_here(
    gateway: GatewayFactory,
) -> None:
    base = f"/docs/assets/{docs_assets().version}"
    async with gateway(REPO, {}) as gw:
        profiles = sorted(gw.state.switch.current.profiles)
        async with gw.http.get(f"{gw.url}/") as r:
            index = await r.json()
        assert (index["openapi"], index["docs"], index["redoc"]) == (
            "/openapi.json",
            "/docs",
            "/redoc",
        )
        assert sorted(index["profiles"]) == profiles
        for prefix in ["", *(f"/actions/{name}" for name in profiles)]:
            for kind, (sheets, scripts) in PAGES.items():
                async with gw.http.get(f"{gw.url}{prefix}/{kind}") as r:
                    assert r.status == 200, prefix
                    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
                    assert r.headers["Content-Security-Policy"] == CSP
                    assert r.headers["X-Content-Type-Options"] == "nosniff"
                    text = await r.text()
                tree = LexborHTMLParser(text)
                assert [s.attributes["href"] for s in tree.css("link[rel=stylesheet]")] == [
                    f"{base}/{sheet}" for sheet in sheets
                ]
                assert [s.attributes.get("src") for s in tree.css("script")] == [
                    f"{base}/{script}" for script in scripts
                ]  # no inline script
                assert [s.text() for s in tree.css("script")] == ["", ""]
                (root,) = tree.css("[data-openapi-url]")
                assert root.attributes["data-openapi-url"] == f"{prefix}/openapi.json"
                assert not re.search(r"https?://", text), "no URL off this origin"


async def test_an_unknown_profile_is_the_profile_documents_404(gateway: GatewayFactory) -> None:
    async with gateway(REPO, {}) as gw:
        answers = []
        for path in ("openapi.json", "docs", "redoc"):
            async with gw.http.get(f"{gw.url}/actions/nope/{path}") as r:
                answers.append((r.status, r.content_type, (await r.json())["detail"]))
    known = ", ".join(sorted(gw.state.switch.current.profiles))
    assert answers == [(404, PROBLEM, f"no action profile `nope` (known: {known})")] * 3


async def test_the_title_is_escaped(gateway: GatewayFactory, tmp_path: Path) -> None:
    title = "</title><script>alert(1)</script>"
    folder = write_config(tmp_path, f"info: {{title: {title!r}}}\n", {})
    async with gateway(folder, {}) as gw:
        for kind in PAGES:
            async with gw.http.get(f"{gw.url}/{kind}") as r:
                text = await r.text()
            assert "<script>alert" not in text
            assert LexborHTMLParser(text).css_first("title").text().startswith(title)


async def test_the_assets_are_cached_for_a_year_and_revalidated(gateway: GatewayFactory) -> None:
    assets = docs_assets()
    names = sorted({name for sheets, scripts in PAGES.values() for name in sheets + scripts})
    assert names == sorted(assets.files)
    async with gateway(REPO, {}) as gw:
        for name in names:
            url = f"{gw.url}{assets.base}/{name}"
            async with gw.http.get(url) as r:
                assert r.status == 200, name
                body = await r.read()
                assert r.headers["Content-Type"] == CONTENT_TYPES[Path(name).suffix]
                assert r.headers["Cache-Control"] == IMMUTABLE
                assert r.headers["Content-Length"] == str(len(body))
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                etag = r.headers["ETag"]
            assert body == assets.files[name].body
            assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
            async with gw.http.get(url, headers={"If-None-Match": etag}) as r:
                assert (r.status, await r.read(), r.headers["ETag"]) == (304, b"", etag)
        for wrong in (f"/docs/assets/0123456789ab/{names[0]}", f"{assets.base}/nope.js"):
            async with gw.http.get(f"{gw.url}{wrong}") as r:
                assert (r.status, r.content_type) == (404, PROBLEM)
                detail = (await r.json())["detail"]
            shown = wrong.removeprefix("/docs/assets/")
            assert detail == f"no docs asset `{shown}` (the pages load {assets.base}/...)"


def test_routes_cannot_take_the_docs_paths(tmp_path: Path) -> None:
    for path in ("/redoc", "/docs", "/docs/assets/x/y.js"):
        route = f"routes:\n  - {{id: one, path: {path}, static: true, response: {{body: '1'}}}}\n"
        assert errors_of(tmp_path / path.replace("/", "_"), {"a": route}) == [
            f"routes.d/a.yaml:2:21: path `{path}` is reserved by the gateway - at `$.routes[0].path`"
        ]
