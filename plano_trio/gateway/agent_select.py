"""Which of an agent listener's agents handle a conversation, in which order.

As Plano selects them: a listener with one agent uses it without asking
anyone; otherwise the orchestrator model gets the routing prompt with the
agents as routes (name = agent id, description = the agent's description)
and every agent it names runs, in its order, as a chain.  An empty answer
means the agent marked `default: true`, else the first one.

Where this differs from Plano: names the orchestrator returns that are not
agents of this listener are skipped (Plano fails the whole request), a name
given twice runs once, and when the orchestrator fails (down, slow, an
unreadable reply) the default agent answers and the response says why in
`x-plano-agent-fallback`, as the model listener's router fallback does,
instead of Plano's error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

from plano_trio.apis.http import Header
from plano_trio.apis.kind import Api
from plano_trio.config.schema import ListenerAgent, ModelProvider, RoutingPreference
from plano_trio.gateway.router_call import RouterFailure, ask_router
from plano_trio.providers.resolve import Route, RouteError, build_route
from plano_trio.router.conversation import router_messages
from plano_trio.router.prompt import render_prompt, router_request_body, select_conversation
from plano_trio.upstream import UpstreamPool

log = logging.getLogger("plano_trio.agents")


class Selection(NamedTuple):
    agents: tuple[ListenerAgent, ...]
    """The agents to run, in order (never empty)."""
    asked: bool
    """Whether the orchestrator was asked."""
    fallback: str | None = None
    """Why the orchestrator's answer was not used (it failed), else None."""


class Orchestrator(NamedTuple):
    """How to reach the orchestrator model, fixed at startup."""

    model: str
    """The orchestrator's model id (Plano's `agent_orchestration_model`, provider prefix stripped)."""
    route: Route | str
    """The provider serving it (`orchestrator_route`), or why none can be called."""
    timeout_s: float
    context_tokens: int


def orchestrator_route(providers: Sequence[ModelProvider], model: str) -> Route | str:
    """The route to the orchestrator: Plano's rule, decided once at startup.

    Plano looks the orchestrator's provider up by model id only: the first
    provider (in config order) whose `model` is `model`, which is the
    internal `plano/orchestrator` (Plano's hosted model) when none of the
    declared ones serves it; model aliases and wildcard providers play no
    part.  The answer is a reason instead of a route when that provider
    cannot be called (e.g. no base URL), so each request can fall back to
    the default agent and say why.
    """
    provider = next((p for p in providers if not p.is_wildcard and p.model == model), None)
    if provider is None:
        return f"no provider serves the orchestrator model '{model}'"
    try:
        return build_route(provider, provider.model)
    except RouteError as error:
        return f"orchestrator provider misconfigured: {error}"


def agent_routes(agents: Sequence[ListenerAgent]) -> tuple[RoutingPreference, ...]:
    """The listener's agents as the router prompt's routes (name = id, description)."""
    return tuple(
        RoutingPreference(name=agent.id, description=agent.description, models=()) for agent in agents
    )


def default_agent(agents: Sequence[ListenerAgent]) -> ListenerAgent:
    """The agent marked `default: true`, else the first (Plano's rule)."""
    return next((agent for agent in agents if agent.default), agents[0])


def chosen_agents(names: Sequence[str], agents: Sequence[ListenerAgent]) -> tuple[ListenerAgent, ...]:
    """The agents the orchestrator named, in its order: unknown names skipped, repeats run once.

    Empty when no name is one of `agents` (the caller then uses the default).
    """
    by_id = {agent.id: agent for agent in agents}
    out: list[ListenerAgent] = []
    for name in names:
        agent = by_id.pop(name, None)
        if agent is not None:
            out.append(agent)
    return tuple(out)


async def select_agents(
    agents: Sequence[ListenerAgent],
    orchestrator: Orchestrator,
    pool: UpstreamPool,
    api: Api,
    request: dict[str, Any],
    headers: list[Header],
    request_id: bytes,
) -> Selection:
    """The agents for this conversation (`agents` must not be empty)."""
    if len(agents) == 1:
        return Selection((agents[0],), asked=False)
    messages = router_messages(api, request)
    if not messages:  # nothing to orchestrate on (as the model listener's router): the default agent
        return Selection((default_agent(agents),), asked=False)
    conversation = select_conversation(messages, orchestrator.context_tokens)
    prompt = render_prompt(agent_routes(agents), conversation)
    route = orchestrator.route
    try:
        if isinstance(route, str):
            raise RouterFailure(route)
        reply = await ask_router(
            pool, route, router_request_body(route.model, prompt), headers, request_id, orchestrator.timeout_s
        )
    except RouterFailure as failure:
        reason = failure.reason.replace("router", "orchestrator")
        log.warning(
            "orchestrator failed, using the default agent: %s",
            reason,
            extra={"fields": {"request_id": request_id.decode(errors="replace")}},
        )
        return Selection((default_agent(agents),), asked=True, fallback=reason)
    chosen = chosen_agents(reply.names, agents)
    return Selection(chosen or (default_agent(agents),), asked=True)
