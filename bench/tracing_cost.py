"""What tracing costs one chat request, in instructions: the real span code driven without a gateway.

``python -m bench.tracing_cost N [base|loop|all]`` runs N traced JSON chat requests' worth of tracing work
through the code the gateway runs for one (`Tracing.start`, the route stage's span, the attempt's
`traceparent` and span, `answered_model`, `trace_spans.finish`, the exporter's `emit` into the batch
processor) and, with ``all`` (the default), the export thread's work too: each batch encoded as the
gRPC exporter encodes it and serialized as gRPC serializes it (nothing is sent).  ``loop`` stops at the
queue: the event loop's share; ``base`` runs the request loop without tracing (subtracted).

Run it under callgrind at two sizes and divide the difference by the requests between them, so
start-up and warm-up cancel out and the machine's load does not matter::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.tracing_cost 500
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.tracing_cost 2500

(``python -m bench.tracing_cost measure [SMALL LARGE]`` does that for each mode and prints the
instructions per request tracing adds: on the loop, in the export thread, in all.)  The request
is `bench.targets.chat_body`'s, with the headers a load generator sends; the gateway's own work
(parsing, relaying) is not here, only what tracing adds to it.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench import callgrind

__all__ = ["measure", "run"]

MODEL = "gpt-4o-mini"
PATH = "/v1/chat/completions"
HEADERS = [
    (b"host", b"127.0.0.1:12000"),
    (b"user-agent", b"bench-loadgen"),
    (b"accept", b"*/*"),
    (b"content-type", b"application/json"),
    (b"content-length", b"72"),
]
OUTBOUND = [
    (b"content-type", b"application/json"),
    (b"authorization", b"Bearer bench-key"),
    (b"content-length", b"72"),
]


def run(requests: int, mode: str) -> None:
    """`requests` traced requests' tracing work, then (`all`) their export, all in this process; `base`
    runs only what the request loop does without tracing (its context, its outcome), to subtract."""
    export = mode == "all"
    from bench.targets import chat_body
    from plano_trio.apis.kind import Api
    from plano_trio.apis.openai_chat import Usage
    from plano_trio.config.tracing_settings import TracingSettings
    from plano_trio.gateway import trace_spans
    from plano_trio.gateway.context import RequestContext
    from plano_trio.gateway.observe import Outcome
    from plano_trio.gateway.pipeline import new_span_id
    from plano_trio.metrics import labels
    from plano_trio.server.serve import tune_garbage_collector
    from plano_trio.telemetry import export as export_module
    from plano_trio.telemetry import spans
    from plano_trio.telemetry.tracing import Tracing

    class Encoding(export_module.GrpcExporter):
        """The gRPC exporter's Python work on a batch (encode, serialize), nothing sent."""

        def _export(self, data: Any) -> Any:
            request = self._translate_data(data)
            if not isinstance(request, bytes):
                request.SerializeToString()
            return export_module.SpanExportResult.SUCCESS

    class Queueing(export_module.SpanExporter):
        """Takes batches off the queue and drops them (the `loop` mode)."""

        def export(self, spans: Sequence[Any]) -> Any:
            return export_module.SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

    random.seed(1)
    tune_garbage_collector()  # as the gateway's process does
    settings = TracingSettings(random_sampling=100)
    exporter: Any = Encoding(endpoint="localhost:4317", insecure=True)
    sink = export_module.SpanExport(
        exporter,
        default_service="plano",
        queue_size=4 * requests + 4096,
        batch_size=512,
        schedule_delay_s=600,  # the export thread wakes for full batches only
    )
    if not export:
        sink._encode = True  # RequestItems into the queue, as for gRPC, but dropped unencoded
        sink._exporter._inner = Queueing()
    tracing = Tracing(settings, sink.emit, stats=sink.counts.as_dict)
    body = chat_body(MODEL, False)
    response = {"id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18", "object": "chat.completion"}
    usage = Usage(prompt_tokens=9, completion_tokens=12, total_tokens=21)
    for index in range(requests):
        request_id = f"{index:08x}-bench".encode()
        started = time.perf_counter()
        ctx = RequestContext("POST", PATH, HEADERS, request_id, _never, _never, started)
        if mode == "base":
            sent = now = time.perf_counter()
            Outcome(200, "ok", MODEL, f"openai/{MODEL}", False, now, usage, None, 0, 200, sent, 310)
            continue
        trace = tracing.start(HEADERS)
        assert trace is not None
        ctx = ctx._replace(trace=trace)
        trace.request = (Api.CHAT, body)
        pending = trace.begin()  # the route stage
        trace_spans.routing(trace, pending, PATH, MODEL, MODEL, None)
        span_id = new_span_id()  # the attempt
        trace.propagate(OUTBOUND, span_id)
        sent = time.perf_counter()
        spans.upstream_attempt(
            trace,
            span_id,
            sent,
            scheme="http",
            authority="127.0.0.1:18080",
            target=PATH.encode(),
            provider="openai",
            status=200,
            request_size=len(body),
            response_size=310,
            request_id=request_id.decode("ascii"),
            error=None,
        )
        trace_spans.answered_model(trace, None, response)
        now = time.perf_counter()
        outcome = Outcome(
            200,
            "ok",
            MODEL,
            f"openai/{MODEL}",
            False,
            now,
            usage,
            upstream_status=200,
            upstream_started=sent,
            response_bytes=310,
        )
        trace_spans.finish(trace, ctx, outcome, labels.LLM_CHAT, now)
    sink.shutdown(600.0)
    counts = sink.counts
    traced = 0 if mode == "base" else requests
    assert counts.exported == counts.emitted == 3 * traced and not counts.dropped, counts.as_dict()
    assert tracing.sink_errors == 0


async def _never(*args: object) -> Any:
    raise AssertionError("not called")


def instructions(requests: int, mode: str) -> int:
    """Instructions callgrind counts for `python -m bench.tracing_cost requests mode` (every thread), run
    in the current directory (so a worktree of another revision measures that revision)."""
    return callgrind.instructions("bench.tracing_cost", str(requests), mode)


def measure(small: int = 500, large: int = 2500) -> dict[str, float]:
    """Instructions per request that tracing adds: on the event loop (`loop`), in the export thread
    (`export`), both (`total`)."""
    each = {
        mode: (instructions(large, mode) - instructions(small, mode)) / (large - small)
        for mode in ("base", "loop", "all")
    }
    return {
        "loop": each["loop"] - each["base"],
        "export": each["all"] - each["loop"],
        "total": each["all"] - each["base"],
    }


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "measure":
        for name, value in measure(*(int(a) for a in sys.argv[2:4])).items():
            print(f"{name:>7}: {value:10.0f} instructions/request")
    else:
        run(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "all")
