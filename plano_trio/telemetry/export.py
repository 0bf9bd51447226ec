"""From a finished request's record to OTLP: the export queue, the exporter, and what they carry.

This is the only module that imports the OpenTelemetry SDK, and it is
imported only when tracing is on (the SDK and gRPC take a noticeable part of
a second to import; a gateway without tracing never pays it).

The SDK's `Tracer` API cannot make these spans: every span id was chosen
while the request ran (it went out in `traceparent` headers before the span
could exist), every timestamp was recorded by then, and the service is per
span (Plano's `service.name.override`), which the SDK ties to a provider's
resource.  So spans go to the export queue (`export_queue`, batched as the
SDK's `BatchSpanProcessor` batches) as finished items:

* for OTLP/gRPC (Plano's protocol, the default), one `RequestItem` per
  request, holding its record; the exporter (the SDK's, `GrpcExporter`)
  encodes a batch of them with `otlp_encode` (the SDK's span objects and
  encoder cost several times everything else tracing does) and sends the
  bytes as they are;
* for any other exporter (OTLP/HTTP), the SDK's `ReadableSpan`s, one per
  span, each with a resource holding only `service.name` (as brightstaff's
  exporter builds one per service), encoded by the SDK.

Export runs in the queue's thread; the request path only appends to the
queue.  The queue is bounded in spans (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048 by
default, so at most that many spans wait, and one export request, about a
kilobyte a span, stays under gRPC's usual 4 MiB limit): what would overflow
the bound is dropped here, not even built, and counted
(`ExportCounts.dropped`).  A dead or slow collector therefore costs the
request nothing: export retries (bounded by `OTEL_EXPORTER_OTLP_TIMEOUT`)
happen in the export thread while the queue fills and then drops.  The
SDK's own warnings about a failing collector are passed at most once a
minute each.

Where spans go: OTLP/gRPC to the configured collector, as Plano; OTLP/HTTP
(protobuf) when `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or
`OTEL_EXPORTER_OTLP_PROTOCOL` says `http/protobuf`, to
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` (the
SDK's defaults otherwise).  Headers, timeout, compression and TLS come from
the standard `OTEL_EXPORTER_OTLP_*` variables, read by the SDK.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as SdkGrpcExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event as SdkEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

import plano_trio
from plano_trio.config.tracing_settings import TracingSettings
from plano_trio.telemetry import names, otlp_encode
from plano_trio.telemetry.export_queue import ExportQueue
from plano_trio.telemetry.otlp_encode import Encoder
from plano_trio.telemetry.record import Attributes, Event, RequestTrace, RootSpan, Shared
from plano_trio.telemetry.spans import public_url

log = logging.getLogger("plano_trio.tracing")

DEFAULT_QUEUE_SIZE = 2048
DEFAULT_BATCH_SIZE = 512
DEFAULT_SCHEDULE_DELAY_S = 5.0
SPANS_PER_REQUEST = 4
"""For gRPC the processor's items are requests, of three or four spans each (the request's, routing, an
attempt): its batch size in items is the span batch size over this."""
SCOPE = ("plano_trio", plano_trio.__version__)
EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_KINDS = {"internal": SpanKind.INTERNAL, "client": SpanKind.CLIENT, "server": SpanKind.SERVER}
_OK = Status(StatusCode.UNSET)
_SDK_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.sdk._shared_internal",
)


class ExportCounts:
    """Spans handed to the queue, dropped before it, and what the exporter made of them."""

    __slots__ = ("dropped", "emitted", "exported", "failed", "failed_batches", "handed")

    def __init__(self) -> None:
        self.emitted = 0
        """Queued for export (request path)."""
        self.dropped = 0
        """Not queued: the queue was full (the collector is down or slower than the traffic)."""
        self.handed = 0
        """Taken off the queue by the export thread."""
        self.exported = 0
        self.failed = 0
        self.failed_batches = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class RequestItem:
    """One request's spans as one item of the export queue, encoded by the export thread.

    The queue hands items to the exporter untouched; `GrpcExporter` encodes
    them.  Encoding there, a batch at a
    time, measured about five times cheaper than encoding each request on
    the event loop as it ends (20 against 108 µs of CPU a request, same
    gateway and load): between two requests the loop's other work evicts
    the encoder's code and data from the CPU caches, a batch keeps them
    warm.
    """

    __slots__ = ("_encoded", "default_service", "root", "size", "trace")

    def __init__(self, trace: RequestTrace, root: RootSpan, default_service: str) -> None:
        self.trace = trace
        self.root = root
        self.default_service = default_service
        self.size = 1 + len(trace.spans)
        self._encoded: list[tuple[str, bytes]] | None = None

    def spans(self) -> list[tuple[str, bytes]]:
        """(service, encoded `Span` field) of each span, encoded once (the exporter retries a failed
        batch)."""
        if self._encoded is None:
            self._encoded = encode_request(self.trace, self.root, self.default_service)
        return self._encoded


def _span_count(batch: Sequence[Any]) -> int:
    return sum(item.size if isinstance(item, RequestItem) else 1 for item in batch)


class _RawTraceStub:
    """`TraceServiceStub` sending a request that is already bytes (no serializer: gRPC sends bytes as
    they are) and reading the collector's answer as the SDK's stub does."""

    def __init__(self, channel: Any) -> None:
        self.Export = channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
            _registered_method=True,
        )


class GrpcExporter(SdkGrpcExporter):
    """The SDK's OTLP/gRPC exporter (channel, retries, TLS, headers, compression, timeout from the
    `OTEL_EXPORTER_OTLP_*` variables), sending requests' pre-encoded spans.

    `_translate_data` is the exporter's hook for turning a batch into its
    request message; here it returns the request's bytes, which the stub
    (`_RawTraceStub`, also after the exporter reconnects) sends unchanged:
    they are the bytes the protobuf runtime would have serialized, without
    parsing them into a message and serializing it again (which cost as much
    as encoding them).  Items that are `ReadableSpan`s (none come from this
    package) still get the SDK's encoder.  Encoding is Python work under the
    interpreter lock; a batch of 128 requests (the default) is a few
    milliseconds of it, within the interval after which the interpreter hands
    the lock to a thread that waits for it (5 ms), so the event loop waits
    for one batch at most.  (Pausing every few requests to hand the lock over
    measured dearer in CPU than it saved.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stub = _RawTraceStub  # what the SDK makes its client with when it reconnects
        self._client = _RawTraceStub(self._channel)  # type: ignore[assignment]  # the SDK declares None
        self._encoder = Encoder(*SCOPE)  # used by the export thread only (the processor serializes exports)

    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        items: Sequence[Any] = data
        if all(isinstance(item, RequestItem) for item in items):
            payload = self._encoder.request([pair for item in items for pair in item.spans()])
        else:
            payload = super()._translate_data(data).SerializeToString()
        return cast(ExportTraceServiceRequest, payload)  # bytes, for `_RawTraceStub`


class _CountingExporter(SpanExporter):
    """Wraps the OTLP exporter to count what leaves the queue and how export went."""

    def __init__(self, inner: SpanExporter, counts: ExportCounts) -> None:
        self._inner = inner
        self._counts = counts
        self._shut = threading.Lock()
        self._is_shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        counts = self._counts
        size = _span_count(spans)
        counts.handed += size
        try:
            result = self._inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            counts.exported += size
        else:
            counts.failed += size
            counts.failed_batches += 1
        return result

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Idempotent: both the flush's timeout and the processor's own shutdown call it."""
        del timeout_millis  # the OTLP exporters' shutdown returns at once (it closes the channel)
        with self._shut:
            if self._is_shut:
                return
            self._is_shut = True
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


class _OncePerMinute(logging.Filter):
    """Lets each distinct SDK message through at most once a minute (a dead collector repeats them)."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[tuple[str, object], float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -3600.0) < 60.0:
                return False
            if len(self._last) > 256:
                self._last.clear()
            self._last[key] = now
        return True


class FlatSpan(NamedTuple):
    """One span of a request, root or child, with wall-clock times (what both item kinds are made of)."""

    span_id: int
    parent_id: int | None
    parent_remote: bool
    name: str
    service: str
    kind: str
    start_ns: int
    end_ns: int
    attributes: Attributes
    events: tuple[tuple[str, int, Attributes], ...]
    """(name, Unix nanoseconds, attributes)."""
    error: str | None


def flatten(trace: RequestTrace, root: RootSpan, default_service: str) -> list[FlatSpan]:
    """The request's spans, root first (pure)."""
    unix = trace.unix_ns
    out = [
        FlatSpan(
            trace.span_id,
            trace.remote_parent,
            True,
            root.name,
            root.service,
            "internal",
            unix(root.start),
            unix(max(root.start, root.end)),
            _all_attributes(_root_attributes(trace, root), root.shared),
            _events(trace, root.events),
            root.error,
        )
    ]
    for span in trace.spans:
        out.append(
            FlatSpan(
                span.span_id,
                span.parent_id,
                False,
                span.name,
                span.service or default_service,
                span.kind,
                unix(span.start),
                unix(max(span.start, span.end)),
                _all_attributes(span.attributes, span.shared),
                _events(trace, span.events),
                span.error,
            )
        )
    return out


def _root_attributes(trace: RequestTrace, root: RootSpan) -> Attributes:
    """The request span's own attributes, with how many child spans did not fit (when some did not)."""
    if trace.dropped:
        return {**root.attributes, names.DROPPED_CHILD_SPANS: trace.dropped}
    return root.attributes


def _all_attributes(attributes: Attributes, shared: Shared | None) -> Attributes:
    """A span's attributes as one mapping: the shared ones, then its own."""
    return {**shared, **attributes} if shared else attributes


def _events(trace: RequestTrace, events: Sequence[Event]) -> tuple[tuple[str, int, Attributes], ...]:
    return tuple((name, trace.unix_ns(at), values) for name, at, values in events)


def encode_request(trace: RequestTrace, root: RootSpan, default_service: str) -> list[tuple[str, bytes]]:
    """(service, encoded `Span` field) of each of the request's spans, root first (pure): the spans
    `flatten` gives, written straight from the record."""
    state = trace_state_of(trace) if trace.tracestate else None
    ids = otlp_encode.trace_fields(trace.trace_id, _header(state) if state else None)
    epoch = trace.epoch_ns
    encode = otlp_encode.span_field
    default = default_service
    attributes = root.attributes
    if trace.dropped:
        attributes = _root_attributes(trace, root)
    out = [
        (
            root.service,
            encode(
                ids,
                epoch,
                trace.span_id,
                trace.remote_parent,
                True,
                root.name,
                "internal",
                root.start,
                root.end,
                attributes,
                root.events,
                root.error,
                root.shared,
            ),
        )
    ]
    append = out.append
    for child, parent, name, service, start, end, values, error, kind, events, shared in trace.spans:
        span = encode(ids, epoch, child, parent, False, name, kind, start, end, values, events, error, shared)
        append((service or default, span))
    return out


def _header(state: TraceState) -> str:
    return ",".join(f"{key}={value}" for key, value in state.items())


def trace_state_of(trace: RequestTrace) -> TraceState | None:
    """The client's `tracestate`, as the SDK reads it (None: none, or none it accepts)."""
    if not trace.tracestate:
        return None
    state = TraceState.from_header([trace.tracestate.decode("ascii")])
    return state if state else None


class SpanExport:
    """The exporter side of tracing: `emit` turns a request's spans into queue items and queues them."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        default_service: str,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        schedule_delay_s: float = DEFAULT_SCHEDULE_DELAY_S,
    ):
        self.counts = ExportCounts()
        self._queue_size = queue_size
        self._exporter = _CountingExporter(exporter, self.counts)
        self._encode = isinstance(exporter, GrpcExporter)
        batch = max(1, batch_size // SPANS_PER_REQUEST) if self._encode else batch_size
        self._queue = ExportQueue(self._exporter, min(batch, queue_size), schedule_delay_s)
        self._default_service = default_service
        self._resources: dict[str, Resource] = {}
        self._scope = InstrumentationScope(*SCOPE)
        self._closed = False

    # -- the request path (the trio thread) --------------------------------------------------------

    def emit(self, trace: RequestTrace, root: RootSpan) -> None:
        """Queue the request's spans, the root and its children (dropped, and counted, past the bound:
        then not even built)."""
        counts = self.counts
        size = 1 + len(trace.spans)
        if self._closed or self._queue_size - (counts.emitted - counts.handed) < size:
            counts.dropped += size
            return
        counts.emitted += size
        trace.request = None  # read by the span already; the queue must not hold request bodies
        if self._encode:
            self._queue.put(RequestItem(trace, root, self._default_service))
        else:
            for span in self.build(trace, root):
                self._queue.put(span)

    def build(self, trace: RequestTrace, root: RootSpan) -> list[ReadableSpan]:
        """The request's spans as the SDK's span objects (pure: exposed for tests)."""
        state = trace_state_of(trace)
        trace_id = trace.trace_id
        out = []
        for flat in flatten(trace, root, self._default_service):
            parent = None
            if flat.parent_id is not None:
                parent = SpanContext(trace_id, flat.parent_id, flat.parent_remote, _SAMPLED, state)
            out.append(
                ReadableSpan(
                    name=flat.name,
                    context=SpanContext(trace_id, flat.span_id, False, _SAMPLED, state),
                    parent=parent,
                    resource=self._resource(flat.service),
                    attributes=flat.attributes,
                    events=[SdkEvent(name, values, at) for name, at, values in flat.events],
                    kind=_KINDS.get(flat.kind, SpanKind.INTERNAL),
                    status=_OK if flat.error is None else Status(StatusCode.ERROR, flat.error),
                    start_time=flat.start_ns,
                    end_time=flat.end_ns,
                    instrumentation_scope=self._scope,
                )
            )
        return out

    def _resource(self, service: str) -> Resource:
        resource = self._resources.get(service)
        if resource is None:
            if len(self._resources) > 64:  # service names are ours; bound it all the same
                self._resources.clear()
            resource = self._resources[service] = Resource({"service.name": service})
        return resource

    # -- shutdown -------------------------------------------------------------------------------------

    def shutdown(self, timeout_s: float) -> None:
        """Export what is queued, waiting at most about `timeout_s` (blocking: run it in a thread).

        The SDK's own shutdown waits up to 30 s for an export in progress,
        which against a dead collector is a retry loop; past `timeout_s` the
        exporter is shut down under it, which ends that loop at once.
        """
        self._closed = True
        flush = threading.Thread(target=self._queue.close, name="plano-trio-trace-flush", daemon=True)
        flush.start()
        flush.join(timeout_s)
        if flush.is_alive():
            self._exporter.shutdown()
            flush.join(0.5)


def quiet_sdk_logs() -> None:
    """Pass each of the SDK's export warnings at most once a minute."""
    limiter = _OncePerMinute()
    for name in _SDK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _OncePerMinute) for f in logger.filters):
            logger.addFilter(limiter)


def make_exporter(settings: TracingSettings, environ: Mapping[str, str]) -> tuple[SpanExporter, str]:
    """The OTLP exporter this process uses, and where it sends (for the startup log line)."""
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    standard = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if protocol.startswith("http/"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        if protocol != "http/protobuf":
            log.warning("tracing: OTLP protocol %s is not supported; sending http/protobuf", protocol)
        where = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
            (environ["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces")
            if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            else "http://localhost:4318/v1/traces"
        )
        return HttpExporter(), f"OTLP/HTTP to {public_url(where)}"
    if settings.endpoint_source == "default" and standard:
        return GrpcExporter(), f"OTLP/gRPC to {public_url(standard)}"
    return GrpcExporter(
        endpoint=settings.endpoint, insecure=True
    ), f"OTLP/gRPC to {public_url(settings.endpoint)}"


def queue_size(environ: Mapping[str, str]) -> int:
    """`OTEL_BSP_MAX_QUEUE_SIZE`, as the SDK reads it (2048 when unset or not a positive number)."""
    return _positive(environ.get("OTEL_BSP_MAX_QUEUE_SIZE"), DEFAULT_QUEUE_SIZE)


def batch_size(environ: Mapping[str, str]) -> int:
    """`OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512 when unset or not a positive number)."""
    return _positive(environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"), DEFAULT_BATCH_SIZE)


def schedule_delay_s(environ: Mapping[str, str]) -> float:
    """`OTEL_BSP_SCHEDULE_DELAY` in seconds, as the SDK reads it (milliseconds; 5 s when unset or not a
    positive number): how long a partial batch waits."""
    return _positive(environ.get("OTEL_BSP_SCHEDULE_DELAY"), int(DEFAULT_SCHEDULE_DELAY_S * 1000)) / 1000


def _positive(text: str | None, default: int) -> int:
    try:
        value = int(text) if text is not None else default
    except ValueError:
        return default
    return value if value > 0 else default
