"""The compiled, immutable form of one configuration: what the serving layer reads.

A snapshot never holds raw YAML and is never mutated; a reload builds a new one and swaps it.
Long-lived resources (upstream clients) are not in it: only their settings, by which the
serving layer finds the pooled client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jsonschema
from litestar.config.cors import CORSConfig

from gateway.compiler.templates import CompiledTemplate
from gateway.compiler.validation import ParamValidator

if TYPE_CHECKING:
    from gateway.compiler.plugins import PluginTarget

__all__ = [
    "CompiledRoute",
    "CompiledSchedule",
    "CompiledWebhook",
    "HmacSpec",
    "InboundAuthSpec",
    "LintIssue",
    "OAuth2ClientSpec",
    "OAuthClientSpec",
    "OAuthSpec",
    "PluginUpstream",
    "QueueSpec",
    "RateLimitSpec",
    "RouteTable",
    "Snapshot",
    "UpstreamSettings",
]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """What one pooled upstream client is built from; equal settings share one client."""

    name: str
    base_url: str
    timeout: float
    connect_timeout: float
    max_connections: int


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int
    on_status: frozenset[int]
    backoff: float


@dataclass(frozen=True, slots=True)
class RateLimitSpec:
    """A compiled limit: budget, period, whose budget (`scope`), and how callers are told apart."""

    limit: int
    period: float
    scope: str
    key: str
    """`ip`, `api_key`, `bearer` or `template`."""
    template: CompiledTemplate | None = None


@dataclass(frozen=True, slots=True)
class InboundAuthSpec:
    """How a caller proves itself: `api_key` (keys in a header or query) or `bearer_passthrough`."""

    id: str
    type: str
    keys: tuple[bytes, ...] = ()
    header: str | None = None
    query: str | None = None
    jwt_only: bool = False
    users: tuple[str | None, ...] = ()
    """For api_key: the user each key (same position) stands for, or None."""


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """Everything needed to serve one route, resolved and compiled."""

    id: str
    method: str
    path: str
    file: str
    line: int
    upstream_name: str | None
    upstream: UpstreamSettings | None
    auth: InboundAuthSpec | None
    query_validator: ParamValidator
    path_validator: ParamValidator
    body_validator: jsonschema.protocols.Validator | None
    body_required: bool
    static: bool
    upstream_method: str
    upstream_path: CompiledTemplate
    upstream_query: Mapping[str, CompiledTemplate] | None
    upstream_headers: Mapping[str, CompiledTemplate]
    upstream_body: CompiledTemplate | None
    static_headers: Mapping[str, str]
    passthrough_header: str | None
    response_body: CompiledTemplate | None
    response_status: int | None
    fail_when: CompiledTemplate | None
    fail_message: CompiledTemplate | None
    max_chars: int
    timeout: float
    retry: RetryPolicy
    unconfigured: str | None
    """The 503 message when a secret this route needs is not set."""
    rate_limit: RateLimitSpec | None = None
    scopes: tuple[str, ...] = ()
    """OAuth scopes a token needs (routes with an `oauth` scheme)."""
    oauth2: OAuth2ClientSpec | None = None
    """The upstream's user token is added to every call (`oauth2_authorization_code`)."""
    plugin: PluginTarget | None = None
    plugin_clients: Mapping[str, PluginUpstream] = field(default_factory=dict)

    @property
    def needs_json(self) -> bool:
        """Whether the upstream answer must be parsed (shaping or error detection)."""
        return self.response_body is not None or self.fail_when is not None

    @property
    def status_text(self) -> str:
        return "ok" if self.unconfigured is None else f"unconfigured: {self.unconfigured}"


@dataclass(frozen=True, slots=True)
class OAuth2ClientSpec:
    """The gateway as an OAuth 2 client of one upstream (authorization code + refresh)."""

    upstream: str
    client_id: str
    client_secret: str = field(repr=False)
    authorize_url: str
    token_url: str
    redirect_uri: str
    scopes: tuple[str, ...]
    authorize_params: Mapping[str, str]
    refresh_margin: float


@dataclass(frozen=True, slots=True)
class PluginUpstream:
    """An upstream a plugin may call, with what every call to it carries."""

    settings: UpstreamSettings
    static_headers: Mapping[str, str]
    retry: RetryPolicy
    oauth2: OAuth2ClientSpec | None = None


@dataclass(frozen=True, slots=True)
class HmacSpec:
    """How a webhook's signature is checked (see HmacVerify in the config model)."""

    header: str
    algorithm: str
    prefix: str
    encoding: str
    secrets: tuple[bytes, ...]
    timestamp_header: str | None
    tolerance: float
    signed: bytes
    """The signed content with `{body}` and `{timestamp}` placeholders."""


@dataclass(frozen=True, slots=True)
class CompiledWebhook:
    """Everything needed to receive one webhook and to run its handler from the queue."""

    id: str
    method: str
    path: str
    file: str
    line: int
    hmac: HmacSpec | None
    query_validator: ParamValidator
    head: bool
    ping_when: CompiledTemplate | None
    ping_body: CompiledTemplate | None
    dedupe_key: CompiledTemplate | None
    response_status: int
    response_body: CompiledTemplate | None
    attempts: int
    backoff: tuple[float, ...]
    plugin: PluginTarget | None
    plugin_clients: Mapping[str, PluginUpstream]
    unconfigured: str | None

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (2 = the first retry)."""
        if not self.backoff:
            return 0.0
        return self.backoff[min(attempt - 2, len(self.backoff) - 1)]


@dataclass(frozen=True, slots=True)
class CompiledSchedule:
    id: str
    every: float
    enabled: bool
    plugin: PluginTarget | None
    plugin_clients: Mapping[str, PluginUpstream]
    unconfigured: str | None


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: CompiledRoute
    params: dict[str, str]


@dataclass(frozen=True)
class RouteTable:
    """Exact paths in a dict; parameterised ones tried in declaration order."""

    exact: Mapping[tuple[str, str], CompiledRoute]
    patterns: tuple[tuple[str, re.Pattern[str], CompiledRoute], ...]
    methods_by_path: Mapping[str, frozenset[str]]

    def match(self, method: str, path: str) -> RouteMatch | None:
        route = self.exact.get((method, path))
        if route is not None:
            return RouteMatch(route, {})
        for route_method, pattern, candidate in self.patterns:
            if route_method == method:
                found = pattern.fullmatch(path)
                if found:
                    return RouteMatch(candidate, found.groupdict())
        return None

    def allowed_methods(self, path: str) -> frozenset[str]:
        """Methods some route declares for ``path`` (for 405 and CORS preflight)."""
        methods = set(self.methods_by_path.get(path, ()))
        for method, pattern, _ in self.patterns:
            if pattern.fullmatch(path):
                methods.add(method)
        return frozenset(methods)


@dataclass(frozen=True, slots=True)
class LintIssue:
    """One ChatGPT Action rule a document breaks; ``level`` is `error` or `warning`."""

    level: str
    document: str
    message: str
    file: str = ""
    line: int = 0

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file else ""
        return f"{where}{self.level}: [{self.document}] {self.message}"


@dataclass(frozen=True, slots=True)
class OAuthClientSpec:
    id: str
    client_id: str
    """Empty: generated at the first start and kept in the store."""
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]

    def allows_redirect(self, uri: str) -> bool:
        return any(_redirect_pattern(allowed).fullmatch(uri) for allowed in self.redirect_uris)


def _redirect_pattern(allowed: str) -> re.Pattern[str]:
    """`*` matches one path segment; everything else literally."""
    return re.compile("[^/?#]+".join(re.escape(part) for part in allowed.split("*")))


@dataclass(frozen=True, slots=True)
class OAuthSpec:
    """The authorization server's settings (gateway.yaml `oauth:`)."""

    issuer: str
    clients: tuple[OAuthClientSpec, ...]
    scopes: Mapping[str, str]
    users: Mapping[str, tuple[str, str]] = field(repr=False)
    """username -> (password, user id)."""
    login: PluginTarget | None
    access_ttl: float
    refresh_ttl: float
    code_ttl: float


@dataclass(frozen=True, slots=True)
class QueueSpec:
    concurrency: int = 16
    visibility_timeout: float = 30.0
    dedupe_ttl: float = 7 * 86400.0
    dead_letters: int = 10_000
    consume: bool = True


@dataclass(frozen=True)
class Snapshot:
    """One compiled configuration generation."""

    version: str
    routes: tuple[CompiledRoute, ...]
    table: RouteTable
    openapi: Mapping[str, Any]
    profiles: Mapping[str, Mapping[str, Any]]
    ai_plugin: Mapping[str, Any]
    lint: tuple[LintIssue, ...]
    cors: CORSConfig
    public_url: str
    access_log: bool
    max_body_bytes: int
    upstreams: Mapping[str, UpstreamSettings]
    unconfigured: Mapping[str, str]
    """Route id -> the 503 message, for every route missing a secret."""
    store_url: str
    store_namespace: str
    admin: InboundAuthSpec
    """Who may call /admin/*: an api_key spec (no keys: the admin API is off)."""
    route_hashes: Mapping[str, str]
    """Route id -> hash of everything that shapes it (its file's upstream included)."""
    webhooks: Mapping[str, CompiledWebhook] = field(default_factory=dict)
    """By id."""
    webhook_paths: Mapping[str, CompiledWebhook] = field(default_factory=dict)
    """By path (webhook paths are exact)."""
    schedules: tuple[CompiledSchedule, ...] = ()
    queue: QueueSpec = field(default_factory=lambda: QueueSpec())
    oauth: OAuthSpec | None = None
    secrets: frozenset[str] = field(repr=False, default=frozenset())

    def redact(self, text: str) -> str:
        """``text`` with every configured secret replaced by `***`."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text
