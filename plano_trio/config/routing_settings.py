"""Typed settings of preference-based routing: Plano's `routing`, `prompt_caching` and router `overrides`.

Built once at startup from the checked YAML (`build_routing_settings`), read by
the gateway's route stage.  Defaults are Plano's as coded, with additions of
ours under `plano_trio:`: `router_timeout_s` and `session_cache_timeout_s`
(Plano waits on its router and its Redis without a bound of its own), and
`session_cache_client`, which Redis client carries the session cache
(`native`, the default, or `redis-py`; the session package says why).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

DEFAULT_ROUTER_MODEL = "Plano-Orchestrator"
DEFAULT_ROUTER_CONTEXT_TOKENS = 8192
MAX_SESSION_ENTRIES = 10_000
ROUTING_KNOBS = frozenset({"router_timeout_s", "session_cache_timeout_s", "session_cache_client"})
"""`plano_trio:` keys read here rather than by `ServerSettings`."""


class SessionCacheSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where session bindings live (`routing.session_cache`)."""

    type: Literal["memory", "redis"] = "memory"
    url: str | None = None
    """`redis://` or `rediss://` URL (required for redis)."""
    tenant_header: str | None = None
    """Request header whose value scopes session keys (`<tenant>:<session>`)."""
    timeout_s: float = 0.25
    """Longest one cache read or write may take before routing goes on without it (ours)."""
    client: Literal["native", "redis-py"] = "native"
    """Which client talks to Redis: RESP on trio streams, or redis-py through trio-asyncio (ours)."""


class RoutingBudgetSettings(msgspec.Struct, frozen=True, kw_only=True):
    """`routing.routing_budget`: how much a session may spend switching off its warm model."""

    max_switch_spend_pct: float
    replenish_on_rebind: bool = True
    cache_read_discount: float = 0.1
    record_counterfactual: bool = False


class PromptCachingSettings(msgspec.Struct, frozen=True, kw_only=True):
    """`prompt_caching`: session affinity and `cache_control` markers; all off unless `enabled`."""

    enabled: bool = False
    session_affinity: bool = False
    inject_cache_control: bool = False
    min_prefix_tokens: int = 1024


class RoutingSettings(msgspec.Struct, frozen=True, kw_only=True):
    router_model: str = DEFAULT_ROUTER_MODEL
    """The router's model id (`overrides.llm_routing_model`, provider prefix stripped)."""
    router_context_tokens: int = DEFAULT_ROUTER_CONTEXT_TOKENS
    """`overrides.orchestrator_model_context_length`: the conversation budget of the router prompt."""
    orchestrator_model: str = DEFAULT_ROUTER_MODEL
    """The agent orchestrator's model id, which picks agents on agent listeners:
    `overrides.agent_orchestration_model`, else `llm_routing_model` (provider prefix stripped)."""
    router_timeout_s: float = 2.0
    """Longest the router call may take before the request's own model is used (ours)."""
    session_max_entries: int = MAX_SESSION_ENTRIES
    session_cache: SessionCacheSettings = msgspec.field(default_factory=SessionCacheSettings)
    budget: RoutingBudgetSettings | None = None
    route_on_user_only: bool = False
    prompt_caching: PromptCachingSettings = msgspec.field(default_factory=PromptCachingSettings)


def build_routing_settings(
    routing: Mapping[str, Any],
    prompt_caching: Mapping[str, Any],
    overrides: Mapping[str, Any],
    ours: Mapping[str, Any],
) -> RoutingSettings:
    """From checked YAML mappings (types already validated by `keyspec`)."""
    router_model = str(
        overrides.get("llm_routing_model")
        or overrides.get("agent_orchestration_model")
        or DEFAULT_ROUTER_MODEL
    )
    # Plano asks one orchestrator for both jobs (`llm_routing_model` first), so a config that sets both
    # keys gets its routing model on agent listeners; here each key drives its own job.
    orchestrator_model = str(
        overrides.get("agent_orchestration_model")
        or overrides.get("llm_routing_model")
        or DEFAULT_ROUTER_MODEL
    )
    cache: Mapping[str, Any] = routing.get("session_cache", {})
    budget: Mapping[str, Any] | None = routing.get("routing_budget")
    enabled = bool(prompt_caching.get("enabled", False))
    return RoutingSettings(
        router_model=router_model.split("/", 1)[1] if "/" in router_model else router_model,
        orchestrator_model=orchestrator_model.split("/", 1)[1]
        if "/" in orchestrator_model
        else orchestrator_model,
        router_context_tokens=int(
            overrides.get("orchestrator_model_context_length", DEFAULT_ROUTER_CONTEXT_TOKENS)
        ),
        router_timeout_s=float(ours.get("router_timeout_s", 2.0)),
        session_max_entries=min(
            int(routing.get("session_max_entries", MAX_SESSION_ENTRIES)), MAX_SESSION_ENTRIES
        ),
        session_cache=SessionCacheSettings(
            type=cache.get("type", "memory"),
            url=cache.get("url"),
            tenant_header=cache.get("tenant_header"),
            timeout_s=float(ours.get("session_cache_timeout_s", 0.25)),
            client=ours.get("session_cache_client", "native"),
        ),
        budget=None
        if budget is None
        else RoutingBudgetSettings(
            max_switch_spend_pct=float(budget["max_switch_spend_pct"]),
            replenish_on_rebind=bool(budget.get("replenish_on_rebind", True)),
            cache_read_discount=float(budget.get("cache_read_discount", 0.1)),
            record_counterfactual=bool(budget.get("record_counterfactual", False)),
        ),
        route_on_user_only=bool(routing.get("route_on_user_only", False)),
        prompt_caching=PromptCachingSettings(
            enabled=enabled,
            session_affinity=enabled and bool(prompt_caching.get("session_affinity", True)),
            inject_cache_control=enabled and bool(prompt_caching.get("inject_cache_control", True)),
            min_prefix_tokens=int(prompt_caching.get("min_prefix_tokens", 1024)),
        ),
    )
