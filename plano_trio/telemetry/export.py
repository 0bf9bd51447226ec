"""From a finished request's record to OTLP: span objects, the batch processor, the exporter.

This is the only module that imports the OpenTelemetry SDK, and it is
imported only when tracing is on (the SDK and gRPC take a noticeable part of
a second to import; a gateway without tracing never pays it).

Spans are built directly as the SDK's `ReadableSpan`, the object its
`Tracer` hands to span processors when a span ends.  The `Tracer` API
cannot be used here: every span id was chosen while the request ran (it went
out in `traceparent` headers before the span could exist), every timestamp
was recorded by then, and the span's service is per span (Plano's
`service.name.override`), which the SDK ties to the provider's resource.
Each span gets a resource holding only `service.name` (as brightstaff's
exporter builds one per service), cached per service.

Export runs in the SDK's `BatchSpanProcessor` thread; the request path only
appends to its queue.  The queue is bounded (`OTEL_BSP_MAX_QUEUE_SIZE`,
2048 by default) and this module keeps the count the SDK does not expose:
a span that would overflow the queue is dropped here and counted
(`ExportCounts.dropped`), before the SDK would drop one itself with a
warning per span.  A dead or slow collector therefore costs the request
nothing: export retries (bounded by `OTEL_EXPORTER_OTLP_TIMEOUT`) happen in
the processor's thread while the queue fills and then drops.  The SDK's own
warnings about a failing collector are passed at most once a minute each.

The exporter: OTLP/gRPC to the configured collector, as Plano, with our own
span encoder (`otlp_encode`: the SDK's costs several times more CPU than
everything else tracing does); OTLP/HTTP
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
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as SdkGrpcExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event as SdkEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

import plano_trio
from plano_trio.config.tracing_settings import TracingSettings
from plano_trio.telemetry import names
from plano_trio.telemetry.otlp_encode import Encoder
from plano_trio.telemetry.record import Event, RequestTrace, RootSpan, SpanRecord
from plano_trio.telemetry.spans import public_url

log = logging.getLogger("plano_trio.tracing")

DEFAULT_QUEUE_SIZE = 2048
DEFAULT_BATCH_SIZE = 512
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


class _CountingExporter(SpanExporter):
    """Wraps the OTLP exporter to count what leaves the queue and how export went."""

    def __init__(self, inner: SpanExporter, counts: ExportCounts) -> None:
        self._inner = inner
        self._counts = counts
        self._shut = threading.Lock()
        self._is_shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        counts = self._counts
        counts.handed += len(spans)
        try:
            result = self._inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            counts.exported += len(spans)
        else:
            counts.failed += len(spans)
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


class GrpcExporter(SdkGrpcExporter):
    """The SDK's OTLP/gRPC exporter (channel, retries, TLS, headers, compression, timeout from the
    `OTEL_EXPORTER_OTLP_*` variables), encoding with `otlp_encode` instead of the SDK's encoder.

    `_translate_data` is the exporter's hook for turning a batch into its request message; the C
    protobuf parses our bytes into that message in a few microseconds per span.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._encoder = Encoder()  # used by the export thread only (the processor serializes exports)

    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(self._encoder.request(data))
        return request


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


class SpanExport:
    """The exporter side of tracing: `emit` builds a request's spans and queues them."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        default_service: str,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        self.counts = ExportCounts()
        self._queue_size = queue_size
        self._exporter = _CountingExporter(exporter, self.counts)
        self._processor = BatchSpanProcessor(
            self._exporter, max_queue_size=queue_size, max_export_batch_size=min(batch_size, queue_size)
        )
        self._default_service = default_service
        self._resources: dict[str, Resource] = {}
        self._scope = InstrumentationScope("plano_trio", plano_trio.__version__)
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
        spans = self.build(trace, root)
        counts.emitted += size
        on_end = self._processor.on_end
        for span in spans:
            on_end(span)

    def build(self, trace: RequestTrace, root: RootSpan) -> list[ReadableSpan]:
        """The request's spans as the SDK's span objects (pure: exposed for tests)."""
        state = TraceState.from_header([trace.tracestate.decode("ascii")]) if trace.tracestate else None
        trace_id = trace.trace_id
        remote = (
            SpanContext(trace_id, trace.remote_parent, True, _SAMPLED, state)
            if trace.remote_parent is not None
            else None
        )
        attributes = dict(root.attributes)
        if trace.dropped:
            attributes[names.DROPPED_CHILD_SPANS] = trace.dropped
        out = [
            self._span(
                trace,
                state,
                trace.span_id,
                remote,
                root.name,
                root.service,
                root.start,
                root.end,
                attributes,
                root.error,
                "internal",
                root.events,
            )
        ]
        for child in trace.spans:
            out.append(self._child(trace, state, child))
        return out

    def _child(self, trace: RequestTrace, state: TraceState | None, span: SpanRecord) -> ReadableSpan:
        parent = SpanContext(trace.trace_id, span.parent_id, False, _SAMPLED, state)
        return self._span(
            trace,
            state,
            span.span_id,
            parent,
            span.name,
            span.service,
            span.start,
            span.end,
            span.attributes,
            span.error,
            span.kind,
            span.events,
        )

    def _span(
        self,
        trace: RequestTrace,
        state: TraceState | None,
        span_id: int,
        parent: SpanContext | None,
        name: str,
        service: str | None,
        start: float,
        end: float,
        attributes: Mapping[str, Any],
        error: str | None,
        kind: str,
        events: Sequence[Event],
    ) -> ReadableSpan:
        return ReadableSpan(
            name=name,
            context=SpanContext(trace.trace_id, span_id, False, _SAMPLED, state),
            parent=parent,
            resource=self._resource(service),
            attributes=attributes,
            events=[SdkEvent(e_name, e_attrs, trace.unix_ns(at)) for e_name, at, e_attrs in events],
            kind=_KINDS.get(kind, SpanKind.INTERNAL),
            status=_OK if error is None else Status(StatusCode.ERROR, error),
            start_time=trace.unix_ns(start),
            end_time=trace.unix_ns(max(start, end)),
            instrumentation_scope=self._scope,
        )

    def _resource(self, service: str | None) -> Resource:
        name = service or self._default_service
        resource = self._resources.get(name)
        if resource is None:
            if len(self._resources) > 64:  # service names are ours; bound it all the same
                self._resources.clear()
            resource = self._resources[name] = Resource({"service.name": name})
        return resource

    # -- shutdown -------------------------------------------------------------------------------------

    def shutdown(self, timeout_s: float) -> None:
        """Export what is queued, waiting at most about `timeout_s` (blocking: run it in a thread).

        The SDK's own shutdown waits up to 30 s for an export in progress,
        which against a dead collector is a retry loop; past `timeout_s` the
        exporter is shut down under it, which ends that loop at once.
        """
        self._closed = True
        flush = threading.Thread(target=self._processor.shutdown, name="plano-trio-trace-flush", daemon=True)
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


def _positive(text: str | None, default: int) -> int:
    try:
        value = int(text) if text is not None else default
    except ValueError:
        return default
    return value if value > 0 else default
