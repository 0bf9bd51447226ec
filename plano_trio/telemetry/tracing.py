"""The process-wide tracing switch: which requests are traced, and what every request span carries.

`Tracing` exists only when tracing is on (`tracing.random_sampling > 0`);
the gateway holds None otherwise and never calls in here.  `start` makes
the sampling decision for one request, OpenTelemetry's parent-based ratio
sampler written out (its object form costs a result object per call):

* the client sent a valid `traceparent`: its sampled flag decides, and the
  request's span continues the client's trace as its child;
* it did not: a new trace id, kept when its low 64 bits fall under
  `random_sampling` percent of the range (`TraceIdRatioBased`'s rule, so
  every service sampling on the same trace id agrees).

An unsampled request gets no record at all and behaves exactly as with
tracing off (the client's `traceparent`, if any, goes on unchanged).

`custom_attributes` is Plano's `span_attributes` (see
`config.tracing_settings` for the rules and where they differ).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable

from plano_trio.apis.http import Header
from plano_trio.config.tracing_settings import TracingSettings
from plano_trio.telemetry.record import RequestTrace, RootSpan, Sink
from plano_trio.telemetry.w3c import parse_traceparent

log = logging.getLogger("plano_trio.tracing")

_RATIO_RANGE = 1 << 64
NEVER_ATTRIBUTES = frozenset(
    {
        b"authorization",
        b"proxy-authorization",
        b"x-api-key",
        b"api-key",
        b"x-goog-api-key",
        b"cookie",
    }
)
"""Headers that carry credentials: never span attributes, whatever `header_prefixes` say."""


def ratio_bound(percent: int) -> int:
    """Trace ids whose low 64 bits are below this are sampled (`TraceIdRatioBased.get_bound_for_rate`)."""
    return round(min(max(percent, 0), 100) / 100 * _RATIO_RANGE)


class Tracing:
    """Sampling, the request spans' custom attributes, and the exporter's sink."""

    def __init__(
        self, settings: TracingSettings, sink: Sink, stats: Callable[[], dict[str, int]] | None = None
    ) -> None:
        self.settings = settings
        self._stats = stats
        self._bound = ratio_bound(settings.random_sampling)
        self._sink = sink
        self._static = dict(settings.span_attributes.static)
        self._prefixes = settings.span_attributes.header_prefixes
        self._custom = bool(self._static or self._prefixes)
        self.sink_errors = 0

    def start(self, headers: list[Header]) -> RequestTrace | None:
        """A trace for this request, or None when it is not sampled."""
        parent = parse_traceparent(headers)
        if parent is not None:
            if not parent.sampled:
                return None
            trace = RequestTrace(self._finish, parent.trace_id, parent.span_id, parent.tracestate)
        else:
            trace_id = random.getrandbits(128) or 1
            if trace_id & (_RATIO_RANGE - 1) >= self._bound:
                return None
            trace = RequestTrace(self._finish, trace_id, None, None)
        if self._custom:  # else the trace's shared empty mapping
            trace.custom = self.custom_attributes(headers)
        return trace

    def custom_attributes(self, headers: Iterable[Header]) -> dict[str, str]:
        """`span_attributes.static`, then one attribute per request header matching a prefix."""
        out = dict(self._static)
        prefixes = self._prefixes
        if not prefixes:
            return out
        for name, value in headers:
            if name in NEVER_ATTRIBUTES:
                continue
            for prefix in prefixes:
                if name.startswith(prefix):
                    key = name[len(prefix) :].lstrip(b"-").replace(b"-", b".")
                    if key and _visible(value):
                        out[key.decode("latin-1")] = value.strip(b" \t").decode("ascii")
                    break
        return out

    def stats(self) -> dict[str, int]:
        """The exporter's counts (`/debug/tracing`): spans queued, dropped, exported, failed."""
        out = self._stats() if self._stats is not None else {}
        return {**out, "build_errors": self.sink_errors}

    def _finish(self, trace: RequestTrace, root: RootSpan) -> None:
        try:
            self._sink(trace, root)
        except Exception:  # a bug in span building must never fail the request it describes
            self.sink_errors += 1
            if self.sink_errors == 1 or self.sink_errors % 1000 == 0:
                log.exception(
                    "building a trace failed (%d so far); the request was not affected", self.sink_errors
                )


def _visible(value: bytes) -> bool:
    """What Plano's `HeaderValue::to_str` accepts: visible ASCII, spaces and tabs."""
    return all(byte == 9 or 32 <= byte < 127 for byte in value)
