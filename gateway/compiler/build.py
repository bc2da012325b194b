"""compile_config(config) -> Snapshot: resolve, check and compile a loaded configuration.

Pure: no I/O. Each phase (schemas, inbound auth, upstreams, routes, webhooks and schedules,
the authorization server, the table, the documents) records its mistakes, each with its
file:line:col, in one collector; every phase runs, and one ConfigErrors at the end lists them
all. Nothing is partially compiled. Conditions that are not mistakes (a secret not set) are
recorded on the item, which then answers 503.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from collections.abc import Iterable

import msgspec
from authlib.common.security import is_secure_transport
from litestar.config.cors import CORSConfig

from gateway.compiler.collect import Compilation
from gateway.compiler.inbound import compile_admin, compile_auth, compile_metrics
from gateway.compiler.mcp import build_toolsets
from gateway.compiler.oauth import compile_oauth
from gateway.compiler.openapi import build_documents
from gateway.compiler.routes import compile_route
from gateway.compiler.schemas import compile_schemas
from gateway.compiler.table import build_table, check_duplicates, check_webhook_paths
from gateway.compiler.upstreams import compile_upstreams
from gateway.compiler.webhooks import compile_queue, compile_schedule, compile_webhook
from gateway.config.load import Config
from gateway.errors import ConfigErrors
from gateway.sealed import InvalidKey, Sealer, parse_keys, process_sealer
from gateway.snapshot import (
    CompiledRoute,
    CompiledSchedule,
    CompiledWebhook,
    InboundAuthSpec,
    MetricsAccess,
    OAuth2ClientSpec,
    OAuthSpec,
    PluginRoute,
    ProxyRoute,
    Snapshot,
    StartupSettings,
    ThrottleLimits,
    UserTokenSpec,
)
from gateway.snapshot.store_url import SCHEMES, StoreUrlError, url_kind

__all__ = ["DEFAULT_SERVED_AT", "compile_config"]

DEFAULT_SERVED_AT = "http://127.0.0.1:8080"
MCP_RESOURCE = "/mcp"
"""The path of the merged MCP endpoint (gateway.serve.mcp_paths serves it)."""
"""The public URL of a configuration without one, outside `gateway serve` (check, openapi)."""

STORE_SCHEMES = tuple(f"{scheme}://" for scheme in SCHEMES)
DEFAULT_FAILED_AUTH_WINDOW = 60.0
DEFAULT_IDLE_TIMEOUT = 5.0
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_DRAIN = 5.0
DEFAULT_SHUTDOWN_TIMEOUT = 25.0
MIN_SECRET_CHARS = 4  # shorter "secrets" would redact ordinary words


def compile_config(config: Config, served_at: str = DEFAULT_SERVED_AT) -> Snapshot:
    """Compile ``config`` into a Snapshot, or raise ConfigErrors listing every mistake.

    ``served_at``: where this process listens (`gateway serve --port`), the public URL the
    configuration does not set (OpenAPI servers, OAuth issuer, redirect URIs).
    """
    if not config.gateway.server.public_url.strip():
        config = _served_at(config, served_at)
    run = Compilation(config)
    gateway = config.gateway
    schemas = compile_schemas(run)
    schemes = compile_auth(run)
    sealer = _sealer(run)
    upstreams = compile_upstreams(run, sealer)
    routes: list[CompiledRoute] = []
    webhooks: list[CompiledWebhook] = []
    schedules: list[CompiledSchedule] = []
    for loaded in config.route_files:
        for index, route in enumerate(loaded.content.routes):
            compiled = compile_route(run, loaded, index, route, upstreams, schemes, schemas)
            if compiled is not None:
                routes.append(compiled)
    for loaded in config.route_files:
        for index, webhook in enumerate(loaded.content.webhooks):
            compiled_webhook = compile_webhook(run, loaded, index, webhook, upstreams)
            if compiled_webhook is not None:
                webhooks.append(compiled_webhook)
        for index, schedule in enumerate(loaded.content.schedules):
            compiled_schedule = compile_schedule(run, loaded, index, schedule, upstreams)
            if compiled_schedule is not None:
                schedules.append(compiled_schedule)
    oauth = compile_oauth(run)
    check_duplicates(run)
    table = build_table(routes)
    check_webhook_paths(run, webhooks, table)
    documents = build_documents(config, routes, schemas, schemes.specs)
    toolsets, tool_lint = build_toolsets(
        config, {route.id: route for route in routes}, documents.merged, documents.profiles
    )
    if oauth is not None:  # RFC 8707: the API itself, and each MCP endpoint
        endpoints = (MCP_RESOURCE if key is None else f"{MCP_RESOURCE}/{key}" for key in toolsets)
        resources = (oauth.issuer, *(oauth.issuer + path for path in endpoints))
        oauth = dataclasses.replace(oauth, resources=resources)
    connections = {
        name: upstream.connectable
        for name, upstream in upstreams.items()
        if upstream.connectable is not None
    }
    for message, path in documents.errors:
        run.error(run.gateway_source, path, message)
    try:
        url_kind(gateway.store.url)
    except StoreUrlError as exc:
        run.error(run.gateway_source, "$.store.url", str(exc))
    try:
        trusted_proxies = tuple(
            ipaddress.ip_network(value.strip(), strict=False)
            for value in gateway.server.trusted_proxies
        )
    except ValueError as exc:
        trusted_proxies = ()
        run.error(run.gateway_source, "$.server.trusted_proxies", f"not an address or CIDR: {exc}")
    if run.errors:  # the one raise: every phase has run
        raise ConfigErrors([error.redacted(config.interpolated) for error in run.errors])

    admin = compile_admin(run)
    metrics = compile_metrics(run)
    queue = compile_queue(run)
    cors = gateway.cors
    return Snapshot(
        version=_version(config),
        routes=tuple(routes),
        table=table,
        openapi=documents.merged,
        profiles=documents.profiles,
        ai_plugin=documents.ai_plugin,
        lint=(*documents.lint, *tool_lint),
        cors=CORSConfig(
            allow_origins=list(cors.allow_origins),
            allow_methods=list(cors.allow_methods),  # type: ignore[arg-type]
            allow_headers=list(cors.allow_headers),
            allow_credentials=cors.allow_credentials,
            expose_headers=list(cors.expose_headers),
            max_age=cors.max_age,
        ),
        public_url=gateway.server.public_url.rstrip("/"),
        access_log=gateway.server.access_log,
        max_body_bytes=gateway.server.max_body_bytes,
        max_json_depth=gateway.server.max_json_depth,
        max_header_bytes=gateway.server.max_header_bytes,
        trusted_proxies=trusted_proxies,
        failed_auth=ThrottleLimits(
            gateway.server.failed_auth_limit,
            gateway.server.failed_auth_window or DEFAULT_FAILED_AUTH_WINDOW,
        ),
        upstreams={name: upstream.settings for name, upstream in upstreams.items()},
        unconfigured={r.id: r.unconfigured for r in routes if r.unconfigured},
        startup=StartupSettings(
            store_url=gateway.store.url,
            store_namespace=gateway.store.namespace,
            dead_letters=queue.dead_letters,
            memory_limit=gateway.queue.memory_limit,
            consume=queue.consume,
            idle_timeout=gateway.server.idle_timeout or DEFAULT_IDLE_TIMEOUT,
            header_timeout=gateway.server.header_timeout or DEFAULT_HEADER_TIMEOUT,
            drain=DEFAULT_DRAIN if gateway.server.drain is None else gateway.server.drain,
            shutdown_timeout=gateway.server.shutdown_timeout or DEFAULT_SHUTDOWN_TIMEOUT,
        ),
        admin=admin,
        metrics=metrics,
        route_hashes=_route_hashes(config),
        queue=queue,
        webhooks={webhook.id: webhook for webhook in webhooks},
        webhook_paths={webhook.path: webhook for webhook in webhooks},
        schedules=tuple(schedules),
        oauth=oauth,
        secrets=_secrets(config, (admin, metrics), schemes.specs.values(), oauth, webhooks),
        connections=connections,
        unconfigured_connections={
            name: problem
            for name, upstream in upstreams.items()
            if upstream.connectable is not None and (problem := upstream.unconfigured)
        },
        scope_connections=_scope_connections(routes),
        warnings=_oauth_warnings(oauth),
        mcp=toolsets,
    )


def _oauth_warnings(oauth: OAuthSpec | None) -> tuple[str, ...]:
    """What leaves the authorization server open, or unable to work."""
    if oauth is None:
        return ()
    found = []
    if not is_secure_transport(oauth.issuer):
        found.append(
            f"oauth: the public URL {oauth.issuer} is not https: the authorization server "
            "refuses every request (only a loopback address may use http); set "
            "GATEWAY_PUBLIC_URL (server.public_url)"
        )
    identity = oauth.identity
    if identity is not None and not (identity.allow_emails or identity.allow_domains):
        found.append(
            f"oauth.identity has no allow_emails or allow_domains: anyone with an account at "
            f"{identity.issuer} can sign in and use every route their token's scopes open, "
            "the operator's upstream credentials included (set OIDC_ALLOW_EMAILS or "
            "OIDC_ALLOW_DOMAINS)"
        )
    return tuple(found)


def _sealer(run: Compilation) -> Sealer | None:
    """What encrypts users' credentials in the store: the configured keys; without any,
    a key of this process for the memory store (nothing in it outlives the process), and
    none for a durable store (its connection routes answer 503)."""
    store = run.config.gateway.store
    try:
        keys = parse_keys(store.encryption_keys)
    except InvalidKey as exc:
        run.error(run.gateway_source, "$.store.encryption_keys", str(exc))
        return None
    if keys:
        return Sealer(keys)
    return process_sealer() if store.url.startswith("memory://") else None


def _scope_connections(routes: Iterable[CompiledRoute]) -> dict[str, tuple[str, ...]]:
    """Scope -> the upstreams users connect that routes needing the scope call."""
    found: dict[str, list[str]] = {}
    for route in routes:
        if not any(spec.type == "oauth" for spec in route.accepts):
            continue
        if isinstance(route, ProxyRoute):
            bindings = [route.upstream]
        elif isinstance(route, PluginRoute):
            bindings = list(route.clients.values())
        else:
            bindings = []
        for binding in bindings:
            if isinstance(binding.auth, (OAuth2ClientSpec, UserTokenSpec)):
                for scope in route.scopes:
                    names = found.setdefault(scope, [])
                    if binding.name not in names:
                        names.append(binding.name)
    return {scope: tuple(names) for scope, names in found.items()}


def _served_at(config: Config, url: str) -> Config:
    server = msgspec.structs.replace(config.gateway.server, public_url=url)
    gateway = msgspec.structs.replace(config.gateway, server=server)
    return dataclasses.replace(config, gateway=gateway)


def _secrets(
    config: Config,
    keyed: tuple[InboundAuthSpec, MetricsAccess],
    schemes: Iterable[InboundAuthSpec],
    oauth: OAuthSpec | None,
    webhooks: list[CompiledWebhook],
) -> frozenset[str]:
    """Every value redacted from answers and logs: interpolated secrets and every key."""
    found = {secret for source in config.sources() for secret in source.secrets}
    found |= {
        part.strip()
        for entry in config.gateway.store.encryption_keys
        for part in entry.split(",")
        if part.strip()
    }
    found |= {key.decode() for access in keyed for key in access.keys}
    found |= {key.decode() for spec in schemes for key in spec.keys}
    if oauth is not None:
        found |= {client.client_secret for client in oauth.clients if client.client_secret}
        found |= {password for password, _ in oauth.users.values()}
        if oauth.identity is not None:
            found.add(oauth.identity.client_secret)
    found |= {
        secret.decode()
        for webhook in webhooks
        if webhook.hmac is not None
        for secret in webhook.hmac.secrets
    }
    found |= {
        secret.decode()
        for webhook in webhooks
        if webhook.url_secret is not None
        for secret in webhook.url_secret.secrets
    }
    return frozenset(secret for secret in found if len(secret) >= MIN_SECRET_CHARS)


def _version(config: Config) -> str:
    """Content hash of everything that was decoded, interpolated values included."""
    digest = hashlib.sha256()
    digest.update(msgspec.json.encode(config.gateway, enc_hook=float))
    for loaded in config.route_files:
        digest.update(loaded.source.name.encode())
        digest.update(msgspec.json.encode(loaded.content, enc_hook=float))
    for schema in config.schemas:
        digest.update(schema.name.encode())
        digest.update(msgspec.json.encode(schema.schema))
    for name, plugin_digest in config.plugin_digests:
        digest.update(f"{name}:{plugin_digest}".encode())
    return digest.hexdigest()[:12]


def _route_hashes(config: Config) -> dict[str, str]:
    hashes = {}
    for loaded in config.route_files:
        upstream = msgspec.json.encode(loaded.content.upstream, enc_hook=float)
        for route in loaded.content.routes:
            encoded = upstream + msgspec.json.encode(route, enc_hook=float)
            hashes[route.id] = hashlib.sha256(encoded).hexdigest()[:16]
    return hashes
