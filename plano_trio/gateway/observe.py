"""The observe stage: how a request ended, as one access-log line and one set of metric updates.

Every handler returns an `Outcome`; the app hands it here once the response
is over (`observe`), after telling `started` that it began (the in-flight
gauge).  The log line and brightstaff's metrics (`plano_trio.metrics`) read
the same record, once per request and never per chunk, so what is logged
and what is counted cannot disagree.  The app calls two stages right after
this one with the same record: the signals stage (`signals_stage`), which
queues an LLM request's conversation for analysis, and, for a traced
request, its span (`trace_spans`), which waits for that analysis.  Measured
cost of the metrics half: see `tests/test_metrics.py::test_observe_cost`.

The access line's fields: `request_id`, `trace_id` (traced requests),
`method`, `path`, `status`, `duration_ms`, `outcome`, `model` (requested),
`upstream` (the `provider/model` that served it) and `provider`, `stream`,
`ttfb_ms` (from arrival), `upstream_ms` and `ttft_ms` (from the last
attempt's send), `prompt_tokens`, `completion_tokens`, `response_bytes`
(the provider's body), `attempts` (under a retry policy), `error`.
"""

from __future__ import annotations

import logging
import time
from typing import Literal, NamedTuple

from plano_trio.apis.kind import Api
from plano_trio.apis.openai_chat import Usage
from plano_trio.gateway.context import RequestContext
from plano_trio.metrics import labels
from plano_trio.metrics.labels import ErrorClass, ListenerKind
from plano_trio.metrics.record import GATEWAY

access_log = logging.getLogger("plano_trio.access")

Result = Literal["ok", "error", "upstream_error", "client_disconnected", "timeout", "cut"]
"""ok: answered as the provider meant · error: refused by the gateway (4xx/5xx of its own) ·
upstream_error: the provider failed or broke off · client_disconnected: the client left (or stopped
reading) first · timeout: the listener deadline or an idle bound ended it · cut: the shutdown grace
period ended a stream."""


class Outcome(NamedTuple):
    status: int
    """The HTTP status sent (0 if nothing was: the client left before the response began)."""
    result: Result = "ok"
    model: str | None = None
    upstream: str | None = None
    stream: bool = False
    first_byte: float | None = None
    """`perf_counter()` when the first response byte was ready for the client."""
    usage: Usage | None = None
    error: str | None = None
    attempts: int = 0
    """Attempts made under a retry policy (0: the request had none, so exactly one was made)."""
    upstream_status: int = 0
    """The provider's status on the last attempt (0: no response head arrived)."""
    upstream_started: float | None = None
    """`perf_counter()` when the last attempt was sent to the provider (None: nothing was sent)."""
    response_bytes: int = 0
    """Bytes of the provider's response body on the last attempt."""
    conversation: tuple[Api, bytes] | None = None
    """An LLM request's client API and body as the client sent it, for the signals stage (which runs
    after this one: `signals_stage`)."""


def started(kind: ListenerKind, ctx: RequestContext) -> str:
    """A request arrived: its brightstaff `handler` label, counted in flight until `observe`."""
    handler = labels.handler_label(kind, ctx.method, ctx.path)
    GATEWAY.request_started(handler)
    return handler


def observe(ctx: RequestContext, outcome: Outcome, handler: str) -> None:
    """The request is over: its access-log line and its metrics."""
    now = time.perf_counter()
    log_access(ctx, outcome, now)
    GATEWAY.request_finished(handler, ctx.method, outcome.status, now - ctx.started)
    sent = outcome.upstream_started
    if sent is not None and outcome.upstream is not None:
        error_class = upstream_error_class(outcome)
        if error_class is not None:
            ttft = None
            if outcome.stream and outcome.first_byte is not None and 200 <= outcome.upstream_status < 300:
                ttft = outcome.first_byte - sent
            GATEWAY.upstream_finished(
                outcome.upstream, outcome.upstream_status, error_class, now - sent, ttft, outcome.usage
            )
    elif handler == labels.ROUTING_DECISION:
        served = routing_service_outcome(outcome)
        if served is not None:
            GATEWAY.routing_service_outcome(served)


def upstream_error_class(outcome: Outcome) -> ErrorClass | None:
    """brightstaff's `error_class` for the last attempt (None: nothing the provider did to count).

    No response head: a timeout, a failed connect (the gateway's 502), or
    another failure; a request the client or the shutdown ended first is
    not counted, as brightstaff drops it.  A head arrived: `none` when the
    answer was relayed as the provider meant it (its own error statuses
    included: the status class tells those), `parse` when the gateway could
    not relay it (it answered 502 instead), `stream` when the answer started
    and then broke off.
    """
    upstream, result = outcome.upstream_status, outcome.result
    if upstream == 0:
        if result in ("client_disconnected", "cut"):
            return None
        if result == "timeout" or outcome.status == 504:
            return labels.ERR_TIMEOUT
        return labels.ERR_CONNECT if outcome.status == 502 else labels.ERR_OTHER
    if result == "ok":
        return labels.ERR_NONE
    if outcome.status != upstream:
        return labels.ERR_PARSE
    return labels.ERR_NONE if upstream >= 400 else labels.ERR_STREAM


def routing_service_outcome(outcome: Outcome) -> str | None:
    """A `/routing/v1/*` answer as brightstaff counts it (None: a bad request, not counted).

    A router failure, which Plano answers 500 and plano-trio answers with
    a `fallback_reason`, is a policy error in both.
    """
    if outcome.status >= 500 or (outcome.status == 200 and outcome.error is not None):
        return labels.POLICY_ERROR
    if outcome.status != 200:
        return None
    return labels.NO_CANDIDATES if outcome.upstream in (None, "none") else labels.DECISION_SERVED


def log_access(ctx: RequestContext, outcome: Outcome, now: float | None = None) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    if now is None:
        now = time.perf_counter()
    fields: dict[str, object] = {
        "request_id": ctx.request_id.decode("ascii"),
        "method": ctx.method,
        "path": ctx.path,
        "status": outcome.status,
        "duration_ms": round((now - ctx.started) * 1000, 2),
        "outcome": outcome.result,
    }
    if ctx.trace is not None:
        fields["trace_id"] = ctx.trace.trace_id_hex
    if outcome.model is not None:
        fields["model"] = outcome.model
    upstream = outcome.upstream
    if upstream is not None:
        fields["upstream"] = upstream
        provider, slash, _ = upstream.partition("/")
        if slash:
            fields["provider"] = provider
    if outcome.stream:
        fields["stream"] = True
    first_byte = outcome.first_byte
    if first_byte is not None:
        fields["ttfb_ms"] = round((first_byte - ctx.started) * 1000, 2)
    sent = outcome.upstream_started
    if sent is not None:
        fields["upstream_ms"] = round((now - sent) * 1000, 2)
        if first_byte is not None and first_byte >= sent:
            fields["ttft_ms"] = round((first_byte - sent) * 1000, 2)
        fields["response_bytes"] = outcome.response_bytes
    if outcome.usage is not None:
        fields["prompt_tokens"] = outcome.usage.prompt_tokens
        fields["completion_tokens"] = outcome.usage.completion_tokens
    if outcome.attempts:
        fields["attempts"] = outcome.attempts
    if outcome.error is not None:
        fields["error"] = outcome.error
    access_log.info("%s %s %s", ctx.method, ctx.path, outcome.status, extra={"fields": fields})
