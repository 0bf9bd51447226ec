"""A model-listener request (`/v1/chat/completions`, `/v1/messages`, `/v1/responses`), stage by stage.

    admit → parse → input filters → route (router, sessions) → plan attempts → load state →
        per attempt: translate → exchange → relay (output filters) → store → session refresh → (observe)

Each stage is a module with one job; this one shows their order and what
flows between them: the immutable `RequestContext` goes down, each stage
returns plain data (`Route`, `Outbound`, `Delivery`) and the request ends
as one `Outcome`, which the app hands to the observe stage.  Features to
come are new stages at their place in this list rather than edits to the
stages around them.

Filter chains (`filter_stage`) run only on listeners that configure them:
the input chain's result is the request from then on (routing, state and
translation see the filtered body), and the output chain is a hook on each
attempt's relay, which rewrites what the client receives.

"Route" asks the router model when routing preferences exist (in the config
or inline in the request) and otherwise only resolves the requested name;
the route's ranked models become the request's failover order.  "Plan
attempts" is `failover`: without a retry policy or a ranking a request
makes exactly one attempt (a `Relay`), and the failover machinery is not
touched.

Cancellation is structured: one cancel scope per request holds every
attempt and every backoff wait (`request_scope`).  A client that goes away
(the server edge reports its connection's end), the listener deadline and
the shutdown grace period all end that one scope, and the provider's socket
is closed at once.  The input filters run in a scope of the same kind,
without the deadline, which is the provider's: each filter call has its own
bound.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import trio

from plano_trio.apis.kind import Api
from plano_trio.apis.openai_chat import Usage
from plano_trio.config.retry import RetryPolicy
from plano_trio.gateway import conversation, trace_spans
from plano_trio.gateway.asgi import ClientDisconnected, read_body
from plano_trio.gateway.clients import ClientApi, RequestView
from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.conversation import PendingTurn
from plano_trio.gateway.errors import ApiError, unavailable
from plano_trio.gateway.failover import Failover
from plano_trio.gateway.filter_stage import OutputFilter, filter_headers, filter_request
from plano_trio.gateway.observe import Outcome, Result
from plano_trio.gateway.outbound import passthrough, translated, with_cache_markers
from plano_trio.gateway.relay import Delivery, Relay
from plano_trio.gateway.request_scope import in_request_scope
from plano_trio.gateway.route import resolve
from plano_trio.gateway.routing import RoutingDecision
from plano_trio.gateway.runtime import Runtime
from plano_trio.gateway.usage import usage_of_answer
from plano_trio.providers.resolve import Route, RouteError
from plano_trio.retry import Exhausted, RetryPlan, listener_policy, ranked_policy
from plano_trio.telemetry.record import new_span_id
from plano_trio.translate.base import Json
from plano_trio.translate.matrix import plan_for, response_id


class LlmListener(NamedTuple):
    """What the LLM endpoints need from their model listener, computed once at startup."""

    timeout_s: float
    """Deadline for one attempt's answer (Plano's listener `timeout`)."""
    retry_policy: RetryPolicy | None
    """The listener's `max_retries` as a policy, for providers that have none of their own."""
    input_filters: tuple[str, ...] = ()
    """Filter ids run over each request after parse (empty: no filter stage at all)."""
    output_filters: tuple[str, ...] = ()
    """Filter ids run over each answer as the relay sends it (empty: no hook on the relay)."""


def llm_listener(
    timeout_s: float,
    max_retries: int | None,
    input_filters: tuple[str, ...] = (),
    output_filters: tuple[str, ...] = (),
) -> LlmListener:
    policy = listener_policy(max_retries) if max_retries else None
    return LlmListener(timeout_s, policy, input_filters, output_filters)


async def handle(client: ClientApi, runtime: Runtime, ctx: RequestContext, listener: LlmListener) -> Outcome:
    """Serve one LLM request on a model listener."""
    with runtime.admission:  # admit
        body = await read_body(ctx.receive, ctx.headers, runtime.body_limits)  # parse
        request = client.parse(body)
        asked = (client.api, body)  # what the signals stage analyses, as Plano: before input filters
        trace = ctx.trace
        if trace is not None:  # read for the span's attributes once it is built, as the client sent it
            trace.request = (client.api, body)
        if listener.input_filters:  # input filters: their result is the request from here on
            body, request = await _input_filters(runtime, ctx, client, listener.input_filters, body)
        call = Call(client, ctx, body, request.model or "", bool(request.stream), listener.timeout_s)
        if listener.output_filters and runtime.filters is not None:
            call.output = OutputFilter(
                runtime.filters, listener.output_filters, client.path, filter_headers(ctx), ctx.trace
            )
        label: str | None = None
        runner: Relay | Failover | None = None
        try:
            runtime.access.check_model(ctx, call.model)  # the client key's models, before any routing
            await _route(runtime, call, body)  # route: the router and sessions, when configured
            requested = route = resolve(runtime, call.routed_model)
            label = route.label
            plan = _retry_plan(runtime, route, listener, call.routing)  # plan attempts (None: exactly one)
            if plan is not None:
                route = _first_target(runtime, plan, route)
                label = route.label
            await call.state_for(runtime, route)  # load state
            await runtime.access.admit(  # rate limits: the input tokens the provider will be sent
                ctx, client.api, call.model, route, lambda: call._merged or call.decoded
            )
            runner = (
                call.relay(runtime, route)
                if plan is None
                else Failover(runtime, plan, requested, route, call.relay)
            )
            delivery = await _attempt(runtime, ctx, runner)  # per attempt: translate, exchange, relay
            label = runner.route.label
            if delivery.error is not None:
                await ctx.answer_error(delivery.error, client.style)
                return _outcome(call, runner, delivery, label)
            if call.pending is not None and delivery.response is not None:  # store, before the last
                call.store(delivery.response)  # send: the client's next turn may follow at once
            if delivery.finish is not None:
                await ctx.send_last(delivery.finish, runtime.config.server.client_send_timeout_s)
            session = call.routing.session if call.routing is not None else None
            if session is not None and delivery.result == "ok":  # session refresh, after the last byte
                runtime.routing.after_answer(
                    session, _usage(runner) or usage_of_answer(delivery.response), label
                )
            return _outcome(call, runner, delivery, label)._replace(conversation=asked)
        except ApiError as error:
            await ctx.answer_error(error, client.style)
            failed: Result = "upstream_error" if error.type == "upstream_error" else "error"
            attempts = runner.attempts if isinstance(runner, Failover) else 0
            return Outcome(
                error.status, failed, call.model, label, call.stream, error=error.message, attempts=attempts
            )
        finally:
            if call.pending is not None:
                call.pending.abandon()  # frees the reserved queue slot; a no-op once the turn was stored
            if call.routing is not None and call.routing.session is not None:
                runtime.routing.settle(call.routing.session)  # unless refreshed: the binding as decided


class Call:
    """One LLM request's own data, shared by its attempts: each attempt starts from it afresh."""

    __slots__ = (
        "_decoded",
        "_merged",
        "body",
        "client",
        "ctx",
        "model",
        "output",
        "pending",
        "response_id",
        "routing",
        "stream",
        "timeout_s",
    )

    def __init__(
        self, client: ClientApi, ctx: RequestContext, body: bytes, model: str, stream: bool, timeout_s: float
    ) -> None:
        self.client = client
        self.ctx = ctx
        self.body = body
        self.model = model
        self.stream = stream
        self.timeout_s = timeout_s
        self.pending: PendingTurn | None = None
        self.response_id: str | None = None
        self.routing: RoutingDecision | None = None
        """The route stage's decision, when routing applied to this request."""
        self.output: OutputFilter | None = None
        """The listener's output filters, handed to every attempt's relay."""
        self._decoded: dict[str, Any] | None = None
        self._merged: dict[str, Any] | None = None

    @property
    def cache_off(self) -> bool:
        """`X-Plano-Cache: off`: this request opts out of prompt-cache markers and implicit affinity."""
        return any(name == b"x-plano-cache" and value.lower() == b"off" for name, value in self.ctx.headers)

    @property
    def routed_model(self) -> str:
        """The model the route stage chose, else the one the client asked for."""
        routing = self.routing
        return self.model if routing is None or routing.model is None else routing.model

    @property
    def decoded(self) -> dict[str, Any]:
        """The client's request as JSON, decoded once, and only if a translated attempt needs it."""
        if self._decoded is None:
            self._decoded = self.client.decode_request(self.body)  # every value checked: depth, numbers
        return self._decoded

    async def routing_view(self, runtime: Runtime) -> dict[str, Any]:
        """What the router reads: the request, or, for a Responses turn that continues a stored
        conversation, the whole conversation.  Plano merges the stored turns in before it routes, so
        the router judges the conversation rather than its last message; the state is loaded here,
        once, and `state_for` keeps or drops it once the route is known."""
        if (
            self.client.api is Api.RESPONSES
            and runtime.store is not None
            and self.decoded.get("previous_response_id") is not None
            and self._requested_is_translated(runtime)
        ):
            await self.load_state(runtime, "")  # the provider is named once the route is known
            if self._merged is not None:
                return self._merged
        return self.decoded

    def _requested_is_translated(self, runtime: Runtime) -> bool:
        """Whether the model the client asked for keeps its state here (Plano's test, made before
        routing): a provider with its own Responses API holds the conversation itself."""
        try:
            requested = resolve(runtime, self.model)
        except ApiError:
            return False  # routing may still find a model; the state then loads after it
        return plan_for(self.client.api, requested.upstream_api(self.client.api)) is not None

    async def state_for(self, runtime: Runtime, route: Route) -> None:
        """The load-state stage for `route`: a translated Responses turn loads (or, loaded before
        routing, keeps) its stored history; a provider with its own Responses API keeps its own."""
        translated = plan_for(self.client.api, route.upstream_api(self.client.api)) is not None
        if self.response_id is None:
            if translated:
                await self.load_state(runtime, route.label)
            return
        if translated:  # loaded for the router: the turn is stored under the provider that answers
            if self.pending is not None:
                self.pending.provider = route.label
            return
        self._merged = None  # routed to a native Responses provider: our state is not its input
        if self.pending is not None:
            self.pending.abandon()
            self.pending = None
        self.response_id = None

    async def load_state(self, runtime: Runtime, provider: str) -> None:
        """A Responses turn's stored history, and a slot reserved to store it."""
        if self.client.api is not Api.RESPONSES:
            return
        self.response_id = response_id()
        if runtime.store is not None:
            trace = self.ctx.trace
            span = trace.begin() if trace is not None else None
            error: str | None = "cancelled"
            try:
                self._merged, self.pending = await conversation.prepare(
                    runtime.store,
                    self.decoded,
                    response_id=self.response_id,
                    model=self.model,
                    provider=provider,
                )
                error = None
            except ApiError as failed:
                error = failed.message
                raise
            finally:
                if trace is not None and span is not None:
                    trace_spans.state_loaded(trace, span, self.decoded, self._merged, error)

    def store(self, response: Json) -> None:
        """The store stage: the finished turn goes to the store's write queue (never waits)."""
        pending = self.pending
        assert pending is not None
        trace = self.ctx.trace
        span = trace.begin() if trace is not None else None
        pending.complete(response)
        if trace is not None and span is not None:
            trace_spans.state_stored(trace, span, pending.response_id, pending.previous)

    def relay(self, runtime: Runtime, route: Route, retry: RetryPlan | None = None) -> Relay:
        """The translate stage for one attempt: the request as `route`'s provider speaks it."""
        client = self.client
        upstream = route.upstream_api(client.api)
        plan = plan_for(client.api, upstream)
        if plan is None:
            outbound = passthrough(self.ctx, route, upstream, self.body, self.model, self.stream)
        else:
            merged = self._merged if self._merged is not None else self.decoded
            outbound = translated(
                self.ctx, route, upstream, plan, self.decoded, merged, self.response_id, self.stream
            )
        caching = runtime.config.routing.prompt_caching
        if caching.inject_cache_control and not self.cache_off:
            outbound = with_cache_markers(outbound, route, caching.min_prefix_tokens)
        session = self.routing.session if self.routing is not None else None
        if session is not None and session.prefix_hash is not None:  # KV-aware replica stickiness, as Plano
            outbound.headers.append((b"x-plano-prefix-hash", b"%016x" % session.prefix_hash))
        relay = Relay(
            runtime,
            self.ctx,
            client,
            route,
            outbound,
            stream=self.stream,
            timeout=self.timeout_s,
            retry=retry,
        )
        if self.routing is not None:
            relay.extra_headers = (*self.routing.headers(), (b"x-plano-model", route.label.encode()))
        relay.output_filter = self.output
        trace = self.ctx.trace
        if trace is not None:  # this attempt's span is the provider's parent
            relay.span_id = new_span_id()
            outbound.headers[:] = trace.propagate(outbound.headers, relay.span_id)
        return relay


async def _route(runtime: Runtime, call: Call, body: bytes) -> None:
    """The route stage: the router and sessions decide, when configured; traced, its span (made for
    every request, as brightstaff makes it) is the router call's parent."""
    ctx = call.ctx
    trace = ctx.trace
    span = trace.begin() if trace is not None else None
    if runtime.routing.applies(body):
        headers = ctx.headers if trace is None or span is None else trace.propagate(ctx.headers, span.span_id)
        call.routing = await runtime.routing.decide(
            call.client.api, await call.routing_view(runtime), call.model, headers, ctx.request_id
        )
    if trace is not None and span is not None:
        alias = runtime.routing.aliases.get(call.model, call.model)
        trace_spans.routing(trace, span, ctx.path, call.model, alias, call.routing)


def _retry_plan(
    runtime: Runtime, route: Route, listener: LlmListener, routing: RoutingDecision | None
) -> RetryPlan | None:
    """The provider's own `retry_policy`, else the routing decision's ranked models (each once, on
    Envoy's statuses), else the listener's `max_retries` (same model, Envoy's statuses only), else
    None: the request makes one attempt."""
    own = route.provider.retry_policy
    policy = own
    if policy is None and routing is not None and len(routing.models) > 1:
        alternatives = _configured_names(runtime, routing.models[1:])
        if alternatives:
            policy = ranked_policy(alternatives)
    policy = policy or listener.retry_policy
    if policy is None:
        return None
    return RetryPlan(
        route.provider,
        policy,
        runtime.config.model_providers,
        runtime.blocks,
        now=trio.current_time(),
        only_listed_statuses=own is None,
    )


def _configured_names(runtime: Runtime, models: tuple[str, ...]) -> tuple[str, ...]:
    """The ranked models as their providers' names (a bare id or alias becomes the provider it resolves
    to); names no provider serves are dropped, so the cached policy only ever holds configured names."""
    names: list[str] = []
    for model in models:
        try:
            route = runtime.resolver.resolve(model)
        except RouteError:
            continue
        if route is not None and not route.provider.is_wildcard and route.provider.name not in names:
            names.append(route.provider.name)
    return tuple(names)


def _first_target(runtime: Runtime, plan: RetryPlan, requested: Route) -> Route:
    """The first attempt's route: the requested model, unless a Retry-After or latency block covers
    it; then the plan's first alternative, or 503 + Retry-After when every candidate is blocked."""
    first = plan.first(plan.created_at)
    if isinstance(first, Exhausted):
        wait = max(1, first.retry_after_s or 1)
        raise unavailable(f"No model can take this request now: {first.reason}", "all_models_blocked", wait)
    return requested if first is requested.provider else resolve(runtime, first.name)


async def _input_filters(
    runtime: Runtime, ctx: RequestContext, client: ClientApi, ids: tuple[str, ...], body: bytes
) -> tuple[bytes, RequestView]:
    """The input filter stage, in a request scope: a client that leaves cancels the filter calls.

    The stage's error comes out of the scope as a value and is raised here, outside the nursery,
    which would otherwise wrap it in an exception group.
    """
    headers = filter_headers(ctx)

    async def run(scope: trio.CancelScope) -> tuple[bytes, RequestView] | ApiError:
        try:
            return await filter_request(runtime.filters, ids, client, body, headers, ctx.trace)
        except ApiError as error:
            return error

    done = await in_request_scope(runtime, ctx, run)
    if isinstance(done, ApiError):
        raise done
    if done == "client_gone":
        raise ClientDisconnected
    if isinstance(done, str):
        raise unavailable("Request cut: the gateway is shutting down", "shutdown")
    return done


async def _attempt(runtime: Runtime, ctx: RequestContext, runner: Relay | Failover) -> Delivery:
    """The attempts in the request's own scope; when it ended early, the runner says what the client
    still gets."""
    done = await in_request_scope(runtime, ctx, runner.run)
    return runner.interrupted(done) if isinstance(done, str) else done


def _usage(runner: Relay | Failover) -> Usage | None:
    relay = runner.relay if isinstance(runner, Failover) else runner
    return relay.usage.usage if relay is not None and relay.usage is not None else None


def _outcome(call: Call, runner: Relay | Failover, delivery: Delivery, label: str | None) -> Outcome:
    """How the request ended, from its last attempt (errors included)."""
    relay = runner.relay if isinstance(runner, Failover) else runner
    attempts = runner.attempts if isinstance(runner, Failover) else 0
    usage = _usage(runner) or usage_of_answer(delivery.response)
    first_byte = relay.first_byte if relay is not None else None
    trace = call.ctx.trace
    if trace is not None and relay is not None:
        trace_spans.answered_model(trace, relay.usage, delivery.response)
    return Outcome(
        delivery.status,
        delivery.result,
        call.model,
        label,
        call.stream,
        first_byte,
        usage,
        delivery.message if delivery.error is None else delivery.error.message,
        attempts,
        relay.upstream_status if relay is not None else 0,
        relay.sent_at if relay is not None else None,
        relay.bytes_in if relay is not None else 0,
    )
