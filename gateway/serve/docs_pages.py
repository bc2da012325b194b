"""The human pages, offline: Swagger UI at `/docs` and Redoc at `/redoc` for the merged
document, and at `/actions/{profile}/docs` and `/actions/{profile}/redoc` for each profile.

Their scripts and styles are pinned copies shipped in the package (``assets/``, see its
README.md), read once and served at ``/docs/assets/<version>/<name>``: ``<version>`` is a
hash of all of them, so they are cached for a year and never stale. A page holds no inline
script (a same-origin init file reads the document's URL from a data attribute), and its
Content-Security-Policy lets it load from and talk to this origin only.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
from litestar import MediaType, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from gateway.serve.switch import Switch
from gateway.snapshot import Snapshot

__all__ = ["ASSET_CACHE", "PAGE_CSP", "DocsAssets", "docs_assets", "docs_handlers"]

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; worker-src blob:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""Scripts, styles, images and calls (Try it out) of this origin only. Inline styles: both
UIs set style attributes; Redoc's search runs in a worker made from a blob."""
ASSET_CACHE = "public, max-age=31536000, immutable"
_JS = "text/javascript"  # Litestar adds `; charset=utf-8` to text/ types
_CSS = "text/css"
_FILES = {  # served name -> (file under assets/, content type)
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", _JS),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", _CSS),
    "redoc.standalone.js": ("redoc/redoc.standalone.js", _JS),
    "swagger-init.js": ("swagger-init.js", _JS),
    "redoc-init.js": ("redoc-init.js", _JS),
    "docs.css": ("docs.css", _CSS),
}
_OFFLINE = {
    # Redoc's sidebar shows "API docs by Redocly" with a logo from its CDN; an empty src
    # fails at once, and Redoc then leaves the logo out.
    "redoc.standalone.js": (b'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"', b'src:""'),
}

_ENV = jinja2.Environment(autoescape=True)
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} - {{ kind }}</title>
<link rel="icon" href="data:,">
{% for sheet in sheets %}<link rel="stylesheet" href="{{ assets }}/{{ sheet }}">
{% endfor %}</head>
<body>
<noscript><p>This page needs JavaScript. The document itself is
<a href="{{ document }}">{{ document }}</a>.</p></noscript>
<div id="{{ root }}" data-openapi-url="{{ document }}"></div>
{% for script in scripts %}<script src="{{ assets }}/{{ script }}"></script>
{% endfor %}</body></html>
"""
_PAGES = {
    "swagger": {
        "kind": "API docs",
        "root": "swagger-ui",
        "sheets": ["swagger-ui.css", "docs.css"],
        "scripts": ["swagger-ui-bundle.js", "swagger-init.js"],
    },
    "redoc": {
        "kind": "Redoc",
        "root": "redoc",
        "sheets": ["docs.css"],
        "scripts": ["redoc.standalone.js", "redoc-init.js"],
    },
}
_TEMPLATE = _ENV.from_string(_PAGE)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


@dataclass(frozen=True, slots=True)
class DocsAssets:
    """The served files by name, and the version that names them all in URLs."""

    files: Mapping[str, Asset]
    version: str

    @property
    def base(self) -> str:
        """The URL folder the pages load them from."""
        return f"/docs/assets/{self.version}"


@functools.cache
def docs_assets() -> DocsAssets:
    """The assets, read once per process."""
    folder = resources.files("gateway.serve") / "assets"
    files: dict[str, Asset] = {}
    version = hashlib.sha256()
    for name, (path, content_type) in _FILES.items():
        body = (folder / path).read_bytes()
        if name in _OFFLINE:
            body = body.replace(*_OFFLINE[name])
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        files[name] = Asset(body, content_type, etag)
        version.update(f"{name}\0{etag}\0".encode())
    return DocsAssets(files, version.hexdigest()[:12])


def docs_handlers(
    switch: Switch, profile_of: Callable[[Snapshot, str], str]
) -> list[HTTPRouteHandler]:
    """The pages and their assets; ``profile_of`` answers an unknown profile (a 404, as the
    profile documents do)."""
    assets = docs_assets()

    def render(kind: str, document: Mapping[str, Any], prefix: str = "") -> Response[str]:
        html = _TEMPLATE.render(
            title=document.get("info", {}).get("title", "API"),
            document=f"{prefix}/openapi.json",
            assets=assets.base,
            **_PAGES[kind],
        )
        return Response(
            html,
            media_type=MediaType.HTML,
            headers={
                "Content-Security-Policy": PAGE_CSP,
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    def profile_page(kind: str, profile: str) -> Response[str]:
        snapshot = switch.current
        name = profile_of(snapshot, profile)
        return render(kind, snapshot.profiles[name], f"/actions/{name}")

    @get("/docs", sync_to_thread=False)
    def swagger() -> Response[str]:
        return render("swagger", switch.current.openapi)

    @get("/redoc", sync_to_thread=False)
    def redoc() -> Response[str]:
        return render("redoc", switch.current.openapi)

    @get("/actions/{profile:str}/docs", sync_to_thread=False)
    def profile_swagger(profile: FromPath[str]) -> Response[str]:
        return profile_page("swagger", profile)

    @get("/actions/{profile:str}/redoc", sync_to_thread=False)
    def profile_redoc(profile: FromPath[str]) -> Response[str]:
        return profile_page("redoc", profile)

    @get("/docs/assets/{version:str}/{name:str}", sync_to_thread=False)
    def asset(
        request: Request[Any, Any, Any], version: FromPath[str], name: FromPath[str]
    ) -> Response[bytes]:
        found = assets.files.get(name) if version == assets.version else None
        if found is None:
            raise NotFoundException(
                f"no docs asset `{version}/{name}` (the pages load {assets.base}/...)"
            )
        headers = {"Cache-Control": ASSET_CACHE, "ETag": found.etag}
        if request.headers.get("if-none-match") == found.etag:
            return Response(b"", status_code=304, headers=headers)
        headers["X-Content-Type-Options"] = "nosniff"
        return Response(found.body, media_type=found.content_type, headers=headers)

    return [swagger, redoc, profile_swagger, profile_redoc, asset]
