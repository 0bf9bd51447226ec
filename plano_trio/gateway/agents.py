"""An agent listener (`listeners[].type: agent`): a conversation handed to a chain of agents.

One request, stage by stage:

    admit → parse (any of the three client APIs, as Chat) → select agents (orchestrator)
        → per agent: input filters → call → (intermediate: collect, insert) → last: relay

`agent_select` decides which agents run (Plano's rules, with a fallback to
the default agent when the orchestrator fails); `agent_call` builds and
sends one agent's Chat request and reads an intermediate agent's answer;
`agent_relay` delivers the last agent's answer in the client's API and
form; `agent_errors` gives every failure Plano's fields in the client's
error shape.  This module shows their order.

Better than Plano, on purpose: agents are called directly at their own URL
(`/v1/chat/completions` when it has no path, else its own path); Messages
and Responses clients are translated to Chat for the agents and back
(Plano sends their bodies unchanged to a Chat path); an intermediate
agent's non-streamed answer contributes its message text (Plano inserts the
raw JSON body); every error is in the client's shape.

Cancellation is structured as on the model listener: one nursery per
request holds the orchestrator call, every agent and filter call, and a
watcher on the client connection; the client leaving, the listener
`timeout` (the deadline for the whole chain, 30 s by default as in Plano)
and the shutdown cut all end that one scope, closing the agent's socket.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import msgspec
import trio

from plano_trio.apis.http import Header
from plano_trio.apis.kind import Api
from plano_trio.config.schema import Listener, ListenerAgent
from plano_trio.filters.errors import FilterFailed, FilterRejected
from plano_trio.gateway import clients
from plano_trio.gateway.agent_call import (
    agent_body,
    agent_headers,
    collect_text,
    forwarded_headers,
    open_agent,
)
from plano_trio.gateway.agent_chat import CHAT_PATH, AgentTarget, agent_target, insert_answer
from plano_trio.gateway.agent_errors import bad_request, chain_error, client_error
from plano_trio.gateway.agent_relay import AnswerRelay
from plano_trio.gateway.agent_select import Orchestrator, Selection, orchestrator_route, select_agents
from plano_trio.gateway.app import Handler, ModelListenerApp, RouteTable
from plano_trio.gateway.asgi import read_body, send_bytes
from plano_trio.gateway.clients import ClientApi
from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.observe import Outcome
from plano_trio.gateway.relay import Delivery
from plano_trio.gateway.request_scope import in_request_scope
from plano_trio.gateway.runtime import Runtime
from plano_trio.telemetry import RequestTrace, names, spans
from plano_trio.translate.base import Json, TranslationError
from plano_trio.translate.matrix import plan_for

FALLBACK_HEADER = b"x-plano-agent-fallback"
"""Why the default agent answered instead of the orchestrator's choice (the orchestrator failed)."""
AGENTS_HEADER = b"x-plano-agents"
"""The agents that ran, in order, comma-separated."""


class FilterChain(Protocol):
    """The filter client (`plano_trio.filters`): runs a chain of filters over a request body."""

    async def run_chain(
        self,
        ids: Sequence[str],
        path: str,
        body: bytes,
        headers: list[Header],
        *,
        trace: RequestTrace | None = None,
    ) -> bytes: ...


class _Request(NamedTuple):
    """One agent-listener request's own data, shared by the stages."""

    client: ClientApi
    ctx: RequestContext
    request: Json
    """The client's request as decoded (its own API)."""
    chat: Json
    """The same request as Chat (what every agent receives, with its own `messages`)."""
    model: str
    stream: bool
    forwarded: list[Header]


class AgentListenerApp(ModelListenerApp):
    """ASGI app for one `type: agent` listener.

    The same edge as the model listener (header bounds, ambiguous framing,
    errors in the SDK's shape, one access-log line per request) over its own
    routes: `/healthz` and the three LLM paths (also under `/agents`, which
    Plano strips).
    """

    listener_kind = "agent"

    def __init__(
        self,
        listener: Listener,
        runtime: Runtime,
        filters: FilterChain | None = None,
        *,
        orchestrator_model: str | None = None,
        orchestrator_timeout_s: float | None = None,
    ) -> None:
        """`filters` defaults to the runtime's filter client, `orchestrator_model` to the config's
        `overrides.agent_orchestration_model` (prefix already stripped), the orchestrator's timeout
        to `router_timeout_s`."""
        self.runtime = runtime
        self.listener = listener
        self.filters = runtime.filters if filters is None else filters
        settings = runtime.config.routing
        model = settings.orchestrator_model if orchestrator_model is None else orchestrator_model
        self.orchestrator = Orchestrator(
            model,
            orchestrator_route(runtime.config.model_providers, model),
            settings.router_timeout_s if orchestrator_timeout_s is None else orchestrator_timeout_s,
            settings.router_context_tokens,
        )
        self.targets: dict[str, AgentTarget | str] = {}
        """Each configured agent's endpoint, or why its `url` cannot be used (told when it is chosen)."""
        for endpoint in runtime.config.agents:
            try:
                self.targets[endpoint.id] = agent_target(endpoint.url)
            except ValueError as error:
                self.targets[endpoint.id] = str(error)
        llm = {client.path: {"POST": self._handler(client)} for client in _CLIENTS}
        self.routes = RouteTable(
            {
                "/healthz": {"GET": _healthz, "HEAD": _healthz},
                **llm,
                **{"/agents" + path: methods for path, methods in llm.items()},
            },
            (),
        )

    def _handler(self, client: ClientApi) -> Handler:
        async def handler(runtime: Runtime, ctx: RequestContext) -> Outcome:
            return await self.handle(client, ctx)

        return handler

    async def handle(self, client: ClientApi, ctx: RequestContext) -> Outcome:
        """Serve one conversation: parse, select, run the chain, deliver the last answer."""
        runtime = self.runtime
        if ctx.trace is not None:  # brightstaff names the request's span after the listener
            ctx.trace.name = self.listener.name
        with runtime.admission:
            body = await read_body(ctx.receive, ctx.headers, runtime.body_limits)
            view = client.parse(body)
            request = client.decode_request(body)
            model = view.model or ""
            stream = bool(view.stream)
            try:
                chat = _as_chat(client, request)
                if not self.listener.agents:
                    raise bad_request("No agents configured", "no_agents")
            except ApiError as error:
                await ctx.answer_error(error, client.style)
                return Outcome(error.status, "error", model, stream=stream, error=error.message)
            call = _Request(
                client, ctx, request, chat, model, stream, forwarded_headers(ctx.headers, ctx.request_id)
            )
            relay = AnswerRelay(
                ctx.send,
                ctx.body_chunk_sender(),
                client,
                request,
                model,
                stream=stream,
                request_id=ctx.request_id,
                extra_headers=(),
                limit=runtime.config.server.max_upstream_body_bytes,
                timeout_s=self.listener.timeout_s,
            )
            ran: list[str] = []
            delivery = await self._in_scope(ctx, relay, call, ran)
            upstream = ",".join(ran) or None
            if delivery.error is not None:
                await ctx.answer_error(delivery.error, client.style)
            elif delivery.finish is not None:
                await ctx.send_last(delivery.finish, runtime.config.server.client_send_timeout_s)
            message = delivery.message if delivery.error is None else delivery.error.message
            return Outcome(
                delivery.status, delivery.result, model, upstream, stream, relay.first_byte, error=message
            )

    async def _in_scope(
        self, ctx: RequestContext, relay: AnswerRelay, call: _Request, ran: list[str]
    ) -> Delivery:
        """The chain in the request's own cancel scope (see the module doc and `request_scope`)."""
        deadline = trio.current_time() + self.listener.timeout_s
        done = await in_request_scope(self.runtime, ctx, lambda _: self._chain(call, relay, ran), deadline)
        return relay.interrupted(done) if isinstance(done, str) else done

    async def _chain(self, call: _Request, relay: AnswerRelay, ran: list[str]) -> Delivery:
        """Select the agents, run each in turn, relay the last one's answer."""
        runtime = self.runtime
        trace = call.ctx.trace
        try:
            selecting = time.perf_counter()
            selection = await select_agents(
                self.listener.agents,
                self.orchestrator,
                runtime.pool,
                call.client.api,
                call.request,
                call.ctx.headers if trace is None else trace.propagate(call.ctx.headers),
                call.ctx.request_id,
            )
            if trace is not None:
                _trace_selection(trace, self.listener.name, selection, time.perf_counter() - selecting)
            relay.extra_headers = _selection_headers(selection)
            messages: list[Any] = call.chat["messages"]
            last = len(selection.agents) - 1
            for index, agent in enumerate(selection.agents):
                relay.agent_id = agent.id
                ran.append(agent.id)
                target = self.targets.get(agent.id)
                if target is None:
                    raise bad_request(f"Agent '{agent.id}' not found in configuration", "agent_not_found")
                if isinstance(target, str):
                    raise chain_error(
                        502, f"Agent '{agent.id}' cannot be called: {target}", "agent_misconfigured"
                    )
                view = await self._filtered(agent, call, messages) if agent.input_filters else messages
                headers = agent_headers(call.forwarded, agent.id)
                span = trace.begin() if trace is not None else None
                if trace is not None and span is not None:  # the agent's parent is its call's span
                    headers = trace.propagate(headers, span.span_id)
                error: str | None = "cancelled"
                try:
                    response = await open_agent(
                        runtime.pool, agent.id, target, headers, agent_body(call.chat, view, call.model)
                    )
                    if index == last:
                        delivery = await relay.run(response, agent.id)
                        error = _failure(delivery)
                        return delivery
                    text = await collect_text(
                        response, agent.id, runtime.config.server.max_upstream_body_bytes
                    )
                    error = None
                except ApiError as failed:
                    error = failed.message
                    raise
                finally:
                    if trace is not None and span is not None:
                        spans.agent_call(trace, span, agent.id, len(view), error)
                try:
                    messages = insert_answer(messages, agent.id, text)
                except ValueError as error:
                    raise bad_request(str(error), "empty_history") from None
        except ApiError as error:
            return relay.refused(error)
        raise AssertionError("a selection is never empty")  # pragma: no cover

    async def _filtered(self, agent: ListenerAgent, call: _Request, messages: list[Any]) -> list[Any]:
        """The conversation as this agent sees it after its `input_filters` (Plano's body and path).

        As Plano: the filtered messages go to this agent only; the chain goes
        on from the unfiltered conversation.
        """
        if self.filters is None:
            raise chain_error(
                502,
                f"Agent '{agent.id}' has input_filters but no filter client is running",
                "filters_unavailable",
            )
        body = msgspec.json.encode({"model": call.model, "messages": messages})
        try:
            out = await self.filters.run_chain(
                agent.input_filters, CHAT_PATH, body, call.forwarded, trace=call.ctx.trace
            )
        except FilterRejected as rejected:
            raise client_error(rejected.filter_id, rejected.status, rejected.body, what="Filter") from None
        except FilterFailed as failed:
            raise chain_error(
                502, f"Filter '{failed.filter_id}' failed: {failed.message}", "filter_failed"
            ) from None
        try:
            filtered = msgspec.json.decode(out)
        except msgspec.DecodeError:
            filtered = None
        if not isinstance(filtered, dict) or not isinstance(filtered.get("messages"), list):
            raise chain_error(
                502,
                f"Input filters of agent '{agent.id}' returned a body without a messages list",
                "filter_malformed",
            )
        result: list[Any] = filtered["messages"]
        return result


_CLIENTS = (clients.CHAT, clients.MESSAGES, clients.RESPONSES)


async def _healthz(runtime: Runtime, ctx: RequestContext) -> Outcome:
    await send_bytes(ctx.send, 200, [(b"content-type", b"text/plain")], b"")
    return Outcome(200)


def _as_chat(client: ClientApi, request: Json) -> Json:
    """The client's request as a Chat request (the same object for a Chat client); 400 when it
    cannot be expressed in Chat, or has no conversation."""
    plan = plan_for(client.api, Api.CHAT)
    if plan is None:
        chat = request
    else:
        try:
            chat = plan.request(request)
        except TranslationError as error:
            raise ApiError(400, error.message, param=error.param, code="untranslatable_field") from None
    messages = chat.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("No messages in conversation history", "empty_history")
    return chat


def _trace_selection(trace: RequestTrace, listener: str, selection: Selection, elapsed_s: float) -> None:
    """brightstaff's `selection.*` attributes on the request's span (its duration as text, as it writes)."""
    trace.attributes.update(
        {
            names.SELECTION_LISTENER: listener,
            names.SELECTION_AGENT_COUNT: len(selection.agents),
            names.SELECTION_AGENTS: ",".join(agent.id for agent in selection.agents),
            names.SELECTION_DETERMINATION_MS: f"{elapsed_s * 1000:.2f}",
        }
    )


def _failure(delivery: Delivery) -> str | None:
    """What went wrong with the last agent's answer, for its span (None: it was delivered)."""
    if delivery.error is not None:
        return delivery.error.message
    return None if delivery.result == "ok" else delivery.message or delivery.result


def _selection_headers(selection: Selection) -> tuple[Header, ...]:
    names = ",".join(agent.id for agent in selection.agents)
    out: tuple[Header, ...] = ((AGENTS_HEADER, _header_safe(names)),)
    if selection.fallback is not None:
        out += ((FALLBACK_HEADER, _header_safe(selection.fallback)),)
    return out


def _header_safe(value: str) -> bytes:
    """A header value without control or non-ASCII bytes (agent ids and reasons come from config)."""
    return bytes(b if 0x20 <= b < 0x7F else 0x3F for b in value.encode("utf-8", "replace")[:512])
