"""Serve a :class:`~gateway.snapshot.ProxyRoute`: build the upstream call from its templates,
send it through the upstream's auth flow, and pass on or shape the answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.plugin import UpstreamNotConnected
from gateway.serve.answers import JSON, Answer, Problem, parse_answer, render, shaped
from gateway.serve.exchange import Exchange, not_connected
from gateway.snapshot import ProxyRoute
from gateway.upstream.auth import Caller, OutboundRequest
from gateway.upstream.outbound import Upstreams

__all__ = ["ProxyHandler"]

EXCERPT_CHARS = 200
_decode_json = msgspec.json.decode
_encode_json = msgspec.json.Encoder().encode


class ProxyHandler:
    """``await ProxyHandler(upstreams)(exchange, route, context)`` -> Answer."""

    def __init__(self, upstreams: Upstreams) -> None:
        self.upstreams = upstreams

    async def __call__(
        self, exchange: Exchange, route: ProxyRoute, context: dict[str, Any]
    ) -> Answer:
        status, upstream_type, upstream_body = await self._call(exchange, route, context)
        if not 200 <= status < 300:
            # Redact the whole body before cutting: a secret crossing a cut-off window would
            # not match and leak its first characters into the excerpt.
            excerpt = exchange.snapshot.redact(upstream_body.decode("utf-8", "replace"))
            identity = exchange.identity
            if identity is not None and identity.token:
                excerpt = excerpt.replace(identity.token, "***")
            raise Problem(
                502,
                "upstream-error",
                f'upstream "{route.upstream.name}" answered {status}',
                upstream_status=status,
                upstream_excerpt=excerpt[:EXCERPT_CHARS],
            )
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
    ) -> tuple[int, bytes | None, bytes]:
        call = route.call
        path = str(render(route.id, call.path, context))
        if not path.startswith("/"):
            path = "/" + path
        params = _query_values(
            {key: render(route.id, template, context) for key, template in call.query.items()}
            if call.query is not None
            else context["query"]
        )
        headers = dict(route.upstream.headers)
        headers["X-Request-ID"] = exchange.request_id
        for name, template in call.headers.items():
            rendered = render(route.id, template, context)
            if rendered not in (None, ""):
                headers[name] = str(rendered)
        data: bytes | None = None
        if call.body is not None:
            value = render(route.id, call.body, context)
            if isinstance(value, str):
                try:
                    value = _decode_json(value)
                except msgspec.DecodeError:
                    data = value.encode()
                    headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            if data is None:
                data = _encode_json(value)
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
        caller = Caller(exchange.user, exchange.headers)
        try:
            answer = await self.upstreams.send(route.upstream, request, caller)
        except UpstreamNotConnected as exc:
            raise not_connected(exc.detail) from None
        except UpstreamTimeout as exc:
            raise Problem(504, "upstream-timeout", str(exc)) from None
        except UpstreamError as exc:
            raise Problem(502, "upstream-unreachable", str(exc)) from None
        return answer.status, answer.content_type, answer.body


def _query_values(values: Mapping[str, Any]) -> dict[str, str]:
    """Template results as query strings: None and "" are left out, booleans are lower-case."""
    result = {}
    for key, value in values.items():
        if value is None or value == "":
            continue
        result[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return result
