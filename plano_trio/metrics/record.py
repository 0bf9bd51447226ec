"""The per-request metrics: brightstaff's HTTP, LLM upstream and routing families, and how they are fed.

One `GatewayMetrics` per process (`GATEWAY`), like brightstaff's global
recorder: a Prometheus target is a process, and every listener of the
process counts into the same series.  The gateway calls it at two points
of a request (`request_started` when it arrives, `request_finished` and
`upstream_finished` once, from the observe stage, when it is over), the
route stage once per router call, and the signals stage once per analysis
(when the worker answers, or the queue refuses); nothing is recorded per
chunk.

All label values are fixed constants (`labels`) or configured names that
pass a `LabelBudget`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.metrics_core import Metric

from plano_trio.apis.openai_chat import Usage
from plano_trio.metrics import families as f
from plano_trio.metrics import labels
from plano_trio.metrics.vectors import CounterVec, HistogramVec, values_family


class GatewayMetrics:
    """brightstaff's request-driven families, as plain numbers (see `vectors`)."""

    def __init__(self) -> None:
        self.in_flight: dict[str, int] = {}
        self.http_requests = CounterVec(f.HTTP_REQUESTS)
        self.http_duration = HistogramVec(f.HTTP_DURATION)
        self.upstream_requests = CounterVec(f.LLM_UPSTREAM_REQUESTS)
        self.upstream_duration = HistogramVec(f.LLM_UPSTREAM_DURATION)
        self.ttft = HistogramVec(f.LLM_TTFT)
        self.tokens = CounterVec(f.LLM_TOKENS)
        self.usage_missing = CounterVec(f.LLM_USAGE_MISSING)
        self.prompt_cache = CounterVec(f.PROMPT_CACHE)
        self.router_decisions = CounterVec(f.ROUTER_DECISIONS)
        self.router_duration = HistogramVec(f.ROUTER_DURATION)
        self.routing_service = CounterVec(f.ROUTING_SERVICE)
        self.signals_quality = CounterVec(f.SIGNALS_QUALITY)
        self.signals = CounterVec(f.SIGNALS)
        self.signals_concerning = CounterVec(f.SIGNALS_CONCERNING)
        self.signal_skips = CounterVec(f.SIGNALS_SKIPPED)
        self.signal_failures = CounterVec(f.SIGNALS_FAILED)
        self.signals_cpu = HistogramVec(f.SIGNALS_CPU)
        self.upstream_names = labels.LabelBudget()
        """`provider/model` of upstream calls (a wildcard provider passes the client's model id)."""
        self.selected_models = labels.LabelBudget()
        """Models the router picked (inline `routing_preferences` come from the client)."""

    # -- the HTTP edge ------------------------------------------------------------------------------

    def request_started(self, handler: str) -> None:
        in_flight = self.in_flight
        in_flight[handler] = in_flight.get(handler, 0) + 1

    def request_finished(self, handler: str, method: str, status: int, seconds: float) -> None:
        """A request is over.  Status 0 (the client left before any answer) is not counted, as in
        brightstaff, whose service future is dropped then; it only leaves the in-flight gauge."""
        self.in_flight[handler] -= 1
        if status:
            self.http_requests.inc((handler, labels.method_label(method), labels.status_class(status)))
            self.http_duration.observe((handler,), seconds)

    # -- the LLM upstream ---------------------------------------------------------------------------

    def upstream_finished(
        self,
        upstream: str,
        status: int,
        error_class: labels.ErrorClass,
        seconds: float,
        ttft_s: float | None,
        usage: Usage | None,
    ) -> None:
        """The last attempt of an LLM request: its outcome, duration, time to first byte, tokens.

        `upstream` is the route's `provider/model`; `status` the provider's
        (0: none arrived).  Tokens and the prompt-cache outcome are counted
        for completed answers only, as brightstaff counts them when a
        response body ends (a broken stream is only an outcome).
        """
        provider, model = labels.split_provider_model(self.upstream_names(upstream))
        key = (provider, model)
        self.upstream_requests.inc((provider, model, labels.upstream_status_class(status), error_class))
        self.upstream_duration.observe(key, seconds)
        if ttft_s is not None:
            self.ttft.observe(key, ttft_s)
        if error_class != labels.ERR_NONE:
            return
        if usage is None:
            self.usage_missing.inc(key)
            return
        tokens = self.tokens
        tokens.inc((provider, model, labels.TOKENS_PROMPT), usage.prompt_tokens)
        tokens.inc((provider, model, labels.TOKENS_COMPLETION), usage.completion_tokens)
        details = usage.prompt_tokens_details
        cached = details.cached_tokens if details is not None else None
        if cached:
            tokens.inc((provider, model, labels.TOKENS_CACHE_READ), cached)
        hit = labels.CACHE_HIT if cached else labels.CACHE_MISS
        self.prompt_cache.inc((provider, model, hit))

    # -- routing ------------------------------------------------------------------------------------

    def router_decision(self, route: str, selected_model: str, fallback: bool, seconds: float) -> None:
        """One router call: brightstaff's `record_router_decision` (`none` / `unknown` with fallback
        when no route fit / the router failed)."""
        model = self.selected_models(selected_model)
        self.router_decisions.inc((route, model, "true" if fallback else "false"))
        self.router_duration.observe((route,), seconds)

    def routing_service_outcome(self, outcome: str) -> None:
        self.routing_service.inc((outcome,))

    # -- signals ------------------------------------------------------------------------------------

    def signals_analysed(
        self, quality: str, types: Mapping[str, int], concerning: bool, cpu_s: float
    ) -> None:
        """One conversation analysed (the signals stage, when the worker answers).  Label values come
        from the analysis, whose qualities and types are fixed sets; anything else is not counted."""
        if quality in labels.SIGNAL_QUALITIES:
            self.signals_quality.inc((quality,))
        for kind, count in types.items():
            if kind in labels.SIGNAL_TYPES:
                self.signals.inc((kind,), count)
        if concerning:
            self.signals_concerning.inc(())
        self.signals_cpu.observe((), cpu_s)

    def signals_skipped(self, reason: str) -> None:
        self.signal_skips.inc((reason,))

    def signals_failed(self, reason: str) -> None:
        self.signal_failures.inc((reason,))

    # -- scrape -------------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        yield self.http_requests.family()
        yield self.http_duration.family()
        yield values_family(f.HTTP_IN_FLIGHT, (((h,), float(n)) for h, n in self.in_flight.items()))
        yield self.upstream_requests.family()
        yield self.upstream_duration.family()
        yield self.ttft.family()
        yield self.tokens.family()
        yield self.usage_missing.family()
        yield self.router_decisions.family()
        yield self.router_duration.family()
        yield self.routing_service.family()
        yield self.prompt_cache.family()
        yield self.signals_quality.family()
        yield self.signals.family()
        yield self.signals_concerning.family()
        yield self.signal_skips.family()
        yield self.signal_failures.family()
        yield self.signals_cpu.family()


GATEWAY = GatewayMetrics()
"""The process's request metrics (each worker process has its own; the scrape adds them up)."""
