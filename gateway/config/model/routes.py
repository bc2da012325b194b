"""A route file's `upstream:` (with its outbound auth) and `routes:`."""

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
from gateway.config.model.common import Base, PositiveInt, RateLimit, Retry, StatusCode, Template

__all__ = [
    "BearerAuth",
    "BodySpec",
    "HeaderAuth",
    "McpSettings",
    "NoOutboundAuth",
    "OAuth2AuthorizationCode",
    "OutboundAuth",
    "Param",
    "PassthroughAuth",
    "ResponseSpec",
    "Route",
    "Upstream",
    "UpstreamCall",
    "UserTokenAuth",
]


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


class UserTokenAuth(Base, tag="user_token", tag_field="type"):
    """Each signed-in user's own credential for this upstream (such as their Ambivo JWT):
    pasted once at `/connections/<upstream>`, kept encrypted, sent on that user's calls. A
    caller that brings its own token (a `bearer_passthrough` route) has it passed through
    instead. Nothing falls back to another user's or the operator's credential."""

    header: HeaderName = "Authorization"
    """The upstream header that carries the credential."""
    prefix: str = "Bearer "
    """Written before the credential in `header` (`""` for a bare key)."""
    format: Literal["any", "jwt"] = "any"
    """`jwt`: a pasted credential must have the shape of a JWT (three base64url parts)."""
    title: str | None = None
    """What the connect page asks for, e.g. `Ambivo API token` (default: `<upstream>
    token`)."""
    instructions: str = ""
    """Shown on the connect page: where the user finds the credential."""
    max_length: Annotated[int, msgspec.Meta(ge=16, le=65536)] = 8192
    """The longest credential accepted."""


OutboundAuth = (
    NoOutboundAuth
    | BearerAuth
    | HeaderAuth
    | PassthroughAuth
    | OAuth2AuthorizationCode
    | UserTokenAuth
)


class Upstream(Base):
    """The API a route file talks to; one pooled client is kept per upstream."""

    name: Identifier
    """Unique across files; `upstreams:` lists of handlers name it."""
    base_url: str
    """The absolute http(s) URL the call paths are appended to."""
    headers: dict[str, str] = {}
    """Headers sent on every call to this upstream; one whose value is empty (an optional
    `${VAR:-}` left unset) is not sent."""
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
    scopes: list[str] = []
    """OAuth scopes (of `oauth.scopes`) a gateway token needs for this upstream's routes,
    those that set no `scopes` of their own."""
    max_answer_bytes: PositiveInt = 10_485_760
    """Largest upstream answer read (10 MiB); a larger one stops the read at the cap and is
    a 502 (memory stays bounded)."""
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
    pass_statuses: list[StatusCode] | None = None
    """Upstream error statuses answered to the caller as themselves instead of 502 (default
    404 and 429, plus 401 and 403 as 401 when the caller's own token is passed through)."""
    error_body: Template | None = None
    """The body of every error this route answers (auth, validation, rate limit, upstream,
    plugin), a template over `problem` (its fields: type, title, status, detail, route,
    request_id, errors...), sent as JSON with the same status and headers, e.g. `{{
    {"status": "error", "message": problem.detail} }}` (default: the RFC 9457 problem)."""


class McpSettings(Base):
    """How a route is offered as an MCP tool (each served operation is one by default)."""

    enabled: bool = True
    """`false`: not a tool (the route stays an HTTP operation)."""
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    """The tool's name (default: the route's id)."""
    description: str | None = None
    """The tool's description (default: the route's description, else its summary)."""
    read_only: bool | None = None
    """`readOnlyHint` (default: true for GET and HEAD, and for `consequential: false`)."""
    destructive: bool | None = None
    """`destructiveHint` (default: true for PUT, PATCH and DELETE that are not read-only)."""
    idempotent: bool | None = None
    """`idempotentHint` (default: true for read-only tools, PUT and DELETE)."""
    open_world: bool | None = None
    """`openWorldHint` (default: true when the route calls an upstream)."""


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
    auth: str | list[str] | None = None
    """Inbound auth: `none`, the id of a scheme in gateway.yaml, or a list of them, any of
    which opens the route (`[oauth, api_key]`) (default: defaults.auth). Each served
    document declares one scheme and lists the routes that accept it."""
    scopes: list[str] | None = None
    """With an `oauth` scheme: the scopes a token needs for this route (default: the
    upstream's `scopes`)."""
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
    """`x-openai-isConsequential`: `true` makes ChatGPT ask the user before every call,
    `false` lets them "Always allow" it (a read-only POST). Default: false for GET, true
    otherwise."""
    include_in_schema: bool = True
    """`false` leaves the route out of the OpenAPI documents (it still
    answers)."""
    merged: bool = True
    """`false` leaves the route out of the merged `/openapi.json` only (profiles still
    include it): for a merged document over ChatGPT's 30 operations."""
    mcp: McpSettings = McpSettings()
    """The route as an MCP tool of `/mcp` (and `/mcp/<profile>`)."""
