"""The route table, and the checks that span every file: duplicate ids and paths, reserved
paths, webhook paths that a route also serves."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from gateway.compiler.collect import Compilation
from gateway.compiler.validation import PATH_PARAM
from gateway.snapshot import CompiledRoute, CompiledWebhook, PathNode, PatternRoute, RouteTable

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


class _Node:
    """A PathNode while the table is built."""

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.mixed: dict[str, tuple[re.Pattern[str], _Node]] = {}
        self.ends: list[PatternRoute] = []

    def child(self, segment: str) -> _Node:
        if "{" not in segment:
            return self.literal.setdefault(segment, _Node())
        if PATH_PARAM.fullmatch(segment):
            if self.param is None:
                self.param = _Node()
            return self.param
        shape = path_shape(segment)  # `{a}.json` and `{b}.json` are one segment
        if shape not in self.mixed:
            self.mixed[shape] = (re.compile(_regex(segment)), _Node())
        return self.mixed[shape][1]

    def frozen(self) -> PathNode:
        return PathNode(
            {segment: node.frozen() for segment, node in self.literal.items()},
            None if self.param is None else self.param.frozen(),
            tuple((regex, node.frozen()) for regex, node in self.mixed.values()),
            tuple(self.ends),
        )


def _regex(path: str) -> str:
    """A route path as a regex: each `{name}` one non-empty segment (or part of one)."""
    return PATH_PARAM.sub(r"(?P<\1>[^/]+)", re.escape(path).replace(r"\{", "{").replace(r"\}", "}"))


def build_table(routes: Iterable[CompiledRoute]) -> RouteTable:
    exact: dict[tuple[str, str], CompiledRoute] = {}
    root = _Node()
    patterns = []
    methods: dict[str, set[str]] = defaultdict(set)
    for order, route in enumerate(routes):
        if "{" in route.path:
            node = root
            for segment in route.path.split("/"):
                node = node.child(segment)
            found = PatternRoute(order, route.method, re.compile(_regex(route.path)), route)
            node.ends.append(found)
            patterns.append(found)
        else:
            exact[(route.method, route.path)] = route
            methods[route.path].add(route.method)
    frozen = {path: frozenset(found) for path, found in methods.items()}
    return RouteTable(exact, root.frozen(), frozen, tuple(patterns))


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
