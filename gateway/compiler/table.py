"""The route table, and the checks that span every file: duplicate ids and paths, reserved
paths, webhook paths that a route also serves."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from gateway.compiler.collect import Compilation
from gateway.compiler.validation import PATH_PARAM
from gateway.snapshot import CompiledRoute, CompiledWebhook, RouteTable

__all__ = [
    "RESERVED_PATHS",
    "RESERVED_PREFIXES",
    "build_table",
    "check_duplicates",
    "check_webhook_paths",
    "path_shape",
]

RESERVED_PATHS = frozenset(
    {"/", "/health", "/ready", "/openapi.json", "/openapi.yaml", "/docs", "/redoc"}
)
# `/chatgpt/oauth/`: the authorization server's aliases (the OMI server's URLs).
RESERVED_PREFIXES = (
    "/actions/",
    "/docs/",  # the docs pages' assets
    "/.well-known/",
    "/admin/",
    "/oauth/",
    "/chatgpt/oauth/",
    "/metrics",
    "/mcp",
    "/connections",  # users' connections to upstreams (gateway.serve.accounts)
)


def path_shape(path: str) -> str:
    """`/a/{id}` and `/a/{name}` are the same route path."""
    return PATH_PARAM.sub("{}", path)


def build_table(routes: Iterable[CompiledRoute]) -> RouteTable:
    exact: dict[tuple[str, str], CompiledRoute] = {}
    patterns = []
    methods: dict[str, set[str]] = defaultdict(set)
    for route in routes:
        if "{" in route.path:
            regex = PATH_PARAM.sub(
                r"(?P<\1>[^/]+)", re.escape(route.path).replace(r"\{", "{").replace(r"\}", "}")
            )
            patterns.append((route.method, re.compile(regex), route))
        else:
            exact[(route.method, route.path)] = route
            methods[route.path].add(route.method)
    frozen = {path: frozenset(found) for path, found in methods.items()}
    return RouteTable(exact, tuple(patterns), frozen)


def check_duplicates(run: Compilation) -> None:
    for item_id, places in run.seen_ids.items():
        first, first_path = places[0]
        for source, path in places[1:]:
            line, column = first.locate(first_path)
            run.error(
                source,
                path,
                f"route id `{item_id}` is already used at {first.name}:{line}:{column}",
            )
    for (method, _), served in run.seen_paths.items():
        first, first_path, first_id = served[0]
        for source, path, item_id in served[1:]:
            line, column = first.locate(first_path)
            run.error(
                source,
                path,
                f"{method} path of route `{item_id}` is already served by route `{first_id}` "
                f"at {first.name}:{line}:{column}",
            )


def check_webhook_paths(
    run: Compilation, webhooks: Iterable[CompiledWebhook], table: RouteTable
) -> None:
    """A webhook owns its path for every method (HEAD, 405s), so no route may share it."""
    for webhook in webhooks:
        if not table.allowed_methods(webhook.path):
            continue
        loaded = next(f for f in run.config.route_files if f.source.name == webhook.file)
        index = next(i for i, w in enumerate(loaded.content.webhooks) if w.id == webhook.id)
        run.error(
            loaded.source,
            f"$.webhooks[{index}].path",
            f"path `{webhook.path}` is also a route's path; give the webhook its own",
        )
