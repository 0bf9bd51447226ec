"""The pure parts of tracing: W3C context, sampling, custom attributes, request attributes, settings,
and span building and the export queue's bound (with an exporter that never answers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from plano_trio.apis.kind import Api
from plano_trio.config.errors import ConfigError
from plano_trio.config.loader import load_config_text
from plano_trio.config.tracing_settings import SpanAttributeSettings, TracingSettings
from plano_trio.telemetry import names
from plano_trio.telemetry.export import (
    SCOPE,
    GrpcExporter,
    SpanExport,
    encode_request,
    make_exporter,
    queue_size,
)
from plano_trio.telemetry.llm_request import MAX_BODY_BYTES, f32_text, request_attributes
from plano_trio.telemetry.otlp_encode import Encoder, attributes
from plano_trio.telemetry.record import MAX_CHILD_SPANS, RequestTrace, RootSpan, SpanRecord
from plano_trio.telemetry.spans import public_url
from plano_trio.telemetry.tracing import Tracing, ratio_bound
from plano_trio.telemetry.w3c import RemoteParent, parse_traceparent, traceparent, with_context

TP = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN = 0x00F067AA0BA902B7


# -- W3C trace context ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"traceparent", TP)], RemoteParent(TRACE, SPAN, True, None)),
        ([(b"traceparent", TP[:-2] + b"00")], RemoteParent(TRACE, SPAN, False, None)),
        (
            [(b"traceparent", TP), (b"tracestate", b"a=1"), (b"tracestate", b"b=2")],
            RemoteParent(TRACE, SPAN, True, b"a=1,b=2"),
        ),
        ([(b"traceparent", b"01" + TP[2:] + b"-future")], RemoteParent(TRACE, SPAN, True, None)),
        ([], None),
        ([(b"traceparent", TP.upper())], None),
        ([(b"traceparent", TP + b"-extra")], None),  # version 00 has exactly four fields
        ([(b"traceparent", b"ff" + TP[2:])], None),
        ([(b"traceparent", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01")], None),
        ([(b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-" + b"0" * 16 + b"-01")], None),
        ([(b"traceparent", TP[:-1])], None),
        ([(b"traceparent", TP), (b"traceparent", TP)], None),
        ([(b"traceparent", TP), (b"tracestate", b"x" * 600)], RemoteParent(TRACE, SPAN, True, None)),
        ([(b"traceparent", TP), (b"tracestate", b"a=\x01")], RemoteParent(TRACE, SPAN, True, None)),
    ],
)
def test_traceparent_read_as_the_specification_says(
    headers: list[tuple[bytes, bytes]], expected: RemoteParent | None
) -> None:
    assert parse_traceparent(headers) == expected


def test_our_context_replaces_the_clients() -> None:
    headers = [(b"traceparent", TP), (b"tracestate", b"old=1"), (b"x-other", b"v")]
    out = with_context(headers, TRACE, 0xABC, b"a=1")
    assert out == [
        (b"x-other", b"v"),
        (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01"),
        (b"tracestate", b"a=1"),
    ]
    assert traceparent(1, 2, sampled=False).endswith(b"-00")


# -- sampling ---------------------------------------------------------------------------------------


def tracing(percent: int, **attributes: object) -> Tracing:
    settings = TracingSettings(
        random_sampling=percent,
        span_attributes=SpanAttributeSettings(**attributes),  # type: ignore[arg-type]
    )
    return Tracing(settings, lambda trace, root: None)


def test_sampling_is_a_ratio_on_the_trace_id_and_follows_the_clients_flag() -> None:
    assert ratio_bound(100) == 1 << 64 and ratio_bound(0) == 0
    always = tracing(100)
    assert all(always.start([]) is not None for _ in range(200))
    half = tracing(50)
    kept = sum(half.start([]) is not None for _ in range(4000))
    assert 1700 < kept < 2300
    rare = tracing(1)
    assert sum(rare.start([]) is not None for _ in range(4000)) < 120
    # Parent-based: the client's decision wins both ways.
    assert rare.start([(b"traceparent", TP)]) is not None
    assert always.start([(b"traceparent", TP[:-2] + b"00")]) is None
    continued = rare.start([(b"traceparent", TP), (b"tracestate", b"k=v")])
    assert continued is not None
    assert (continued.trace_id, continued.remote_parent, continued.tracestate) == (TRACE, SPAN, b"k=v")
    fresh = always.start([])
    assert fresh is not None and fresh.remote_parent is None and fresh.span_id and fresh.trace_id


# -- custom attributes (Plano's own test cases, then ours) -------------------------------------------


def test_header_prefixes_as_plano() -> None:
    headers = [
        (b"x-katanemo-tenant-id", b"ten_456"),
        (b"x-katanemo-user-id", b" usr_789 "),
        (b"x-katanemo-admin-level", b"3"),
        (b"x-other-id", b"ignored"),
    ]
    assert tracing(100, header_prefixes=(b"x-katanemo-",)).custom_attributes(headers) == {
        "tenant.id": "ten_456",
        "user.id": "usr_789",
        "admin.level": "3",
    }
    assert tracing(100).custom_attributes(headers) == {}
    both = tracing(100, header_prefixes=(b"x-katanemo-", b"x-tenant-"))
    assert both.custom_attributes([(b"x-katanemo-tenant-id", b"t"), (b"x-tenant-user-id", b"u")]) == {
        "tenant.id": "t",
        "user.id": "u",
    }
    static = tracing(
        100,
        header_prefixes=(b"x-katanemo-",),
        static=(("tenant.id", "ten_static"), ("environment", "prod")),
    )
    assert static.custom_attributes([(b"x-katanemo-tenant-id", b"ten_456")]) == {
        "tenant.id": "ten_456",
        "environment": "prod",
    }


def test_credentials_never_become_attributes_whatever_the_prefix() -> None:
    everything = tracing(100, header_prefixes=(b"",))
    headers = [
        (b"authorization", b"Bearer sk-secret"),
        (b"x-api-key", b"sk-secret"),
        (b"api-key", b"sk-secret"),
        (b"cookie", b"session=sk-secret"),
        (b"proxy-authorization", b"Basic c2VjcmV0"),
        (b"user-agent", b"sdk"),
        (b"x-bad", b"caf\xc3\xa9"),  # not visible ASCII: skipped, as Plano's to_str fails
    ]
    assert everything.custom_attributes(headers) == {"user.agent": "sdk"}


# -- the LLM span's request attributes ----------------------------------------------------------------


def body(value: object) -> bytes:
    return msgspec.json.encode(value)


def test_request_attributes_for_each_client_api() -> None:
    chat = body(
        {
            "model": "m",
            "temperature": 0.7,
            "tools": [
                {"type": "function", "function": {"name": "get_weather"}},
                {"type": "function", "function": {"name": "x"}},
            ],
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a" * 60}],
        }
    )
    assert request_attributes(Api.CHAT, chat) == {
        names.LLM_TEMPERATURE: "0.7",
        names.LLM_TOOLS: "get_weather(...)\nx(...)",
        names.LLM_USER_MESSAGE_PREVIEW: "a" * 50 + "...",
    }
    # Chat: only the last message, and only a plain string (as brightstaff).
    parts = body(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "temperature": 1}
    )
    assert request_attributes(Api.CHAT, parts) == {names.LLM_TEMPERATURE: "1"}
    messages = body(
        {
            "tools": [{"name": "search"}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "first"}]},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "image", "source": {}}]},
            ],
        }
    )
    assert request_attributes(Api.MESSAGES, messages) == {
        names.LLM_TOOLS: "search(...)",
        names.LLM_USER_MESSAGE_PREVIEW: "first",
    }
    responses = body(
        {
            "tools": [{"type": "function", "name": "f"}, {"type": "web_search"}],
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "question"}]},
                {"type": "function_call_output", "call_id": "c", "output": "x"},
            ],
        }
    )
    assert request_attributes(Api.RESPONSES, responses) == {
        names.LLM_TOOLS: "f(...)",
        names.LLM_USER_MESSAGE_PREVIEW: "question",
    }
    assert request_attributes(Api.RESPONSES, body({"input": "hello"})) == {
        names.LLM_USER_MESSAGE_PREVIEW: "hello"
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"temperature": "hot"}',
        b'{"messages": 5}',
        b"[" * 10000,
        b'{"messages": []}' + b" " * MAX_BODY_BYTES,
    ],
)
def test_request_attributes_of_odd_bodies_are_empty(raw: bytes) -> None:
    assert request_attributes(Api.CHAT, raw) == {}


def test_temperature_printed_as_rust_prints_an_f32() -> None:
    assert [f32_text(v) for v in (0.7, 1.0, 0.1, 0.0, 1.5, 0.123456789)] == [
        "0.7",
        "1",
        "0.1",
        "0",
        "1.5",
        "0.12345679",
    ]


@pytest.mark.parametrize("temperature", [0.7, 0.0, -0.0, 1, 0.7, -0.0, 0.0, 2.5])
def test_request_temperature_remembered_prints_the_same(temperature: float) -> None:
    for _ in range(2):
        attributes = request_attributes(Api.CHAT, body({"temperature": temperature, "messages": []}))
        assert attributes[names.LLM_TEMPERATURE] == f32_text(temperature)


def test_public_url_drops_credentials_and_query() -> None:
    assert public_url("https://user:pw@host:8443/path?key=sk") == "https://host:8443/path"
    assert public_url("nonsense") == "<unparsable url>"


# -- settings -----------------------------------------------------------------------------------------

BASE = """
version: v0.4.0
listeners: [{name: llm, type: model, port: 12000}]
model_providers: [{model: openai/gpt-4o, access_key: k}]
"""


def test_settings_resolve_the_endpoint_as_plano() -> None:
    config = load_config_text(
        BASE + "tracing: {random_sampling: 250, span_attributes: {header_prefixes: [X-Katanemo-]}}\n", env={}
    )
    assert config.tracing.random_sampling == 100 and config.tracing.enabled
    assert (config.tracing.endpoint, config.tracing.endpoint_source) == ("http://localhost:4317", "default")
    assert config.tracing.span_attributes.header_prefixes == (b"x-katanemo-",)
    from_env = load_config_text(
        BASE + "tracing: {random_sampling: 5}\n", env={"OTEL_TRACING_GRPC_ENDPOINT": "http://c:1"}
    )
    assert (from_env.tracing.endpoint, from_env.tracing.endpoint_source) == ("http://c:1", "env")
    configured = load_config_text(
        BASE + "tracing: {opentracing_grpc_endpoint: 'http://a:2'}\n",
        env={"OTEL_TRACING_GRPC_ENDPOINT": "http://c:1"},
    )
    assert (configured.tracing.endpoint, configured.tracing.enabled) == ("http://a:2", False)
    assert not load_config_text(BASE, env={}).tracing.enabled


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (
            "tracing: {opentracing_grpc_endpoint: 'http://otel:4317/v1'}\n",
            {},
            "Invalid opentracing_grpc_endpoint http://otel:4317/v1, path must be empty",
        ),
        (
            "",
            {"OTEL_TRACING_GRPC_ENDPOINT": "grpc://otel:4317"},
            "OTEL_TRACING_GRPC_ENDPOINT: Invalid opentracing_grpc_endpoint grpc://otel:4317, "
            "scheme must be http",
        ),
    ],
)
def test_settings_refuse_a_bad_endpoint_with_planos_message(
    text: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(BASE + text, env=env)
    assert message in str(caught.value)


def test_exporter_choice_follows_the_environment() -> None:
    settings = TracingSettings(random_sampling=100)
    exporter, where = make_exporter(settings, {})
    assert where == "OTLP/gRPC to http://localhost:4317" and isinstance(exporter, GrpcExporter)
    exporter.shutdown()
    exporter, where = make_exporter(settings, {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://u:p@collector:443"})
    assert where == "OTLP/gRPC to https://collector:443"
    exporter.shutdown()
    exporter, where = make_exporter(
        settings,
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
    )
    assert where == "OTLP/HTTP to http://c:4318/v1/traces"
    assert type(exporter).__module__.endswith("http.trace_exporter")
    exporter.shutdown()
    configured = TracingSettings(random_sampling=100, endpoint="http://mine:1", endpoint_source="config")
    exporter, where = make_exporter(configured, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:2"})
    assert where == "OTLP/gRPC to http://mine:1"
    exporter.shutdown()
    assert (
        queue_size({"OTEL_BSP_MAX_QUEUE_SIZE": "10"}) == 10
        and queue_size({"OTEL_BSP_MAX_QUEUE_SIZE": "x"}) == 2048
    )


# -- span building and the export queue ---------------------------------------------------------------


class Stuck(SpanExporter):
    """A collector that never answers until released (each export blocks)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.got: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        self.got.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def a_trace(children: int = 1) -> tuple[RequestTrace, RootSpan]:
    trace = RequestTrace(lambda t, r: None, TRACE, SPAN, b"k=v")
    start = time.perf_counter()
    for index in range(children):
        trace.add(
            SpanRecord(
                100 + index, trace.span_id, f"child {index}", names.FILTER, start, start + 0.001, {"i": index}
            )
        )
    root = RootSpan(
        "POST /v1/chat/completions m",
        names.LLM,
        start - 0.01,
        start + 0.01,
        {"a": 1},
        None,
        (("ev", start, {"x": 1}),),
    )
    return trace, root


def test_built_spans_carry_ids_parents_services_and_times() -> None:
    exporter = Stuck()
    export = SpanExport(exporter, default_service="svc")
    trace, root = a_trace(children=2)
    trace.add(SpanRecord(999, trace.span_id, "state", None, 1.0, 2.0, {}, "failed"))
    spans = export.build(trace, root)
    top = spans[0]
    assert top.context is not None and top.parent is not None
    assert (top.context.trace_id, top.parent.span_id, top.parent.is_remote) == (TRACE, SPAN, True)
    assert top.resource.attributes["service.name"] == names.LLM and dict(top.resource.attributes) == {
        "service.name": names.LLM
    }
    assert top.context.trace_state.to_header() == "k=v"
    assert (
        top.start_time is not None
        and top.end_time is not None
        and 19_000_000 < top.end_time - top.start_time < 21_000_000
    )
    assert abs(top.start_time - time.time_ns()) < 5_000_000_000
    assert [e.name for e in top.events] == ["ev"]
    child = spans[1]
    assert child.parent is not None and child.parent.span_id == trace.span_id and not child.parent.is_remote
    assert child.resource.attributes["service.name"] == names.FILTER
    last = spans[-1]
    assert last.resource.attributes["service.name"] == "svc" and last.status.description == "failed"
    exporter.release.set()
    export.shutdown(1.0)


def test_child_spans_are_bounded_per_request() -> None:
    trace, root = a_trace(children=MAX_CHILD_SPANS + 5)
    assert len(trace.spans) == MAX_CHILD_SPANS and trace.dropped == 5
    exporter = Stuck()
    exporter.release.set()
    export = SpanExport(exporter, default_service="plano")
    assert export.build(trace, root)[0].attributes[names.DROPPED_CHILD_SPANS] == 5  # type: ignore[index]
    export.shutdown(1.0)


def test_a_stuck_collector_never_holds_the_caller_and_drops_are_counted() -> None:
    exporter = Stuck()
    export = SpanExport(exporter, default_service="plano", queue_size=20)
    trace, root = a_trace(children=1)  # two spans per request
    started = time.perf_counter()
    for _ in range(200):
        export.emit(trace, root)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5  # 200 emits against a collector that never answers
    counts = export.counts
    assert counts.dropped > 0 and counts.emitted + counts.dropped == 400
    assert counts.emitted <= 20 + 512  # at most the queue, plus one batch taken into the stuck export
    started = time.perf_counter()
    export.shutdown(0.3)  # the stuck export is cut: shutdown is bounded
    assert time.perf_counter() - started < 2.0
    export.emit(trace, root)  # after shutdown: dropped, counted, no error
    assert counts.dropped + counts.emitted == 402


# -- the OTLP encoder against the SDK's -----------------------------------------------------------------

_VALUES = st.one_of(
    st.text(max_size=300),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
)


@given(
    attributes=st.dictionaries(st.text(max_size=40), _VALUES, max_size=20),
    event_attributes=st.dictionaries(st.text(max_size=10), _VALUES, max_size=3),
    name=st.text(max_size=200),
    error=st.one_of(st.none(), st.text(max_size=50)),
    remote=st.booleans(),
    state=st.sampled_from([None, b"k=v", b"a=1,b=2"]),
)
def test_our_otlp_bytes_are_the_sdks_message_serialized(
    attributes: dict[str, object],
    event_attributes: dict[str, object],
    name: str,
    error: str | None,
    remote: bool,
    state: bytes | None,
) -> None:
    trace = RequestTrace(lambda t, r: None, TRACE, SPAN if remote else None, state)
    start = time.perf_counter()
    trace.add(
        SpanRecord(
            7,
            trace.span_id,
            name,
            names.OUTBOUND,
            start,
            start + 1,
            dict(attributes),
            error,
            "client",
            (("retry", start + 0.5, dict(event_attributes)), ("", start + 0.75, {})),
        )
    )
    trace.add(SpanRecord(8, 7, "state", None, start, start - 1, {}))  # ended "before" it began
    shared = {f"shared.{key}": value for key, value in attributes.items()}  # keys apart from the span's own
    for _ in range(2):  # the second time from the shared encoding remembered
        trace.add(SpanRecord(9, 7, "routing", names.ROUTING, start, start, dict(attributes), shared=shared))
    events = (("ev", start, dict(event_attributes)),)
    root = RootSpan(name, names.LLM, start, start + 2, dict(attributes), error, events, shared or None)
    exporter = Stuck()
    exporter.release.set()
    export = SpanExport(exporter, default_service="plano")
    ours = Encoder(*SCOPE).request(encode_request(trace, root, "plano"))
    sdk = sdk_encode(export.build(trace, root))
    assert ExportTraceServiceRequest.FromString(ours) == sdk
    assert ours == sdk.SerializeToString()  # the bytes the SDK's exporter would send, exactly
    export.shutdown(1.0)


def test_remembered_attribute_entries_keep_their_types_apart() -> None:
    encoded = [attributes(b"\x4a", {"a": value}) for value in (True, 1, 1.0, "1", True, 1, 1.0, "1")]
    assert len(set(encoded[:4])) == 4 and encoded[:4] == encoded[4:]
