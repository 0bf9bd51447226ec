"""A traced request's spans, named and attributed as Plano's brightstaff does, from what the gateway recorded.

The app calls `finish` once per traced request, right after the observe
stage, when the last byte went out: the request's own span is built here from its `Outcome`
(the same record the access log and the metrics read) plus what stages
noted on the trace, and handed to the exporter with the child spans.  The
pipeline calls `routing` after the route stage.  Nothing here runs for a
request that is not traced.

The request span, by handler (as brightstaff names and fills them):

* `llm_chat` — `llm`, renamed `POST <path> <model>` (or `<requested> ->
  <resolved>` when they differ) once the model is resolved; service
  `plano(llm)`; `request_id`, `http.method`, `http.path`, `llm.model`
  (the model the provider says it ran, else the resolved one),
  `llm.provider`, `http.status_code` (the provider's), the request's
  `llm.temperature`/`llm.tools`/`llm.user_message_preview`,
  `llm.time_to_first_token` (also as an event), `llm.duration_ms`,
  `llm.response_bytes` and `llm.usage.*` (timed from the last attempt's
  send, as brightstaff times its one upstream call), the session and route
  attributes; plus `llm.is_streaming` and `model.requested`, which
  `planoai obs` reads and brightstaff never sets.  Its child `routing`
  span (service `plano(routing)`) carries `model.requested`,
  `model.alias_resolved`, `route.selected_model` and
  `routing.determination_ms`; brightstaff makes it for every request it
  does not replay, router or not, and so does this.
* `routing_decision` (`/routing/v1/*`) — service `plano(routing)`.
* `agent_chat` — `(orchestrator)` renamed to the listener's name, service
  `plano(orchestrator)`, with the `selection.*` attributes.

Where brightstaff has nothing to say (a request it refused itself) it sets
no status; here `http.status_code` is then the status the client got, and
a failed request carries `error.message` and an error status.

An LLM request whose conversation the signals stage queued is exported
when its analysis is back, with the `signals.*` attributes, `signal.<type>`
events and 🚩 name of Plano (`add_signals`).
"""

from __future__ import annotations

import time
from typing import NamedTuple

from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.observe import Outcome
from plano_trio.gateway.routing import NO_ROUTE, RoutingDecision
from plano_trio.gateway.signals_stage import PendingAnalysis
from plano_trio.gateway.usage import UsageWatcher
from plano_trio.metrics import labels
from plano_trio.signals import FLAG_MARKER
from plano_trio.signals.worker import Analysis
from plano_trio.telemetry import names
from plano_trio.telemetry.llm_request import request_attributes
from plano_trio.telemetry.record import (
    Attributes,
    Pending,
    RequestTrace,
    RootSpan,
    Shared,
    SharedAttributes,
)
from plano_trio.translate.base import Json

TRACED_HANDLERS = frozenset({labels.LLM_CHAT, labels.ROUTING_DECISION, labels.AGENT_CHAT})
"""The requests brightstaff makes a span for (health checks, model lists and debug views get none)."""
_ROUTING_SHARED: SharedAttributes[tuple[str, str, str, str], Shared] = SharedAttributes()
"""The routing span's attributes but its duration, per (path, model asked, alias resolved, model chosen)."""


def finish(
    trace: RequestTrace,
    ctx: RequestContext,
    outcome: Outcome,
    handler: str,
    now: float,
    analysis: PendingAnalysis | None = None,
) -> None:
    """Build the request's span and hand the trace to the exporter; with `analysis`, once it is done.

    The span is built and exported when the worker answers (or fails), so
    it goes out once, complete; until then the request's records are held
    (bounded by the signals queue).
    """
    if analysis is None:
        _finish(trace, ctx, outcome, handler, now)
        return

    analysis.then(lambda signals: _finish(trace, ctx, outcome, handler, now, signals))


def _finish(
    trace: RequestTrace,
    ctx: RequestContext,
    outcome: Outcome,
    handler: str,
    now: float,
    signals: Analysis | None = None,
) -> None:
    shared: Shared | None = None
    if handler == labels.LLM_CHAT:
        name, service, attributes, shared = _llm(trace, ctx, outcome, now)
    elif handler == labels.AGENT_CHAT:
        name = trace.name or names.ORCHESTRATOR_SPAN
        service, attributes = names.ORCHESTRATOR, _common(trace, ctx, "orchestrator", names.ORCHESTRATOR)
    else:
        name, service = names.ROUTING_DECISION_SPAN, names.ROUTING
        attributes = _common(trace, ctx, "routing", names.ROUTING)
    attributes.update(trace.attributes)
    if signals is not None:
        add_signals(trace, attributes, signals, now)
    if names.HTTP_STATUS_CODE not in attributes and outcome.status:
        attributes[names.HTTP_STATUS_CODE] = outcome.status
    error = None
    if outcome.result != "ok" or outcome.status >= 500:
        error = outcome.error or outcome.result
        attributes[names.ERROR_MESSAGE] = error
    if shared is not None and not shared.keys().isdisjoint(attributes.keys()):
        attributes = {**shared, **attributes}  # a stage set one of them: its value, as it was written later
        shared = None
    name += trace.name_suffix
    trace.finish(RootSpan(name, service, ctx.started, now, attributes, error, tuple(trace.events), shared))


def add_signals(trace: RequestTrace, attributes: Attributes, signals: Analysis, at: float) -> None:
    """The analysis on the request span as Plano writes it: `signals.*` attributes, one `signal.<type>`
    event each (after the stages' events, stamped when the response ended), and ` 🚩` after the name
    when the conversation is concerning."""
    attributes.update(signals.attributes)
    trace.events.extend((name, at, values) for name, values in signals.events)
    if signals.concerning:
        trace.name_suffix = f" {FLAG_MARKER}"


def _common(trace: RequestTrace, ctx: RequestContext, component: str, service: str) -> Attributes:
    return {
        names.COMPONENT: component,
        names.REQUEST_ID: ctx.request_id.decode("ascii"),
        names.HTTP_METHOD: ctx.method,
        names.HTTP_PATH: ctx.path,
        **trace.custom,
        names.SERVICE_OVERRIDE: service,
    }


class _LlmFixed(NamedTuple):
    """What an LLM span takes from its route and models alone, made once per (method, path, model
    asked, model resolved, streaming)."""

    name: str
    shared: Shared
    """`component`, `http.method`, `http.path`, `service.name.override` and `models`."""
    models: Attributes
    """`model.requested`, `llm.is_streaming`, `llm.provider`."""


_LLM_FIXED: SharedAttributes[tuple[str, str, str | None, str | None, bool], _LlmFixed] = SharedAttributes()


def _llm_fixed(
    method: str, path: str, requested: str | None, resolved: str | None, stream: bool
) -> _LlmFixed:
    models: Attributes = {}
    if requested is not None:
        models[names.MODEL_REQUESTED] = requested
    models[names.LLM_IS_STREAMING] = stream
    name = names.LLM_SPAN
    if resolved is not None:
        provider, slash, _ = resolved.partition("/")
        if slash:
            models[names.LLM_PROVIDER] = provider
        shown = requested if requested is not None else resolved
        target = shown if shown == resolved else f"{shown} -> {resolved}"
        name = f"POST {path} {target}"
    shared = {
        names.COMPONENT: "llm",
        names.HTTP_METHOD: method,
        names.HTTP_PATH: path,
        names.SERVICE_OVERRIDE: names.LLM,
        **models,
    }
    return _LlmFixed(name, shared, models)


def _llm(
    trace: RequestTrace, ctx: RequestContext, outcome: Outcome, now: float
) -> tuple[str, str, Attributes, Shared | None]:
    """The LLM span's name, service and attributes: those its route and models decide shared between
    requests (`_llm_fixed`), the rest its own.  With custom attributes, which come between the common
    ones and the rest (so each overrides those before it, as in Plano), all are its own."""
    requested, resolved, stream = outcome.model, outcome.upstream, outcome.stream
    key = (ctx.method, ctx.path, requested, resolved, stream)
    fixed = _LLM_FIXED.get(key) or _LLM_FIXED.add(key, _llm_fixed(*key))
    shared: Shared | None = fixed.shared
    if trace.custom:
        attributes = _common(trace, ctx, "llm", names.LLM)
        attributes.update(fixed.models)
        shared = None
    else:
        attributes = {names.REQUEST_ID: ctx.request_id.decode("ascii")}
    if trace.request is not None:
        attributes.update(request_attributes(*trace.request))
    if resolved is not None:
        attributes[names.LLM_MODEL] = resolved
    if outcome.upstream_status:
        attributes[names.HTTP_STATUS_CODE] = outcome.upstream_status
    sent = outcome.upstream_started
    if sent is not None:
        first = outcome.first_byte
        if first is not None and first >= sent:
            ttft = int((first - sent) * 1000)
            attributes[names.LLM_TTFT_MS] = ttft
            trace.events.append((names.LLM_TTFT_MS, first, {names.LLM_TTFT_MS: ttft}))
        attributes[names.LLM_DURATION_MS] = int((now - sent) * 1000)
        attributes[names.LLM_RESPONSE_BYTES] = outcome.response_bytes
    usage = outcome.usage
    if usage is not None:
        attributes[names.USAGE_PROMPT] = usage.prompt_tokens
        attributes[names.USAGE_COMPLETION] = usage.completion_tokens
        attributes[names.USAGE_TOTAL] = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
        cached = (
            usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details is not None else None
        )
        if cached is not None:
            attributes[names.USAGE_CACHED_INPUT] = cached
        details = usage.completion_tokens_details
        if details is not None and details.reasoning_tokens is not None:
            attributes[names.USAGE_REASONING] = details.reasoning_tokens
    return fixed.name, names.LLM, attributes, shared


def routing(
    trace: RequestTrace,
    pending: Pending,
    path: str,
    requested: str,
    alias_resolved: str,
    decision: RoutingDecision | None,
) -> None:
    """The route stage's span and what it tells the request span (session, route, replay)."""
    session = None
    if decision is not None:
        _decision_attributes(trace, decision)
        session = decision.session
    if session is not None and session.replay is not None:  # not a user turn: no routing ran
        trace.attributes[names.ROUTING_SKIPPED] = "not_user_turn"
        return
    selected = NO_ROUTE
    if decision is not None and decision.models:
        selected = decision.models[0]
    elif decision is not None and decision.fallback is not None:
        selected = "unknown"
    now = time.perf_counter()
    key = (path, requested, alias_resolved, selected)
    shared = _ROUTING_SHARED.get(key) or _ROUTING_SHARED.add(
        key,
        {
            names.COMPONENT: "routing",
            names.HTTP_METHOD: "POST",
            names.HTTP_TARGET: path,
            names.MODEL_REQUESTED: requested,
            names.MODEL_ALIAS_RESOLVED: alias_resolved,
            names.ROUTE_SELECTED_MODEL: selected,
            names.SERVICE_OVERRIDE: names.ROUTING,
        },
    )
    attributes: Attributes = {names.ROUTING_DETERMINATION_MS: int((now - pending.start) * 1000)}
    error = f"router failed: {decision.fallback}" if decision is not None and decision.fallback else None
    trace.end(pending, names.ROUTING_SPAN, names.ROUTING, attributes, error, end=now, shared=shared)


def decided(trace: RequestTrace, decision: RoutingDecision, elapsed_s: float) -> None:
    """A `/routing/v1/*` decision on its request span: the model chosen, how long it took, the session.

    brightstaff means to record the first two here too (its routing code writes them to whatever
    span is current) but never declared them on this span, so they are lost there.
    """
    trace.attributes[names.ROUTE_SELECTED_MODEL] = decision.models[0] if decision.models else NO_ROUTE
    trace.attributes[names.ROUTING_DETERMINATION_MS] = int(elapsed_s * 1000)
    _decision_attributes(trace, decision)


def _decision_attributes(trace: RequestTrace, decision: RoutingDecision) -> None:
    """The session (`plano.session_id`, cache warmth, budget and switch) and route name, as brightstaff
    puts them on the request's span."""
    session = decision.session
    if session is not None:
        if session.session_id is not None:
            trace.attributes[names.SESSION_ID] = session.session_id
        if session.decision is not None:
            trace.attributes.update(session.decision.span_attributes())
    if decision.route_name and decision.route_name != NO_ROUTE:
        trace.attributes[names.ROUTE_NAME] = decision.route_name


def answered_model(trace: RequestTrace, usage: UsageWatcher | None, response: Json | None) -> None:
    """`llm.model` becomes the model the provider says it ran, when it says (as brightstaff does)."""
    model = usage.model if usage is not None else None
    if model is None and isinstance(response, dict) and isinstance(response.get("model"), str):
        model = response["model"]
    if model:
        trace.attributes[names.LLM_MODEL] = model


def state_loaded(
    trace: RequestTrace, pending: Pending, request: Json, merged: Json | None, error: str | None
) -> None:
    """The conversation-state load (ours: brightstaff has no span for it; service `plano`)."""
    attributes: Attributes = {"plano_trio.state.operation": "load"}
    previous = request.get("previous_response_id")
    if isinstance(previous, str):
        attributes["plano_trio.state.previous_response_id"] = previous
    if merged is not None and isinstance(merged.get("input"), list):
        attributes["plano_trio.state.input_items"] = len(merged["input"])
    trace.end(pending, "load_conversation_state", None, attributes, error)


def state_stored(trace: RequestTrace, pending: Pending, response_id: str, previous: str | None) -> None:
    """The turn handed to the store's write queue (the write itself happens in the background)."""
    attributes: Attributes = {
        "plano_trio.state.operation": "store",
        "plano_trio.state.response_id": response_id,
    }
    if previous is not None:
        attributes["plano_trio.state.previous_response_id"] = previous
    trace.end(pending, "store_conversation_state", None, attributes)
