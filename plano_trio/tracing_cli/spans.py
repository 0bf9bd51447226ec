"""The traces a listener keeps and a viewer prints, in the JSON shape Plano's `planoai trace` uses.

That shape is OTLP/JSON's span trimmed to what the viewer needs, plus the resource's `service.name` on
each span: `{"traces": [{"trace_id": hex, "spans": [{"traceId", "spanId", "parentSpanId", "name",
"startTimeUnixNano", "endTimeUnixNano", "service", "attributes": [{"key", "value": {"stringValue" |
"intValue" | "doubleValue" | "boolValue"}}]}]}]}`.  Times and integers are decimal strings as in
OTLP/JSON (a JSON number cannot hold every int64; a number is accepted on the way in).  Only scalar
attribute values exist here: Plano's listener drops arrays, maps and bytes, and so does ours, so both
print the same JSON for the same spans.

Decoding a listener's answer into these types is the viewer's boundary: a listener is another process,
and a malformed answer is a `msgspec.ValidationError` here, not a `KeyError` while printing.
"""

from __future__ import annotations

import msgspec


class AnyValue(msgspec.Struct, frozen=True, omit_defaults=True, rename="camel"):
    """One scalar attribute value; exactly one field is set."""

    string_value: str | None = None
    bool_value: bool | None = None
    int_value: str | int | None = None
    double_value: float | None = None

    def text(self) -> str | None:
        """The value as the viewers print and compare it (`--where key=value`): Python's `str()`.

        `True`, not `true`, and `0.5` for doubles, because that is what `planoai trace` matches against.
        """
        if self.string_value is not None:
            return self.string_value
        if self.int_value is not None:
            return str(self.int_value)
        if self.double_value is not None:
            return str(self.double_value)
        if self.bool_value is not None:
            return str(self.bool_value)
        return None


class Attribute(msgspec.Struct, frozen=True):
    key: str
    value: AnyValue = AnyValue()


class Span(msgspec.Struct, frozen=True, rename="camel"):
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    name: str = ""
    start_time_unix_nano: str = "0"
    end_time_unix_nano: str = "0"
    service: str = "unknown"
    attributes: tuple[Attribute, ...] = ()

    @property
    def start_ns(self) -> int:
        return _nanos(self.start_time_unix_nano)

    @property
    def end_ns(self) -> int:
        return _nanos(self.end_time_unix_nano)

    def attribute_texts(self) -> dict[str, str]:
        """Key to printable value; the last one wins when a sender repeats a key."""
        return {a.key: text for a in self.attributes if (text := a.value.text()) is not None}


class Trace(msgspec.Struct, frozen=True):
    trace_id: str
    spans: tuple[Span, ...] = ()

    @property
    def start_ns(self) -> int:
        return min((span.start_ns for span in self.spans), default=0)

    @property
    def end_ns(self) -> int:
        return max((span.end_ns for span in self.spans), default=0)

    @property
    def total_ms(self) -> float:
        return max(0.0, (self.end_ns - self.start_ns) / 1e6)


class TracesReply(msgspec.Struct, frozen=True):
    """The answer to `GetTraces`, newest trace first."""

    traces: tuple[Trace, ...] = ()


class TraceIdsReply(msgspec.Struct, frozen=True):
    """What `--list --json` prints."""

    trace_ids: tuple[str, ...] = ()


MAX_NANOS_DIGITS = 20
"""An unsigned 64-bit count of nanoseconds has at most 20 digits; longer strings are not times."""


def _nanos(text: str) -> int:
    if not text or len(text) > MAX_NANOS_DIGITS or not text.isascii() or not text.isdigit():
        return 0
    return int(text)


_decoder = msgspec.json.Decoder(TracesReply)


def decode_reply(body: bytes) -> TracesReply:
    """Parse a listener's `GetTraces` answer; raises `msgspec.DecodeError` (a `ValidationError` too)."""
    return _decoder.decode(body)
