"""How much a trace listener keeps: every bound on what senders and viewers can make it hold.

A listener takes spans from anything that can reach its port, so each dimension is capped: the request,
each span (attributes, their keys and values, the span's total text), each trace (spans) and the store
(traces and an estimate of bytes held).  What is cut is said in the data: a shortened value ends with
`…[N more chars]`, and a span that lost attributes carries `plano_trio.dropped_attributes`.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024

GRPC_DEFAULT_MAX_RECEIVE = 4 * MiB
"""A gRPC client refuses answers larger than this unless told otherwise; `planoai trace` does not say
otherwise, so the `GetTraces` answer must fit in it."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_traces: int = 50
    """Traces kept (Plano's listener keeps 50); the least recently updated is dropped first."""
    max_spans_per_trace: int = 500
    """Spans kept per trace (as Plano's); later ones are counted and dropped."""
    max_attributes_per_span: int = 128
    """The OpenTelemetry SDK's default attribute count limit."""
    max_key_chars: int = 256
    max_value_chars: int = 4096
    max_name_chars: int = 1024
    """Span and service names."""
    max_span_chars: int = 32 * 1024
    """Name plus every attribute key and value of one span; attributes past it are dropped."""
    max_total_bytes: int = 64 * MiB
    """An estimate of what the stored spans occupy; oldest traces go first past it."""
    max_request_bytes: int = 4 * MiB
    """One OTLP export request (gRPC message or HTTP body, after decompression)."""
    reply_budget_bytes: int = GRPC_DEFAULT_MAX_RECEIVE - 64 * 1024
    """`GetTraces` answers with the newest traces that fit in this; older ones are left out."""
