"""gateway.yaml: the global configuration (server, auth schemes, OAuth server, store, queue,
defaults, profiles, admin)."""

from __future__ import annotations

# msgspec passes `frozen` down to subclasses; mypy's dataclass_transform model does not see it.
# mypy: disable-error-code="misc"
from typing import Annotated, Literal

import msgspec

from gateway.config.fields import (
    Duration,
    HeaderName,
    Identifier,
    ModuleRef,
    ParamName,
)
from gateway.config.model.common import Base, PositiveInt, Retry

__all__ = [
    "CHATGPT_CALLBACKS",
    "Admin",
    "ApiKeyAuth",
    "ApiKeyUser",
    "BearerPassthroughAuth",
    "CorsSettings",
    "Defaults",
    "GatewayFile",
    "InboundAuth",
    "Info",
    "MetricsSettings",
    "OAuthClient",
    "OAuthInbound",
    "OAuthRegistration",
    "OAuthServer",
    "OAuthUser",
    "OpenApiSettings",
    "OpenIdIdentity",
    "Profile",
    "QueueSettings",
    "ReloadSettings",
    "Server",
    "StoreSettings",
]


class Server(Base):
    """How the gateway presents itself."""

    public_url: str = ""
    """The URL clients (ChatGPT) reach the gateway at; written as `servers[0].url`. Empty
    (the default): where `gateway serve` listens, `http://127.0.0.1:<port>`; a ChatGPT
    Action needs a public https URL."""
    access_log: bool = True
    """Log one line per proxied request."""
    max_body_bytes: PositiveInt = 1_048_576
    """Largest request body accepted (413 beyond)."""
    max_header_bytes: PositiveInt = 16_384
    """Largest total size of a request's headers (names and values); 431 beyond."""
    max_json_depth: Annotated[int, msgspec.Meta(ge=2, le=512)] = 64
    """Deepest nesting of arrays and objects accepted in a JSON body (400 beyond)."""
    failed_auth_limit: PositiveInt = 10
    """Failed credential checks (API keys, the admin key, logins, client secrets) allowed per
    client IP and per credential in `failed_auth_window`; beyond it, 429 for the window."""
    failed_auth_window: Duration | None = None
    """The window `failed_auth_limit` is counted over, and how long a lockout lasts
    (default 1m)."""
    trusted_proxies: list[str] = []
    """Peers (addresses or CIDRs, e.g. `10.0.0.0/8`) whose `X-Forwarded-For`,
    `X-Forwarded-Proto` and `Forwarded` headers are believed, for the `ip` rate-limit key,
    the credential throttles and the logs. Empty: the headers are ignored."""
    drain: Duration | None = None
    """On SIGTERM, how long `/ready` answers 503 while requests are still served, so load
    balancers stop sending before the listener closes (default 5s; `gateway serve` only)."""
    shutdown_timeout: Duration | None = None
    """After the drain, how long requests in flight and webhook handlers may take to finish
    (default 25s)."""
    idle_timeout: Duration | None = None
    """A connection with no request under way is closed after this long, the first request
    included (default 5s; `gateway serve` only)."""
    header_timeout: Duration | None = None
    """A request whose line and headers are not all in this long after its first byte is
    answered 408 and closed (default 10s; `gateway serve` only)."""


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
    # MCP connectors: ChatGPT's apps and Claude's.
    "https://chatgpt.com/connector_platform_oauth_redirect",
    "https://chatgpt.com/connector/oauth/*",
    "https://claude.ai/api/mcp/auth_callback",
    "https://claude.com/api/mcp/auth_callback",
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
    """Allowed redirect URIs; `*` stands for one path segment. Default: ChatGPT's Actions
    (`https://chatgpt.com/aip/*/oauth/callback`, and on chat.openai.com), ChatGPT's MCP
    connectors (`https://chatgpt.com/connector_platform_oauth_redirect`,
    `https://chatgpt.com/connector/oauth/*`) and Claude's
    (`https://claude.ai/api/mcp/auth_callback`, on claude.com too)."""
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


class OpenIdIdentity(Base):
    """Sign-in with an external OpenID Connect provider ("Sign in with Google" is one):
    its discovery document is read from the issuer, and a user is `<issuer>#<sub>`.
    Register `<public_url>/oauth/identity/callback` as the client's redirect URI there."""

    issuer: str
    """The provider's issuer, e.g. `https://accounts.google.com` (empty: off)."""
    client_id: str
    """The gateway's client id at the provider."""
    client_secret: str
    """The gateway's client secret at the provider."""
    name: str = "OpenID Connect"
    """Shown on the sign-in button: "Sign in with <name>"."""
    scopes: list[str] = msgspec.field(default_factory=lambda: ["openid", "email", "profile"])
    """The scopes asked of the provider (`openid` is always sent)."""
    allow_emails: list[str] = []
    """Only these (verified) addresses may sign in; with `allow_domains` empty too,
    anyone with an account at the provider may."""
    allow_domains: list[str] = []
    """Verified addresses of these domains may sign in, e.g. `example.com`."""


class OAuthRegistration(Base):
    """How clients that are not in `oauth.clients` (MCP clients such as ChatGPT's apps and
    Claude) make themselves known. Either way they are public clients (no secret, PKCE
    required) whose redirect URIs are exact and https (or http on a loopback address), and
    a person still signs in and allows them on the consent page."""

    dynamic: bool = True
    """Dynamic Client Registration (RFC 7591) at `POST /oauth/register`."""
    per_hour: PositiveInt = 20
    """Registrations allowed per client address per hour (more get 429)."""
    metadata_documents: bool = True
    """Client ID Metadata Documents: a `client_id` that is an https URL names the client's
    own metadata, which the gateway fetches (5 KiB at most, 5 s, cached)."""
    allow_private_networks: bool = False
    """Fetch metadata documents from loopback and private addresses (and over http) too:
    for tests and clients on the same private network only."""


class OAuthServer(Base):
    """The gateway as an OAuth 2 authorization server (authorization code + refresh)."""

    scopes: dict[str, str]
    """Scope -> what it allows, shown on the consent page and in the OpenAPI document."""
    clients: list[OAuthClient] = []
    """The clients (such as ChatGPT Actions) allowed to ask for tokens; MCP clients may
    register themselves instead (`registration`)."""
    users: list[OAuthUser] = []
    """The accounts that can log in on the consent page."""
    users_from: str = ""
    """More accounts in one value, read from the environment or a file:
    `"${OMI_USERS:-}"` or `"${file:/run/secrets/users}"`. Entries `username:password:user_id`
    are separated by commas or line breaks (the password may hold `:`, not `,`); blank lines
    and lines starting with `#` are skipped. A malformed entry is a config error."""
    login_handler: ModuleRef | None = None
    """A plugin `module:function` checking `{username, password}` and returning a user id
    (instead of, or besides, `users`)."""
    access_token_ttl: Duration | None = None
    """How long an access token is valid (default 1h)."""
    refresh_token_ttl: Duration | None = None
    """How long a refresh token is valid (default 30 days)."""
    code_ttl: Duration | None = None
    """How long an authorization code can be exchanged for tokens (default 5m)."""
    identity: OpenIdIdentity | None = None
    """Sign-in with an external OpenID Connect provider, besides (or instead of) `users`
    and `login_handler`."""
    session_ttl: Duration | None = None
    """How long a sign-in on the gateway's pages lasts in the browser (default 12h)."""
    registration: OAuthRegistration = OAuthRegistration()
    """Clients registering themselves (MCP clients): on by default."""


class StoreSettings(Base):
    """Where state lives: `memory://` (one process, not durable) or `redis://host:6379/0`."""

    url: str = "memory://"
    """`memory://` (default), or a `redis://`, `rediss://` (TLS), `unix://`,
    `redis+sentinel://h1:26379,h2:26379/<service>` or `redis+cluster://h1:6379,h2:6379` URL;
    applied at restart."""
    namespace: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = "gateway"
    """Prefix of every key, so that several gateways can share one Redis."""
    encryption_keys: list[str] = []
    """Fernet keys (`gateway secret-key` makes one) encrypting the secrets kept in the
    store: users' connections and upstream refresh tokens. The first encrypts, all decrypt:
    put a new key first and keep the old one while it is rotated out. An entry may hold
    several, separated by commas. None set: with `memory://` a key made for the process;
    with Redis, connections cannot be kept (their routes answer 503)."""


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
    memory_limit: PositiveInt = 10_000
    """With the memory store: unfinished events held at most; a webhook beyond it is
    answered 503 with Retry-After (the sender retries later)."""
    consume: bool = True
    """Run handlers in this process; `false` makes a receive-only replica (with Redis,
    other replicas process the events)."""


class Defaults(Base):
    """Settings every route inherits unless its upstream or itself says otherwise."""

    auth: str | list[str] = "none"
    """Inbound auth of routes without `auth`: `none`, the id of a scheme in `auth`, or a
    list of them (any opens the route)."""
    timeout: Duration | None = None
    """Upstream call timeout of upstreams without `timeout` (default 30s)."""
    retry: Retry | None = None
    """Retries of routes when neither they nor their upstream set `retry` (default:
    none)."""
    max_response_chars: PositiveInt = 100_000
    """Cap on an answer's size in characters, for routes without
    `response.max_chars`."""
    deadline: Duration | None = None
    """Overall time for one upstream call with all its retries (default 40s, under
    ChatGPT's 45s); a retry that would not fit is not made."""


class OpenApiSettings(Base):
    """The merged document, `/openapi.json`."""

    auth: str | None = None
    """The one security scheme it declares (an Action takes one); routes that do not
    accept it are left out. Default: the `oauth` scheme when one is declared, else the
    scheme most routes accept."""


class Profile(Base):
    """An action profile: a subset of routes that is a valid ChatGPT Action on its own."""

    id: Identifier
    """The profile's name; its document is served at `/actions/<id>/openapi.json`."""
    title: str
    """The `info.title` of the profile's OpenAPI document."""
    description: str
    """The `info.description` of the profile's OpenAPI document."""
    auth: str | None = None
    """The one security scheme the profile's document declares; its routes that do not
    accept it are left out. Default: a scheme all its routes accept (the merged
    document's if they all do)."""
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


class MetricsSettings(Base):
    """Who may scrape `/metrics` (Prometheus text format)."""

    keys: list[str] = []
    """Keys a scraper sends as `Authorization: Bearer <key>` (Prometheus's `authorization`
    scrape setting). The admin keys, in the admin header, are accepted too. With neither,
    `/metrics` answers 503 unless `public` is on."""
    public: bool = False
    """Serve `/metrics` without a key: only where the network already keeps strangers out
    (a cluster-internal Service, a scraper on the same host)."""


class ReloadSettings(Base):
    """How live reload treats files caught half-written (see README, Live reload)."""

    settle: Duration | None = None
    """How long a watched file that vanished or lost all its contents (routes, webhooks,
    schedules; for gateway.yaml: any setting) must stay so before that is applied (default
    1s); an editor's save or a `cp` over it within that time applies only the new content."""


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
    metrics: MetricsSettings = MetricsSettings()
    """Who may scrape `/metrics`."""
    reload: ReloadSettings = ReloadSettings()
    """How live reload waits for files being rewritten."""
    info: Info = Info()
    """The `info` of the OpenAPI document and the ai-plugin manifest."""
    cors: CorsSettings = CorsSettings()
    """Cross-origin settings for browser callers."""
    auth: list[InboundAuth] = []
    """Inbound auth schemes, named by routes in `auth:`."""
    defaults: Defaults = Defaults()
    """Settings every route inherits unless its upstream or itself says otherwise."""
    openapi: OpenApiSettings = OpenApiSettings()
    """The merged OpenAPI document."""
    profiles: list[Profile] = []
    """Action profiles: subsets of routes, each served as its own OpenAPI document."""
    oauth: OAuthServer | None = None
    """The gateway's own OAuth 2 authorization server, for `oauth` schemes (default:
    off)."""


# --- routes.d/*.yaml ----------------------------------------------------------------------
