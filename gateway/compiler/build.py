"""compile_config(config) -> Snapshot: resolve, check and compile a loaded configuration.

Pure: no I/O. Every cross-reference mistake is collected with its file:line:col and raised
together as ConfigErrors; nothing is partially compiled. Conditions that are not mistakes
(a secret not set) are recorded on the route, which then answers 503.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import msgspec
from litestar.config.cors import CORSConfig

from gateway.compiler.openapi import build_documents
from gateway.compiler.plugins import PluginTarget, resolve_handler
from gateway.compiler.templates import REQUEST_NAMES, RESPONSE_NAMES, TemplateCompiler
from gateway.compiler.validation import (
    PATH_PARAM,
    ParamValidator,
    body_validator,
    path_params,
    rewrite_refs,
)
from gateway.config.interpolate import MissingVariable
from gateway.config.load import Config, LoadedRoutes
from gateway.config.model import (
    ApiKeyAuth,
    BearerAuth,
    HeaderAuth,
    HmacVerify,
    InboundAuth,
    OAuth2AuthorizationCode,
    OAuthInbound,
    Param,
    PassthroughAuth,
    Retry,
    Route,
    Schedule,
    Upstream,
    Webhook,
)
from gateway.config.source import SourceFile
from gateway.errors import ConfigError, ConfigErrors
from gateway.snapshot import (
    CompiledRoute,
    CompiledSchedule,
    CompiledWebhook,
    HmacSpec,
    InboundAuthSpec,
    OAuth2ClientSpec,
    OAuthClientSpec,
    OAuthSpec,
    PluginUpstream,
    QueueSpec,
    RateLimitSpec,
    RetryPolicy,
    RouteTable,
    Snapshot,
    UpstreamSettings,
)

__all__ = ["RESERVED_PREFIXES", "compile_config"]

DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_BACKOFF = 0.2
DEFAULT_TOLERANCE = 300.0
DEFAULT_WEBHOOK_BACKOFF = (1.0, 5.0, 30.0, 120.0)
DEFAULT_VISIBILITY = 30.0
DEFAULT_DEDUPE_TTL = 7 * 86400.0
RESERVED_PATHS = frozenset({"/", "/health", "/ready", "/openapi.json", "/openapi.yaml", "/docs"})
WEBHOOK_NAMES = frozenset({"body", "query", "headers"})
RESERVED_PREFIXES = ("/actions/", "/.well-known/", "/admin/", "/oauth/", "/metrics", "/mcp")


def compile_config(config: Config) -> Snapshot:
    """Compile ``config`` into a Snapshot, or raise ConfigErrors listing every mistake."""
    return _Compiler(config).run()


class _Compiler:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.errors: list[ConfigError] = []
        self.templates = TemplateCompiler()
        self.gateway_source = config.gateway_source
        # Where each route id and each method+path was first seen, for duplicate reports.
        self.seen_routes: dict[str, list[tuple[SourceFile, str]]] = {}
        self.seen_paths: dict[tuple[str, str], list[tuple[SourceFile, str, str]]] = {}

    # --- helpers ---------------------------------------------------------------------------

    def error(self, source: SourceFile | None, path: str, message: str) -> None:
        if source is None:  # defaults of a missing gateway.yaml
            self.errors.append(ConfigError("gateway.yaml", 0, 0, message, path))
        else:
            self.errors.append(source.error(path, message))

    def template(
        self, source: SourceFile, path: str, text: str | None, names: frozenset[str]
    ) -> Any:
        if text is None:
            return None
        compiled = self.templates.compile(text, names)
        if isinstance(compiled, str):
            self.error(source, path, compiled)
            return None
        return compiled

    # --- pipeline --------------------------------------------------------------------------

    def run(self) -> Snapshot:
        gateway = self.config.gateway
        schemas = self.compile_schemas()
        auth_specs, auth_missing = self.compile_auth(gateway.auth)
        defaults_auth = gateway.defaults.auth
        if defaults_auth != "none" and defaults_auth not in auth_specs:
            self.error(
                self.gateway_source, "$.defaults.auth", self.unknown_auth(defaults_auth, auth_specs)
            )

        upstreams = self.compile_upstreams()
        routes: list[CompiledRoute] = []
        for loaded in self.config.route_files:
            for index, route in enumerate(loaded.content.routes):
                compiled = self.compile_route(
                    loaded, index, route, upstreams, auth_specs, auth_missing, schemas
                )
                if compiled is not None:
                    routes.append(compiled)
        webhooks: list[CompiledWebhook] = []
        schedules: list[CompiledSchedule] = []
        for loaded in self.config.route_files:
            for index, webhook in enumerate(loaded.content.webhooks):
                compiled_webhook = self.compile_webhook(loaded, index, webhook, upstreams)
                if compiled_webhook is not None:
                    webhooks.append(compiled_webhook)
            for index, schedule in enumerate(loaded.content.schedules):
                compiled_schedule = self.compile_schedule(loaded, index, schedule, upstreams)
                if compiled_schedule is not None:
                    schedules.append(compiled_schedule)
        self.check_duplicates()
        table = self.build_table(routes)
        self.check_webhook_paths(webhooks, table)
        documents = build_documents(self.config, routes, schemas, auth_specs)
        for message, path in documents.errors:
            self.error(self.gateway_source, path, message)
        if self.errors:
            raise ConfigErrors(self.errors)

        cors = gateway.cors
        queue = gateway.queue
        if not gateway.store.url.startswith(("memory://", "redis://", "rediss://", "unix://")):
            self.error(
                self.gateway_source,
                "$.store.url",
                f"expected memory:// or redis://host:port/db, got {gateway.store.url!r}",
            )
            raise ConfigErrors(self.errors)
        admin_keys = tuple(key.encode() for key in gateway.admin.keys if key)
        admin = InboundAuthSpec("admin", "api_key", keys=admin_keys, header=gateway.admin.header)
        secrets = {secret for source in self.config.sources() for secret in source.secrets}
        secrets |= {key.decode() for key in admin_keys}
        secrets |= {key.decode() for spec in auth_specs.values() for key in spec.keys}
        oauth = self.compile_oauth()
        if oauth is not None:
            secrets |= {client.client_secret for client in oauth.clients if client.client_secret}
            secrets |= {password for password, _ in oauth.users.values()}
        secrets |= {
            secret.decode()
            for webhook in webhooks
            if webhook.hmac is not None
            for secret in webhook.hmac.secrets
        }
        return Snapshot(
            version=self.version(),
            routes=tuple(routes),
            table=table,
            openapi=documents.merged,
            profiles=documents.profiles,
            ai_plugin=documents.ai_plugin,
            lint=documents.lint,
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
            upstreams={settings.name: settings for settings, _ in upstreams.values()},
            unconfigured={r.id: r.unconfigured for r in routes if r.unconfigured},
            route_hashes=self.route_hashes(),
            store_url=gateway.store.url,
            store_namespace=gateway.store.namespace,
            admin=admin,
            webhooks={webhook.id: webhook for webhook in webhooks},
            webhook_paths={webhook.path: webhook for webhook in webhooks},
            schedules=tuple(schedules),
            oauth=oauth,
            queue=QueueSpec(
                concurrency=queue.concurrency,
                visibility_timeout=queue.visibility_timeout or DEFAULT_VISIBILITY,
                dedupe_ttl=queue.dedupe_ttl or DEFAULT_DEDUPE_TTL,
                dead_letters=queue.dead_letters,
                consume=queue.consume,
            ),
            secrets=frozenset(secret for secret in secrets if len(secret) >= 4),
        )

    def version(self) -> str:
        """Content hash of everything that was decoded, interpolated values included."""
        digest = hashlib.sha256()
        digest.update(msgspec.json.encode(self.config.gateway, enc_hook=float))
        for loaded in self.config.route_files:
            digest.update(loaded.source.name.encode())
            digest.update(msgspec.json.encode(loaded.content, enc_hook=float))
        for schema in self.config.schemas:
            digest.update(schema.name.encode())
            digest.update(msgspec.json.encode(schema.schema))
        for name, plugin_digest in self.config.plugin_digests:
            digest.update(f"{name}:{plugin_digest}".encode())
        return digest.hexdigest()[:12]

    def route_hashes(self) -> dict[str, str]:
        hashes = {}
        for loaded in self.config.route_files:
            upstream = msgspec.json.encode(loaded.content.upstream, enc_hook=float)
            for route in loaded.content.routes:
                encoded = upstream + msgspec.json.encode(route, enc_hook=float)
                hashes[route.id] = hashlib.sha256(encoded).hexdigest()[:16]
        return hashes

    # --- schemas ---------------------------------------------------------------------------

    def compile_schemas(self) -> dict[str, Any]:
        known = {schema.name for schema in self.config.schemas}
        compiled: dict[str, Any] = {}
        for loaded in self.config.schemas:
            missing: list[str] = []
            schema = rewrite_refs(loaded.schema, known, missing)
            for ref in missing:
                self.error(loaded.source, "$", self.unknown_schema(ref, known))
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                self.error(loaded.source, _schema_path(exc), f"invalid JSON Schema: {exc.message}")
            compiled[loaded.name] = schema
        return compiled

    @staticmethod
    def unknown_schema(ref: str, known: set[str]) -> str:
        listed = ", ".join(sorted(known)) or "none"
        return f"schema `{ref}` does not exist in schemas/ (known: {listed})"

    # --- inbound auth ----------------------------------------------------------------------

    def compile_auth(
        self, schemes: list[InboundAuth]
    ) -> tuple[dict[str, InboundAuthSpec], dict[str, list[str]]]:
        specs: dict[str, InboundAuthSpec] = {}
        missing: dict[str, list[str]] = {}
        gateway_missing = self.gateway_source.missing if self.gateway_source else ()
        for index, scheme in enumerate(schemes):
            path = f"$.auth[{index}]"
            if scheme.id in specs or scheme.id == "none":
                self.error(
                    self.gateway_source,
                    f"{path}.id",
                    f"auth scheme `{scheme.id}` is declared twice",
                )
                continue
            variables = _missing_under(gateway_missing, path)
            if variables:
                missing[scheme.id] = variables
            if isinstance(scheme, ApiKeyAuth):
                entries = [
                    (entry, None) if isinstance(entry, str) else (entry.key, entry.user or None)
                    for entry in scheme.keys
                ]
                entries = [(key, user) for key, user in entries if key]
                if not entries and not variables:
                    self.error(self.gateway_source, f"{path}.keys", "at least one key is required")
                specs[scheme.id] = InboundAuthSpec(
                    scheme.id,
                    "api_key",
                    keys=tuple(key.encode() for key, _ in entries),
                    header=scheme.header,
                    query=scheme.query,
                    users=tuple(user for _, user in entries),
                )
            elif isinstance(scheme, OAuthInbound):
                if self.config.gateway.oauth is None:
                    self.error(
                        self.gateway_source,
                        f"{path}.type",
                        "an `oauth` scheme needs the `oauth:` section (clients, scopes)",
                    )
                specs[scheme.id] = InboundAuthSpec(scheme.id, "oauth")
            else:
                specs[scheme.id] = InboundAuthSpec(
                    scheme.id, "bearer_passthrough", jwt_only=scheme.format == "jwt"
                )
        return specs, missing

    @staticmethod
    def unknown_auth(name: str, specs: dict[str, InboundAuthSpec]) -> str:
        known = ", ".join(["none", *sorted(specs)])
        return f"auth scheme `{name}` is not declared in gateway.yaml (known: {known})"

    # --- upstreams -------------------------------------------------------------------------

    def compile_upstreams(self) -> dict[str, tuple[UpstreamSettings, LoadedRoutes]]:
        found: dict[str, tuple[UpstreamSettings, LoadedRoutes]] = {}
        defaults = self.config.gateway.defaults
        for loaded in self.config.route_files:
            upstream = loaded.content.upstream
            if upstream is None:
                continue
            if upstream.name in found:
                other = found[upstream.name][1].source
                self.error(
                    loaded.source,
                    "$.upstream.name",
                    f"upstream `{upstream.name}` is already declared in {other.name}",
                )
                continue
            url = urlsplit(upstream.base_url)
            unset = _missing_under(loaded.source.missing, "$.upstream.base_url")
            if not unset and (url.scheme not in ("http", "https") or not url.hostname):
                self.error(
                    loaded.source,
                    "$.upstream.base_url",
                    f"expected an absolute http(s) URL, got {upstream.base_url!r}",
                )
            settings = UpstreamSettings(
                name=upstream.name,
                base_url=upstream.base_url.rstrip("/"),
                timeout=upstream.timeout or defaults.timeout or DEFAULT_TIMEOUT,
                connect_timeout=upstream.connect_timeout or DEFAULT_CONNECT_TIMEOUT,
                max_connections=upstream.max_connections,
            )
            found[upstream.name] = (settings, loaded)
        return found

    # --- routes ----------------------------------------------------------------------------

    def compile_route(
        self,
        loaded: LoadedRoutes,
        index: int,
        route: Route,
        upstreams: dict[str, tuple[UpstreamSettings, LoadedRoutes]],
        auth_specs: dict[str, InboundAuthSpec],
        auth_missing: dict[str, list[str]],
        schemas: dict[str, Any],
    ) -> CompiledRoute | None:
        source = loaded.source
        path = f"$.routes[{index}]"
        errors_before = len(self.errors)
        self.seen_routes.setdefault(route.id, []).append((source, f"{path}.id"))
        self.seen_paths.setdefault((route.method, _shape(route.path)), []).append(
            (source, f"{path}.path", route.id)
        )

        if route.path in RESERVED_PATHS or route.path.startswith(RESERVED_PREFIXES):
            self.error(source, f"{path}.path", f"path `{route.path}` is reserved by the gateway")

        upstream = loaded.content.upstream
        plugin: PluginTarget | None = None
        plugin_clients: dict[str, PluginUpstream] = {}
        if route.handler is not None:
            plugin, plugin_clients = self.compile_plugin(
                source,
                path,
                route.handler,
                route.settings,
                route.upstreams,
                route.retry,
                upstream,
                upstreams,
            )
        if route.static and route.handler is not None:
            self.error(source, f"{path}.static", "a route is `static` or has a `handler`, not both")
        if upstream is None and not route.static and route.handler is None:
            self.error(
                source,
                path,
                f"route `{route.id}` has no upstream: add `upstream:` to {source.name} "
                "or set `static: true`",
            )
        if route.static and route.response.body is None:
            self.error(source, f"{path}.response", "a static route needs `response.body`")

        auth_name = route.auth or self.config.gateway.defaults.auth
        auth = None
        if auth_name != "none":
            auth = auth_specs.get(auth_name)
            if auth is None:
                self.error(source, f"{path}.auth", self.unknown_auth(auth_name, auth_specs))

        if route.scopes and (auth is None or auth.type != "oauth"):
            self.error(source, f"{path}.scopes", "`scopes` need an `oauth` auth scheme")
        declared_scopes = self.config.gateway.oauth.scopes if self.config.gateway.oauth else {}
        for position, scope in enumerate(route.scopes):
            if auth is not None and auth.type == "oauth" and scope not in declared_scopes:
                known = ", ".join(sorted(declared_scopes)) or "none"
                self.error(
                    source,
                    f"{path}.scopes[{position}]",
                    f"scope `{scope}` is not declared in gateway.yaml `oauth.scopes` "
                    f"(known: {known})",
                )
        path_params = self.path_params(source, path, route)
        body = None
        if route.body is not None:
            missing: list[str] = []
            schema = rewrite_refs(route.body.schema, set(schemas), missing)
            for ref in missing:
                self.error(source, f"{path}.body.schema", self.unknown_schema(ref, set(schemas)))
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                where = f"{path}.body.schema{_schema_path(exc)[1:]}"
                self.error(source, where, f"invalid JSON Schema: {exc.message}")
            else:
                if not missing:
                    body = body_validator(schema, schemas)
        for kind, params in (("query", route.query), ("path_params", route.path_params)):
            self.check_params(source, f"{path}.{kind}", params)

        call = route.upstream
        names = REQUEST_NAMES
        # By default the upstream path is the route's, its `{name}` parameters filled in.
        default_path = PATH_PARAM.sub(r"{{ path.\1 }}", route.path)
        upstream_path = self.template(
            source, f"{path}.upstream.path", call.path or default_path, names
        )
        upstream_query = None
        if call.query is not None:
            upstream_query = {
                key: self.template(source, f"{path}.upstream.query.{key}", value, names)
                for key, value in call.query.items()
            }
        upstream_headers = {
            key: self.template(source, f"{path}.upstream.headers.{key}", value, names)
            for key, value in call.headers.items()
        }
        upstream_body = self.template(source, f"{path}.upstream.body", call.body, names)
        response = route.response
        response_body = self.template(
            source, f"{path}.response.body", response.body, RESPONSE_NAMES
        )
        fail_when = self.template(
            source, f"{path}.response.fail_when", response.fail_when, RESPONSE_NAMES
        )
        fail_message = self.template(
            source, f"{path}.response.fail_message", response.fail_message, RESPONSE_NAMES
        )

        if len(self.errors) > errors_before:
            return None

        settings = None
        if upstream is not None and upstream.name in upstreams:
            settings = upstreams[upstream.name][0]
        static_headers, passthrough = _outbound_headers(upstream)
        line = source.locate(path)[0]
        return CompiledRoute(
            id=route.id,
            method=route.method,
            path=route.path,
            file=source.name,
            line=line,
            upstream_name=upstream.name if upstream else None,
            upstream=None if route.static or route.handler else settings,
            auth=auth,
            query_validator=ParamValidator.build("query", route.query),
            path_validator=ParamValidator.build("path", path_params),
            body_validator=body,
            body_required=route.body.required if route.body else False,
            static=route.static,
            upstream_method=call.method or route.method,
            upstream_path=upstream_path,
            upstream_query=upstream_query,
            upstream_headers=upstream_headers,
            upstream_body=upstream_body,
            static_headers=static_headers,
            passthrough_header=passthrough,
            response_body=response_body,
            response_status=response.status,
            fail_when=fail_when,
            fail_message=fail_message,
            max_chars=response.max_chars or self.config.gateway.defaults.max_response_chars,
            timeout=route.timeout or (settings.timeout if settings else DEFAULT_TIMEOUT),
            retry=self.retry_policy(route.retry, upstream),
            rate_limit=self.rate_limit(source, path, route, upstream),
            scopes=tuple(route.scopes),
            oauth2=None if route.static or route.handler else self.oauth2_client(upstream),
            unconfigured=self.unconfigured(loaded, index, upstream, auth_name, auth_missing)
            or self.plugin_unconfigured(plugin_clients, upstreams),
            plugin=plugin,
            plugin_clients=plugin_clients,
        )

    def compile_plugin(
        self,
        source: SourceFile,
        path: str,
        handler: str,
        handler_settings: dict[str, Any],
        upstream_names: list[str],
        retry: Retry | None,
        upstream: Upstream | None,
        upstreams: dict[str, tuple[UpstreamSettings, LoadedRoutes]],
    ) -> tuple[PluginTarget | None, dict[str, PluginUpstream]]:
        resolved = resolve_handler(self.config.directory, handler, handler_settings)
        target = None
        if isinstance(resolved, str):
            where = "settings" if resolved.startswith("settings of plugin") else "handler"
            # Settings missing an environment variable: the item answers 503 until it is set.
            unset = where == "settings" and _missing_under(source.missing, f"{path}.settings")
            if not unset:
                self.error(source, f"{path}.{where}", resolved)
        else:
            target = resolved
        names = upstream_names or ([upstream.name] if upstream is not None else [])
        clients: dict[str, PluginUpstream] = {}
        for position, name in enumerate(names):
            if name not in upstreams:
                known = ", ".join(sorted(upstreams)) or "none"
                self.error(
                    source,
                    f"{path}.upstreams[{position}]",
                    f"upstream `{name}` does not exist (known: {known})",
                )
                continue
            settings, loaded = upstreams[name]
            headers, _ = _outbound_headers(loaded.content.upstream)
            clients[name] = PluginUpstream(
                settings,
                headers,
                self.retry_policy(retry, loaded.content.upstream),
                self.oauth2_client(loaded.content.upstream),
            )
        return target, clients

    @staticmethod
    def plugin_unconfigured(
        clients: dict[str, PluginUpstream],
        upstreams: dict[str, tuple[UpstreamSettings, LoadedRoutes]],
    ) -> str | None:
        for name in clients:
            variables = _missing_under(upstreams[name][1].source.missing, "$.upstream")
            if variables:
                return f'upstream "{name}" is not configured: set {", ".join(variables)}'
        return None

    def rate_limit(
        self, source: SourceFile, path: str, route: Route, upstream: Upstream | None
    ) -> RateLimitSpec | None:
        if route.rate_limit is not None:
            declared, scope, where = route.rate_limit, f"route:{route.id}", f"{path}.rate_limit.key"
        elif upstream is not None and upstream.rate_limit is not None:
            declared, scope = upstream.rate_limit, f"upstream:{upstream.name}"
            where = "$.upstream.rate_limit.key"
        else:
            return None
        if declared.key in ("ip", "api_key", "bearer"):
            return RateLimitSpec(declared.limit, declared.per, scope, declared.key)
        if "{{" not in declared.key:
            self.error(
                source,
                where,
                f"expected `ip`, `api_key`, `bearer` or a template, got {declared.key!r}",
            )
            return None
        template = self.template(source, where, declared.key, REQUEST_NAMES)
        return RateLimitSpec(declared.limit, declared.per, scope, "template", template)

    def path_params(self, source: SourceFile, path: str, route: Route) -> list[Param]:
        in_path = PATH_PARAM.findall(route.path)
        if len(set(in_path)) != len(in_path):
            self.error(source, f"{path}.path", f"path `{route.path}` repeats a parameter name")
        for index, param in enumerate(route.path_params):
            if param.name not in in_path:
                self.error(
                    source,
                    f"{path}.path_params[{index}].name",
                    f"path parameter `{param.name}` does not appear in `{route.path}`",
                )
        return path_params(route)

    def check_params(self, source: SourceFile, path: str, params: list[Param]) -> None:
        seen: set[str] = set()
        for index, param in enumerate(params):
            if param.name in seen:
                self.error(
                    source, f"{path}[{index}].name", f"parameter `{param.name}` is declared twice"
                )
            seen.add(param.name)
            if param.pattern is not None:
                try:
                    re.compile(param.pattern)
                except re.error as exc:
                    self.error(
                        source, f"{path}[{index}].pattern", f"invalid regular expression: {exc}"
                    )

    def retry_policy(self, retry: Retry | None, upstream: Upstream | None) -> RetryPolicy:
        retry = retry or (upstream.retry if upstream else None)
        retry = retry or self.config.gateway.defaults.retry
        if retry is None:
            return RetryPolicy(1, frozenset(), 0.0)
        return RetryPolicy(
            retry.attempts, frozenset(retry.on_status), retry.backoff or DEFAULT_BACKOFF
        )

    def unconfigured(
        self,
        loaded: LoadedRoutes,
        index: int,
        upstream: Upstream | None,
        auth_name: str,
        auth_missing: dict[str, list[str]],
    ) -> str | None:
        missing = loaded.source.missing
        if upstream is not None and (variables := _missing_under(missing, "$.upstream")):
            return f'upstream "{upstream.name}" is not configured: set {", ".join(variables)}'
        if variables := _missing_under(missing, f"$.routes[{index}]"):
            route_id = loaded.content.routes[index].id
            return f'route "{route_id}" is not configured: set {", ".join(variables)}'
        if auth_name in auth_missing:
            return f'auth "{auth_name}" is not configured: set {", ".join(auth_missing[auth_name])}'
        return None

    def oauth2_client(self, upstream: Upstream | None) -> OAuth2ClientSpec | None:
        if upstream is None or not isinstance(upstream.auth, OAuth2AuthorizationCode):
            return None
        auth = upstream.auth
        public_url = self.config.gateway.server.public_url.rstrip("/")
        return OAuth2ClientSpec(
            upstream=upstream.name,
            client_id=auth.client_id,
            client_secret=auth.client_secret,
            authorize_url=auth.authorize_url,
            token_url=auth.token_url,
            redirect_uri=public_url + auth.redirect_path,
            scopes=tuple(auth.scopes),
            authorize_params=dict(auth.authorize_params),
            refresh_margin=60.0 if auth.refresh_margin is None else auth.refresh_margin,
        )

    # --- the authorization server ------------------------------------------------------------

    def compile_oauth(self) -> OAuthSpec | None:
        settings = self.config.gateway.oauth
        if settings is None:
            return None
        source = self.gateway_source
        login = None
        if settings.login_handler is not None:
            resolved = resolve_handler(self.config.directory, settings.login_handler, {})
            if isinstance(resolved, str):
                self.error(source, "$.oauth.login_handler", resolved)
            else:
                login = resolved
        clients = []
        for index, client in enumerate(settings.clients):
            for position, scope in enumerate(client.scopes or []):
                if scope not in settings.scopes:
                    self.error(
                        source,
                        f"$.oauth.clients[{index}].scopes[{position}]",
                        f"scope `{scope}` is not declared in `oauth.scopes`",
                    )
            if bool(client.client_id) != bool(client.client_secret):
                self.error(
                    source,
                    f"$.oauth.clients[{index}]",
                    "set both `client_id` and `client_secret`, or neither (generated)",
                )
            clients.append(
                OAuthClientSpec(
                    id=client.id,
                    client_id=client.client_id,
                    client_secret=client.client_secret,
                    redirect_uris=tuple(client.redirect_uris),
                    scopes=tuple(client.scopes if client.scopes is not None else settings.scopes),
                )
            )
        if self.errors:
            raise ConfigErrors(self.errors)
        return OAuthSpec(
            issuer=self.config.gateway.server.public_url.rstrip("/"),
            clients=tuple(clients),
            scopes=dict(settings.scopes),
            # Entries whose variables are unset (empty) are left out: nobody logs in as "".
            users={
                user.username: (user.password, user.user_id)
                for user in settings.users
                if user.username and user.password and user.user_id
            },
            login=login,
            access_ttl=settings.access_token_ttl or 3600.0,
            refresh_ttl=settings.refresh_token_ttl or 30 * 86400.0,
            code_ttl=settings.code_ttl or 300.0,
        )

    # --- webhooks and schedules ------------------------------------------------------------

    def compile_webhook(
        self,
        loaded: LoadedRoutes,
        index: int,
        webhook: Webhook,
        upstreams: dict[str, tuple[UpstreamSettings, LoadedRoutes]],
    ) -> CompiledWebhook | None:
        source = loaded.source
        path = f"$.webhooks[{index}]"
        errors_before = len(self.errors)
        self.seen_routes.setdefault(webhook.id, []).append((source, f"{path}.id"))
        self.seen_paths.setdefault((webhook.method, _shape(webhook.path)), []).append(
            (source, f"{path}.path", webhook.id)
        )
        if webhook.path in RESERVED_PATHS or webhook.path.startswith(RESERVED_PREFIXES):
            self.error(source, f"{path}.path", f"path `{webhook.path}` is reserved by the gateway")
        if "{" in webhook.path:
            self.error(source, f"{path}.path", "a webhook path has no parameters (use `query`)")
        self.check_params(source, f"{path}.query", webhook.query)
        upstream = loaded.content.upstream
        plugin, clients = self.compile_plugin(
            source,
            path,
            webhook.handler,
            webhook.settings,
            webhook.upstreams,
            None,
            upstream,
            upstreams,
        )
        hmac_spec = None
        missing = _missing_under(source.missing, f"{path}.verify")
        verify = webhook.verify
        if isinstance(verify, HmacVerify):
            secrets = [*verify.secrets, *([verify.secret] if verify.secret is not None else [])]
            secrets = [secret for secret in secrets if secret]
            if not secrets and not missing:
                self.error(
                    source, f"{path}.verify", "hmac verification needs `secret` or `secrets`"
                )
            signed = verify.signed or (
                "{timestamp}.{body}" if verify.timestamp_header else "{body}"
            )
            if "{body}" not in signed:
                self.error(source, f"{path}.verify.signed", "`signed` must contain `{body}`")
            if "{timestamp}" in signed and verify.timestamp_header is None:
                self.error(
                    source,
                    f"{path}.verify.signed",
                    "`signed` uses `{timestamp}`: set `timestamp_header` too",
                )
            hmac_spec = HmacSpec(
                header=verify.header.lower(),
                algorithm=verify.algorithm,
                prefix=verify.prefix,
                encoding=verify.encoding,
                secrets=tuple(secret.encode() for secret in secrets),
                timestamp_header=verify.timestamp_header.lower()
                if verify.timestamp_header
                else None,
                tolerance=DEFAULT_TOLERANCE if verify.tolerance is None else verify.tolerance,
                signed=signed.encode(),
            )
        names = WEBHOOK_NAMES
        ping_when = ping_body = None
        if webhook.ping is not None:
            ping_when = self.template(source, f"{path}.ping.when", webhook.ping.when, names)
            ping_body = self.template(source, f"{path}.ping.body", webhook.ping.body, names)
        dedupe = self.template(source, f"{path}.dedupe_key", webhook.dedupe_key, names)
        response_body = self.template(
            source, f"{path}.response.body", webhook.response.body, names | {"event_id"}
        )
        if not 200 <= webhook.response.status < 300:
            self.error(source, f"{path}.response.status", "a webhook answers 2xx once queued")
        if len(self.errors) > errors_before:
            return None
        unconfigured = None
        if unset := _missing_under(source.missing, path):
            unconfigured = f'webhook "{webhook.id}" is not configured: set {", ".join(unset)}'
        return CompiledWebhook(
            id=webhook.id,
            method=webhook.method,
            path=webhook.path,
            file=source.name,
            line=source.locate(path)[0],
            hmac=hmac_spec,
            query_validator=ParamValidator.build("query", webhook.query),
            head=webhook.head,
            ping_when=ping_when,
            ping_body=ping_body,
            dedupe_key=dedupe,
            response_status=webhook.response.status,
            response_body=response_body,
            attempts=webhook.retry.attempts,
            backoff=tuple(
                DEFAULT_WEBHOOK_BACKOFF if webhook.retry.backoff is None else webhook.retry.backoff
            ),
            plugin=plugin,
            plugin_clients=clients,
            unconfigured=unconfigured or self.plugin_unconfigured(clients, upstreams),
        )

    def compile_schedule(
        self,
        loaded: LoadedRoutes,
        index: int,
        schedule: Schedule,
        upstreams: dict[str, tuple[UpstreamSettings, LoadedRoutes]],
    ) -> CompiledSchedule | None:
        source = loaded.source
        path = f"$.schedules[{index}]"
        errors_before = len(self.errors)
        self.seen_routes.setdefault(schedule.id, []).append((source, f"{path}.id"))
        if schedule.every < 1:
            self.error(source, f"{path}.every", "a schedule runs at most once a second")
        plugin, clients = self.compile_plugin(
            source,
            path,
            schedule.handler,
            schedule.settings,
            schedule.upstreams,
            None,
            loaded.content.upstream,
            upstreams,
        )
        if len(self.errors) > errors_before:
            return None
        missing = _missing_under(source.missing, path)
        unconfigured = None
        if missing:
            unconfigured = f'schedule "{schedule.id}" is not configured: set {", ".join(missing)}'
        return CompiledSchedule(
            id=schedule.id,
            every=schedule.every,
            enabled=schedule.enabled,
            plugin=plugin,
            plugin_clients=clients,
            unconfigured=unconfigured or self.plugin_unconfigured(clients, upstreams),
        )

    # --- whole-table checks ----------------------------------------------------------------

    def check_duplicates(self) -> None:
        for route_id, places in self.seen_routes.items():
            for source, path in places[1:]:
                first, first_path = places[0]
                line, column = first.locate(first_path)
                self.error(
                    source,
                    path,
                    f"route id `{route_id}` is already used at {first.name}:{line}:{column}",
                )
        for (method, _), served in self.seen_paths.items():
            for source, path, route_id in served[1:]:
                first, first_path, first_id = served[0]
                line, column = first.locate(first_path)
                self.error(
                    source,
                    path,
                    f"{method} path of route `{route_id}` is already served by route `{first_id}` "
                    f"at {first.name}:{line}:{column}",
                )

    def check_webhook_paths(self, webhooks: list[CompiledWebhook], table: RouteTable) -> None:
        """A webhook owns its path for every method (HEAD, 405s), so no route may share it."""
        for webhook in webhooks:
            if table.allowed_methods(webhook.path):
                loaded = next(f for f in self.config.route_files if f.source.name == webhook.file)
                index = next(i for i, w in enumerate(loaded.content.webhooks) if w.id == webhook.id)
                self.error(
                    loaded.source,
                    f"$.webhooks[{index}].path",
                    f"path `{webhook.path}` is also a route's path; give the webhook its own",
                )

    def build_table(self, routes: list[CompiledRoute]) -> RouteTable:
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


def _missing_under(missing: tuple[MissingVariable, ...], prefix: str) -> list[str]:
    found = [
        item.variable
        for item in missing
        if item.path == prefix or item.path.startswith((prefix + ".", prefix + "["))
    ]
    return sorted(set(found))


def _shape(path: str) -> str:
    """`/a/{id}` and `/a/{name}` are the same route path."""
    return PATH_PARAM.sub("{}", path)


def _schema_path(exc: jsonschema.SchemaError) -> str:
    path = "$"
    for part in exc.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _outbound_headers(upstream: Upstream | None) -> tuple[dict[str, str], str | None]:
    """Static headers of every call (upstream headers + credentials), and a passthrough header."""
    if upstream is None:
        return {}, None
    headers = dict(upstream.headers)
    auth = upstream.auth
    if isinstance(auth, BearerAuth):
        headers["Authorization"] = f"Bearer {auth.token}"
    elif isinstance(auth, HeaderAuth):
        headers[auth.name] = auth.value
    elif isinstance(auth, PassthroughAuth):
        return headers, auth.header
    return headers, None
