"""OTLP's `ExportTraceServiceRequest`, written as protobuf bytes straight from plain span values (pure).

Why not the SDK's encoder: it builds one protobuf message object per
attribute, per value and per span, from `ReadableSpan` objects that must be
built first, and groups spans by hashing each span's resource (a JSON dump
per span).  Measured on this gateway's spans (three per request, about 40
attributes), the SDK's span objects and encoder were over 4/5 of the CPU
tracing adds to a request, which made 100 % sampling cost 1.36 times the
CPU per request where the target is 1.15.  Here a span is encoded once,
from the values the request recorded, as a few byte strings joined; the
bytes go to the collector as they are (`export.GrpcExporter` sends them
without a protobuf message in between).

The bytes are the message's canonical encoding: fields in field-number
order, fields holding their default left out where protobuf leaves them
out (an empty attribute key, span or event name), so they equal what the
protobuf runtime serializes for the message the SDK's `encode_spans`
builds from the same span (`tests/test_otlp_encode.py` compares the two over
generated spans), and any OTLP receiver reads them alike.  Covered: what
our spans carry (attributes of type str, bool, int, float; events; status;
parent; trace state); an attribute of another type is written as its
`str()`; links (which our spans never have) are not written.

Where the work goes, per request of three spans and about 35 attributes
(`bench.tracing_cost` counts it): most attributes repeat from one request
to the next (`component: llm`, `http.method: POST`, the model, the
status), so each (key, value) entry of a string or an integer is encoded
once and remembered (`_Entries`); each service's resource, the scope, each
span name and each attribute key are encoded once per process; a span's
fixed-size fields are packed by one `struct` call.

Protobuf wire format in short: each field is a tag (field number << 3 |
wire type) then, for wire type 2, a varint length and the bytes; type 0 is
a varint, 1 eight little-endian bytes, 5 four.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

KIND = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
"""OTLP's `Span.SpanKind` numbers."""
STATUS_ERROR = 2

_BYTE = tuple(bytes((i,)) for i in range(256))
"""Each byte value as a one-byte string (lengths and small varints, without building one each time)."""
_SPAN_ID = struct.Struct(">BBQ")
"""A span id field: tag, length 8, the id big-endian (Span.span_id, field 2; parent_span_id, field 4)."""
_SPAN_AND_PARENT_IDS = struct.Struct(">BBQBBQ")
_KIND_AND_TIMES = struct.Struct("<BBBQBQ")
"""Span.kind (field 6, a one-byte varint), start_time_unix_nano (7) and end_time_unix_nano (8), fixed64
each, tags included: one pack."""
_EVENT_TIME = struct.Struct("<BQ")
_FLAGS_LOCAL = b"\x85\x01" + struct.pack("<I", 0x100)
"""Span.flags (field 16, fixed32): "whether the parent is remote is known", and it is not (as the SDK)."""
_FLAGS_REMOTE = b"\x85\x01" + struct.pack("<I", 0x300)
_STATUS_UNSET = b"\x7a\x00"
"""An unset status, present as the SDK writes it."""
_STATUS_CODE_ERROR = b"\x18" + _BYTE[STATUS_ERROR]
_TRUE = b"\x12\x02\x10\x01"
_FALSE = b"\x12\x02\x10\x00"
_MAX_ENTRIES = 4096
"""Remembered (key, value) entries per field tag; request ids and durations come and go, so past this
the memory starts over (the entries that repeat are back after one request)."""
_MAX_REMEMBERED_BYTES = 256
"""Longer entries (a long header value, a tool list) are encoded each time: the memory stays small."""
_MAX_NAMES = 1024

Event = tuple[str, float, Mapping[str, Any]]
"""(name, seconds after the span's epoch, attributes)."""


def varint(value: int) -> bytes:
    if value < 0x80:
        return _BYTE[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    size = len(payload)
    return tag + (_BYTE[size] if size < 0x80 else varint(size)) + payload


def _text(tag: bytes, value: str) -> bytes:
    """A string field; an empty one is left out (proto3's default)."""
    return _field(tag, value.encode("utf-8", "replace")) if value else b""


def _any_value(value: Any) -> bytes:
    """`KeyValue.value` (field 2) holding an `AnyValue`."""
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    if isinstance(value, str):
        return _field(b"\x12", _field(b"\x0a", value.encode("utf-8", "replace")))
    if isinstance(value, int):
        return _field(b"\x12", b"\x18" + varint(value & 0xFFFFFFFFFFFFFFFF))
    if isinstance(value, float):
        return b"\x12\x09\x21" + struct.pack("<d", value)
    return _field(b"\x12", _field(b"\x0a", str(value).encode("utf-8", "replace")))


class _Entries:
    """The encoded `KeyValue` entries of one repeated field (span, event or resource attributes).

    Remembered per (key, value) item, strings and integers apart: `True`,
    `1` and `1.0` are equal keys of a dict, so an integer's entry is looked
    up only for an integer (booleans and floats, which our spans rarely
    carry, are encoded each time), while any item may be looked up among
    the strings' (no other value equals a string), most attributes being
    strings.  (Looking items up by C loops, `map` over `zip`ped keys, values
    and types, measured dearer.)
    """

    __slots__ = ("ints", "prefixes", "tag", "texts")

    def __init__(self, tag: bytes) -> None:
        self.tag = tag
        self.texts: dict[tuple[str, Any], bytes] = {}
        self.ints: dict[tuple[str, Any], bytes] = {}
        self.prefixes: dict[str, bytes] = {}
        """Each key's encoded `KeyValue.key` field."""

    def encode(self, values: Mapping[str, Any]) -> bytes:
        """Each item of `values` as a `KeyValue`, in order.  The hot loop: one lookup per item that
        was seen before."""
        texts = self.texts.get  # strings only: no other value equals one, so any item may be looked up
        ints = self.ints
        out: list[bytes] = []
        append = out.append
        try:
            for item in values.items():
                entry = texts(item)
                if entry is None:
                    if item[1].__class__ is int:
                        entry = ints.get(item) or self._remember(ints, item)
                    elif item[1].__class__ is str:
                        entry = self._remember(self.texts, item)
                    else:
                        entry = self.entry(*item)
                append(entry)
        except TypeError:  # an unhashable value (a list): written as its str(), nothing remembered
            return b"".join(self.entry(key, value) for key, value in values.items())
        return b"".join(out)

    def _remember(self, entries: dict[tuple[str, Any], bytes], item: tuple[str, Any]) -> bytes:
        entry = self.entry(*item)
        if len(entry) <= _MAX_REMEMBERED_BYTES:
            if len(entries) >= _MAX_ENTRIES:
                entries.clear()
            entries[item] = entry
        return entry

    def entry(self, key: str, value: Any) -> bytes:
        """One `KeyValue` in this field."""
        prefix = self.prefixes.get(key)
        if prefix is None:
            prefix = _text(b"\x0a", key)
            if len(self.prefixes) < _MAX_ENTRIES:
                self.prefixes[key] = prefix
        if value.__class__ is str:  # most of those not remembered: a request id, a message preview
            data = value.encode("utf-8", "replace")
            size = len(data)
            total = len(prefix) + size + 4
            if total < 0x80:  # every length one byte
                head = (self.tag, _BYTE[total], prefix, b"\x12", _BYTE[size + 2], b"\x0a", _BYTE[size])
                return b"".join(head) + data
        return _field(self.tag, prefix + _any_value(value))


class _SharedEncodings:
    """Each shared attribute mapping's entries (`record.SpanRecord.shared`), encoded the first time it
    is seen: by identity, the mapping being the same object for every span that shares it.  The
    mapping is kept with its bytes, so its id cannot be reused by another while remembered."""

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Mapping[str, Any], bytes]] = {}

    def encode(self, shared: Mapping[str, Any]) -> bytes:
        known = self._by_id.get(id(shared))
        if known is not None and known[0] is shared:
            return known[1]
        encoded = _SPAN_ATTRIBUTES.encode(shared)
        if len(self._by_id) >= _MAX_NAMES:
            self._by_id.clear()
        self._by_id[id(shared)] = (shared, encoded)
        return encoded


_SPAN_ATTRIBUTES = _Entries(b"\x4a")
_EVENT_ATTRIBUTES = _Entries(b"\x1a")
_ENTRIES = {entries.tag: entries for entries in (_SPAN_ATTRIBUTES, _EVENT_ATTRIBUTES, _Entries(b"\x0a"))}
_SHARED = _SharedEncodings()


def attributes(tag: bytes, values: Mapping[str, Any] | None) -> bytes:
    """Each attribute as a `KeyValue` in field `tag` (`\\x4a` a span's, `\\x1a` an event's, `\\x0a` a
    resource's)."""
    return _ENTRIES[tag].encode(values) if values else b""


_NAMES: dict[str, bytes] = {}
"""Span names, encoded (field 5): a few per route and model."""
_EVENT_NAMES: dict[str, bytes] = {}
"""Event names, encoded (`Span.Event.name`, field 2)."""


def _name(name: str) -> bytes:
    return _remember_name(_NAMES, b"\x2a", name)


def _event_name(name: str) -> bytes:
    return _remember_name(_EVENT_NAMES, b"\x12", name)


def _remember_name(names: dict[str, bytes], tag: bytes, name: str) -> bytes:
    encoded = names.get(name)
    if encoded is None:
        if len(names) >= _MAX_NAMES:
            names.clear()
        encoded = names[name] = _text(tag, name)
    return encoded


def trace_fields(trace_id: int, trace_state: str | None) -> tuple[bytes, bytes]:
    """`Span.trace_id` and `Span.trace_state`, the same for every span of a trace: encoded once."""
    return b"\x0a\x10" + trace_id.to_bytes(16, "big"), _text(b"\x1a", trace_state) if trace_state else b""


def span_field(
    trace: tuple[bytes, bytes],
    epoch_ns: int,
    span_id: int,
    parent_id: int | None,
    parent_remote: bool,
    name: str,
    kind: str,
    start: float,
    end: float,
    values: Mapping[str, Any],
    events: Sequence[Event] = (),
    error: str | None = None,
    shared: Mapping[str, Any] | None = None,
) -> bytes:
    """One `Span` as `ScopeSpans.spans` (field 2) holds it.

    `trace` is `trace_fields()`; `kind` a name in `KIND` (another is
    `internal`); `start`, `end` and the events' times are seconds after
    `epoch_ns` (Unix nanoseconds), so a trace's `perf_counter()` stamps go
    in as they are; an `end` before `start` is taken as `start`.  `shared`
    attributes (the same mapping for many spans, never changed, no key also
    in `values`) come first, encoded once.
    """
    trace_id, trace_state = trace
    if parent_id is None:
        ids = _SPAN_ID.pack(0x12, 8, span_id) + trace_state
    elif trace_state:
        ids = _SPAN_ID.pack(0x12, 8, span_id) + trace_state + _SPAN_ID.pack(0x22, 8, parent_id)
    else:
        ids = _SPAN_AND_PARENT_IDS.pack(0x12, 8, span_id, 0x22, 8, parent_id)
    if events:
        written = []
        for event_name, at, event_values in events:
            body = b"".join(
                (
                    _EVENT_TIME.pack(0x09, epoch_ns + int(at * 1e9)),
                    _EVENT_NAMES.get(event_name) or _event_name(event_name),
                    _EVENT_ATTRIBUTES.encode(event_values) if event_values else b"",
                )
            )
            written.append(_field(b"\x5a", body))
        encoded_events = b"".join(written)
    else:
        encoded_events = b""
    body = b"".join(
        (
            trace_id,
            ids,
            _NAMES.get(name) or _name(name),
            _KIND_AND_TIMES.pack(
                0x30,
                KIND.get(kind, 1),
                0x39,
                epoch_ns + int(start * 1e9),
                0x41,
                epoch_ns + int((end if end > start else start) * 1e9),
            ),
            _SHARED.encode(shared) if shared else b"",
            _SPAN_ATTRIBUTES.encode(values) if values else b"",
            encoded_events,
            _STATUS_UNSET if error is None else _field(b"\x7a", _text(b"\x12", error) + _STATUS_CODE_ERROR),
            _FLAGS_REMOTE if parent_id is not None and parent_remote else _FLAGS_LOCAL,
        )
    )
    size = len(body)
    if 0x80 <= size < 0x4000:  # most spans: a two-byte length, written without a call
        return b"\x12" + _BYTE[(size & 0x7F) | 0x80] + _BYTE[size >> 7] + body
    return _field(b"\x12", body)


class Encoder:
    """Wraps encoded spans into export requests: spans grouped by service, each service's resource
    (only `service.name`, as brightstaff's exporter makes them) and the scope encoded once."""

    def __init__(self, scope_name: str, scope_version: str) -> None:
        self._scope = _field(b"\x0a", _text(b"\x0a", scope_name) + _text(b"\x12", scope_version))
        self._resources: dict[str, bytes] = {}

    def request(self, spans: Iterable[tuple[str, bytes]]) -> bytes:
        """An `ExportTraceServiceRequest` holding each (service, `span_field()`)."""
        groups: dict[str, list[bytes]] = {}
        for service, framed in spans:
            group = groups.get(service)
            if group is None:
                group = groups[service] = [self._scope]
            group.append(framed)
        return b"".join(
            _field(b"\x0a", self.resource(service) + _field(b"\x12", b"".join(group)))
            for service, group in groups.items()
        )

    def resource(self, service: str) -> bytes:
        """`ResourceSpans.resource` for `service`."""
        encoded = self._resources.get(service)
        if encoded is None:
            if len(self._resources) > 256:  # service names are ours; bound it all the same
                self._resources.clear()
            encoded = self._resources[service] = _field(
                b"\x0a", attributes(b"\x0a", {"service.name": service})
            )
        return encoded
