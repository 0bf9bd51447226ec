"""Every metric family plano-trio exposes: name, type, help, labels, histogram buckets.

The `brightstaff_*` families are brightstaff's own (`crates/brightstaff/src/
metrics/mod.rs`): same names, label names, buckets and help texts, so
Plano's Grafana dashboard and any alert written against Plano read them
unchanged.  Two of them (`router_skips`, `session_switch_decisions`) have no
help text in Plano; ours says what they count.  The `plano_trio_*` families
are what only this gateway has: the state store's write-behind queue, the
upstream pool, admission (and the event loop's lag), failover and routing
counters, and conversation-quality signals.

Counter names are given as exposed (with `_total`); prometheus-client's
families strip and re-add the suffix.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Kind = Literal["counter", "gauge", "histogram"]


class Family(NamedTuple):
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    """Histogram upper bounds in seconds, without `+Inf`."""


HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""brightstaff's HTTP request duration buckets, capped at 60 s."""
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""brightstaff's LLM upstream and TTFT buckets, capped at 120 s (completions run that long)."""
ROUTER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""brightstaff's router decision buckets."""

HTTP_REQUESTS = Family(
    "brightstaff_http_requests_total",
    "counter",
    "Total HTTP requests served by brightstaff, by handler and status class.",
    ("handler", "method", "status_class"),
)
HTTP_DURATION = Family(
    "brightstaff_http_request_duration_seconds",
    "histogram",
    "Wall-clock duration of HTTP requests served by brightstaff, by handler.",
    ("handler",),
    HTTP_BUCKETS,
)
HTTP_IN_FLIGHT = Family(
    "brightstaff_http_in_flight_requests",
    "gauge",
    "Number of HTTP requests currently being served by brightstaff, by handler.",
    ("handler",),
)
LLM_UPSTREAM_REQUESTS = Family(
    "brightstaff_llm_upstream_requests_total",
    "counter",
    "LLM upstream request outcomes, by provider, model, status class and error class.",
    ("provider", "model", "status_class", "error_class"),
)
LLM_UPSTREAM_DURATION = Family(
    "brightstaff_llm_upstream_duration_seconds",
    "histogram",
    "Wall-clock duration of LLM upstream calls (stream close for streaming), by provider and model.",
    ("provider", "model"),
    LLM_BUCKETS,
)
LLM_TTFT = Family(
    "brightstaff_llm_time_to_first_token_seconds",
    "histogram",
    "Time from request start to first streamed byte, by provider and model (streaming only).",
    ("provider", "model"),
    LLM_BUCKETS,
)
LLM_TOKENS = Family(
    "brightstaff_llm_tokens_total",
    "counter",
    "Tokens reported in the provider `usage` field, by provider, model and kind (prompt/completion).",
    ("provider", "model", "kind"),
)
LLM_USAGE_MISSING = Family(
    "brightstaff_llm_tokens_usage_missing_total",
    "counter",
    "LLM responses that completed without a usable `usage` block (so token counts are unknown).",
    ("provider", "model"),
)
ROUTER_DECISIONS = Family(
    "brightstaff_router_decisions_total",
    "counter",
    "Routing decisions made by the orchestrator, by route, selected model, and whether a fallback was used.",
    ("route", "selected_model", "fallback"),
)
ROUTER_DURATION = Family(
    "brightstaff_router_decision_duration_seconds",
    "histogram",
    "Time spent in the orchestrator deciding a route, by route.",
    ("route",),
    ROUTER_BUCKETS,
)
ROUTER_SKIPS = Family(
    "brightstaff_router_skips_total",
    "counter",
    "Requests that replayed their session's routing decision instead of asking the router, by reason.",
    ("reason",),
)
ROUTING_SERVICE = Family(
    "brightstaff_routing_service_requests_total",
    "counter",
    "Outcomes of /routing/* decision requests: decision_served, no_candidates, policy_error.",
    ("outcome",),
)
SESSION_CACHE = Family(
    "brightstaff_session_cache_events_total",
    "counter",
    "Session affinity cache lookups and stores, by outcome: hit, miss, store, error (lookup failed), "
    "store_error (binding not persisted). A rising store with no hit means bindings are not surviving "
    "between turns.",
    ("outcome",),
)
PROMPT_CACHE = Family(
    "brightstaff_prompt_cache_requests_total",
    "counter",
    "LLM responses with usage data, by provider, model and prompt-cache outcome (hit = cache read/creation "
    "tokens reported, miss = none). The miss rate is the silent cache-miss baseline.",
    ("provider", "model", "outcome"),
)
SESSION_BINDING = Family(
    "brightstaff_session_binding_events_total",
    "counter",
    "Session binding lifecycle events, by event (currently: refresh).",
    ("event",),
)
SESSION_SWITCH = Family(
    "brightstaff_session_switch_decisions_total",
    "counter",
    "Session-stickiness decisions on a proposed model switch, by decision (allowed, retained) and reason.",
    ("decision", "reason"),
)
BUILD_INFO = Family(
    "brightstaff_build_info",
    "gauge",
    "Build metadata. Always 1; labels carry version and git SHA.",
    ("version", "git_sha"),
)

BRIGHTSTAFF = (
    HTTP_REQUESTS,
    HTTP_DURATION,
    HTTP_IN_FLIGHT,
    LLM_UPSTREAM_REQUESTS,
    LLM_UPSTREAM_DURATION,
    LLM_TTFT,
    LLM_TOKENS,
    LLM_USAGE_MISSING,
    ROUTER_DECISIONS,
    ROUTER_DURATION,
    ROUTER_SKIPS,
    ROUTING_SERVICE,
    SESSION_CACHE,
    PROMPT_CACHE,
    SESSION_BINDING,
    SESSION_SWITCH,
    BUILD_INFO,
)
"""brightstaff's families, in its own order; process metrics come from prometheus-client."""

# -- plano-trio's own ------------------------------------------------------------------------------

STATE_QUEUE_DEPTH = Family(
    "plano_trio_state_queue_depth",
    "gauge",
    "Conversation turns accepted and not yet committed (queued, or in the batch being written).",
    ("backend",),
)
STATE_RESERVED = Family(
    "plano_trio_state_reserved_slots",
    "gauge",
    "Write-queue slots reserved by requests in flight whose turn is not stored yet.",
    ("backend",),
)
STATE_BATCHES = Family(
    "plano_trio_state_batches_total", "counter", "Batches written by the state store.", ("backend",)
)
STATE_LAST_BATCH = Family(
    "plano_trio_state_last_batch_size", "gauge", "Turns in the state store's last batch.", ("backend",)
)
STATE_FLUSH_SECONDS = Family(
    "plano_trio_state_flush_seconds_total",
    "counter",
    "Time spent writing batches; divided by the rate of batches it is the mean flush latency.",
    ("backend",),
)
STATE_FLUSH_LAST = Family(
    "plano_trio_state_flush_latency_last_seconds",
    "gauge",
    "Duration of the state store's last batch write.",
    ("backend",),
)
STATE_WRITE_FAILURES = Family(
    "plano_trio_state_write_failures_total",
    "counter",
    "Failed batch write attempts (each is retried; nothing is dropped).",
    ("backend",),
)
STATE_REFUSED = Family(
    "plano_trio_state_refused_turns_total",
    "counter",
    "Requests refused (503) because the state store's write queue was full.",
    ("backend",),
)
STATE_FLUSHED = Family(
    "plano_trio_state_flushed_turns_total", "counter", "Turns committed by the state store.", ("backend",)
)
STATE_REJECTED = Family(
    "plano_trio_state_rejected_turns_total",
    "counter",
    "Turns refused as data (a NUL jsonb cannot hold, an id no backend can store): logged, skipped.",
    ("backend",),
)
STATE_READS = Family(
    "plano_trio_state_reads_total",
    "counter",
    "Database read round trips (history, get, delete).",
    ("backend",),
)
STATE_CACHE = Family(
    "plano_trio_state_cache_lookups_total",
    "counter",
    "Conversation cache lookups, by result (hit, miss).",
    ("backend", "result"),
)
STATE_ENTRIES = Family(
    "plano_trio_state_entries",
    "gauge",
    "Memory: turns held.  Postgres: conversations in the history cache.",
    ("backend",),
)
STATE_BYTES = Family(
    "plano_trio_state_bytes",
    "gauge",
    "Memory: JSON bytes of the turns held.  Postgres: JSON bytes in the history cache.",
    ("backend",),
)
STATE_REMOVED = Family(
    "plano_trio_state_removed_turns_total",
    "counter",
    "Turns removed by the memory store's bounds (evicted) or by TTL cleanup (expired).",
    ("backend", "reason"),
)
UPSTREAM_OPEN = Family(
    "plano_trio_upstream_open_connections",
    "gauge",
    "Upstream connections open or opening (in use plus idle), by origin.",
    ("origin",),
)
UPSTREAM_IDLE = Family(
    "plano_trio_upstream_idle_connections",
    "gauge",
    "Idle keep-alive upstream connections, by origin.",
    ("origin",),
)
UPSTREAM_WAITING = Family(
    "plano_trio_upstream_waiting_requests",
    "gauge",
    "Requests waiting for a connection (the origin is at upstream_pool_max_per_host), by origin.",
    ("origin",),
)
UPSTREAM_OPENED = Family(
    "plano_trio_upstream_connections_opened_total",
    "counter",
    "Upstream connections opened, by origin.",
    ("origin",),
)
LLM_IN_FLIGHT = Family(
    "plano_trio_llm_requests_in_flight",
    "gauge",
    "LLM requests admitted and not finished (bounded by max_concurrent_requests).",
)
LLM_REFUSED = Family(
    "plano_trio_llm_requests_refused_total",
    "counter",
    "LLM requests answered 503 + Retry-After at admission, before their body was read, by reason: "
    "max_concurrent_requests (that many in flight) or loop_lag (the event loop ran later than "
    "max_loop_lag_ms).",
    ("reason",),
)
LOOP_LAG = Family(
    "plano_trio_event_loop_lag_seconds",
    "gauge",
    "How late the event loop runs: the median delay of its last 3 timer wake-ups, 50 ms apart "
    "(only with max_loop_lag_ms set).",
)
STREAMS_IN_FLIGHT = Family(
    "plano_trio_upstream_exchanges_in_flight",
    "gauge",
    "LLM requests in their upstream phase (attempts, backoff waits, streaming the answer).",
)
FAILOVER = Family(
    "plano_trio_failover_events_total",
    "counter",
    "Failover events: retried (same model), failed_over (next model), recovered, exhausted.",
    ("event",),
)
ROUTING_DECISIONS = Family(
    "plano_trio_routing_decisions_total",
    "counter",
    "Route-stage outcomes: routed, no_route, fallback (router failed), replayed (session's last decision).",
    ("outcome",),
)
ROUTER_CALLS = Family("plano_trio_router_calls_total", "counter", "Calls made to the router model.")
SESSION_STORE = Family(
    "plano_trio_session_store_events_total",
    "counter",
    "Session store events: hits, misses, errors, timeouts, evictions, expired, rejected.",
    ("backend", "event"),
)
FEED_FAILURES = Family(
    "plano_trio_metrics_feed_refresh_failures_total",
    "counter",
    "Failed refreshes of the cost and latency feeds (model_metrics_sources), by source.",
    ("source",),
)
FEED_LAST_REFRESH = Family(
    "plano_trio_metrics_feed_last_refresh_timestamp_seconds",
    "gauge",
    "Unix time of the last successful refresh of a cost or latency feed, by source.",
    ("source",),
)
SIGNALS_QUALITY = Family(
    "plano_trio_signals_quality_total",
    "counter",
    "LLM conversations analysed for signals, by quality band (excellent, good, neutral, poor, severe).",
    ("quality",),
)
SIGNALS = Family(
    "plano_trio_signals_total",
    "counter",
    "Signals found in analysed LLM conversations, by signal type (e.g. interaction.misalignment.correction).",
    ("type",),
)
SIGNALS_CONCERNING = Family(
    "plano_trio_signals_concerning_total",
    "counter",
    "Analysed LLM conversations flagged as concerning (the span name Plano marks with a red flag).",
)
SIGNALS_SKIPPED = Family(
    "plano_trio_signals_skipped_total",
    "counter",
    "LLM requests not analysed for signals, by reason: queue_full (the worker is behind), shutdown.",
    ("reason",),
)
SIGNALS_FAILED = Family(
    "plano_trio_signals_failed_total",
    "counter",
    "Signal analyses that did not complete, by reason: error (the request could not be read), "
    "worker_failed (the worker process died or stalled), shutdown.",
    ("reason",),
)
SIGNALS_CPU = Family(
    "plano_trio_signals_analysis_cpu_seconds",
    "histogram",
    "CPU time the signals worker spent on one conversation (decoding included).",
    (),
    (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
SCRAPE_PEERS_MISSING = Family(
    "plano_trio_metrics_workers_missing",
    "gauge",
    "Workers whose numbers are missing from this scrape (did not answer in time); 0 normally.",
)

PLANO_TRIO = (
    STATE_QUEUE_DEPTH,
    STATE_RESERVED,
    STATE_BATCHES,
    STATE_LAST_BATCH,
    STATE_FLUSH_SECONDS,
    STATE_FLUSH_LAST,
    STATE_WRITE_FAILURES,
    STATE_REFUSED,
    STATE_FLUSHED,
    STATE_REJECTED,
    STATE_READS,
    STATE_CACHE,
    STATE_ENTRIES,
    STATE_BYTES,
    STATE_REMOVED,
    UPSTREAM_OPEN,
    UPSTREAM_IDLE,
    UPSTREAM_WAITING,
    UPSTREAM_OPENED,
    LLM_IN_FLIGHT,
    LLM_REFUSED,
    LOOP_LAG,
    STREAMS_IN_FLIGHT,
    FAILOVER,
    ROUTING_DECISIONS,
    ROUTER_CALLS,
    SESSION_STORE,
    FEED_FAILURES,
    FEED_LAST_REFRESH,
    SIGNALS_QUALITY,
    SIGNALS,
    SIGNALS_CONCERNING,
    SIGNALS_SKIPPED,
    SIGNALS_FAILED,
    SIGNALS_CPU,
)
