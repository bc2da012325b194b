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
    """Title of the OpenAPI document; its first 20 characters name the plugin for humans."""
    description: str = "Routes to the configured upstream APIs."
    """Description of the OpenAPI document and of the ai-plugin manifest (for the
    model; its first 100 characters for humans)."""
    version: str = "1.0.0"
    """The OpenAPI document's `info.version`."""
    name_for_model: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9]{1,50}$")] = "gateway"
    """The ai-plugin manifest's `name_for_model`: 1 to 50 letters and digits."""
    contact_email: str = "ops@example.com"
    """The ai-plugin manifest's `contact_email`."""
    legal_info_url: str | None = None
    """The ai-plugin manifest's `legal_info_url` (default `<public_url>/docs`)."""
    logo_url: str | None = None
    """The ai-plugin manifest's `logo_url` (left out when not set)."""


class CorsSettings(Base):
    """Cross-origin settings for browser callers (ChatGPT's editor calls from its origins)."""

    allow_origins: list[str] = msgspec.field(
        default_factory=lambda: ["https://chat.openai.com", "https://chatgpt.com"]
    )
    """Origins whose pages may call the gateway (`*` for any); default ChatGPT's."""
    allow_methods: list[str] = msgspec.field(default_factory=lambda: ["*"])
    """Methods allowed in cross-origin requests (`*` for all)."""
    allow_headers: list[str] = msgspec.field(default_factory=lambda: ["*"])
    """Request headers a cross-origin caller may send (`*` for all)."""
    allow_credentials: bool = False
    """Allow cookies and credentials on cross-origin requests."""
    expose_headers: list[str] = msgspec.field(default_factory=lambda: ["X-Request-ID"])
    """Response headers the browser lets the calling page read."""
    max_age: Annotated[int, msgspec.Meta(ge=0)] = 600
    """Seconds a browser may cache the answer to a preflight request."""


class ApiKeyUser(Base):
    """A key that also names whose data the caller may read (`auth.user` in templates)."""

    key: str
    """The API key."""
    user: str
    """The user the key stands for (`auth.user` in templates)."""


class ApiKeyAuth(Base, tag="api_key", tag_field="type"):
    """An API key in a header (default `X-API-Key`) or a query parameter; several keys allowed."""

    id: Identifier
    """The scheme's name, given by routes in `auth:` (and by `defaults.auth`)."""
    keys: list[str | ApiKeyUser]
    """Plain keys, or `{key, user}` when the key stands for one user (such as an OMI uid)."""
    header: HeaderName | None = "X-API-Key"
    """The header carrying the key (looked at first); `null` to accept `query` only."""
    query: ParamName | None = None
    """The query parameter carrying the key when `header` is absent (default: none)."""

    def __post_init__(self) -> None:
        if self.header is None and self.query is None:
            raise ValueError("`header` or `query` must be set")


class BearerPassthroughAuth(Base, tag="bearer_passthrough", tag_field="type"):
    """The caller's `Authorization: Bearer` token is required and forwarded (multi-tenant)."""

    id: Identifier
    """The scheme's name, given by routes in `auth:` (and by `defaults.auth`)."""
    format: Literal["any", "jwt"] = "any"
    """`jwt` also checks the token has the shape of a JWT (three base64url parts)."""


class OAuthInbound(Base, tag="oauth", tag_field="type"):
    """Access tokens issued by the gateway's own authorization server (`oauth:` below);
    routes name the scopes they need in `scopes:`."""

    id: Identifier
    """The scheme's name, given by routes in `auth:` (and by `defaults.auth`)."""


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
    """Set together with `client_id`; empty: generated with it, printed once."""
    redirect_uris: list[str] = msgspec.field(default_factory=lambda: list(CHATGPT_CALLBACKS))
    """Allowed redirect URIs; `*` stands for one path segment."""
    scopes: list[str] | None = None
    """Scopes this client may ask for (default: all declared)."""


class OAuthUser(Base):
    """A person who can log in on the consent page, and the user id their tokens carry."""

    username: str
    """The name to log in with on the consent page."""
    password: str
    """The password to log in with (best read from `${ENV}` or `${file:...}`)."""
    user_id: str
    """The user id the tokens carry (`auth.user` in templates)."""


class OAuthServer(Base):
    """The gateway as an OAuth 2 authorization server (authorization code + refresh)."""

    clients: list[OAuthClient]
    """The clients (such as ChatGPT Actions) allowed to ask for tokens."""
    scopes: dict[str, str]
    """Scope -> what it allows, shown on the consent page and in the OpenAPI document."""
    users: list[OAuthUser] = []
    """The accounts that can log in on the consent page."""
    login_handler: ModuleRef | None = None
    """A plugin `module:function` checking `{username, password}` and returning a user id
    (instead of, or besides, `users`)."""
    access_token_ttl: Duration | None = None
    """How long an access token is valid (default 1h)."""
    refresh_token_ttl: Duration | None = None
    """How long a refresh token is valid (default 30 days)."""
    code_ttl: Duration | None = None
    """How long an authorization code can be exchanged for tokens (default 5m)."""


class RateLimit(Base):
    """At most `limit` requests per `per`, for each caller `key`: `ip`, `api_key` (the key
    used), `bearer` (the token used) or a template such as `{{ headers["x-tenant"] }}`."""

    limit: PositiveInt
    """Requests allowed per `per`; also how many may come at once."""
    per: Duration
    """The period `limit` is counted over, e.g. `1m`."""
    key: str = "ip"
    """What tells callers apart: `ip` (default), `api_key`, `bearer` or a template."""


class StoreSettings(Base):
    """Where state lives: `memory://` (one process, not durable) or `redis://host:6379/0`."""

    url: str = "memory://"
    """`memory://` (default), or a `redis://`, `rediss://` or `unix://` URL; applied at restart."""
    namespace: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = "gateway"
    """Prefix of every key, so that several gateways can share one Redis."""


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
    """Upstream statuses that are retried; failed connections and timeouts are too."""
    backoff: Duration | None = None
    """Wait before the second attempt (default 200ms); doubles after each retry."""


class Defaults(Base):
    """Settings every route inherits unless its upstream or itself says otherwise."""

    auth: str = "none"
    """Inbound auth of routes without `auth`: `none` or the id of a scheme in `auth`."""
    timeout: Duration | None = None
    """Upstream call timeout of upstreams without `timeout` (default 30s)."""
    retry: Retry | None = None
    """Retries of routes when neither they nor their upstream set `retry` (default:
    none)."""
    max_response_chars: PositiveInt = 100_000
    """Cap on an answer's size in characters, for routes without
    `response.max_chars`."""


class Profile(Base):
    """An action profile: a subset of routes that is a valid ChatGPT Action on its own."""

    id: Identifier
    """The profile's name; its document is served at `/actions/<id>/openapi.json`."""
    title: str
    """The `info.title` of the profile's OpenAPI document."""
    description: str
    """The `info.description` of the profile's OpenAPI document."""
    routes: list[Identifier] = []
    """Ids of the routes the profile includes."""
    tags: list[str] = []
    """Tags whose routes the profile includes too."""


class Admin(Base):
    """The admin API (`POST /admin/reload`): callers send one of `keys` in `header`."""

    keys: list[str] = []
    """The keys the admin API accepts; none (the default) turns the admin API off."""
    header: HeaderName = "X-Admin-Key"
    """The header carrying the admin key."""


class GatewayFile(Base):
    """`gateway.yaml`: the global file."""

    server: Server = Server()
    """How the gateway presents itself: public URL, access log, body size limit."""
    store: StoreSettings = StoreSettings()
    """Where shared and durable state lives (rate limits, queue, tokens)."""
    queue: QueueSettings = QueueSettings()
    """The webhook queue's workers."""
    admin: Admin = Admin()
    """The admin API (`POST /admin/reload`, dead letters)."""
    info: Info = Info()
    """The `info` of the OpenAPI document and the ai-plugin manifest."""
    cors: CorsSettings = CorsSettings()
    """Cross-origin settings for browser callers."""
    auth: list[InboundAuth] = []
    """Inbound auth schemes, named by routes in `auth:`."""
    defaults: Defaults = Defaults()
    """Settings every route inherits unless its upstream or itself says otherwise."""
    profiles: list[Profile] = []
    """Action profiles: subsets of routes, each served as its own OpenAPI document."""
    oauth: OAuthServer | None = None
    """The gateway's own OAuth 2 authorization server, for `oauth` schemes (default:
    off)."""


# --- routes.d/*.yaml ----------------------------------------------------------------------


class NoOutboundAuth(Base, tag="none", tag_field="type"):
    """The gateway adds no credentials."""


class BearerAuth(Base, tag="bearer", tag_field="type"):
    """`Authorization: Bearer <token>` on every upstream call."""

    token: str
    """The token (best read from `${ENV}` or `${file:...}`)."""


class HeaderAuth(Base, tag="header", tag_field="type"):
    """Any header carrying a credential, such as `X-Api-Key`."""

    name: HeaderName
    """The header's name, e.g. `X-Api-Key`."""
    value: str
    """The header's value: the credential (best read from `${ENV}` or `${file:...}`)."""


class PassthroughAuth(Base, tag="passthrough", tag_field="type"):
    """The caller's own header (default `Authorization`) is forwarded upstream."""

    header: HeaderName = "Authorization"
    """The caller's header that is forwarded upstream unchanged (when sent)."""


class OAuth2AuthorizationCode(Base, tag="oauth2_authorization_code", tag_field="type"):
    """The gateway as an OAuth 2 client of the upstream (Gmail): a user connects once at
    `GET <connect route>`, the refresh token is kept in the store, and access tokens are
    refreshed before they expire (one refresh at a time, across replicas)."""

    client_id: str
    """The gateway's client id at the provider."""
    client_secret: str
    """The gateway's client secret at the provider."""
    authorize_url: str
    """The provider's authorization endpoint, where a user connects."""
    token_url: str
    """The provider's token endpoint (code exchange and refresh)."""
    redirect_path: RoutePath
    """The gateway route the provider redirects back to (public_url + this path)."""
    scopes: list[str] = []
    """The scopes asked of the provider."""
    authorize_params: dict[str, str] = {}
    """Extra parameters of the authorization URL, e.g. `access_type: offline`."""
    refresh_margin: Duration | None = None
    """Refresh this long before expiry (default 60s)."""


OutboundAuth = NoOutboundAuth | BearerAuth | HeaderAuth | PassthroughAuth | OAuth2AuthorizationCode


class Upstream(Base):
    """The API a route file talks to; one pooled client is kept per upstream."""

    name: Identifier
    """Unique across files; `upstreams:` lists of handlers name it."""
    base_url: str
    """The absolute http(s) URL the call paths are appended to."""
    headers: dict[str, str] = {}
    """Headers sent on every call to this upstream."""
    auth: OutboundAuth = NoOutboundAuth()
    """The credentials the gateway sends on every call (default `none`)."""
    timeout: Duration | None = None
    """Time a call may take, per attempt (default `defaults.timeout`, else 30s)."""
    connect_timeout: Duration | None = None
    """Time to open a connection (default 5s)."""
    retry: Retry | None = None
    """Retries of this upstream's routes without `retry` (default `defaults.retry`)."""
    rate_limit: RateLimit | None = None
    """Shared by all routes of this upstream that do not set their own."""
    max_connections: PositiveInt = 100
    """Most connections open to this upstream at once."""


class Param(Base):
    """A query or path parameter: a small JSON Schema for one scalar value."""

    name: ParamName
    """The name in the query string, or `{name}` in the path."""
    type: Literal["string", "integer", "number", "boolean"] = "string"
    """The value's type; the text is converted (booleans: true/false, 1/0, yes/no, on/off)."""
    description: str | None = None
    """The parameter's description in the OpenAPI document."""
    required: bool = False
    """A request without it is refused (400); path parameters always are required."""
    default: str | int | float | bool | None = None
    """The value used when the parameter is not sent."""
    enum: list[str | int | float] | None = None
    """The only values allowed."""
    minimum: int | float | None = None
    """The smallest value allowed (`integer` and `number`)."""
    maximum: int | float | None = None
    """The largest value allowed (`integer` and `number`)."""
    min_length: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """The fewest characters allowed."""
    max_length: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """The most characters allowed."""
    pattern: str | None = None
    """A regular expression the value must contain a match of (not anchored)."""


class BodySpec(Base):
    """The JSON request body: a JSON Schema, or `{$ref: name}` of a file in schemas/."""

    schema: dict[str, Any]
    """The JSON Schema (draft 2020-12) the body is validated against, or `{$ref:
    name}`."""
    required: bool = True
    """A request without a body is refused (400); `false` validates it only when sent."""
    description: str | None = None
    """The request body's description in the OpenAPI document."""


class UpstreamCall(Base):
    """How one route calls its upstream. Strings are templates over the request.

    Without `query`, the route's declared query parameters are forwarded; without `body`,
    the request body is forwarded unchanged.
    """

    method: HttpMethod | None = None
    """The call's method (default: the route's)."""
    path: Template | None = None
    """Appended to the upstream's `base_url` (default: the route's path, parameters
    filled in)."""
    query: dict[str, Template] | None = None
    """The call's query parameters (default: the route's declared ones, as validated)."""
    headers: dict[str, Template] = {}
    """Headers added to the call; a header whose template renders empty is left out."""
    body: Template | None = None
    """The call's body: JSON, or plain text when it is not JSON (default: the request
    body)."""


class ResponseSpec(Base):
    """How the upstream answer (or a static answer) is shaped for the caller."""

    body: Template | None = None
    """Template over the upstream answer's `body` and `status`, and the caller's `request`."""
    status: StatusCode | None = None
    """The answer's status (default: the upstream's; 200 for static and plugin routes)."""
    fail_when: Template | None = None
    """Truthy when the upstream answered 2xx but the body carries an error (502 to the caller)."""
    fail_message: Template | None = None
    """The detail of the 502 when `fail_when` is truthy."""
    schema: dict[str, Any] | None = None
    """JSON Schema of the shaped body, for the OpenAPI document."""
    description: str = "Successful response"
    """The success response's description in the OpenAPI document."""
    max_chars: PositiveInt | None = None
    """Cap on the answer's size in characters (default from `defaults.max_response_chars`)."""


class Route(Base):
    """One public operation: method + path, becoming one OpenAPI operation."""

    id: Identifier
    """Unique across all files; the OpenAPI operationId."""
    path: RoutePath
    """The public path; `{name}` marks a path parameter."""
    method: HttpMethod = "GET"
    """The HTTP method callers use."""
    summary: str | None = None
    """The OpenAPI operation's summary."""
    description: str | None = None
    """The OpenAPI operation's description."""
    tags: list[str] = []
    """The OpenAPI operation's tags; profiles select routes by tag."""
    auth: str | None = None
    """Inbound auth: `none` or the id of a scheme in gateway.yaml (default: defaults.auth)."""
    scopes: list[str] = []
    """With an `oauth` scheme: the scopes a token needs for this route."""
    query: list[Param] = []
    """The query parameters accepted (validated; only these reach templates and the
    upstream)."""
    path_params: list[Param] = []
    """Types and checks of the `{name}` parameters of `path` (default: required
    strings)."""
    body: BodySpec | None = None
    """The JSON request body, validated (default: none declared, any body forwarded)."""
    upstream: UpstreamCall = UpstreamCall()
    """How the upstream is called."""
    static: bool = False
    """Answer from `response.body` alone, with no upstream call."""
    handler: ModuleRef | None = None
    """A plugin handler `module:function` (plugins/module.py) that answers this route."""
    settings: dict[str, Any] = {}
    """The handler's settings, checked against the plugin's `Settings` Struct."""
    upstreams: list[Identifier] = []
    """Upstreams whose clients the handler gets (default: this file's upstream)."""
    response: ResponseSpec = ResponseSpec()
    """How the answer is shaped."""
    timeout: Duration | None = None
    """Time the upstream call may take, per attempt (default: the upstream's)."""
    retry: Retry | None = None
    """Retries of the upstream call (default: the upstream's, else `defaults.retry`)."""
    rate_limit: RateLimit | None = None
    """This route's own rate limit (default: the upstream's, if any)."""
    consequential: bool | None = None
    """`x-openai-isConsequential` (default: false for GET, true otherwise)."""
    include_in_schema: bool = True
    """`false` leaves the route out of the OpenAPI documents (it still
    answers)."""


class NoVerify(Base, tag="none", tag_field="type"):
    """No signature (the sender signs nothing, like OMI); restrict by secret query or network."""


class HmacVerify(Base, tag="hmac", tag_field="type"):
    """An HMAC of the raw request bytes in a header, compared in constant time.

    With `timestamp_header`, the signed content is `signed` (default `{timestamp}.{body}`)
    and requests older or newer than `tolerance` are refused (replays).
    """

    header: HeaderName
    """The header carrying the signature."""
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    """The HMAC's hash function."""
    prefix: str = ""
    """Text before the digest in the header, e.g. `sha1=`."""
    encoding: Literal["hex", "base64"] = "hex"
    """How the digest is written in the header (hex in either case)."""
    secrets: list[str] = []
    """Every accepted secret (rotation: old and new side by side)."""
    secret: str | None = None
    """One secret; shorthand for `secrets: [...]`."""
    timestamp_header: HeaderName | None = None
    """A header with the send time (seconds or milliseconds since the epoch),
    signed with the body so that replays are refused."""
    tolerance: Duration | None = None
    """How far the timestamp may be from now (default 5m)."""
    signed: str | None = None
    """The signed content: `{body}` and `{timestamp}` are replaced by the raw bytes."""


class Ping(Base):
    """A handshake the sender's setup sends: answered at once, never queued."""

    when: Template
    """Truthy for a handshake, e.g. `{{ body.topic == "ping" }}`."""
    body: Template = '{{ {"status": "pong"} }}'
    """The answer to the handshake (default `{"status": "pong"}`)."""


class WebhookResponse(Base):
    """What the sender gets once its event is safely queued."""

    status: StatusCode = 200
    """The answer's status; a 2xx."""
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
    """Unique across all files, among route, webhook and schedule ids."""
    path: RoutePath
    """The path the sender calls; it has no parameters (use `query`)."""
    handler: ModuleRef
    """The plugin `module:function` that processes each event (from the queue)."""
    method: Literal["POST", "PUT"] = "POST"
    """The HTTP method the sender calls with."""
    verify: NoVerify | HmacVerify = NoVerify()
    """How a request is proven to come from the sender (default `none`)."""
    query: list[Param] = []
    """Query parameters the sender appends (validated; missing required ones are a 400)."""
    head: bool = True
    """Answer HEAD with 200 (URL validation by Intercom and others)."""
    ping: Ping | None = None
    """A handshake the sender sends, answered at once (default: none)."""
    dedupe_key: Template | None = None
    """Template over `body`, `query`, `headers`; a key seen before is answered 2xx, dropped."""
    settings: dict[str, Any] = {}
    """The handler's settings, checked against the plugin's `Settings` Struct."""
    upstreams: list[Identifier] = []
    """Upstreams whose clients the handler gets (default: this file's upstream)."""
    retry: WebhookRetry = WebhookRetry()
    """How a failed event is retried."""
    response: WebhookResponse = WebhookResponse()
    """What the sender gets once its event is queued."""


class Schedule(Base):
    """A handler run every `every`, by one replica at a time (a lock in the store)."""

    id: Identifier
    """Unique across all files, among route, webhook and schedule ids."""
    every: Duration
    """How often the handler runs (at least every 1s)."""
    handler: ModuleRef
    """The plugin `module:function` that is run."""
    enabled: bool = True
    """`false` stops the schedule (it is still checked)."""
    settings: dict[str, Any] = {}
    """The handler's settings, checked against the plugin's `Settings` Struct."""
    upstreams: list[Identifier] = []
    """Upstreams whose clients the handler gets (default: this file's upstream)."""


class RouteFile(Base):
    """One `routes.d/*.yaml` file: an upstream and the routes, webhooks and schedules using it."""

    upstream: Upstream | None = None
    """The API this file's routes call (not needed by static and plugin routes)."""
    routes: list[Route] = []
    """The public operations, each becoming an OpenAPI operation."""
    webhooks: list[Webhook] = []
    """Endpoints senders push events to."""
    schedules: list[Schedule] = []
    """Handlers run periodically."""
