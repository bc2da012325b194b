"""Serve a :class:`~gateway.snapshot.ProxyRoute`: build the upstream call from its templates,
send it through the upstream's auth flow, and pass on or shape the answer."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import jinja2

from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamTooLarge
from gateway.logs import logger
from gateway.plugin import UpstreamNotConnected
from gateway.serve.answers import JSON, Answer, Problem, parse_answer, render, shaped
from gateway.serve.exchange import Exchange, not_connected
from gateway.snapshot import ProxyRoute
from gateway.snapshot.templates import encode_json
from gateway.upstream.auth import OutboundRequest
from gateway.upstream.call import UpstreamAnswer
from gateway.upstream.outbound import Upstreams

__all__ = ["ProxyHandler"]

EXCERPT_CHARS = 200


class ProxyHandler:
    """``await ProxyHandler(upstreams)(exchange, route, context)`` -> Answer."""

    def __init__(self, upstreams: Upstreams) -> None:
        self.upstreams = upstreams

    async def __call__(
        self, exchange: Exchange, route: ProxyRoute, context: dict[str, Any]
    ) -> Answer:
        upstream, credential = await self._call(exchange, route, context)
        status, upstream_type, upstream_body = upstream.status, upstream.content_type, upstream.body
        if not 200 <= status < 300:
            raise _upstream_problem(exchange, route, upstream, credential)
        answer_status = route.response_status or status
        shape = route.shape
        if shape is None:
            if len(upstream_body) > route.max_chars:
                text = upstream_body.decode("utf-8", "replace")
                if len(text) > route.max_chars:
                    value = parse_answer(text, upstream_type)
                    return shaped(answer_status, value, route.max_chars)
            return Answer(answer_status, upstream_type or JSON, upstream_body)

        answer = parse_answer(upstream_body.decode("utf-8", "replace"), upstream_type)
        response_context = {**context, "body": answer, "status": status, "request": context}
        if shape.fail_when is not None and render(route.id, shape.fail_when, response_context):
            message = (
                render(route.id, shape.fail_message, response_context)
                if shape.fail_message is not None
                else "the upstream reported an error"
            )
            raise Problem(
                502,
                "upstream-reported-error",
                f'upstream "{route.upstream.name}" reported an error: {message}',
                upstream_status=status,
            )
        value = answer
        if shape.body is not None:
            value = render(route.id, shape.body, response_context)
        return shaped(answer_status, value, route.max_chars)

    async def _call(
        self, exchange: Exchange, route: ProxyRoute, context: dict[str, Any]
    ) -> tuple[UpstreamAnswer, str | None]:
        """The upstream's answer, and the user's credential the call carried (if any)."""
        call = route.call
        path = _contained_path(str(render(route.id, call.path, context)))
        params = _query_values(
            {key: render(route.id, template, context) for key, template in call.query.items()}
            if call.query is not None
            else context["query"]
        )
        headers = dict(route.upstream.headers)
        headers["X-Request-ID"] = exchange.request_id
        for name, template in call.headers.items():
            rendered = _present(render(route.id, template, context))
            if rendered is not None:
                headers[name] = _header_value(name, rendered)
        data: bytes | None = None
        if call.body is not None:
            value = render(route.id, call.body, context)
            if isinstance(value, str):  # sent as written, never re-parsed as JSON
                data = value.encode()
                headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            else:
                data = _encoded(route.id, value)
                headers.setdefault("Content-Type", "application/json")
        elif exchange.raw_body:
            data = exchange.raw_body
            headers.setdefault(
                "Content-Type", exchange.headers.get("content-type", "application/json")
            )
        request = OutboundRequest(
            method=call.method,
            path=path,
            headers=headers,
            timeout=route.timeout,
            params=params,
            data=data,
        )
        started = time.perf_counter()
        try:
            answer = await self.upstreams.send(route.upstream, request, exchange.caller())
        except UpstreamNotConnected as exc:
            raise not_connected(exc.detail, exc.slug, exc.connect_url) from None
        except UpstreamTimeout as exc:
            raise Problem(504, "upstream-timeout", str(exc)) from None
        except UpstreamTooLarge as exc:
            raise Problem(502, "upstream-answer-too-large", str(exc)) from None
        except UpstreamError as exc:
            raise Problem(502, "upstream-unreachable", str(exc)) from None
        if logger.isEnabledFor(logging.DEBUG):  # `gateway serve --verbose`
            logger.debug(
                "route %s: upstream %s %s %s -> %d in %.1fms",
                route.id,
                route.upstream.name,
                call.method,
                exchange.snapshot.redact(path),
                answer.status,
                (time.perf_counter() - started) * 1000,
            )
        return answer, request.credential


def _upstream_problem(
    exchange: Exchange, route: ProxyRoute, answer: UpstreamAnswer, credential: str | None
) -> Problem:
    """The caller's answer to an upstream error: 404 and 429 as themselves, a refused
    pass-through credential as 401 with a hint, anything else 502 (the route may choose)."""
    # Redact the whole body before cutting: a secret crossing a cut-off window would not
    # match and leak its first characters into the excerpt.
    excerpt = exchange.snapshot.redact(answer.body.decode("utf-8", "replace"))
    if credential:  # the user's own token: not in the snapshot's list of secrets
        excerpt = excerpt.replace(credential, "***")
    status, name = answer.status, route.upstream.name
    details = {"upstream_status": status, "upstream_excerpt": excerpt[:EXCERPT_CHARS]}
    if status not in route.pass_statuses:
        return Problem(502, "upstream-error", f'upstream "{name}" answered {status}', **details)
    if status in (401, 403):
        problem = Problem(
            401,
            "upstream-refused-credential",
            f'upstream "{name}" refused the credential you sent ({status}): '
            "send a valid token (it may have expired)",
            **details,
        )
        problem.headers.append((b"www-authenticate", b'Bearer realm="gateway"'))
        return problem
    if status == 429:
        wait = f"retry in {answer.retry_after}s" if answer.retry_after else "retry later"
        problem = Problem(429, "upstream-rate-limited", f'upstream "{name}": {wait}', **details)
        if answer.retry_after:
            problem.headers.append((b"retry-after", answer.retry_after.encode("latin-1")))
        return problem
    if status == 404:
        return Problem(404, "upstream-not-found", f'upstream "{name}" answered 404', **details)
    return Problem(status, "upstream-error", f'upstream "{name}" answered {status}', **details)


def _encoded(route_id: str, value: Any) -> bytes:
    try:
        return encode_json(value)
    except (TypeError, NotImplementedError) as exc:
        raise Problem(
            502, "template-failed", f"route {route_id}: the upstream body is not JSON: {exc}"
        ) from None


def _present(value: Any) -> Any:
    """A template's result, or None when it rendered nothing (None, "", an undefined value:
    an optional parameter the caller left out is not sent at all)."""
    if value is None or value == "" or isinstance(value, jinja2.Undefined):
        return None
    return value


def _query_values(values: Mapping[str, Any]) -> dict[str, str]:
    """Template results as query strings: empty ones are left out, booleans are lower-case."""
    result = {}
    for key, value in values.items():
        value = _present(value)
        if value is None:
            continue
        result[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return result


def _header_value(name: str, value: Any) -> str:
    """A templated header value; a line break or control character in it is the caller's
    mistake (400), never a second header."""
    text = str(value)
    if any((ord(char) < 32 and char != "\t") or char == "\x7f" for char in text):
        raise Problem(
            400,
            "invalid-header-value",
            f"the value for the upstream header {name} contains a line break or control character",
        )
    return text


def _contained_path(rendered: str) -> str:
    """The rendered upstream path, refused (400) when it would leave the upstream's base path:
    a `.` or `..` segment, even percent-encoded (values are already encoded as segments)."""
    path = rendered if rendered.startswith("/") else "/" + rendered
    if any(unquote(segment) in (".", "..") for segment in path.split("?", 1)[0].split("/")):
        raise Problem(
            400,
            "path-escapes-base",
            "the upstream path would leave the upstream's base path (a `.` or `..` segment)",
        )
    return path
