"""The configuration language: frozen, strict msgspec Structs and nothing else.

``gateway.yaml`` decodes into :class:`GatewayFile`; each ``routes.d/*.yaml`` into
:class:`RouteFile`. Unknown keys are errors (typos must not pass silently). Lists of items
with an ``id`` or ``name`` are used instead of maps so that error paths keep their place.
Optional settings default to ``None`` meaning "inherit": defaults -> upstream -> route.
"""

from __future__ import annotations

# msgspec passes `frozen` down to subclasses; mypy's dataclass_transform model does not see it.
# mypy: disable-error-code="misc"
from typing import Annotated, Any, Literal

import msgspec

from gateway.config.fields import (
    Duration,
    HeaderName,
    HttpMethod,
    Identifier,
    ModuleRef,
    ParamName,
    RoutePath,
)

__all__ = [
    "Admin",
    "ApiKeyAuth",
    "ApiKeyUser",
    "BearerAuth",
    "BearerPassthroughAuth",
    "BodySpec",
    "CorsSettings",
    "Defaults",
    "GatewayFile",
    "HeaderAuth",
    "HmacVerify",
    "InboundAuth",
    "Info",
    "NoOutboundAuth",
    "NoVerify",
    "OAuth2AuthorizationCode",
    "OAuthClient",
    "OAuthInbound",
    "OAuthServer",
    "OAuthUser",
    "OutboundAuth",
    "Param",
    "PassthroughAuth",
    "Ping",
    "Profile",
    "QueueSettings",
    "RateLimit",
    "ResponseSpec",
    "Retry",
    "Route",
    "RouteFile",
    "Schedule",
    "Server",
    "StoreSettings",
    "Upstream",
    "UpstreamCall",
    "Webhook",
    "WebhookResponse",
    "WebhookRetry",
]

Template = Annotated[str, msgspec.Meta(description="A Jinja2 template (sandboxed, native types).")]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
StatusCode = Annotated[int, msgspec.Meta(ge=100, le=599)]


class Base(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Shared options: unknown fields are errors, instances are immutable."""


# --- gateway.yaml -------------------------------------------------------------------------


class Server(Base):
    """How the gateway presents itself."""

    public_url: str = "http://127.0.0.1:8080"
    """The URL clients (ChatGPT) reach the gateway at; written as `servers[0].url`."""
    access_log: bool = True
    """Log one line per proxied request."""
    max_body_bytes: PositiveInt = 1_048_576
    """Largest request body accepted (413 beyond)."""


class Info(Base):
    """The `info` block of the served OpenAPI document and the ai-plugin manifest."""

    title: str = "Integration Gateway"
    description: str = "Routes to the configured upstream APIs."
    version: str = "1.0.0"
    name_for_model: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9]{1,50}$")] = "gateway"
    contact_email: str = "ops@example.com"
    legal_info_url: str | None = None
    logo_url: str | None = None


class CorsSettings(Base):
    """Cross-origin settings for browser callers (ChatGPT's editor calls from its origins)."""

    allow_origins: list[str] = msgspec.field(
        default_factory=lambda: ["https://chat.openai.com", "https://chatgpt.com"]
    )
    allow_methods: list[str] = msgspec.field(default_factory=lambda: ["*"])
    allow_headers: list[str] = msgspec.field(default_factory=lambda: ["*"])
    allow_credentials: bool = False
    expose_headers: list[str] = msgspec.field(default_factory=lambda: ["X-Request-ID"])
    max_age: Annotated[int, msgspec.Meta(ge=0)] = 600


class ApiKeyUser(Base):
    """A key that also names whose data the caller may read (`auth.user` in templates)."""

    key: str
    user: str


class ApiKeyAuth(Base, tag="api_key", tag_field="type"):
    """An API key in a header (default `X-API-Key`) or a query parameter; several keys allowed."""

    id: Identifier
    keys: list[str | ApiKeyUser]
    """Plain keys, or `{key, user}` when the key stands for one user (such as an OMI uid)."""
    header: HeaderName | None = "X-API-Key"
    query: ParamName | None = None

    def __post_init__(self) -> None:
        if self.header is None and self.query is None:
            raise ValueError("`header` or `query` must be set")


class BearerPassthroughAuth(Base, tag="bearer_passthrough", tag_field="type"):
    """The caller's `Authorization: Bearer` token is required and forwarded (multi-tenant)."""

    id: Identifier
    format: Literal["any", "jwt"] = "any"
    """`jwt` also checks the token has the shape of a JWT (three base64url parts)."""


class OAuthInbound(Base, tag="oauth", tag_field="type"):
    """Access tokens issued by the gateway's own authorization server (`oauth:` below);
    routes name the scopes they need in `scopes:`."""

    id: Identifier


InboundAuth = ApiKeyAuth | BearerPassthroughAuth | OAuthInbound

CHATGPT_CALLBACKS = [
    "https://chatgpt.com/aip/*/oauth/callback",
    "https://chat.openai.com/aip/*/oauth/callback",
]


class OAuthClient(Base):
    """A client of the authorization server, such as one ChatGPT Action."""

    id: Identifier
    """A name for this client in the config (and in the store)."""
    client_id: str = ""
    """Empty: generated at the first start, kept in the store, printed once."""
    client_secret: str = ""
    redirect_uris: list[str] = msgspec.field(default_factory=lambda: list(CHATGPT_CALLBACKS))
    """Allowed redirect URIs; `*` stands for one path segment."""
    scopes: list[str] | None = None
    """Scopes this client may ask for (default: all declared)."""


class OAuthUser(Base):
    """A person who can log in on the consent page, and the user id their tokens carry."""

    username: str
    password: str
    user_id: str


class OAuthServer(Base):
    """The gateway as an OAuth 2 authorization server (authorization code + refresh)."""

    clients: list[OAuthClient]
    scopes: dict[str, str]
    """Scope -> what it allows, shown on the consent page and in the OpenAPI document."""
    users: list[OAuthUser] = []
    login_handler: ModuleRef | None = None
    """A plugin `module:function` checking `{username, password}` and returning a user id
    (instead of, or besides, `users`)."""
    access_token_ttl: Duration | None = None
    """Default 1h."""
    refresh_token_ttl: Duration | None = None
    """Default 30 days."""
    code_ttl: Duration | None = None
    """Default 5m."""


class RateLimit(Base):
    """At most `limit` requests per `per`, for each caller `key`: `ip`, `api_key` (the key
    used), `bearer` (the token used) or a template such as `{{ headers["x-tenant"] }}`."""

    limit: PositiveInt
    per: Duration
    key: str = "ip"


class StoreSettings(Base):
    """Where state lives: `memory://` (one process, not durable) or `redis://host:6379/0`."""

    url: str = "memory://"
    namespace: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = "gateway"


class QueueSettings(Base):
    """The webhook queue's workers (each process runs them)."""

    concurrency: Annotated[int, msgspec.Meta(ge=1, le=256)] = 16
    """Events handled at once per process."""
    visibility_timeout: Duration | None = None
    """An event held this long (default 30s) by a process that stopped heart-beating is
    taken over by another."""
    dedupe_ttl: Duration | None = None
    """How long a webhook's dedupe key is remembered (default 7 days)."""
    dead_letters: PositiveInt = 10_000
    """How many dead letters are kept (oldest trimmed first)."""
    consume: bool = True
    """Run handlers in this process; `false` makes a receive-only replica (with Redis,
    other replicas process the events)."""


class Retry(Base):
    """Retries of idempotent calls (GET, HEAD, OPTIONS, PUT, DELETE) only."""

    attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 2
    """Total attempts, the first included."""
    on_status: list[StatusCode] = msgspec.field(default_factory=lambda: [502, 503, 504])
    backoff: Duration | None = None
    """Wait before the second attempt (default 200ms); doubles after each retry."""


class Defaults(Base):
    """Settings every route inherits unless its upstream or itself says otherwise."""

    auth: str = "none"
    timeout: Duration | None = None
    retry: Retry | None = None
    max_response_chars: PositiveInt = 100_000


class Profile(Base):
    """An action profile: a subset of routes that is a valid ChatGPT Action on its own."""

    id: Identifier
    title: str
    description: str
    routes: list[Identifier] = []
    tags: list[str] = []


class Admin(Base):
    """The admin API (`POST /admin/reload`): callers send one of `keys` in `header`."""

    keys: list[str] = []
    header: HeaderName = "X-Admin-Key"


class GatewayFile(Base):
    """`gateway.yaml`: the global file."""

    server: Server = Server()
    store: StoreSettings = StoreSettings()
    queue: QueueSettings = QueueSettings()
    admin: Admin = Admin()
    info: Info = Info()
    cors: CorsSettings = CorsSettings()
    auth: list[InboundAuth] = []
    defaults: Defaults = Defaults()
    profiles: list[Profile] = []
    oauth: OAuthServer | None = None


# --- routes.d/*.yaml ----------------------------------------------------------------------


class NoOutboundAuth(Base, tag="none", tag_field="type"):
    """The gateway adds no credentials."""


class BearerAuth(Base, tag="bearer", tag_field="type"):
    """`Authorization: Bearer <token>` on every upstream call."""

    token: str


class HeaderAuth(Base, tag="header", tag_field="type"):
    """Any header carrying a credential, such as `X-Api-Key`."""

    name: HeaderName
    value: str


class PassthroughAuth(Base, tag="passthrough", tag_field="type"):
    """The caller's own header (default `Authorization`) is forwarded upstream."""

    header: HeaderName = "Authorization"


class OAuth2AuthorizationCode(Base, tag="oauth2_authorization_code", tag_field="type"):
    """The gateway as an OAuth 2 client of the upstream (Gmail): a user connects once at
    `GET <connect route>`, the refresh token is kept in the store, and access tokens are
    refreshed before they expire (one refresh at a time, across replicas)."""

    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    redirect_path: RoutePath
    """The gateway route the provider redirects back to (public_url + this path)."""
    scopes: list[str] = []
    authorize_params: dict[str, str] = {}
    """Extra parameters of the authorization URL, e.g. `access_type: offline`."""
    refresh_margin: Duration | None = None
    """Refresh this long before expiry (default 60s)."""


OutboundAuth = NoOutboundAuth | BearerAuth | HeaderAuth | PassthroughAuth | OAuth2AuthorizationCode


class Upstream(Base):
    """The API a route file talks to; one pooled client is kept per upstream."""

    name: Identifier
    base_url: str
    headers: dict[str, str] = {}
    auth: OutboundAuth = NoOutboundAuth()
    timeout: Duration | None = None
    connect_timeout: Duration | None = None
    retry: Retry | None = None
    rate_limit: RateLimit | None = None
    """Shared by all routes of this upstream that do not set their own."""
    max_connections: PositiveInt = 100


class Param(Base):
    """A query or path parameter: a small JSON Schema for one scalar value."""

    name: ParamName
    type: Literal["string", "integer", "number", "boolean"] = "string"
    description: str | None = None
    required: bool = False
    default: str | int | float | bool | None = None
    enum: list[str | int | float] | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    min_length: Annotated[int, msgspec.Meta(ge=0)] | None = None
    max_length: Annotated[int, msgspec.Meta(ge=0)] | None = None
    pattern: str | None = None


class BodySpec(Base):
    """The JSON request body: a JSON Schema, or `{$ref: name}` of a file in schemas/."""

    schema: dict[str, Any]
    required: bool = True
    description: str | None = None


class UpstreamCall(Base):
    """How one route calls its upstream. Strings are templates over the request.

    Without `query`, the route's declared query parameters are forwarded; without `body`,
    the request body is forwarded unchanged.
    """

    method: HttpMethod | None = None
    path: Template | None = None
    query: dict[str, Template] | None = None
    headers: dict[str, Template] = {}
    body: Template | None = None


class ResponseSpec(Base):
    """How the upstream answer (or a static answer) is shaped for the caller."""

    body: Template | None = None
    """Template over the upstream answer's `body` and `status`, and the caller's `request`."""
    status: StatusCode | None = None
    fail_when: Template | None = None
    """Truthy when the upstream answered 2xx but the body carries an error (502 to the caller)."""
    fail_message: Template | None = None
    schema: dict[str, Any] | None = None
    """JSON Schema of the shaped body, for the OpenAPI document."""
    description: str = "Successful response"
    max_chars: PositiveInt | None = None
    """Cap on the answer's size in characters (default from `defaults.max_response_chars`)."""


class Route(Base):
    """One public operation: method + path, becoming one OpenAPI operation."""

    id: Identifier
    """Unique across all files; the OpenAPI operationId."""
    path: RoutePath
    method: HttpMethod = "GET"
    summary: str | None = None
    description: str | None = None
    tags: list[str] = []
    auth: str | None = None
    """Inbound auth: `none` or the id of a scheme in gateway.yaml (default: defaults.auth)."""
    scopes: list[str] = []
    """With an `oauth` scheme: the scopes a token needs for this route."""
    query: list[Param] = []
    path_params: list[Param] = []
    body: BodySpec | None = None
    upstream: UpstreamCall = UpstreamCall()
    static: bool = False
    """Answer from `response.body` alone, with no upstream call."""
    handler: ModuleRef | None = None
    """A plugin handler `module:function` (plugins/module.py) that answers this route."""
    settings: dict[str, Any] = {}
    """The handler's settings, checked against the plugin's `Settings` Struct."""
    upstreams: list[Identifier] = []
    """Upstreams whose clients the handler gets (default: this file's upstream)."""
    response: ResponseSpec = ResponseSpec()
    timeout: Duration | None = None
    retry: Retry | None = None
    rate_limit: RateLimit | None = None
    consequential: bool | None = None
    """`x-openai-isConsequential` (default: false for GET, true otherwise)."""
    include_in_schema: bool = True


class NoVerify(Base, tag="none", tag_field="type"):
    """No signature (the sender signs nothing, like OMI); restrict by secret query or network."""


class HmacVerify(Base, tag="hmac", tag_field="type"):
    """An HMAC of the raw request bytes in a header, compared in constant time.

    With `timestamp_header`, the signed content is `signed` (default `{timestamp}.{body}`)
    and requests older or newer than `tolerance` are refused (replays).
    """

    header: HeaderName
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    prefix: str = ""
    """Text before the digest in the header, e.g. `sha1=`."""
    encoding: Literal["hex", "base64"] = "hex"
    secrets: list[str] = []
    """Every accepted secret (rotation: old and new side by side)."""
    secret: str | None = None
    """One secret; shorthand for `secrets: [...]`."""
    timestamp_header: HeaderName | None = None
    tolerance: Duration | None = None
    """How far the timestamp may be from now (default 5m)."""
    signed: str | None = None
    """The signed content: `{body}` and `{timestamp}` are replaced by the raw bytes."""


class Ping(Base):
    """A handshake the sender's setup sends: answered at once, never queued."""

    when: Template
    """Truthy for a handshake, e.g. `{{ body.topic == "ping" }}`."""
    body: Template = '{{ {"status": "pong"} }}'


class WebhookResponse(Base):
    """What the sender gets once its event is safely queued."""

    status: StatusCode = 200
    body: Template | None = None
    """Template over `event_id`, `body` and `query` (default `{"status": "queued", "id": ...}`)."""


class WebhookRetry(Base):
    """How a failed event is retried before it becomes a dead letter."""

    attempts: Annotated[int, msgspec.Meta(ge=1, le=50)] = 5
    """Total attempts, the first included."""
    backoff: list[Duration] | None = None
    """Wait before each retry; the last value repeats (default 1s, 5s, 30s, 2m)."""


class Webhook(Base):
    """An endpoint a sender pushes events to: verified, de-duplicated, queued, answered 2xx.

    The handler (a plugin) runs later, from the durable queue, with retries.
    """

    id: Identifier
    path: RoutePath
    handler: ModuleRef
    """The plugin `module:function` that processes each event (from the queue)."""
    method: Literal["POST", "PUT"] = "POST"
    verify: NoVerify | HmacVerify = NoVerify()
    query: list[Param] = []
    """Query parameters the sender appends (validated; missing required ones are a 400)."""
    head: bool = True
    """Answer HEAD with 200 (URL validation by Intercom and others)."""
    ping: Ping | None = None
    dedupe_key: Template | None = None
    """Template over `body`, `query`, `headers`; a key seen before is answered 2xx, dropped."""
    settings: dict[str, Any] = {}
    upstreams: list[Identifier] = []
    """Upstreams whose clients the handler gets (default: this file's upstream)."""
    retry: WebhookRetry = WebhookRetry()
    response: WebhookResponse = WebhookResponse()


class Schedule(Base):
    """A handler run every `every`, by one replica at a time (a lock in the store)."""

    id: Identifier
    every: Duration
    handler: ModuleRef
    enabled: bool = True
    settings: dict[str, Any] = {}
    upstreams: list[Identifier] = []


class RouteFile(Base):
    """One `routes.d/*.yaml` file: an upstream and the routes, webhooks and schedules using it."""

    upstream: Upstream | None = None
    routes: list[Route] = []
    webhooks: list[Webhook] = []
    schedules: list[Schedule] = []
