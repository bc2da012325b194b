"""Compiled routes, one small type per kind, and the table that finds them.

A route compiles into a :class:`ProxyRoute` (call an upstream), a :class:`StaticRoute`
(answer from a template) or a :class:`PluginRoute` (run a handler). What every kind shares
(auth, validators, limits, the answer's cap) is in :class:`RouteCommon`. The serving layer
picks the handler by the route's type; there are no nullable kind flags.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.snapshot.plugins import PluginTarget
from gateway.snapshot.templates import CompiledTemplate
from gateway.snapshot.upstreams import UpstreamBinding
from gateway.snapshot.validation import BodyValidator, ParamValidator

__all__ = [
    "CompiledRoute",
    "InboundAuthSpec",
    "PathNode",
    "PatternRoute",
    "PluginRoute",
    "ProxyRoute",
    "RateLimitSpec",
    "ResponseShape",
    "RouteCommon",
    "RouteMatch",
    "RouteTable",
    "StaticRoute",
    "UpstreamCall",
]


@dataclass(frozen=True, slots=True)
class InboundAuthSpec:
    """How a caller proves itself: `api_key` (keys in a header or query), `bearer_passthrough`
    or `oauth` (tokens of the gateway's authorization server)."""

    id: str
    type: str
    keys: tuple[bytes, ...] = ()
    header: str | None = None
    query: str | None = None
    jwt_only: bool = False
    users: tuple[str | None, ...] = ()
    """For api_key: the user each key (same position) stands for, or None."""
    unconfigured: str | None = None
    """The 503 message while a secret of this scheme is unset (its keys)."""


@dataclass(frozen=True, slots=True)
class RateLimitSpec:
    """A compiled limit: budget, period, whose budget (`scope`), and how callers are told apart."""

    limit: int
    period: float
    scope: str
    key: str
    """`ip`, `api_key`, `bearer` or `template`."""
    template: CompiledTemplate | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteCommon:
    """What every route kind has: where it is declared, who may call it, what it accepts."""

    id: str
    method: str
    path: str
    file: str
    line: int
    auth: InboundAuthSpec | None
    """The first scheme the route accepts (None: anyone may call)."""
    scopes: tuple[str, ...] = ()
    """OAuth scopes a token needs (routes with an `oauth` scheme)."""
    accepts: tuple[InboundAuthSpec, ...] = ()
    """Every scheme that opens the route, in the declared order (`auth` first)."""
    query_validator: ParamValidator
    path_validator: ParamValidator
    body: BodyValidator | None
    rate_limit: RateLimitSpec | None
    response_status: int | None
    max_chars: int
    unconfigured: str | None
    """The 503 message when a secret this route needs is not set."""
    error_body: CompiledTemplate | None = None
    """Renders this route's error answers from the problem's fields (None: problem+json)."""

    @property
    def auth_text(self) -> str:
        """The schemes that open the route, comma-separated (`none`: anyone)."""
        return ",".join(spec.id for spec in self.accepts) or "none"

    @property
    def status_text(self) -> str:
        return "ok" if self.unconfigured is None else f"unconfigured: {self.unconfigured}"


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """The upstream request, as templates over the validated request."""

    method: str
    path: CompiledTemplate
    query: Mapping[str, CompiledTemplate] | None
    """None: the validated query is passed on as it is."""
    headers: Mapping[str, CompiledTemplate]
    body: CompiledTemplate | None
    """None: the caller's body is passed on as it is."""


@dataclass(frozen=True, slots=True)
class ResponseShape:
    """What is done to a 2xx upstream answer: error detection and a body template."""

    body: CompiledTemplate | None
    fail_when: CompiledTemplate | None
    fail_message: CompiledTemplate | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyRoute(RouteCommon):
    """Call ``upstream`` with ``call``; shape its answer when ``shape`` says so."""

    upstream: UpstreamBinding
    call: UpstreamCall
    timeout: float
    shape: ResponseShape | None
    """None: the upstream's answer is passed on (capped), never parsed."""
    pass_statuses: frozenset[int] = frozenset()
    """Upstream error statuses answered as themselves (401/403 as 401), not as 502."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticRoute(RouteCommon):
    """Answer from ``answer``, a template over the request; no upstream is called."""

    answer: CompiledTemplate


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginRoute(RouteCommon):
    """Run ``plugin`` with clients for ``clients``."""

    plugin: PluginTarget
    clients: Mapping[str, UpstreamBinding]


CompiledRoute = ProxyRoute | StaticRoute | PluginRoute


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: CompiledRoute
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class PatternRoute:
    """A parameterised route: where it was declared (the first match wins), its path's
    regex (which gives the parameters once it is chosen) and the route."""

    order: int
    method: str
    pattern: re.Pattern[str]
    route: CompiledRoute


@dataclass(frozen=True, slots=True)
class PathNode:
    """One path segment of the parameterised routes: a trie, so that finding a route
    costs the path's length, not the number of routes."""

    literal: Mapping[str, PathNode]
    """Segments written out: `items` of `/items/{id}`."""
    param: PathNode | None
    """A whole segment that is one parameter, `{id}`: any non-empty segment."""
    mixed: tuple[tuple[re.Pattern[str], PathNode], ...]
    """Segments with text and parameters, `{name}.json`: tried by their regex."""
    ends: tuple[PatternRoute, ...]
    """The routes whose path ends here."""

    def candidates(self, segments: list[str], at: int, found: list[PatternRoute]) -> None:
        """Every route whose path matches ``segments[at:]`` from this node."""
        if at == len(segments):
            found.extend(self.ends)
            return
        segment = segments[at]
        child = self.literal.get(segment)
        if child is not None:
            child.candidates(segments, at + 1, found)
        if self.param is not None and segment:
            self.param.candidates(segments, at + 1, found)
        for regex, node in self.mixed:
            if regex.fullmatch(segment):
                node.candidates(segments, at + 1, found)


SCAN_AT_MOST = 12
"""Up to this many parameterised routes, trying each regex is faster than the trie."""


@dataclass(frozen=True)
class RouteTable:
    """Exact paths in a dict; parameterised ones in a trie of segments, the first declared
    of those that match winning (as if tried in declaration order). A few are just tried
    in order."""

    exact: Mapping[tuple[str, str], CompiledRoute]
    tree: PathNode
    methods_by_path: Mapping[str, frozenset[str]]
    patterns: tuple[PatternRoute, ...]
    """In declaration order; scanned when there are at most SCAN_AT_MOST."""

    def match(self, method: str, path: str) -> RouteMatch | None:
        route = self.exact.get((method, path))
        if route is not None:
            return RouteMatch(route, {})
        if len(self.patterns) <= SCAN_AT_MOST:
            for candidate in self.patterns:
                if candidate.method == method:
                    matched = candidate.pattern.fullmatch(path)
                    if matched:
                        return RouteMatch(candidate.route, matched.groupdict())
            return None
        found: list[PatternRoute] = []
        self.tree.candidates(path.split("/"), 0, found)
        best = None
        for candidate in found:
            if candidate.method == method and (best is None or candidate.order < best.order):
                best = candidate
        if best is None:
            return None
        matched = best.pattern.fullmatch(path)
        return RouteMatch(best.route, matched.groupdict() if matched else {})

    def allowed_methods(self, path: str) -> frozenset[str]:
        """Methods some route declares for ``path`` (for 405 and CORS preflight)."""
        methods = set(self.methods_by_path.get(path, ()))
        found: list[PatternRoute] = []
        self.tree.candidates(path.split("/"), 0, found)
        methods.update(candidate.method for candidate in found)
        return frozenset(methods)
