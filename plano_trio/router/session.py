"""Whether to honour the router's pick or stay on the session's warm model, as Plano decides it.

The router stays cache-blind: it picks a candidate model for every request
on quality alone.  This decides whether the session can afford it.  A
session whose provider cache is warm (used within the provider's window,
prompt prefix unchanged) would throw that cache away by switching, so with
a routing budget a paid switch is allowed only while the session's total
switch spend stays within `max_switch_spend_pct`% of its never-switch
baseline (`budget`); an outright cheaper switch is free.  A cold session,
one with no binding, or one whose prefix drifted has nothing to protect:
the candidate is honoured and a new warm episode starts.  Without a budget
a warm session follows the router freely -- an affinity id alone does not
pin a model.

`decide` is Plano's `route()` without the store: the caller reads the
binding, calls `decide`, writes back the binding it returns (with the
decision's `gc_ttl_s`), and after a successful response writes
`refreshed_binding` to record real usage -- first `rebound_binding` when
another model than the decided one answered (ranked failover).  With `route_on_user_only`, a
continuation turn (tool results, no new user text) first tries
`reuse_prior_decision` and, when it answers, skips the router and feeds the
replayed model to `decide` as the candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal, NamedTuple

from .binding import RouteVisit, SessionBinding, epoch_seconds, record_route_visit
from .budget import RoutingBudget, cached_input_rate, context_read_cost_usd, switch_cost_usd
from .cache_window import capability_for_model, warm_after_idle, warmth_window_s
from .rates import ModelRates

SwitchDecision = Literal["allowed", "retained"]
"""Label of `plano.switch.decision` and of the switch-decision metric."""
SwitchReason = Literal["same_anchor", "free", "within_cap", "over_cap", "no_pricing"]
"""Why a warm session stayed or moved (the switch-decision metric's `reason`)."""

Rates = Callable[[str], ModelRates | None]
"""Per-model prices from the cost feed; None when the feed does not know the model."""


class RouteFacts(NamedTuple):
    """What the decision reasons about; the same for the proxy and the decision API."""

    session_id: str | None
    """The session key; None: nothing to anchor to, follow the router and store nothing."""
    prefix_hash: int | None
    """The request's stable-prefix hash; one different from the binding's means the cache is lost."""
    context_tokens: int
    """Estimated context size (`context_tokens`); a warm binding's provider-reported size wins."""
    candidate_model: str
    """What the router picked (or the request's own model when no route matched)."""
    candidate_route: str | None
    requested_model: str
    """The client's alias-resolved model: the lane stored so other lanes do not replay this decision."""


class RouteDecision(NamedTuple):
    model: str
    """What to dispatch: the candidate, or the warm anchor when the switch was unaffordable."""
    route_name: str | None
    default_model: str
    requested_model: str
    warm: bool
    """The session's cache was judged warm (the decision API's `pinned`)."""
    switched: bool
    """A switch off the anchor was allowed this turn."""
    baseline_usd: float
    switch_spend_usd: float
    session_cost_usd: float
    """Actual conversation cost through the previous turn; the response side adds this one."""
    switches: int
    history: tuple[RouteVisit, ...]
    cached_tokens: int
    gc_ttl_s: float
    """How long the store keeps the binding: the dispatched model's warmth window."""
    idle_s: float = 0.0
    """Seconds since the binding's last use (`plano.cache.idle_ms` / 1000)."""
    budget_active: bool = False
    switch_decision: SwitchDecision | None = None
    """Set when a warm session weighed a candidate (the switch-decision metric)."""
    switch_reason: SwitchReason | None = None
    switch_cost_usd: float | None = None
    """Set when both sides were priced."""
    overhead_ceiling_usd: float | None = None
    candidate_warm_tokens: int = 0
    counterfactual_route: str | None = None
    """`model (route)` a vetoed switch would have taken, when `record_counterfactual` is on."""
    has_session: bool = True
    """False when there was no session key: nothing was weighed and nothing is stored."""

    @property
    def overhead_pct(self) -> float:
        """Switch spend as a percentage of the baseline (0 before any baseline)."""
        return 100.0 * self.switch_spend_usd / self.baseline_usd if self.baseline_usd > 0.0 else 0.0

    def span_attributes(self) -> dict[str, str | int | float | bool]:
        """The routing span's attributes, named as Plano names them (none without a session)."""
        if not self.has_session:
            return {}
        attrs: dict[str, str | int | float | bool] = {
            "plano.cache.warm": self.warm,
            "plano.cache.idle_ms": int(self.idle_s * 1000),
        }
        if self.budget_active:
            attrs["plano.session.overhead_pct"] = self.overhead_pct
            attrs["plano.session.switch_spend_in_usd"] = self.switch_spend_usd
            attrs["plano.session.baseline_in_usd"] = self.baseline_usd
            attrs["plano.session.switches"] = self.switches
        attrs["plano.session.total_cost_in_usd"] = self.session_cost_usd
        if self.switch_cost_usd is not None:
            attrs["plano.switch.cost_in_usd"] = self.switch_cost_usd
            attrs["plano.switch.candidate_warm_tokens"] = self.candidate_warm_tokens
            if self.overhead_ceiling_usd is not None:
                attrs["plano.switch.overhead_ceiling_in_usd"] = self.overhead_ceiling_usd
            attrs["plano.switch.decision"] = "allowed" if self.switched else "retained"
        if self.counterfactual_route is not None:
            attrs["plano.switch.counterfactual_route"] = self.counterfactual_route
        return attrs


class Reuse(NamedTuple):
    """A continuation turn's replay of the session's earlier routing decision."""

    model: str
    route_name: str | None


def context_tokens(texts: Iterable[str], model: str) -> int:
    """The request's context size in tokens: UTF-8 bytes of the messages' text joined by "\\n", / 4.

    Plano counts with a tiktoken encoding and falls back to bytes / 4; we
    have no tokenizer, so this is always the fallback (an estimate; a warm
    binding prefers the provider-reported count anyway).  `model` is kept
    for the day a tokenizer is chosen by it.
    """
    del model
    return len("\n".join(texts).encode("utf-8", "surrogatepass")) // 4


def idle_seconds(binding: SessionBinding, now: float) -> float:
    """Seconds since the binding was last used; a `last_used` in the future counts as just now."""
    return max(0.0, now - binding.last_used)


def drifted(binding: SessionBinding, prefix_hash: int | None) -> bool:
    """Both prefixes are known and differ: the provider cache was already lost."""
    return binding.prefix_hash is not None and prefix_hash is not None and binding.prefix_hash != prefix_hash


def cache_warm(binding: SessionBinding, now: float) -> bool:
    """The anchor's provider cache is plausibly warm, judged by idle time alone."""
    return warm_after_idle(capability_for_model(binding.anchor_model), idle_seconds(binding, now))


def warm(binding: SessionBinding | None, prefix_hash: int | None, now: float) -> bool:
    """Warm and on the same prompt prefix: what a switch would throw away."""
    return binding is not None and cache_warm(binding, now) and not drifted(binding, prefix_hash)


def visit_warm_tokens(history: Iterable[RouteVisit], model: str, context: int, now: float) -> int:
    """Context tokens `model` still holds from an earlier visit this session, if its cache is warm.

    A visit dated in the future is treated as cold here (unlike the
    binding's own `last_used`), as in Plano.
    """
    for visit in history:
        if visit.model == model:
            idle = now - visit.last_used
            if 0.0 <= idle <= warmth_window_s(capability_for_model(model)):
                return min(visit.cached_tokens, context)
            return 0
    return 0


def reuse_prior_decision(
    binding: SessionBinding | None, requested_model: str, prefix_hash: int | None, now: float
) -> Reuse | None:
    """The model and route to replay on a continuation turn, or None to route normally.

    Conservative on purpose -- anything unexpected routes afresh rather than
    pinning a request to the wrong model: no binding (or no session), a
    binding written by another model lane (an agent's small-fast side calls
    share the prompt prefix), a cold cache or a drifted prefix.
    """
    if binding is None or binding.requested_model != requested_model:
        return None
    if not warm(binding, prefix_hash, now):
        return None
    return Reuse(binding.anchor_model, binding.route_name)


def _counterfactual(candidate: str, route: str | None) -> str:
    return f"{candidate} ({route})" if route and route != "none" else candidate


def decide(
    facts: RouteFacts,
    binding: SessionBinding | None,
    budget: RoutingBudget | None,
    rates: Rates,
    now: float,
) -> tuple[RouteDecision, SessionBinding | None]:
    """The model to dispatch, and the binding to store (None when there is no session)."""
    candidate = facts.candidate_model
    if facts.session_id is None:
        return (
            RouteDecision(
                model=candidate,
                route_name=facts.candidate_route,
                default_model=candidate,
                requested_model=facts.requested_model,
                warm=False,
                switched=False,
                baseline_usd=0.0,
                switch_spend_usd=0.0,
                session_cost_usd=0.0,
                switches=0,
                history=(),
                cached_tokens=facts.context_tokens,
                gc_ttl_s=warmth_window_s(capability_for_model(candidate)),
                budget_active=budget is not None,
                has_session=False,
            ),
            None,
        )

    idle = 0.0 if binding is None else idle_seconds(binding, now)
    is_drifted = binding is not None and drifted(binding, facts.prefix_hash)
    effective_warm = warm(binding, facts.prefix_hash, now)
    session_cost = 0.0 if binding is None else binding.session_cost_usd

    model = candidate
    route_name = facts.candidate_route
    switched = False
    decision: SwitchDecision | None = None
    reason: SwitchReason | None = None
    cost: float | None = None
    ceiling: float | None = None
    candidate_warm = 0
    counterfactual: str | None = None

    if binding is not None and effective_warm:
        switches = binding.switches
        default_model = binding.default_model or binding.anchor_model
        context = binding.cached_tokens if binding.cached_tokens > 0 else facts.context_tokens
        turn_baseline = 0.0
        if budget is not None:
            default_rates = rates(default_model)
            if default_rates is not None:
                turn_baseline = context_read_cost_usd(context, default_rates, budget.cache_read_discount)
        baseline = binding.baseline_usd + turn_baseline
        spend = binding.switch_spend_usd

        if candidate == binding.anchor_model:
            decision, reason = "allowed", "same_anchor"
        elif budget is None:
            # Warm, but nothing to account against: follow the router.
            switches += 1
            switched = True
            decision, reason = "allowed", "free"
        else:
            ceiling = (budget.max_switch_spend_pct / 100.0) * baseline
            candidate_warm = visit_warm_tokens(binding.history, candidate, context, now)
            anchor_rates, candidate_rates = rates(binding.anchor_model), rates(candidate)
            if anchor_rates is None or candidate_rates is None:
                # No price for one side: fail open rather than veto the router on a guess.
                switches += 1
                switched = True
                decision, reason = "allowed", "no_pricing"
            else:
                discount = budget.cache_read_discount
                cost = switch_cost_usd(
                    context,
                    candidate_warm,
                    anchor_read_rate=cached_input_rate(anchor_rates, discount),
                    candidate_uncached_rate=candidate_rates.input_per_m,
                    candidate_cached_rate=cached_input_rate(candidate_rates, discount),
                )
                if cost <= 0.0:
                    # Cheaper outright: free, and the "saving" is not credited to the spend.
                    switches += 1
                    switched = True
                    decision, reason = "allowed", "free"
                elif spend + cost <= ceiling:
                    spend += cost
                    switches += 1
                    switched = True
                    decision, reason = "allowed", "within_cap"
                else:
                    if budget.record_counterfactual:
                        counterfactual = _counterfactual(candidate, route_name)
                    model = binding.anchor_model
                    route_name = binding.route_name
                    decision, reason = "retained", "over_cap"
    else:
        # Cold, absent or drifted: follow the router and start a new warm episode.  Its
        # totals start from zero unless the budget carries them over (`replenish_on_rebind`
        # off), and then the episode keeps the old default so the baseline's lineage holds.
        carried = binding if budget is not None and not budget.replenish_on_rebind else None
        baseline = 0.0 if carried is None else carried.baseline_usd
        spend = 0.0 if carried is None else carried.switch_spend_usd
        switches = 0
        default_model = model if carried is None or not carried.default_model else carried.default_model

    cached_tokens = (
        facts.context_tokens
        if facts.context_tokens > 0
        else (binding.cached_tokens if binding is not None else 0)
    )
    gc_ttl = warmth_window_s(capability_for_model(model))
    stamp = epoch_seconds(now)
    prior_history = () if binding is None or is_drifted else binding.history
    history = record_route_visit(prior_history, model, stamp, cached_tokens)

    stored = SessionBinding(
        anchor_model=model,
        last_used=stamp,
        default_model=default_model,
        requested_model=facts.requested_model,
        route_name=route_name,
        prefix_hash=facts.prefix_hash,
        cached_tokens=cached_tokens,
        baseline_usd=baseline,
        switch_spend_usd=spend,
        switches=switches,
        history=history,
        session_cost_usd=session_cost,
    )
    return (
        RouteDecision(
            model=model,
            route_name=route_name,
            default_model=default_model,
            requested_model=facts.requested_model,
            warm=effective_warm,
            switched=switched,
            baseline_usd=baseline,
            switch_spend_usd=spend,
            session_cost_usd=session_cost,
            switches=switches,
            history=history,
            cached_tokens=cached_tokens,
            gc_ttl_s=gc_ttl,
            idle_s=idle,
            budget_active=budget is not None,
            switch_decision=decision,
            switch_reason=reason,
            switch_cost_usd=cost,
            overhead_ceiling_usd=ceiling,
            candidate_warm_tokens=candidate_warm,
            counterfactual_route=counterfactual,
        ),
        stored,
    )


def refreshed_binding(
    binding: SessionBinding, prompt_tokens: int | None, turn_cost_usd: float | None, now: float
) -> SessionBinding:
    """The binding `decide` stored, refreshed after a successful response.

    `last_used` moves to now (the cache was just touched); the context size
    becomes the provider-reported prompt tokens when there are any, and so
    does the anchor's history entry; this turn's cost (None without prices)
    is added to the conversation's.  Error responses must not refresh: they
    carry no usage and must not restart the warmth clock.
    """
    tokens = prompt_tokens if prompt_tokens is not None and prompt_tokens > 0 else binding.cached_tokens
    stamp = epoch_seconds(now)
    return SessionBinding(
        anchor_model=binding.anchor_model,
        last_used=stamp,
        default_model=binding.default_model,
        requested_model=binding.requested_model,
        route_name=binding.route_name,
        prefix_hash=binding.prefix_hash,
        cached_tokens=tokens,
        baseline_usd=binding.baseline_usd,
        switch_spend_usd=binding.switch_spend_usd,
        switches=binding.switches,
        history=record_route_visit(binding.history, binding.anchor_model, stamp, tokens),
        session_cost_usd=binding.session_cost_usd + (turn_cost_usd if turn_cost_usd is not None else 0.0),
    )


def rebound_binding(
    existing: SessionBinding | None,
    stored: SessionBinding,
    model: str,
    budget: RoutingBudget | None,
    now: float,
) -> tuple[SessionBinding, float]:
    """The binding, and its store TTL, for a turn that `model` answered instead of the decided one.

    Ranked failover moved on before the first byte, so the decided model's
    cache was never warmed this turn and `model` now holds the context: the
    session starts a new warm episode on it, exactly as `decide` rebinds a
    cold session to the router's candidate -- switches reset, and the
    episode's totals restart from zero unless the budget carries them over
    (`replenish_on_rebind` off), taken from `existing`, the binding as the
    turn found it (not from `stored`, which counted the failed choice).
    The failed model's visit of this turn is not recorded; the route,
    prefix, lane, context size and conversation cost are this turn's.
    """
    carried = existing if budget is not None and not budget.replenish_on_rebind else None
    stamp = epoch_seconds(now)
    prior = () if existing is None or drifted(existing, stored.prefix_hash) else existing.history
    binding = SessionBinding(
        anchor_model=model,
        last_used=stamp,
        default_model=carried.default_model if carried is not None and carried.default_model else model,
        requested_model=stored.requested_model,
        route_name=stored.route_name,
        prefix_hash=stored.prefix_hash,
        cached_tokens=stored.cached_tokens,
        baseline_usd=0.0 if carried is None else carried.baseline_usd,
        switch_spend_usd=0.0 if carried is None else carried.switch_spend_usd,
        switches=0,
        history=record_route_visit(prior, model, stamp, stored.cached_tokens),
        session_cost_usd=stored.session_cost_usd,
    )
    return binding, warmth_window_s(capability_for_model(model))
