"""Serve one declared route, as raw ASGI (the measured hot path).

Per request: unconfigured? -> inbound auth -> rate limit -> read and validate -> the route
kind's handler (proxy, static answer, plugin). Every failure is a problem+json answer;
nothing here raises to the server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from gateway import metrics
from gateway.host.invoke import Crashed, Refused, invoke
from gateway.host.runtime import PluginHost
from gateway.logs import logger
from gateway.oauth.runtime import OAuthRuntime, TokenRefused
from gateway.plugin import PluginRequest, PluginResponse
from gateway.serve.answers import (
    Answer,
    Headers,
    Problem,
    decode_json_body,
    read_body,
    render,
    send_response,
)
from gateway.serve.answers import shaped as shaped_answer
from gateway.serve.exchange import (
    Exchange,
    client_ip,
    not_connected,
    rate_limited,
    too_many_failures,
)
from gateway.serve.inbound import Identity, Unauthorized, authenticate, bearer_token
from gateway.serve.mcp_paths import AUDIENCE
from gateway.serve.problems import PROBLEM_CONTENT_TYPE, problem_fields, templated_error
from gateway.serve.proxy import ProxyHandler
from gateway.snapshot import (
    CompiledRoute,
    FieldError,
    InboundAuthSpec,
    PluginRoute,
    ProxyRoute,
    RouteCommon,
    RouteMatch,
    Snapshot,
    StaticRoute,
)
from gateway.store.errors import STORE_ERRORS
from gateway.store.ratelimit import RateLimiter
from gateway.store.throttle import Throttle

__all__ = ["Dispatcher"]

Scope = dict[str, Any]
GATEWAY_TOKEN = re.compile(r"[A-Za-z0-9]{42}")
"""The shape of the access tokens the gateway's authorization server issues."""
_decode_json = msgspec.json.decode
_encode_json = msgspec.json.encode


class Dispatcher:
    """``await dispatcher(snapshot, match, scope, receive, send, request_id, cors)`` -> status."""

    def __init__(
        self, host: PluginHost, limiter: RateLimiter, oauth: OAuthRuntime | None = None
    ) -> None:
        self.host = host
        self.oauth = oauth
        self.limiter = limiter
        self.proxy = ProxyHandler(host.upstreams)
        self.throttle = Throttle(host.backend.store, limiter)

    async def __call__(
        self,
        snapshot: Snapshot,
        match: RouteMatch,
        scope: Scope,
        receive: Any,
        send: Any,
        request_id: str,
        cors_headers: Headers,
    ) -> int:
        route = match.route
        base_headers = [(b"x-request-id", request_id.encode()), *cors_headers]
        try:
            try:
                answer = await self._serve(
                    snapshot, route, match.params, scope, receive, request_id
                )
            except STORE_ERRORS as exc:
                logger.error("route %s: the store is unreachable: %s", route.id, exc)
                problem = Problem(
                    503, "store-unavailable", "the gateway's store is unreachable; retry shortly"
                )
                problem.headers.append((b"retry-after", b"5"))
                raise problem from None
            except Problem:
                raise
            except Exception as exc:  # a bug: one line, a clean problem, never a traceback page
                logger.error("route %s: internal error: %s: %s", route.id, type(exc).__name__, exc)
                raise Problem(500, "internal-error", "internal error") from None
        except Problem as problem:
            detail = snapshot.redact(problem.detail)
            fields = problem_fields(
                problem.status,
                problem.slug,
                detail,
                route=route.id,
                request_id=request_id,
                **problem.extra,
            )
            if route.error_body is None:
                content_type, body = PROBLEM_CONTENT_TYPE, _encode_json(fields)
            else:  # the route's own error shape (`response.error_body`)
                content_type, body = templated_error(route.error_body, fields)
            answer = Answer(problem.status, content_type, body, problem.headers)
            if problem.status in (502, 504):
                logger.warning("route %s: %d %s", route.id, problem.status, detail)
        await send_response(
            send, answer.status, answer.content_type, answer.body, [*base_headers, *answer.headers]
        )
        return answer.status

    async def _serve(
        self,
        snapshot: Snapshot,
        route: CompiledRoute,
        path_values: dict[str, str],
        scope: Scope,
        receive: Any,
        request_id: str,
    ) -> Answer:
        if route.unconfigured is not None:
            raise Problem(503, "not-configured", route.unconfigured)
        raw_query = scope.get("query_string", b"")
        exchange = Exchange(
            snapshot,
            scope,
            receive,
            request_id,
            {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]},
            dict(parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True))
            if raw_query
            else {},
        )
        if route.auth is not None:
            exchange.identity = await self._authenticate(route, exchange)
        limited: Headers = []
        if route.rate_limit is not None:
            limited = await self._rate_limit(route, exchange)
        try:
            exchange.raw_body = await read_body(receive, exchange.headers, snapshot.max_body_bytes)
            context = self._validate(route, path_values, exchange)
            if isinstance(route, ProxyRoute):
                answer = await self.proxy(exchange, route, context)
            elif isinstance(route, StaticRoute):
                value = render(
                    route.id, route.answer, {**context, "status": 200, "request": context}
                )
                answer = shaped_answer(route.response_status or 200, value, route.max_chars)
            else:
                answer = await self._plugin(exchange, route, context)
        except Problem as problem:
            problem.headers.extend(limited)
            raise
        if limited:
            return Answer(
                answer.status, answer.content_type, answer.body, [*answer.headers, *limited]
            )
        return answer

    # --- who calls -------------------------------------------------------------------------

    async def _authenticate(self, route: RouteCommon, exchange: Exchange) -> Identity | None:
        auth = route.auth
        if auth is None:
            return None
        if len(route.accepts) > 1:
            presented = _presented(route.accepts, exchange)
            if presented is None:
                metrics.auth_failed("bearer" if auth.type != "api_key" else "api_key")
                raise _credentials_required(route.accepts)
            auth = presented
        if auth.unconfigured is not None:
            raise Problem(503, "not-configured", auth.unconfigured)
        if auth.type == "oauth":
            audience = exchange.scope.get(AUDIENCE)  # set when an MCP tool call is the route
            return await self._oauth_identity(route, auth, exchange.headers, audience)
        if auth.type != "api_key":  # a passed-through token is checked by its upstream
            return self._checked(auth, exchange)
        ip = client_ip(exchange.scope)
        limits = exchange.snapshot.failed_auth
        if (wait := await self.throttle.blocked("api_key", ip, None)) is not None:
            raise too_many_failures(wait)
        try:
            return self._checked(auth, exchange)
        except Problem:
            lockout = await self.throttle.failed(
                "api_key", ip, None, limits.failures, limits.window
            )
            if lockout is not None:
                raise too_many_failures(lockout) from None
            raise

    @staticmethod
    def _checked(auth: InboundAuthSpec, exchange: Exchange) -> Identity:
        try:
            return authenticate(auth, exchange.headers, exchange.query)
        except Unauthorized as exc:
            metrics.auth_failed("api_key" if auth.type == "api_key" else "bearer")
            problem = Problem(401, "unauthorized", exc.detail)
            if exc.challenge:
                problem.headers.append((b"www-authenticate", exc.challenge.encode()))
            raise problem from None

    async def _oauth_identity(
        self,
        route: RouteCommon,
        auth: InboundAuthSpec,
        headers: dict[str, str],
        audience: str | None = None,
    ) -> Identity:
        """The caller of an `oauth` route: a valid, unexpired token with the route's scopes."""
        if self.oauth is None:
            raise Problem(503, "not-configured", "this gateway has no `oauth:` section")
        try:
            token = bearer_token(headers)
            grant = await self.oauth.verify(token, route.scopes, audience)
        except Unauthorized as exc:
            metrics.auth_failed("oauth_token")
            problem = Problem(401, "unauthorized", exc.detail)
            problem.headers.append((b"www-authenticate", (exc.challenge or "Bearer").encode()))
            raise problem from None
        except TokenRefused as exc:
            metrics.auth_failed("oauth_token" if exc.status == 401 else "oauth_scope")
            slug = "insufficient-scope" if exc.status == 403 else "invalid-token"
            problem = Problem(exc.status, slug, exc.detail)
            problem.headers.append((b"www-authenticate", exc.challenge.encode()))
            raise problem from None
        return Identity(auth.id, subject=grant.subject, user=grant.user_id)

    async def _rate_limit(self, route: RouteCommon, exchange: Exchange) -> Headers:
        """RateLimit-* headers for the answer; raises a 429 problem when over the limit."""
        spec = route.rate_limit
        if spec is None:
            return []
        identity = exchange.identity
        if spec.key == "ip":
            caller = client_ip(exchange.scope)
        elif spec.key in ("api_key", "bearer") or spec.template is None:
            caller = identity.subject if identity and identity.subject else "anonymous"
        else:
            context = {
                "headers": exchange.headers,
                "query": exchange.query,
                "path": {},
                "body": None,
                "route": route.id,
                "request_id": "",
                "auth": {},
            }
            caller = str(render(route.id, spec.template, context))
        decision = await self.limiter.hit(f"{spec.scope}:{caller}", spec.limit, spec.period)
        if not decision.allowed:
            metrics.rate_limited(route.id)
            raise rate_limited(spec, decision)
        return decision.headers()

    # --- what it sent ----------------------------------------------------------------------

    @staticmethod
    def _validate(
        route: RouteCommon, path_values: dict[str, str], exchange: Exchange
    ) -> dict[str, Any]:
        """The template context of a valid request; a 400 problem listing every bad field."""
        errors: list[FieldError] = []
        path = route.path_validator(path_values, errors)
        for name, value in path.items():
            if value in (".", ".."):
                errors.append(FieldError("path", name, "must not be `.` or `..`"))
        query = route.query_validator(exchange.query, errors)
        raw_body = exchange.raw_body
        body: Any = None
        if raw_body:
            content_type = exchange.headers.get("content-type", "application/json")
            if "json" in content_type:
                body, refused = decode_json_body(raw_body, exchange.snapshot.max_json_depth)
                if refused is not None:
                    errors.append(FieldError("body", "$", refused))
            elif route.body is not None:
                errors.append(
                    FieldError("body", "$", f"must be application/json, got {content_type}")
                )
        if route.body is not None and not errors:
            if body is None and raw_body == b"":
                if route.body.required:
                    errors.append(FieldError("body", "$", "a JSON body is required"))
            else:
                errors.extend(route.body.errors(body))
        if errors:
            fields = [{"in": e.location, "field": e.field, "message": e.message} for e in errors]
            count = f"{len(errors)} field{'s' if len(errors) > 1 else ''}"
            raise Problem(
                400, "validation-failed", f"the request is invalid: {count} failed", errors=fields
            )
        identity = exchange.identity
        return {
            "query": query,
            "path": path,
            "headers": exchange.headers,
            "body": body,
            "route": route.id,
            "request_id": exchange.request_id,
            "auth": identity.as_context() if identity else {"scheme": "none"},
        }

    # --- plugins ---------------------------------------------------------------------------

    async def _plugin(
        self, exchange: Exchange, route: PluginRoute, context: dict[str, Any]
    ) -> Answer:
        target = route.plugin
        user = exchange.user
        caller = exchange.caller()
        ctx = self.host.context(target, route.clients, exchange.request_id, caller)
        request = PluginRequest(
            method=exchange.scope["method"],
            path=exchange.scope["path"],
            route=route.id,
            query=context["query"],
            path_params=context["path"],
            headers=exchange.headers,
            body=context["body"],
            request_id=exchange.request_id,
            auth_scheme=context["auth"]["scheme"],
            user=user,
        )
        outcome = await invoke(target, ctx, request)
        if isinstance(outcome, Refused):
            if outcome.slug in ("upstream-not-connected", "upstream-refused-credential"):
                raise not_connected(outcome.detail, outcome.slug, outcome.connect_url)
            if outcome.slug == "upstream-timeout":  # as before: one upstream-unreachable kind
                raise Problem(502, "upstream-unreachable", outcome.detail)
            problem = Problem(outcome.status, outcome.slug, outcome.detail)
            problem.headers.extend(_header_pairs(outcome.headers))
            raise problem
        if isinstance(outcome, Crashed):
            raise Problem(502, "plugin-failed", f"plugin {target.name} failed: {outcome.kind}")
        result = outcome.value
        if isinstance(result, PluginResponse):
            status, body = result.status, result.body
            extra = _header_pairs(result.headers)
        else:
            status, body, extra = route.response_status or 200, result, []
        answer = shaped_answer(status, body, route.max_chars)
        return Answer(answer.status, answer.content_type, answer.body, extra)


def _presented(accepts: tuple[InboundAuthSpec, ...], exchange: Exchange) -> InboundAuthSpec | None:
    """Which of a route's schemes the request speaks: an API key's header (or query
    parameter) when sent; for `Authorization`, a gateway token (42 letters and digits) is
    `oauth` and anything else (a JWT) is passed through; None when it sent none."""
    headers = exchange.headers
    for spec in accepts:
        if spec.type == "api_key" and (
            (spec.header and spec.header.lower() in headers)
            or (spec.query and spec.query in exchange.query)
        ):
            return spec
    bearers = [spec for spec in accepts if spec.type != "api_key"]
    authorization = headers.get("authorization")
    if authorization is None:
        return None
    if not bearers:
        return accepts[0]
    if len(bearers) == 1:
        return bearers[0]
    token = authorization.partition(" ")[2].strip()
    gateway_token = GATEWAY_TOKEN.fullmatch(token) is not None
    for spec in bearers:
        if (spec.type == "oauth") == gateway_token:
            return spec
    return bearers[0]


def _credentials_required(accepts: tuple[InboundAuthSpec, ...]) -> Problem:
    """The 401 of a request that sent none of the credentials a route takes: each way."""
    tokens = []
    keys = []
    for spec in accepts:
        if spec.type == "oauth":
            tokens.append("a token of this gateway's sign-in")
        elif spec.type == "bearer_passthrough":
            tokens.append("your own token")
        elif spec.header:
            keys.append(f"an API key in the {spec.header} header")
        else:
            keys.append(f"an API key in the `{spec.query}` query parameter")
    ways = [f"`Authorization: Bearer <token>` with {' or '.join(tokens)}"] if tokens else []
    ways += keys
    problem = Problem(401, "unauthorized", f"credentials required: send {' or '.join(ways)}")
    if any(spec.type != "api_key" for spec in accepts):
        problem.headers.append((b"www-authenticate", b'Bearer realm="gateway"'))
    return problem


def _header_pairs(headers: Mapping[str, str]) -> Headers:
    return [(key.lower().encode(), value.encode()) for key, value in headers.items()]
