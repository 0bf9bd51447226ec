"""OpenTelemetry traces that Plano's tools read (`planoai trace`, `planoai obs`), exported over OTLP.

Modules, one job each:

- `w3c`: the client's `traceparent`/`tracestate` read, ours written (pure);
- `record`: one traced request as plain data, the child spans its stages append (pure);
- `tracing`: `Tracing`, the per-process switch: sampling, custom attributes (pure);
- `names`: Plano's span, service and attribute names;
- `llm_request`: the LLM span's request attributes (temperature, tools, preview) (pure);
- `export`: span objects, the export queue and the OTLP exporter (imports the SDK);
- `export_queue`: the queue between the event loop and the export thread, and that thread;
- `otlp_encode`: spans as OTLP protobuf bytes (pure).

`open_tracing` owns the exporter's lifetime: the server opens it around its
listeners and closes it after they drained, flushing what is queued for at
most `FLUSH_TIMEOUT_S`.  With tracing off it yields None and imports
nothing of the SDK.

Layer: beside `metrics`, below the gateway, which builds each request's
root span from its `Outcome` (`gateway.trace_spans`) and whose stages
append the child spans.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import trio

from plano_trio.config.tracing_settings import TracingSettings
from plano_trio.telemetry.record import Pending, RequestTrace, RootSpan, SpanRecord
from plano_trio.telemetry.tracing import Tracing

__all__ = ["Pending", "RequestTrace", "RootSpan", "SpanRecord", "Tracing", "open_tracing"]

log = logging.getLogger("plano_trio.tracing")

FLUSH_TIMEOUT_S = 1.0
"""How long shutdown waits for queued spans to reach the collector (a dead one must not hold it up)."""


@asynccontextmanager
async def open_tracing(
    settings: TracingSettings, environ: Mapping[str, str] | None = None
) -> AsyncIterator[Tracing | None]:
    """Tracing for this process while the block runs (None when `random_sampling` is 0 or
    `OTEL_SDK_DISABLED=true`), its queue flushed on the way out."""
    env = os.environ if environ is None else environ
    if not settings.enabled or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        yield None
        return
    from plano_trio.telemetry import export  # the SDK and gRPC load only when tracing is on

    export.quiet_sdk_logs()
    exporter, where = export.make_exporter(settings, env)
    sink = export.SpanExport(
        exporter,
        default_service=env.get("OTEL_SERVICE_NAME") or "plano",
        queue_size=export.queue_size(env),
        batch_size=export.batch_size(env),
        schedule_delay_s=export.schedule_delay_s(env),
    )
    tracing = Tracing(settings, sink.emit, stats=sink.counts.as_dict)
    log.info("tracing: %d%% of requests sampled; %s", settings.random_sampling, where)
    try:
        yield tracing
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(sink.shutdown, FLUSH_TIMEOUT_S)
        counts = sink.counts
        if counts.dropped or counts.failed:
            log.warning(
                "tracing: %d spans exported, %d failed to export, %d dropped (queue full)",
                counts.exported,
                counts.failed,
                counts.dropped,
            )
