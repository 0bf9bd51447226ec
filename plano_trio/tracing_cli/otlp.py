"""OTLP export requests (protobuf bytes, as both OTLP/gRPC and OTLP/HTTP carry them) to `Span`s, bounded.

Pure: bytes in, spans out.  The protobuf parser is linear in the input and the input is already capped by
`Limits.max_request_bytes` at the edge; every string copied out of it is capped here, so a span stored
from a hostile request is never bigger than `Limits.max_span_chars` plus a fixed overhead.

Spans whose ids are not OTLP's sizes (16-byte trace id, 8-byte span id, empty or 8-byte parent) are
rejected and counted: the store indexes them by id, and the sender learns the count from OTLP's
`partial_success`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]  # no types-protobuf
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue as PbAnyValue
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from plano_trio.tracing_cli.limits import Limits
from plano_trio.tracing_cli.spans import AnyValue, Attribute, Span

DROPPED_ATTRIBUTES_KEY = "plano_trio.dropped_attributes"
"""Added to a span that lost attributes to the count or size limits; its value is how many."""

UNKNOWN_SERVICE = "unknown"
TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8


class OtlpError(ValueError):
    """The request is not an OTLP `ExportTraceServiceRequest`."""


@dataclass(frozen=True, slots=True)
class Decoded:
    spans: list[Span]
    rejected: int
    """Spans refused for malformed ids."""


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more chars]"


def scalar(value: PbAnyValue, limits: Limits) -> AnyValue | None:
    """A protobuf AnyValue as a stored scalar; None for arrays, maps, bytes and unset values.

    Non-finite doubles become the strings Python prints for them, since JSON has no NaN.
    """
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return AnyValue(string_value=clip(value.string_value, limits.max_value_chars))
    if kind == "bool_value":
        return AnyValue(bool_value=value.bool_value)
    if kind == "int_value":
        return AnyValue(int_value=str(value.int_value))
    if kind == "double_value":
        number = value.double_value
        return AnyValue(double_value=number) if math.isfinite(number) else AnyValue(string_value=str(number))
    return None


def service_name(attributes: Iterable[KeyValue], limits: Limits) -> str:
    """The resource's `service.name` (the first one), as text; `unknown` without one."""
    for item in attributes:
        if item.key == "service.name":
            if item.value.WhichOneof("value") == "string_value":  # not clipped twice
                return clip(item.value.string_value, limits.max_name_chars)
            value = scalar(item.value, limits)
            text = value.text() if value is not None else None
            return UNKNOWN_SERVICE if text is None else clip(text, limits.max_name_chars)
    return UNKNOWN_SERVICE


def _attributes(items: Iterable[KeyValue], budget: int, limits: Limits) -> tuple[Attribute, ...]:
    kept: list[Attribute] = []
    dropped = 0
    for item in items:
        value = scalar(item.value, limits)
        if value is None:
            continue
        text = value.text() or ""
        key = clip(item.key, limits.max_key_chars)
        cost = len(key) + len(text)
        if len(kept) >= limits.max_attributes_per_span or cost > budget:
            dropped += 1
            continue
        budget -= cost
        kept.append(Attribute(key, value))
    if dropped:
        kept.append(Attribute(DROPPED_ATTRIBUTES_KEY, AnyValue(int_value=str(dropped))))
    return tuple(kept)


def _ids_valid(span: PbSpan) -> bool:
    return (
        len(span.trace_id) == TRACE_ID_BYTES
        and any(span.trace_id)
        and len(span.span_id) == SPAN_ID_BYTES
        and len(span.parent_span_id) in (0, SPAN_ID_BYTES)
    )


def convert_span(span: PbSpan, service: str, limits: Limits) -> Span:
    name = clip(span.name, limits.max_name_chars)
    return Span(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        name=name,
        start_time_unix_nano=str(span.start_time_unix_nano),
        end_time_unix_nano=str(span.end_time_unix_nano),
        service=service,
        attributes=_attributes(span.attributes, limits.max_span_chars - len(name) - len(service), limits),
    )


def decode_export(body: bytes, limits: Limits) -> Decoded:
    """Every span of an `ExportTraceServiceRequest`, in request order; raises `OtlpError` on garbage."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError) as error:
        raise OtlpError(f"not an OTLP ExportTraceServiceRequest: {error}") from error
    spans: list[Span] = []
    rejected = 0
    for resource_spans in request.resource_spans:
        service = service_name(resource_spans.resource.attributes, limits)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if _ids_valid(span):
                    spans.append(convert_span(span, service, limits))
                else:
                    rejected += 1
    return Decoded(spans, rejected)


def export_response(rejected: int) -> bytes:
    """OTLP's answer: empty on success, `partial_success` naming what was refused."""
    if not rejected:
        return bytes(ExportTraceServiceResponse().SerializeToString())
    partial = ExportTracePartialSuccess(
        rejected_spans=rejected,
        error_message="spans need a 16-byte non-zero trace id, an 8-byte span id, an empty or 8-byte parent",
    )
    return bytes(ExportTraceServiceResponse(partial_success=partial).SerializeToString())
