"""One traced request, as plain data: its ids, and the child spans its stages recorded (pure).

Spans are built after the fact.  While the request runs, a stage that does
something worth a span (an upstream attempt, the router call, a filter, an
agent, a state load) takes a span id and a start time from `begin()`, puts
the id into the `traceparent` it sends (`propagate()`), and on the way out
appends one `SpanRecord`: a tuple of numbers, strings and a small dict.  No
OpenTelemetry object exists until the observe stage hands the record, with
the request's own (root) span, to the exporter (`finish()`).  So the
request path pays a few appends when it is traced and one `is None` test
per stage when it is not (`RequestContext.trace` is None).

Bounds: at most `MAX_CHILD_SPANS` child spans per request (output filters on
a long stream would otherwise make one per event); the rest are counted in
`dropped` and reported on the root span.

Times are `time.perf_counter()` readings, the clock the gateway already
stamps (`RequestContext.started`, first byte, attempt sent); `unix_ns()`
turns one into wall-clock nanoseconds with the offset taken when the trace
began.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Generic, NamedTuple, TypeVar

from plano_trio.apis.http import Header
from plano_trio.apis.kind import Api
from plano_trio.telemetry.w3c import with_context

AttributeValue = str | bool | int | float
Attributes = dict[str, AttributeValue]
Shared = Mapping[str, AttributeValue]
"""Attributes many spans carry alike (`SpanRecord.shared`): one mapping, never changed."""
Event = tuple[str, float, Attributes]
"""(name, perf_counter time, attributes)."""

MAX_CHILD_SPANS = 64
K = TypeVar("K")
V = TypeVar("V")


class SpanRecord(NamedTuple):
    """A finished child span, as the stage that ran it saw it."""

    span_id: int
    parent_id: int
    name: str
    service: str | None
    """The span's service (`plano(llm)`, ...); None: the process's default (`OTEL_SERVICE_NAME`)."""
    start: float
    end: float
    attributes: Attributes
    error: str | None = None
    """Why it failed, when it did (the span's status is then an error)."""
    kind: str = "internal"
    """`internal`, or `client` for a call leaving the gateway (upstream attempts)."""
    events: tuple[Event, ...] = ()
    shared: Shared | None = None
    """Attributes that spans of its kind carry unchanged from one request to the next (the same
    mapping each time, from a `SharedAttributes`; never changed): the span's attributes are these, then
    `attributes` (no key in both).  The exporter encodes them once, not per request."""


class RootSpan(NamedTuple):
    """The request's own span, assembled by the observe stage."""

    name: str
    service: str
    start: float
    end: float
    attributes: Attributes
    error: str | None = None
    events: tuple[Event, ...] = ()
    shared: Shared | None = None
    """As `SpanRecord.shared`: attributes many requests' spans carry alike, before `attributes`."""


class SharedAttributes(Generic[K, V]):
    """What a stage makes once per distinct key and then reuses, typically (span name, shared
    attributes) per route, model or upstream: at most `limit` kept (past it they are made afresh)."""

    __slots__ = ("_limit", "_made")

    def __init__(self, limit: int = 1024) -> None:
        self._made: dict[K, V] = {}
        self._limit = limit

    def get(self, key: K) -> V | None:
        return self._made.get(key)

    def add(self, key: K, value: V) -> V:
        made = self._made
        if len(made) >= self._limit:  # keys come from config and requests: bound them all the same
            made.clear()
        made[key] = value
        return value


class Pending(NamedTuple):
    """A span begun: its id (already sent to the callee) and when it began."""

    span_id: int
    start: float


Sink = Callable[["RequestTrace", RootSpan], None]

_random_bits = random.getrandbits
_perf_counter = time.perf_counter
_tuple = tuple.__new__
"""What a named tuple's generated `__new__` calls: the records below are made with it directly, which
skips that Python-level function (half the cost of making one, on every traced request)."""
_NO_CUSTOM: Mapping[str, str] = MappingProxyType({})


def new_span_id() -> int:
    """64 random bits, never zero (zero means "no span" in the W3C format)."""
    return _random_bits(64) or 1


class RequestTrace:
    """The trace of one sampled request; created by `Tracing.start`, finished by the observe stage."""

    __slots__ = (
        "_sink",
        "attributes",
        "custom",
        "dropped",
        "epoch_ns",
        "events",
        "name",
        "name_suffix",
        "remote_parent",
        "request",
        "span_id",
        "spans",
        "trace_id",
        "tracestate",
    )

    def __init__(
        self, sink: Sink, trace_id: int, remote_parent: int | None, tracestate: bytes | None
    ) -> None:
        self._sink = sink
        self.trace_id = trace_id
        self.span_id = _random_bits(64) or 1
        """The request's own (root) span."""
        self.remote_parent = remote_parent
        """The client's span (its `traceparent`), the root span's parent; None: the root starts the trace."""
        self.tracestate = tracestate
        self.spans: list[SpanRecord] = []
        self.dropped = 0
        self.attributes: Attributes = {}
        """Root-span attributes stages learn on the way (routing decision, session, signals)."""
        self.events: list[Event] = []
        """Root-span events added by stages (e.g. signals)."""
        self.custom: Mapping[str, str] = _NO_CUSTOM
        """`tracing.span_attributes` for this request (static, and from its headers): on the request's
        span and on agent spans, as Plano puts them."""
        self.name: str | None = None
        """The root span's name when a stage knows it (the agent listener's name); None: the observe
        stage names it."""
        self.name_suffix = ""
        """Appended to the root span's name (Plano's ` 🚩` for a concerning conversation)."""
        self.request: tuple[Api, bytes] | None = None
        """The client's API and request body, read for the LLM attributes only when the span is built."""
        self.epoch_ns = time.time_ns() - int(time.perf_counter() * 1e9)
        """Unix-epoch nanoseconds at `perf_counter()` zero, as of the trace's start."""

    @property
    def trace_id_hex(self) -> str:
        return f"{self.trace_id:032x}"

    def unix_ns(self, perf: float) -> int:
        """A `perf_counter()` reading as Unix-epoch nanoseconds."""
        return self.epoch_ns + int(perf * 1e9)

    def begin(self) -> Pending:
        return _tuple(Pending, (_random_bits(64) or 1, _perf_counter()))

    def propagate(self, headers: Iterable[Header], span_id: int | None = None) -> list[Header]:
        """`headers` carrying our context: the callee's parent is `span_id` (default: the root span)."""
        return with_context(headers, self.trace_id, span_id or self.span_id, self.tracestate)

    def add(self, span: SpanRecord) -> None:
        if len(self.spans) < MAX_CHILD_SPANS:
            self.spans.append(span)
        else:
            self.dropped += 1

    def end(
        self,
        pending: tuple[int, float],
        name: str,
        service: str | None,
        attributes: Attributes,
        error: str | None = None,
        kind: str = "internal",
        end: float | None = None,
        parent: int | None = None,
        shared: Shared | None = None,
    ) -> None:
        """Record the span `pending` began (its id and start: a `Pending`), ending now (or at `end`),
        under `parent` (default: the root)."""
        if len(self.spans) >= MAX_CHILD_SPANS:
            self.dropped += 1
            return
        span_id, start = pending
        self.spans.append(
            _tuple(
                SpanRecord,
                (
                    span_id,
                    parent or self.span_id,
                    name,
                    service,
                    start,
                    _perf_counter() if end is None else end,
                    attributes,
                    error,
                    kind,
                    (),
                    shared,
                ),
            )
        )

    def finish(self, root: RootSpan) -> None:
        """Hand the request's spans to the exporter (the sink catches its own errors)."""
        self._sink(self, root)
