"""Receive one webhook: verify, answer handshakes, de-duplicate, queue durably, answer 2xx.

In order: the URL secret (before the body is read), the signature over the raw bytes, the
query and JSON, a handshake, whose event it is, the rate limit, the dedupe key, the queue.

Nothing of the handler runs here: the event is queued (Redis: written before the answer)
and processed by the workers, so the sender gets its 2xx in about one store round trip.
Every refusal is a problem+json answer and queues nothing.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from gateway import metrics
from gateway.logs import logger
from gateway.queue.events import EventQueue, QueuedEvent, QueueFull
from gateway.serve.answers import JSON, Problem, decode_json_body, read_body, send_response
from gateway.serve.problems import PROBLEM_CONTENT_TYPE, problem_body
from gateway.serve.signatures import SignatureRefused, verify_signature
from gateway.serve.webhook_guards import WebhookGuards, render
from gateway.snapshot import CompiledWebhook, FieldError, Snapshot
from gateway.store.errors import STORE_ERRORS

__all__ = ["WebhookReceiver"]

Scope = dict[str, Any]
_encode = msgspec.json.Encoder().encode
# Not kept with the event: credentials, and the signature (checked, then useless).
_DROPPED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class WebhookReceiver:
    """``await receiver(snapshot, webhook, scope, receive, send, request_id, cors)`` -> status."""

    def __init__(self, queue: EventQueue, guards: WebhookGuards) -> None:
        self.queue = queue
        self.guards = guards

    async def __call__(
        self,
        snapshot: Snapshot,
        webhook: CompiledWebhook,
        scope: Scope,
        receive: Any,
        send: Any,
        request_id: str,
        cors_headers: list[tuple[bytes, bytes]],
    ) -> int:
        base = [(b"x-request-id", request_id.encode()), *cors_headers]
        try:
            try:
                status, body = await self._receive(snapshot, webhook, scope, receive, request_id)
            except STORE_ERRORS as exc:  # a guard's store call: nothing was promised
                logger.error("webhook %s: the store is unreachable: %s", webhook.id, exc)
                problem = Problem(
                    503, "store-unavailable", "the gateway's store is unreachable; retry shortly"
                )
                problem.headers.append((b"retry-after", b"5"))
                raise problem from None
        except Problem as problem:
            body = problem_body(
                problem.status,
                problem.slug,
                snapshot.redact(problem.detail),
                route=webhook.id,
                request_id=request_id,
                **problem.extra,
            )
            await send_response(
                send, problem.status, PROBLEM_CONTENT_TYPE, body, [*base, *problem.headers]
            )
            return problem.status
        await send_response(send, status, JSON, body, base)
        return status

    async def _receive(
        self,
        snapshot: Snapshot,
        webhook: CompiledWebhook,
        scope: Scope,
        receive: Any,
        request_id: str,
    ) -> tuple[int, bytes]:
        method = scope["method"]
        if method == "HEAD" and webhook.head:
            return 200, b""  # URL validation (Intercom): answered, never queued
        if method != webhook.method:
            allowed = f"{webhook.method}, HEAD" if webhook.head else webhook.method
            problem = Problem(
                405, "method-not-allowed", f"{method} is not allowed here; use {allowed}"
            )
            problem.headers.append((b"allow", allowed.encode()))
            raise problem
        if webhook.unconfigured is not None:
            raise Problem(503, "not-configured", webhook.unconfigured)

        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        raw_query = scope.get("query_string", b"").decode("latin-1")
        query = dict(parse_qsl(raw_query, keep_blank_values=True)) if raw_query else {}
        if webhook.url_secret is not None:
            await self.guards.url_secret(snapshot, webhook, scope, query)
            query.pop(webhook.url_secret.param, None)  # never queued, logged or handed on
        raw_body = await read_body(receive, headers, snapshot.max_body_bytes)

        if webhook.hmac is not None:
            try:
                verify_signature(webhook.hmac, headers, raw_body)
            except SignatureRefused as exc:
                metrics.auth_failed("webhook_signature")
                logger.warning("webhook %s: refused: %s", webhook.id, exc.detail)
                raise Problem(exc.status, exc.slug, exc.detail) from None

        errors: list[FieldError] = []
        typed_query = webhook.query_validator(query, errors)
        body: Any = None
        if raw_body:
            body, refused = decode_json_body(raw_body, snapshot.max_json_depth)
            if refused is not None:
                errors.append(FieldError("body", "$", refused))
        if errors:
            fields = [{"in": e.location, "field": e.field, "message": e.message} for e in errors]
            count = f"{len(errors)} field{'s' if len(errors) > 1 else ''}"
            raise Problem(
                400, "validation-failed", f"the request is invalid: {count} failed", errors=fields
            )

        context = {"body": body, "query": typed_query, "headers": headers}
        if webhook.ping_when is not None and render(webhook, webhook.ping_when, context):
            ping = render(webhook, webhook.ping_body, context) if webhook.ping_body else None
            return 200, _encode(ping)
        self.guards.user(webhook, context)
        await self.guards.rate_limit(webhook, scope, context)

        dedupe_key = None
        if webhook.dedupe_key is not None:
            rendered = render(webhook, webhook.dedupe_key, context)
            if rendered not in (None, ""):
                dedupe_key = f"{webhook.id}:{rendered}"

        event = QueuedEvent(
            id=uuid.uuid4().hex,
            webhook=webhook.id,
            received_at=time.time(),
            request_id=request_id,
            query=query,
            headers={
                key: value
                for key, value in headers.items()
                if key not in _DROPPED_HEADERS
                and (webhook.hmac is None or key != webhook.hmac.header)
            },
            body=raw_body,
        )
        try:
            queued, event_id = await self.queue.enqueue(
                event, dedupe_key, snapshot.queue.dedupe_ttl
            )
        except QueueFull as exc:  # bounded memory: the sender retries later
            logger.warning("webhook %s: not queued: %s", webhook.id, exc)
            problem = Problem(503, "queue-full", "the event queue is full; retry later")
            problem.headers.append((b"retry-after", b"5"))
            raise problem from None
        except Exception as exc:  # the store is down: the sender must retry, not lose it
            logger.error("webhook %s: could not queue: %s", webhook.id, exc)
            problem = Problem(503, "queue-unavailable", "the event could not be queued; retry")
            problem.headers.append((b"retry-after", b"5"))
            raise problem from None
        if queued:
            metrics.webhook_received(webhook.id)
        else:
            logger.info("webhook %s: duplicate of event %s (%s)", webhook.id, event_id, dedupe_key)
        if webhook.response_body is not None:
            answer = render(webhook, webhook.response_body, {**context, "event_id": event_id})
        else:
            answer = {"status": "queued" if queued else "duplicate", "id": event_id}
        return webhook.response_status, _encode(answer)
