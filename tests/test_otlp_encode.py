"""The OTLP encoder's pieces: lengths, remembered attribute entries, span fields, and the gRPC exporter
that sends the encoded bytes as they are.  (The whole request against the SDK's encoder, over
generated spans: `tests/test_tracing_units.py`.)"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

from plano_trio.telemetry import otlp_encode
from plano_trio.telemetry.export import GrpcExporter, RequestItem, _RawTraceStub
from plano_trio.telemetry.otlp_encode import Encoder, attributes, span_field, trace_fields, varint
from plano_trio.telemetry.record import RequestTrace, RootSpan


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2**64 - 1, b"\xff" * 9 + b"\x01"),
    ],
)
def test_varint(value: int, expected: bytes) -> None:
    assert varint(value) == expected


def parsed_attributes(encoded: bytes) -> dict[str, Any]:
    """Span-attribute bytes (field 9 entries) read back by protobuf, as {key: (kind, value)}."""
    span = Span.FromString(encoded)
    out = {}
    for entry in span.attributes:
        kind = entry.value.WhichOneof("value")
        out[entry.key] = (kind, getattr(entry.value, kind))
    return out


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"a": "x"}, {"a": ("string_value", "x")}),
        ({"a": ""}, {"a": ("string_value", "")}),
        ({"a": "é" * 70}, {"a": ("string_value", "é" * 70)}),  # a two-byte length
        ({"k" * 60: "v" * 62}, {"k" * 60: ("string_value", "v" * 62)}),  # entry of exactly 127 bytes
        ({"k" * 60: "v" * 63}, {"k" * 60: ("string_value", "v" * 63)}),  # and of 128
        ({"a": 7, "b": -1}, {"a": ("int_value", 7), "b": ("int_value", -1)}),
        ({"c": 2**63 - 1}, {"c": ("int_value", 2**63 - 1)}),
        ({"a": True, "b": False}, {"a": ("bool_value", True), "b": ("bool_value", False)}),
        ({"a": 0.5}, {"a": ("double_value", 0.5)}),
        ({"a": [1, 2]}, {"a": ("string_value", "[1, 2]")}),  # another type: its str()
    ],
)
def test_span_attributes_read_back(values: dict[str, Any], expected: dict[str, Any]) -> None:
    for _ in range(2):  # the second time from the remembered entries
        assert parsed_attributes(attributes(b"\x4a", values)) == expected


def test_entries_of_equal_values_of_other_types_stay_apart() -> None:
    """`True == 1 == 1.0` as dict keys: the entry remembered for one must never answer for another."""
    order: list[dict[str, Any]] = [{"n": value} for value in (1, True, 1.0, "1", 0, False, 0.0)]
    first = [attributes(b"\x4a", values) for values in order]
    again = [attributes(b"\x4a", values) for values in reversed(order)]
    assert first == list(reversed(again)) and len(set(first)) == len(order)
    assert parsed_attributes(first[1]) == {"n": ("bool_value", True)}
    assert parsed_attributes(first[2]) == {"n": ("double_value", 1.0)}


@given(
    st.dictionaries(
        st.text(max_size=20),
        st.one_of(st.text(max_size=150), st.integers(-(2**63), 2**63 - 1), st.booleans()),
    )
)
def test_remembered_entries_equal_fresh_ones(values: dict[str, Any]) -> None:
    """What the cache answers is what encoding afresh gives (an entry per item, in order)."""
    fresh = b"".join(otlp_encode._Entries(b"\x4a").entry(key, value) for key, value in values.items())
    assert attributes(b"\x4a", values) == fresh
    assert attributes(b"\x4a", values) == fresh


def test_an_unhashable_value_is_written_as_text() -> None:
    assert parsed_attributes(attributes(b"\x4a", {"a": {"x": 1}})) == {"a": ("string_value", "{'x': 1}")}


def read_span(framed: bytes) -> Span:
    """A `span_field()` read back as ScopeSpans.spans[0]."""
    spans = ScopeSpans.FromString(framed).spans
    assert len(spans) == 1
    span: Span = spans[0]
    return span


@pytest.mark.parametrize(
    ("kind", "number"),
    [("internal", 1), ("server", 2), ("client", 3), ("producer", 4), ("consumer", 5), ("odd", 1)],
)
def test_span_kinds(kind: str, number: int) -> None:
    span = read_span(span_field(trace_fields(5, None), 0, 6, None, False, "n", kind, 1.0, 2.0, {}))
    assert span.kind == number


@pytest.mark.parametrize(
    ("parent", "remote", "state", "flags"),
    [(None, False, None, 0x100), (9, False, None, 0x100), (9, True, None, 0x300), (9, True, "a=b", 0x300)],
)
def test_span_ids_times_parent_and_state(
    parent: int | None, remote: bool, state: str | None, flags: int
) -> None:
    epoch = 1_700_000_000_000_000_000
    ids = trace_fields(2**127 + 3, state)
    framed = span_field(ids, epoch, 2**64 - 1, parent, remote, "name", "internal", 1.5, 2.25, {"a": 1})
    span = read_span(framed)
    assert span.trace_id == (2**127 + 3).to_bytes(16, "big") and span.span_id == b"\xff" * 8
    assert span.parent_span_id == (b"" if parent is None else parent.to_bytes(8, "big"))
    assert span.trace_state == (state or "") and span.flags == flags
    assert span.start_time_unix_nano == epoch + 1_500_000_000
    assert span.end_time_unix_nano == epoch + 2_250_000_000
    assert not span.HasField("status") or span.status.code == 0


def test_events_are_stamped_from_the_epoch_and_errors_set_the_status() -> None:
    events: tuple[tuple[str, float, dict[str, Any]], ...] = (("first", 1.25, {"x": 1}), ("second", 1.5, {}))
    ids = trace_fields(5, None)
    span = read_span(span_field(ids, 10**18, 1, None, False, "n", "internal", 1.0, 2.0, {}, events, "bad"))
    assert [(e.name, e.time_unix_nano) for e in span.events] == [
        ("first", 10**18 + 1_250_000_000),
        ("second", 10**18 + 1_500_000_000),
    ]
    assert span.events[0].attributes[0].key == "x" and (span.status.code, span.status.message) == (2, "bad")


def test_a_big_span_has_a_long_length() -> None:
    values = {f"key{i}": "v" * 100 for i in range(30)}
    span = read_span(span_field(trace_fields(5, None), 0, 1, None, False, "n", "internal", 1.0, 2.0, values))
    assert len(span.attributes) == 30


def test_requests_group_spans_by_service_with_one_resource_each() -> None:
    ids = trace_fields(5, None)
    spans = [
        (service, span_field(ids, 0, n, None, False, f"s{n}", "internal", 1.0, 2.0, {}))
        for n, service in enumerate("abab", 1)
    ]
    request = ExportTraceServiceRequest.FromString(Encoder("scope", "1.0").request(spans))
    groups = [
        (
            group.resource.attributes[0].value.string_value,
            [span.name for span in group.scope_spans[0].spans],
            group.scope_spans[0].scope.name,
        )
        for group in request.resource_spans
    ]
    assert groups == [("a", ["s1", "s3"], "scope"), ("b", ["s2", "s4"], "scope")]


# -- the gRPC exporter sends bytes ---------------------------------------------------------------------


def test_the_exporter_sends_our_bytes_also_after_reconnecting() -> None:
    exporter = GrpcExporter(endpoint="localhost:1", insecure=True)
    try:
        assert isinstance(exporter._client, _RawTraceStub)
        reconnect = getattr(exporter, "_initialize_channel_and_stub", None)
        if reconnect is not None:  # SDKs that reconnect make a new client with `_stub`
            reconnect()
            assert isinstance(exporter._client, _RawTraceStub)
        trace = RequestTrace(lambda t, r: None, 5, None, None)
        now = time.perf_counter()
        item: Any = RequestItem(trace, RootSpan("n", "svc", now, now, {"a": 1}), "plano")
        payload: Any = exporter._translate_data([item])
        assert payload == exporter._encoder.request(item.spans())
        context = SpanContext(5, 6, False, TraceFlags(TraceFlags.SAMPLED))
        sdk_span = ReadableSpan(name="sdk", context=context, resource=Resource({"service.name": "x"}))
        assert isinstance(exporter._translate_data([sdk_span]), bytes)  # the SDK's encoder, serialized
    finally:
        exporter.shutdown()
