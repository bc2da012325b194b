"""One compiled configuration generation: what the serving layer reads.

A snapshot never holds raw YAML and is never mutated; a reload builds a new one and swaps it.
Long-lived resources (upstream clients, the store) are not in it: only their settings, by
which the serving layer finds the pooled ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from litestar.config.cors import CORSConfig

from gateway.snapshot.events import CompiledSchedule, CompiledWebhook, QueueSpec
from gateway.snapshot.mcp import McpToolset
from gateway.snapshot.oauth import OAuthSpec
from gateway.snapshot.routes import CompiledRoute, InboundAuthSpec, RouteTable
from gateway.snapshot.upstreams import ConnectableAuth, UpstreamSettings

__all__ = ["LintIssue", "Snapshot", "StartupSettings", "ThrottleLimits"]


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
class ThrottleLimits:
    """Failed credential checks allowed per client IP and per credential, per window."""

    failures: int
    window: float


@dataclass(frozen=True, slots=True)
class StartupSettings:
    """Settings read once, when the process opens its resources; a reload that changes
    them is logged as "restart to apply" (see ``changed``)."""

    store_url: str
    store_namespace: str
    dead_letters: int
    memory_limit: int
    consume: bool
    idle_timeout: float
    header_timeout: float
    drain: float
    shutdown_timeout: float

    def changed(self, other: StartupSettings) -> list[str]:
        """The config names of the settings that differ from ``other``."""
        names = {
            "store.url": (self.store_url, other.store_url),
            "store.namespace": (self.store_namespace, other.store_namespace),
            "queue.dead_letters": (self.dead_letters, other.dead_letters),
            "queue.memory_limit": (self.memory_limit, other.memory_limit),
            "queue.consume": (self.consume, other.consume),
            "server.idle_timeout": (self.idle_timeout, other.idle_timeout),
            "server.header_timeout": (self.header_timeout, other.header_timeout),
            "server.drain": (self.drain, other.drain),
            "server.shutdown_timeout": (self.shutdown_timeout, other.shutdown_timeout),
        }
        return [name for name, (mine, theirs) in names.items() if mine != theirs]


@dataclass(frozen=True)
class MetricsAccess:
    """Who may scrape /metrics (besides the admin keys)."""

    keys: tuple[bytes, ...] = field(default=(), repr=False)
    """Accepted as `Authorization: Bearer <key>`."""
    public: bool = False
    """Anyone may scrape."""


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
    max_json_depth: int
    max_header_bytes: int
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...]
    """Peers whose forwarding headers are believed (server.trusted_proxies)."""
    failed_auth: ThrottleLimits
    upstreams: Mapping[str, UpstreamSettings]
    unconfigured: Mapping[str, str]
    """Route id -> the 503 message, for every route missing a secret."""
    startup: StartupSettings
    admin: InboundAuthSpec
    """Who may call /admin/*: an api_key spec (no keys: the admin API is off)."""
    metrics: MetricsAccess
    route_hashes: Mapping[str, str]
    """Route id -> hash of everything that shapes it (its file's upstream included)."""
    queue: QueueSpec
    webhooks: Mapping[str, CompiledWebhook] = field(default_factory=dict)
    """By id."""
    webhook_paths: Mapping[str, CompiledWebhook] = field(default_factory=dict)
    """By path (webhook paths are exact)."""
    schedules: tuple[CompiledSchedule, ...] = ()
    oauth: OAuthSpec | None = None
    secrets: frozenset[str] = field(repr=False, default=frozenset())
    connections: Mapping[str, ConnectableAuth] = field(default_factory=dict)
    """Upstream name -> how a user connects it (`user_token`, `oauth2_authorization_code`),
    in declaration order: what /connections lists."""
    unconfigured_connections: Mapping[str, str] = field(default_factory=dict)
    """Upstream name -> why users cannot connect it yet (a secret unset, no encryption
    key)."""
    mcp: Mapping[str | None, McpToolset] = field(default_factory=dict)
    """The tools of `/mcp` (key None) and of `/mcp/<profile>`."""
    warnings: tuple[str, ...] = ()
    """What the configuration leaves open, said once at start and by `gateway check`."""
    scope_connections: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """OAuth scope -> the connectable upstreams its routes call (shown on the consent
    page)."""

    @property
    def store_url(self) -> str:
        return self.startup.store_url

    @property
    def store_namespace(self) -> str:
        return self.startup.store_namespace

    def redact(self, text: str) -> str:
        """``text`` with every configured secret replaced by `***`."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text
