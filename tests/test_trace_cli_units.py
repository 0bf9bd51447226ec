"""The trace viewer's pure parts: OTLP decoding and its bounds, the store's grouping and bounds, the
selection language, the span tree and its rendering (tables, plus hypothesis for every parser)."""

from __future__ import annotations

import contextlib
import gzip
import re
from collections.abc import Sequence

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue as PbAnyValue
from opentelemetry.proto.common.v1.common_pb2 import ArrayValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from plano_trio.tracing_cli.limits import Limits
from plano_trio.tracing_cli.listener import gunzip
from plano_trio.tracing_cli.otlp import (
    DROPPED_ATTRIBUTES_KEY,
    OtlpError,
    clip,
    decode_export,
    export_response,
)
from plano_trio.tracing_cli.query import (
    Query,
    QueryError,
    Target,
    glob_match,
    parse_filters,
    parse_limit,
    parse_since,
    parse_target,
    parse_where,
    select,
)
from plano_trio.tracing_cli.render import (
    Node,
    build_tree,
    error_of,
    printable,
    render_trace,
    shown_attributes,
)
from plano_trio.tracing_cli.spans import AnyValue, Attribute, Span, Trace, TracesReply, decode_reply
from plano_trio.tracing_cli.store import TraceStore
from plano_trio.tracing_cli.viewer import ViewerError, listener_port

T1 = "11" * 16
T2 = "22" * 16


def sid(n: int) -> str:
    return f"{n:016x}"


def span(n: int, parent: int | None = None, trace: str = T1, start: int = 0, **attrs: str) -> Span:
    """A span with string attributes; `__` in a keyword stands for a dot (`llm__model=` is `llm.model`)."""
    return Span(
        trace_id=trace,
        span_id=sid(n),
        parent_span_id=sid(parent) if parent is not None else "",
        name=f"s{n}",
        start_time_unix_nano=str(1_000_000_000 + start * 1_000_000),
        end_time_unix_nano=str(1_000_000_000 + (start + 5) * 1_000_000),
        service="plano(llm)",
        attributes=tuple(Attribute(k.replace("__", "."), AnyValue(string_value=v)) for k, v in attrs.items()),
    )


def kv(key: str, **value: object) -> KeyValue:
    return KeyValue(key=key, value=PbAnyValue(**value))  # type: ignore[arg-type]


def request(*spans: PbSpan, service: str | None = "plano(llm)") -> bytes:
    resource = Resource(attributes=[kv("service.name", string_value=service)] if service else [])
    scope = ScopeSpans(spans=list(spans))
    return bytes(
        ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(resource=resource, scope_spans=[scope])]
        ).SerializeToString()
    )


def pb_span(
    n: int = 1, *, trace: bytes = b"\x11" * 16, parent: bytes = b"", attributes: Sequence[KeyValue] = ()
) -> PbSpan:
    return PbSpan(
        trace_id=trace,
        span_id=n.to_bytes(8, "big"),
        parent_span_id=parent,
        name=f"s{n}",
        start_time_unix_nano=5,
        end_time_unix_nano=9,
        attributes=attributes,
    )


# --- OTLP decoding -------------------------------------------------------------------------------------


def test_decode_keeps_scalars_in_planoai_shape() -> None:
    attributes = [
        kv("s", string_value="x"),
        kv("i", int_value=-7),
        kv("d", double_value=0.25),
        kv("b", bool_value=False),
        kv("arr", array_value=ArrayValue(values=[PbAnyValue(string_value="a")])),
        kv("bytes", bytes_value=b"\x00"),
        kv("nan", double_value=float("nan")),
    ]
    decoded = decode_export(request(pb_span(attributes=attributes)), Limits())
    assert decoded.rejected == 0
    (only,) = decoded.spans
    assert msgspec.json.decode(msgspec.json.encode(only)) == {
        "traceId": T1,
        "spanId": sid(1),
        "parentSpanId": "",
        "name": "s1",
        "startTimeUnixNano": "5",
        "endTimeUnixNano": "9",
        "service": "plano(llm)",
        "attributes": [
            {"key": "s", "value": {"stringValue": "x"}},
            {"key": "i", "value": {"intValue": "-7"}},
            {"key": "d", "value": {"doubleValue": 0.25}},
            {"key": "b", "value": {"boolValue": False}},
            {"key": "nan", "value": {"stringValue": "nan"}},
        ],
    }


@pytest.mark.parametrize(
    ("trace", "span_id", "parent"),
    [
        (b"", b"\x01" * 8, b""),
        (b"\x00" * 16, b"\x01" * 8, b""),
        (b"\x11" * 15, b"\x01" * 8, b""),
        (b"\x11" * 16, b"\x01" * 7, b""),
        (b"\x11" * 16, b"\x01" * 8, b"\x02" * 9),
    ],
)
def test_malformed_ids_are_rejected_and_counted(trace: bytes, span_id: bytes, parent: bytes) -> None:
    bad = PbSpan(trace_id=trace, span_id=span_id, parent_span_id=parent, name="bad")
    decoded = decode_export(request(bad, pb_span(2)), Limits())
    assert decoded.rejected == 1
    assert [s.name for s in decoded.spans] == ["s2"]
    answer = ExportTraceServiceResponse.FromString(export_response(decoded.rejected))
    assert answer.partial_success.rejected_spans == 1


def test_service_name_defaults_and_clips() -> None:
    assert decode_export(request(pb_span(), service=None), Limits()).spans[0].service == "unknown"
    long = decode_export(request(pb_span(), service="x" * 5000), Limits(max_name_chars=10)).spans[0]
    assert long.service == "x" * 10 + "…[4990 more chars]"


def test_span_bounds_clip_values_and_drop_attributes() -> None:
    limits = Limits(max_value_chars=100, max_key_chars=8, max_attributes_per_span=3, max_span_chars=1000)
    attributes = [kv("huge", string_value="y" * 1_000_000), kv("k" * 50, int_value=1)]
    attributes += [kv(f"a{i}", string_value="z" * 90) for i in range(20)]
    (stored,) = decode_export(request(pb_span(attributes=attributes)), limits).spans
    texts = stored.attribute_texts()
    assert texts["huge"] == "y" * 100 + f"…[{1_000_000 - 100} more chars]"
    assert "k" * 8 + "…[42 more chars]" in texts
    assert len(stored.attributes) == 4  # three kept, then the marker
    assert texts[DROPPED_ATTRIBUTES_KEY] == "19"


def test_span_char_budget_bounds_a_span() -> None:
    limits = Limits(max_span_chars=2000)
    attributes = [kv(f"a{i}", string_value="v" * 300) for i in range(100)]
    (stored,) = decode_export(request(pb_span(attributes=attributes)), limits).spans
    text = sum(len(a.key) + len(a.value.text() or "") for a in stored.attributes)
    assert text <= 2000 + 40  # the marker attribute is the only thing past the budget
    assert stored.attribute_texts()[DROPPED_ATTRIBUTES_KEY] == str(100 - (len(stored.attributes) - 1))


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05abc"])
def test_garbage_is_an_otlp_error(body: bytes) -> None:
    with pytest.raises(OtlpError):
        decode_export(body, Limits())


@given(st.binary(max_size=300))
def test_decode_export_takes_any_bytes(body: bytes) -> None:
    try:
        decoded = decode_export(body, Limits())
    except OtlpError:
        return
    assert all(len(s.trace_id) == 32 and len(s.span_id) == 16 for s in decoded.spans)


@given(st.text(max_size=50), st.integers(0, 60))
def test_clip_is_bounded_and_says_so(text: str, limit: int) -> None:
    clipped = clip(text, limit)
    assert (
        clipped == text
        if len(text) <= limit
        else clipped.startswith(text[:limit]) and "more chars]" in clipped
    )


def test_gunzip_is_bounded() -> None:
    assert gunzip(gzip.compress(b"abc"), 10) == b"abc"
    with pytest.raises(ValueError, match="inflates"):
        gunzip(gzip.compress(b"\0" * 1_000_000), 1000)
    with pytest.raises(ValueError, match="gzip"):
        gunzip(b"not gzip", 1000)
    with pytest.raises(ValueError, match="truncated"):
        gunzip(gzip.compress(b"abc" * 100)[:-12], 1000)


# --- the store -------------------------------------------------------------------------------------------


def ids(store: TraceStore) -> list[tuple[str, list[str]]]:
    return [(t.trace_id, sorted(s.span_id for s in t.spans)) for t in store.snapshot()]


def test_store_groups_by_trace_and_lists_newest_first() -> None:
    store = TraceStore()
    store.add([span(1, trace=T1), span(2, trace=T2), span(3, 1, trace=T1)])
    assert ids(store) == [(T1, [sid(1), sid(3)]), (T2, [sid(2)])]


def test_store_joins_spans_linked_by_parent_across_trace_ids() -> None:
    store = TraceStore()
    store.add([span(1, trace=T1)])
    store.add([span(2, 1, trace=T2)])  # parent stored under another trace id
    assert ids(store) == [(T1, [sid(1), sid(2)])]


def test_store_root_arriving_last_pulls_its_children_under_its_trace_id() -> None:
    store = TraceStore()
    store.add([span(2, 1, trace=T2), span(3, 1, trace=T2)])
    store.add([span(1, trace=T1)])
    assert ids(store) == [(T1, [sid(1), sid(2), sid(3)])]
    assert store.stats().spans == 3


def test_store_siblings_waiting_for_one_parent_are_one_group() -> None:
    store = TraceStore()
    store.add([span(2, 1, trace=T1)])
    store.add([span(3, 1, trace=T2)])
    assert [t for t, _ in ids(store)] == [T2]
    assert ids(store)[0][1] == [sid(2), sid(3)]


def test_store_deduplicates_spans() -> None:
    store = TraceStore()
    store.add([span(1), span(1), span(2, 1)])
    store.add([span(2, 1)])
    assert ids(store) == [(T1, [sid(1), sid(2)])]


def test_store_bounds_spans_per_trace_and_traces() -> None:
    store = TraceStore(Limits(max_traces=3, max_spans_per_trace=10))
    store.add([span(n, 0 if n else None) for n in range(25)])
    assert store.stats().spans == 10 and store.stats().dropped_spans == 15
    for n in range(5):
        store.add([span(100 + n, trace=f"{n + 3:032x}")])
    stats = store.stats()
    assert stats.traces == 3 and stats.evicted_traces == 3
    assert [t for t, _ in ids(store)] == [f"{n:032x}" for n in (7, 6, 5)]
    assert stats.spans == 3  # evicted spans are unindexed and uncounted
    assert store._group_of_span.keys() == {sid(102), sid(103), sid(104)}


def test_store_bounds_bytes() -> None:
    store = TraceStore(Limits(max_total_bytes=50_000))
    for n in range(20):
        store.add([span(n, trace=f"{n + 1:032x}", big="v" * 4000)])
    stats = store.stats()
    assert stats.bytes_estimate <= 50_000
    assert 5 <= stats.traces < 20
    assert ids(store)[0][0] == f"{20:032x}"


def test_reply_json_fits_the_budget_newest_first() -> None:
    store = TraceStore(Limits(reply_budget_bytes=6000))
    store.add([span(1, trace=T1, a="x" * 1000)])
    store.add([span(2, trace=T2, a="y" * 9000)])  # newest, but too big for the answer
    store.add([span(3, trace="33" * 16, a="z" * 1000)])
    reply = store.reply_json()
    assert len(reply) <= 6000
    assert [t.trace_id for t in decode_reply(reply).traces] == ["33" * 16, T1]


# --- the selection language -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([], ()),
        (["llm.*"], ("llm.*",)),
        (["llm.*, http.*", "x"], ("llm.*", "http.*", "x")),
    ],
)
def test_parse_filters(raw: list[str], expected: tuple[str, ...]) -> None:
    assert parse_filters(raw) == expected


@pytest.mark.parametrize("raw", [[""], ["a,,b"], ["a,"], [" , "]])
def test_parse_filters_refuses_empty_patterns(raw: list[str]) -> None:
    with pytest.raises(QueryError, match="empty"):
        parse_filters(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["a=b"], (("a", "b"),)),
        ([" llm.model = gpt-4o "], (("llm.model", "gpt-4o"),)),
        (["guid:x-request-id=abc", "x_y-z=1"], (("guid:x-request-id", "abc"), ("x_y-z", "1"))),
    ],
)
def test_parse_where(raw: list[str], expected: tuple[tuple[str, str], ...]) -> None:
    assert parse_where(raw) == expected


@pytest.mark.parametrize("raw", ["a", "=b", "a=", "a=b=c", "a b=c", "ключ=1", "a/b=1"])
def test_parse_where_refuses(raw: str) -> None:
    with pytest.raises(QueryError, match=re.escape(f"Invalid --where filter(s): {raw}. Use key=value.")):
        parse_where([raw])


@pytest.mark.parametrize(
    ("text", "expected"), [(None, None), ("", None), ("5m", 300), ("2h", 7200), ("1d", 86400), (" 10m ", 600)]
)
def test_parse_since(text: str | None, expected: int | None) -> None:
    assert parse_since(text) == expected


@pytest.mark.parametrize(
    "text", ["5", "m", "5s", "-5m", "1.5h", "99999999999d", "\uff15m"]
)  # a full-width digit
def test_parse_since_refuses(text: str) -> None:
    with pytest.raises(QueryError, match="--since"):
        parse_since(text)


@pytest.mark.parametrize(
    ("text", "listing", "windowed", "expected"),
    [
        (None, False, False, Target("last")),
        (None, True, False, Target("any")),
        (None, False, True, Target("any")),
        ("last", True, False, Target("last")),
        ("any", False, False, Target("any")),
        ("ABCDEF12", False, False, Target("prefix", "abcdef12")),
        ("A" * 32, False, False, Target("id", "a" * 32)),
    ],
)
def test_parse_target(text: str | None, listing: bool, windowed: bool, expected: Target) -> None:
    assert parse_target(text, listing=listing, windowed=windowed) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "8 or 32"),
        ("0" * 8, "not all zero"),
        ("0" * 32, "not all zero"),
        ("g" * 8, "hex"),
        ("z" * 32, "hex"),
    ],
)
def test_parse_target_refuses(text: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_target(text)


def test_parse_target_refuses_an_id_with_list() -> None:
    with pytest.raises(QueryError, match="--list"):
        parse_target("a" * 8, listing=True)


def test_parse_limit() -> None:
    assert parse_limit(None) is None and parse_limit(0) == 0
    with pytest.raises(QueryError):
        parse_limit(-1)


@given(st.lists(st.text(max_size=20), max_size=4))
def test_query_parsers_raise_only_query_errors(raw: list[str]) -> None:
    for parse in (parse_filters, parse_where):
        with contextlib.suppress(QueryError):
            parse(raw)
    for text in raw:
        for run in (parse_since, parse_target):
            with contextlib.suppress(QueryError):
                run(text)


@given(st.text("ab.:_-=", max_size=12), st.text("ab.:_-", min_size=1, max_size=12).filter(str.strip))
def test_parse_where_round_trips(key: str, value: str) -> None:
    if key and "=" not in key and key.strip() == key:
        assert parse_where([f"{key}={value}"]) == ((key, value.strip()),)


@pytest.mark.parametrize(
    ("text", "pattern", "expected"),
    [
        ("llm.model", "llm.*", True),
        ("llm.model", "*", True),
        ("llm.model", "llm.model", True),
        ("llm.model", "llm", False),
        ("abab", "a*b", True),  # planoai's first-occurrence scan says no
        ("ab", "a*b*", True),
        ("a", "a*a", False),
        ("x.usage.total", "*usage*", True),
        ("http.status_code", "http.?tatus_code", False),  # only * is special
    ],
)
def test_glob_match(text: str, pattern: str, expected: bool) -> None:
    assert glob_match(text, pattern) is expected


@given(st.text("ab*.", max_size=10), st.text("ab.", max_size=10))
def test_glob_match_agrees_with_a_regex(pattern: str, text: str) -> None:
    regex = "".join(".*" if char == "*" else re.escape(char) for char in pattern)
    assert glob_match(text, pattern) is bool(re.fullmatch(regex, text, re.DOTALL))


NOW = 1_000_000_000 + 3_600 * 1_000_000_000

TRACES = [
    Trace(
        T2,
        (span(20, trace=T2, llm__model="b", http__status_code="500"), span(21, 20, trace=T2, llm__usage="9")),
    ),
    Trace(T1, (span(10, llm__model="a", http__status_code="200"),)),
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (Query(), [T2]),
        (Query(Target("any")), [T2, T1]),
        (Query(Target("any"), limit=1), [T2]),
        (Query(Target("id", T1)), [T1]),
        (Query(Target("prefix", "1111abcd")), []),
        (Query(Target("prefix", "11111111")), [T1]),
        (Query(Target("any"), where=(("llm.model", "a"),)), [T1]),
        (Query(Target("any"), where=(("llm.model", "b"), ("llm.usage", "9"))), [T2]),
        (Query(Target("any"), where=(("llm.model", "a"), ("llm.usage", "9"))), []),
        (Query(where=(("http.status_code", "200"),)), [T1]),  # `last` of those that match
        (Query(Target("any"), since_s=60), []),
        (Query(Target("any"), since_s=7200), [T2, T1]),
    ],
)
def test_select(query: Query, expected: list[str]) -> None:
    assert select(TRACES, query, NOW).trace_ids == expected


def test_select_matches_where_before_filter_trims() -> None:
    query = Query(Target("any"), patterns=("llm.*",), where=(("http.status_code", "500"),))
    (trace,) = select(TRACES, query, NOW).traces
    assert [a.key for s in trace.spans for a in s.attributes] == ["llm.model", "llm.usage"]


def test_select_unknown_where_key_is_an_error_and_unmatched_filter_a_warning() -> None:
    with pytest.raises(QueryError, match="Unknown --where key"):
        select(TRACES, Query(where=(("nope", "1"),)), NOW)
    assert select([], Query(where=(("nope", "1"),)), NOW).traces == []
    selection = select(TRACES, Query(patterns=("zzz*",)), NOW)
    assert selection.warnings == ["no attribute key matches --filter zzz*"]
    assert all(not s.attributes for s in selection.traces[0].spans)


# --- tree and rendering ---------------------------------------------------------------------------------


def shape(nodes: list[Node]) -> list[object]:
    return [(node.span.name, shape(node.children)) for node in nodes]


def test_build_tree_nests_by_parent_in_start_order() -> None:
    spans = [
        span(3, 1, start=5),
        span(1, start=0),
        span(2, 1, start=2),
        span(4, 2, start=3),
        span(5, 99, start=1),
    ]
    assert shape(build_tree(spans)) == [("s1", [("s2", [("s4", [])]), ("s3", [])]), ("s5", [])]


def test_build_tree_survives_cycles_self_parents_and_duplicates() -> None:
    spans = [span(1, 2, start=0), span(2, 1, start=1), span(3, 3, start=2), span(1, start=3)]
    tree = build_tree(spans)
    assert sum(1 for _ in _walk(tree)) == 4
    deep = [span(1)] + [span(n, n - 1, start=n) for n in range(2, 3000)]
    assert sum(1 for _ in _walk(build_tree(deep))) == 2999
    assert len(render_trace(Trace(T1, tuple(deep)))) == 3000  # no recursion limit


def _walk(nodes: list[Node]) -> list[Node]:
    out: list[Node] = []
    stack = list(nodes)
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.children)
    return out


def test_render_trace_tree_and_attribute_order() -> None:
    root = span(1, start=0, zeta="z", llm__model="gpt", http__method="POST", http__status_code="200")
    child = span(2, 1, start=2, error__message="upstream down", http__status_code="502")
    lines = render_trace(Trace(T1, (child, root)), zone=None)
    assert lines[0].startswith(f"Trace {T1}  (7ms, ")
    assert lines[1:] == [
        "└── +0ms plano(llm) s1  5ms",
        "    │ http.status_code: 200",
        "    │ http.method: POST",
        "    │ llm.model: gpt",
        "    │ zeta: z",
        "    └── +2ms plano(llm) s2  5ms  ✗ 502 Bad Gateway",
        "          http.status_code: 502",
        "          error.message: upstream down",
    ]


def test_render_escapes_terminal_controls() -> None:
    nasty = Span(
        trace_id=T1,
        span_id=sid(1),
        name="a\x1b[2Jb\nFAKE",
        service="s\u202e",
        attributes=(Attribute("k\r", AnyValue(string_value="\x07v")),),
    )
    text = "\n".join(render_trace(Trace(T1, (nasty,)), color=False))
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text and "\u202e" not in text
    assert "a\\u{001b}[2Jb\\u{000a}FAKE" in text
    assert printable("ok é ✓") == "ok é ✓"


def test_render_color_only_when_asked() -> None:
    plain = render_trace(Trace(T1, (span(1),)))
    colored = render_trace(Trace(T1, (span(1),)), color=True)
    assert not any("\x1b" in line for line in plain)
    assert any("\x1b[" in line for line in colored)


def test_shown_attributes_trims_edge_spans_unless_verbose() -> None:
    edge = msgspec.structs.replace(
        span(1, http__method="GET", foo="bar", service__name__override="x"), service="plano(inbound)"
    )
    assert [k for k, _ in shown_attributes(edge, verbose=False)] == ["http.method"]
    assert [k for k, _ in shown_attributes(edge, verbose=True)] == [
        "http.method",
        "foo",
        "service.name.override",
    ]


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"http.status_code": "200"}, None),
        ({"http.status_code": "404"}, "404 Not Found"),
        ({"http.status_code": "599"}, "599 Server Error"),
        ({"http.status_code": "499"}, "499 Client Error"),
        ({"http.status_code": "99999999999999999999"}, None),
        ({"exception.message": "boom"}, "boom"),
        ({"error.message": "a", "exception.message": "b"}, "a"),
    ],
)
def test_error_of(attributes: dict[str, str], expected: str | None) -> None:
    assert error_of(attributes) == expected


# --- the viewer's boundary ------------------------------------------------------------------------------


def test_decode_reply_reads_planoai_answers_and_refuses_others() -> None:
    body = (
        b'{"traces":[{"trace_id":"ab","spans":[{"traceId":"ab","spanId":"01",'
        b'"attributes":[{"key":"n","value":{"intValue":3}}]}]}]}'
    )
    reply = decode_reply(body)
    assert reply.traces[0].spans[0].attribute_texts() == {"n": "3"}
    assert decode_reply(b'{"traces":[]}') == TracesReply()
    for bad in (b"", b"[]", b'{"traces":{}}', b'{"traces":[{"spans":[]}]}', b"\xff"):
        with pytest.raises(msgspec.DecodeError):
            decode_reply(bad)


@given(
    st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(
                        ["traces", "trace_id", "spans", "spanId", "attributes", "key", "value", "intValue"]
                    ),
                    inner,
                    max_size=3,
                )
            ),
            max_leaves=12,
        ).map(msgspec.json.encode),
    )
)
def test_decode_reply_takes_any_bytes(body: bytes) -> None:
    try:
        reply = decode_reply(body)
    except msgspec.DecodeError:
        return
    for trace in reply.traces:  # whatever decoded can be rendered
        render_trace(trace)


GZIP_BODIES = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.binary(max_size=300).map(gzip.compress), st.integers(0, 400)).map(
        lambda cut: cut[0][: cut[1]]
    ),
)


@given(GZIP_BODIES, st.integers(0, 200))
def test_gunzip_takes_any_bytes(body: bytes, limit: int) -> None:
    with contextlib.suppress(ValueError):
        assert len(gunzip(body, limit)) <= limit


@pytest.mark.parametrize(("value", "expected"), [(None, 4317), ("", 4317), ("4318", 4318), (" 9 ", 9)])
def test_listener_port(value: str | None, expected: int) -> None:
    assert listener_port({} if value is None else {"PLANO_TRACE_PORT": value}) == expected


@pytest.mark.parametrize("value", ["x", "0", "70000", "-1", "4e3"])
def test_listener_port_refuses(value: str) -> None:
    with pytest.raises(ViewerError, match="PLANO_TRACE_PORT"):
        listener_port({"PLANO_TRACE_PORT": value})
