"""Serve one declared route, as raw ASGI (the measured hot path).

Per request: unconfigured? -> inbound auth -> read and validate -> build the upstream call
from templates -> call with timeout and retries -> shape the answer (fail_when, template,
size cap). Every failure is a problem+json answer; nothing here raises to the server.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import jinja2
import msgspec

from gateway.compiler.validation import FieldError, body_errors
from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.logs import logger
from gateway.oauth.runtime import OAuthRuntime, TokenRefused
from gateway.plugin import PluginError, PluginRequest, PluginResponse, UpstreamNotConnected
from gateway.runtime import PluginRuntime
from gateway.serve.inbound import Identity, Unauthorized, authenticate, bearer_token
from gateway.serve.problems import PROBLEM_CONTENT_TYPE, problem_body
from gateway.serve.shaping import cap_json, cap_text
from gateway.snapshot import CompiledRoute, RouteMatch, Snapshot

__all__ = ["TEMPLATE_ERRORS", "Dispatcher", "Problem", "read_body", "send_response"]

Scope = dict[str, Any]
JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
EXCERPT_CHARS = 200
TEMPLATE_ERRORS = (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError)
"""What a template can raise on data of an unexpected shape."""
_decode_json = msgspec.json.decode
_encode_json = msgspec.json.Encoder().encode


class Problem(Exception):
    """An answer the gateway gives instead of the upstream's: status, slug, detail."""

    def __init__(self, status: int, slug: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.extra = extra
        self.headers: list[tuple[bytes, bytes]] = []


async def send_response(
    send: Any, status: int, content_type: bytes, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """One complete ASGI answer with a known length."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Dispatcher:
    """``await dispatcher(snapshot, match, scope, receive, send, request_id)`` -> status sent."""

    def __init__(self, runtime: PluginRuntime, oauth: OAuthRuntime | None = None) -> None:
        self.runtime = runtime
        self.oauth = oauth
        self.caller = runtime.caller
        self.limiter = runtime.backend.limiter

    async def __call__(
        self,
        snapshot: Snapshot,
        match: RouteMatch,
        scope: Scope,
        receive: Any,
        send: Any,
        request_id: str,
        cors_headers: list[tuple[bytes, bytes]],
    ) -> int:
        route = match.route
        base_headers = [(b"x-request-id", request_id.encode()), *cors_headers]
        try:
            status, content_type, body, extra = await self._serve(
                snapshot, route, match.params, scope, receive, request_id
            )
        except Problem as problem:
            status, content_type = problem.status, PROBLEM_CONTENT_TYPE
            detail = snapshot.redact(problem.detail)
            body = problem_body(
                status, problem.slug, detail, route=route.id, request_id=request_id, **problem.extra
            )
            extra = problem.headers
            if status in (502, 504):
                logger.warning("route %s: %d %s", route.id, status, detail)
        await send_response(send, status, content_type, body, [*base_headers, *extra])
        return status

    async def _serve(
        self,
        snapshot: Snapshot,
        route: CompiledRoute,
        path_values: dict[str, str],
        scope: Scope,
        receive: Any,
        request_id: str,
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        if route.unconfigured is not None:
            raise Problem(503, "not-configured", route.unconfigured)
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        raw_query = scope.get("query_string", b"")
        query_raw = (
            dict(parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True))
            if raw_query
            else {}
        )

        identity = None
        if route.auth is not None and route.auth.type == "oauth":
            identity = await self._oauth_identity(route, headers)
        elif route.auth is not None:
            try:
                identity = authenticate(route.auth, headers, query_raw)
            except Unauthorized as exc:
                problem = Problem(401, "unauthorized", exc.detail)
                if exc.challenge:
                    problem.headers.append((b"www-authenticate", exc.challenge.encode()))
                raise problem from None

        limited: list[tuple[bytes, bytes]] = []
        if route.rate_limit is not None:
            limited = await self._rate_limit(route, scope, headers, query_raw, identity)
        try:
            status, content_type, body, extra = await self._handle(
                snapshot,
                route,
                path_values,
                scope,
                receive,
                request_id,
                headers,
                query_raw,
                identity,
            )
        except Problem as problem:
            problem.headers.extend(limited)
            raise
        return status, content_type, body, [*extra, *limited]

    async def _handle(
        self,
        snapshot: Snapshot,
        route: CompiledRoute,
        path_values: dict[str, str],
        scope: Scope,
        receive: Any,
        request_id: str,
        headers: dict[str, str],
        query_raw: dict[str, str],
        identity: Identity | None,
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        """Read, validate and answer a request that passed auth and rate limits."""
        raw_body = await read_body(receive, headers, snapshot.max_body_bytes)
        context = self._validate(
            route, path_values, query_raw, headers, raw_body, request_id, identity
        )

        if route.static:
            assert route.response_body is not None
            value = self._render(
                route,
                route.response_body,
                {**context, "status": 200, "request": context},
            )
            return self._shaped(route, route.response_status or 200, value)

        if route.plugin is not None:
            return await self._run_plugin(snapshot, route, scope, context)

        assert route.upstream is not None
        status, upstream_type, upstream_body = await self._call(
            route, context, headers, raw_body, identity
        )
        if not 200 <= status < 300:
            # Redact the whole body before cutting: a secret crossing a cut-off window would
            # not match and leak its first characters into the excerpt.
            excerpt = snapshot.redact(upstream_body.decode("utf-8", "replace"))
            if identity is not None and identity.token:
                excerpt = excerpt.replace(identity.token, "***")
            raise Problem(
                502,
                "upstream-error",
                f'upstream "{route.upstream_name}" answered {status}',
                upstream_status=status,
                upstream_excerpt=excerpt[:EXCERPT_CHARS],
            )
        if not route.needs_json:
            if len(upstream_body) > route.max_chars:
                text = upstream_body.decode("utf-8", "replace")
                if len(text) > route.max_chars:
                    return self._shaped(
                        route, route.response_status or status, self._parse(text, upstream_type)
                    )
            return route.response_status or status, upstream_type or JSON, upstream_body, []

        answer = self._parse(upstream_body.decode("utf-8", "replace"), upstream_type)
        response_context = {
            **context,
            "body": answer,
            "status": status,
            "request": context,
        }
        if route.fail_when is not None and self._render(route, route.fail_when, response_context):
            message = (
                self._render(route, route.fail_message, response_context)
                if route.fail_message is not None
                else "the upstream reported an error"
            )
            raise Problem(
                502,
                "upstream-reported-error",
                f'upstream "{route.upstream_name}" reported an error: {message}',
                upstream_status=status,
            )
        value = answer
        if route.response_body is not None:
            value = self._render(route, route.response_body, response_context)
        return self._shaped(route, route.response_status or status, value)

    # --- request ---------------------------------------------------------------------------

    @staticmethod
    def _validate(
        route: CompiledRoute,
        path_values: dict[str, str],
        query_raw: dict[str, str],
        headers: dict[str, str],
        raw_body: bytes,
        request_id: str,
        identity: Identity | None,
    ) -> dict[str, Any]:
        errors: list[FieldError] = []
        path = route.path_validator(path_values, errors)
        for name, value in path.items():
            if value in (".", ".."):
                errors.append(FieldError("path", name, "must not be `.` or `..`"))
        query = route.query_validator(query_raw, errors)
        body: Any = None
        if raw_body:
            content_type = headers.get("content-type", "application/json")
            if "json" in content_type:
                try:
                    body = _decode_json(raw_body)
                except msgspec.DecodeError as exc:
                    errors.append(FieldError("body", "$", f"is not valid JSON: {exc}"))
            elif route.body_validator is not None:
                errors.append(
                    FieldError("body", "$", f"must be application/json, got {content_type}")
                )
        if route.body_validator is not None and not errors:
            if body is None and raw_body == b"":
                if route.body_required:
                    errors.append(FieldError("body", "$", "a JSON body is required"))
            else:
                errors.extend(body_errors(route.body_validator, body))
        if errors:
            fields = [{"in": e.location, "field": e.field, "message": e.message} for e in errors]
            count = f"{len(errors)} field{'s' if len(errors) > 1 else ''}"
            raise Problem(
                400, "validation-failed", f"the request is invalid: {count} failed", errors=fields
            )
        return {
            "query": query,
            "path": path,
            "headers": headers,
            "body": body,
            "route": route.id,
            "request_id": request_id,
            "auth": identity.as_context() if identity else {"scheme": "none"},
        }

    async def _oauth_identity(self, route: CompiledRoute, headers: dict[str, str]) -> Identity:
        """The caller of an `oauth` route: a valid, unexpired token with the route's scopes."""
        assert route.auth is not None
        if self.oauth is None:
            raise Problem(503, "not-configured", "this gateway has no `oauth:` section")
        try:
            token = bearer_token(headers)
            grant = await self.oauth.verify(token, route.scopes)
        except Unauthorized as exc:
            problem = Problem(401, "unauthorized", exc.detail)
            problem.headers.append((b"www-authenticate", (exc.challenge or "Bearer").encode()))
            raise problem from None
        except TokenRefused as exc:
            slug = "insufficient-scope" if exc.status == 403 else "invalid-token"
            problem = Problem(exc.status, slug, exc.detail)
            problem.headers.append((b"www-authenticate", exc.challenge.encode()))
            raise problem from None
        return Identity(route.auth.id, subject=grant.subject, user=grant.user_id)

    async def _rate_limit(
        self,
        route: CompiledRoute,
        scope: Scope,
        headers: dict[str, str],
        query: dict[str, str],
        identity: Identity | None,
    ) -> list[tuple[bytes, bytes]]:
        """RateLimit-* headers for the answer; raises a 429 problem when over the limit."""
        spec = route.rate_limit
        assert spec is not None
        if spec.key == "ip":
            caller = (scope.get("client") or ("unknown", 0))[0]
        elif spec.key in ("api_key", "bearer"):
            caller = identity.subject if identity and identity.subject else "anonymous"
        else:
            assert spec.template is not None
            context = {
                "headers": headers,
                "query": query,
                "path": {},
                "body": None,
                "route": route.id,
                "request_id": "",
                "auth": {},
            }
            caller = str(self._render(route, spec.template, context))
        decision = await self.limiter.hit(f"{spec.scope}:{caller}", spec.limit, spec.period)
        if not decision.allowed:
            problem = Problem(
                429,
                "rate-limited",
                f"rate limit of {spec.limit} per {spec.period:g}s reached; "
                f"retry in {max(1, math.ceil(decision.retry_after))}s",
            )
            problem.headers.extend(decision.headers())
            raise problem
        return decision.headers()

    # --- plugins ---------------------------------------------------------------------------

    async def _run_plugin(
        self, snapshot: Snapshot, route: CompiledRoute, scope: Scope, context: dict[str, Any]
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        target = route.plugin
        assert target is not None
        request_id = context["request_id"]
        ctx = self.runtime.context(
            target, route.plugin_clients, request_id, context["auth"].get("user")
        )
        request = PluginRequest(
            method=scope["method"],
            path=scope["path"],
            route=route.id,
            query=context["query"],
            path_params=context["path"],
            headers=context["headers"],
            body=context["body"],
            request_id=request_id,
            auth_scheme=context["auth"]["scheme"],
            user=context["auth"].get("user"),
        )
        name = f"{target.module}:{target.function}"
        try:
            result = await target.handler(ctx, request)
        except PluginError as exc:
            raise Problem(exc.status, "plugin-refused", exc.detail) from None
        except UpstreamNotConnected as exc:
            raise not_connected(exc) from None
        except UpstreamError as exc:
            raise Problem(502, "upstream-unreachable", str(exc)) from None
        except Exception as exc:
            logger.exception("plugin %s failed on route %s", name, route.id)
            raise Problem(
                502, "plugin-failed", f"plugin {name} failed: {type(exc).__name__}"
            ) from None
        if isinstance(result, PluginResponse):
            status, body = result.status, result.body
            extra = [
                (key.lower().encode(), value.encode()) for key, value in result.headers.items()
            ]
        else:
            status, body, extra = route.response_status or 200, result, []
        shaped_status, content_type, encoded, _ = self._shaped(route, status, body)
        return shaped_status, content_type, encoded, extra

    # --- upstream --------------------------------------------------------------------------

    async def _call(
        self,
        route: CompiledRoute,
        context: dict[str, Any],
        inbound: Mapping[str, str],
        raw_body: bytes,
        identity: Identity | None,
    ) -> tuple[int, bytes | None, bytes]:
        settings = route.upstream
        assert settings is not None
        path = str(self._render(route, route.upstream_path, context))
        if not path.startswith("/"):
            path = "/" + path
        params = _query_values(
            {
                key: self._render(route, template, context)
                for key, template in route.upstream_query.items()
            }
            if route.upstream_query is not None
            else context["query"]
        )
        headers = dict(route.static_headers)
        headers["X-Request-ID"] = context["request_id"]
        if route.oauth2 is not None:  # a user's token for this upstream (Gmail)
            connection = self.runtime.connection(route.oauth2, context["auth"].get("user"))
            assert connection is not None
            try:
                headers["Authorization"] = f"Bearer {await connection.access_token()}"
            except UpstreamNotConnected as exc:
                raise not_connected(exc) from None
        if route.passthrough_header is not None:
            value = inbound.get(route.passthrough_header.lower())
            if value is not None:
                headers[route.passthrough_header] = value
        for name, template in route.upstream_headers.items():
            rendered = self._render(route, template, context)
            if rendered not in (None, ""):
                headers[name] = str(rendered)
        data: bytes | None = None
        if route.upstream_body is not None:
            value = self._render(route, route.upstream_body, context)
            if isinstance(value, str):
                try:
                    value = _decode_json(value)
                except msgspec.DecodeError:
                    data = value.encode()
                    headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            if data is None:
                data = _encode_json(value)
                headers.setdefault("Content-Type", "application/json")
        elif raw_body:
            data = raw_body
            headers.setdefault("Content-Type", inbound.get("content-type", "application/json"))

        try:
            answer = await self.caller.send(
                settings,
                route.upstream_method,
                path,
                retry=route.retry,
                timeout_seconds=route.timeout,
                params=params,
                headers=headers,
                data=data,
            )
        except UpstreamTimeout as exc:
            raise Problem(504, "upstream-timeout", str(exc)) from None
        except UpstreamError as exc:
            raise Problem(502, "upstream-unreachable", str(exc)) from None
        return answer.status, answer.content_type, answer.body

    # --- response --------------------------------------------------------------------------

    @staticmethod
    def _render(route: CompiledRoute, template: Any, context: Mapping[str, Any]) -> Any:
        try:
            return template.render(context)
        except TEMPLATE_ERRORS as exc:
            raise Problem(
                502,
                "template-failed",
                f"route {route.id}: a template failed: {type(exc).__name__}: {exc}",
            ) from None

    @staticmethod
    def _parse(text: str, content_type: bytes | None) -> Any:
        if content_type is None or b"json" in content_type:
            try:
                return _decode_json(text)
            except msgspec.DecodeError:
                return text
        return text

    @staticmethod
    def _shaped(
        route: CompiledRoute, status: int, value: Any
    ) -> tuple[int, bytes, bytes, list[Any]]:
        if isinstance(value, str):
            return status, TEXT, cap_text(value, route.max_chars).encode(), []
        return status, JSON, cap_json(value, route.max_chars), []


async def read_body(receive: Any, headers: Mapping[str, str], limit: int) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes with a 413 problem."""
    declared = headers.get("content-length")
    if declared is None and "transfer-encoding" not in headers:
        return b""  # no body framing: nothing to read (most GETs)
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "body-too-large", f"the request body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Problem(400, "client-disconnected", "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Problem(413, "body-too-large", f"the request body is over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def not_connected(exc: UpstreamNotConnected) -> Problem:
    problem = Problem(401, "upstream-not-connected", exc.detail)
    problem.headers.append((b"www-authenticate", b'Bearer realm="upstream"'))
    return problem


def _query_values(values: Mapping[str, Any]) -> dict[str, str]:
    """Template results as query strings: None and "" are left out, booleans are lower-case."""
    result = {}
    for key, value in values.items():
        if value is None or value == "":
            continue
        result[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return result
