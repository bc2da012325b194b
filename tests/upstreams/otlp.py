"""A loopback OTLP/HTTP trace collector: ``POST /v1/traces`` with ``application/x-protobuf``.

Every export request is decoded (ExportTraceServiceRequest) and kept; ``spans()`` flattens
them with their resource. It answers 200 with an empty ExportTraceServiceResponse, as a
collector does; anything that is not protobuf is refused with 415 (and counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.upstreams.server import Recorder

PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class CollectedSpan:
    """One span as received, ids in lowercase hex (``parent_span_id`` ``""`` for a root)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    """``SERVER``, ``CLIENT``, ``INTERNAL``, ..."""
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass
class Collector:
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    """The request bodies as sent (to look for what must never be exported)."""
    refused: int = 0

    def spans(self) -> list[CollectedSpan]:
        return [
            CollectedSpan(
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex(),
                name=span.name,
                kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                attributes=_attributes(span.attributes),
                resource=_attributes(resource_spans.resource.attributes),
            )
            for request in self.requests
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(attributes: Any) -> dict[str, Any]:
    pairs: list[KeyValue] = list(attributes)
    return {pair.key: _value(pair.value) for pair in pairs}


def collector_app() -> tuple[web.Application, Collector, Recorder]:
    recorder = Recorder()
    collector = Collector()
    app = web.Application(middlewares=[recorder.middleware])

    async def traces(request: web.Request) -> web.Response:
        if request.content_type != PROTOBUF:
            collector.refused += 1
            return web.Response(status=415, text=f"expected {PROTOBUF}")
        body = await request.read()
        collector.raw.append(body)
        collector.requests.append(ExportTraceServiceRequest.FromString(body))
        answer = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type=PROTOBUF)

    app.router.add_post("/v1/traces", traces)
    return app, collector, recorder
