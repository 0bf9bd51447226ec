"""The session gate: warmth, the routing budget, continuation replay, the binding and its JSON.

The decision cases are Plano's session_router.rs tests (same rates, same
expected dollars), run through the pure `decide` with the store left to the
test: each turn's stored binding is fed to the next.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plano_trio.config.routing_settings import RoutingBudgetSettings
from plano_trio.router.binding import (
    MAX_BINDING_BYTES,
    MAX_ROUTE_HISTORY,
    RouteVisit,
    SessionBinding,
    decode_binding,
    encode_binding,
    record_route_visit,
)
from plano_trio.router.budget import (
    RoutingBudget,
    budget_for_request,
    cached_input_rate,
    parse_max_switch_spend_pct,
    request_cost_usd,
    switch_cost_usd,
    turn_cost_usd,
)
from plano_trio.router.cache_window import (
    DEFAULT_CAPABILITY,
    CacheCapability,
    capability_for_model,
    warm_after_idle,
    warmth_window_s,
)
from plano_trio.router.rates import ModelRates
from plano_trio.router.session import (
    Reuse,
    RouteDecision,
    RouteFacts,
    context_tokens,
    decide,
    rebound_binding,
    refreshed_binding,
    reuse_prior_decision,
    warm,
)

NOW = 1_700_000_000.0
CLIENT_MODEL = "anthropic/claude-sonnet-4-5"
EXPENSIVE, PRICEY, CHEAP = "anthropic/expensive", "openai/pricey", "google/cheap"

# Anchor `expensive` cached rate 0.3, candidate `pricey` input 5.0, candidate `cheap` input 0.1.
# With a 100k context the paid switch to `pricey` costs 0.1M * (5.0 - 0.3) = $0.47; the `cheap`
# switch 0.1M * (0.1 - 0.3) = -$0.02 (free).  Each warm turn grows the baseline by 0.1M * 0.3 = $0.03.
RATES = {
    EXPENSIVE: ModelRates(3.0, 15.0, 0.3),
    PRICEY: ModelRates(5.0, 15.0, 0.5),
    CHEAP: ModelRates(0.1, 0.4, 0.01),
}


def rates(model: str) -> ModelRates | None:
    return RATES.get(model)


def budget(pct: float, **kw: Any) -> RoutingBudget:
    return RoutingBudget(max_switch_spend_pct=pct, **kw)


def seeded(
    baseline: float = 0.0,
    spend: float = 0.0,
    idle: float = 30,
    *,
    anchor: str = EXPENSIVE,
    default: str | None = None,
    requested: str = CLIENT_MODEL,
    route_name: str | None = None,
    switches: int = 0,
    history: tuple[RouteVisit, ...] = (),
    prefix_hash: int | None = 1,
) -> SessionBinding:
    return SessionBinding(
        anchor_model=anchor,
        default_model=anchor if default is None else default,
        requested_model=requested,
        route_name=route_name,
        prefix_hash=prefix_hash,
        last_used=int(NOW - idle),
        cached_tokens=100_000,
        baseline_usd=baseline,
        switch_spend_usd=spend,
        switches=switches,
        history=history,
    )


def facts_for(candidate: str, *, context: int = 0, route: str | None = None, prefix: int = 1) -> RouteFacts:
    return RouteFacts("s1", prefix, context, candidate, route, CLIENT_MODEL)


# -- decide: Plano's route() cases ----------------------------------------------------------

WARM_RETURN = seeded(0.40, switches=1, history=(RouteVisit(PRICEY, int(NOW - 30), 100_000),))
DEFAULT_DRIFTED = seeded(anchor=CHEAP, default=EXPENSIVE, idle=0, switches=1)


@pytest.mark.parametrize(
    ("case", "binding", "pct", "candidate", "expected"),
    [
        # $2.00 + $0.03 baseline; at 25% the ceiling $0.5075 covers the $0.47 switch.
        (
            "paid switch within cap accrues",
            seeded(2.0),
            25.0,
            PRICEY,
            dict(
                model=PRICEY, warm=True, switched=True, switches=1, switch_spend_usd=0.47, baseline_usd=2.03
            ),
        ),
        # $1.03 baseline: ceiling ~$0.2575 < $0.47; a vetoed switch spends nothing.
        (
            "paid switch over cap retains anchor",
            seeded(1.0),
            25.0,
            PRICEY,
            dict(model=EXPENSIVE, warm=True, switched=False, switches=0, switch_spend_usd=0.0),
        ),
        # Free switches never touch the running spend.
        (
            "cheaper switch is free",
            seeded(1.0, 0.10),
            25.0,
            CHEAP,
            dict(model=CHEAP, warm=True, switched=True, switches=1, switch_spend_usd=0.10),
        ),
        # 10 minutes idle: past the 5-minute window; the new episode resets the totals.
        (
            "cold session resets and follows router",
            seeded(5.0, 3.0, idle=600),
            25.0,
            PRICEY,
            dict(model=PRICEY, warm=False, switches=0, baseline_usd=0.0, switch_spend_usd=0.0),
        ),
        # The baseline grows at the default's cached rate (0.3/M -> $0.03), not the anchor's.
        (
            "baseline priced on default not anchor",
            DEFAULT_DRIFTED,
            25.0,
            CHEAP,
            dict(model=CHEAP, warm=True, switches=1, baseline_usd=0.03, default_model=EXPENSIVE),
        ),
        # `pricey` still holds the 100k context: the return costs 100k * (0.5 - 0.3)/M = $0.02,
        # under the ceiling 0.25 * $0.43; a cold switch ($0.47) would be vetoed.
        (
            "warm return is affordable",
            WARM_RETURN,
            25.0,
            PRICEY,
            dict(model=PRICEY, switches=2, switch_spend_usd=0.02),
        ),
    ],
)
def test_plano_route_cases(
    case: str, binding: SessionBinding, pct: float, candidate: str, expected: dict[str, Any]
) -> None:
    decision, stored = decide(facts_for(candidate), binding, budget(pct), rates, NOW)
    for field, value in expected.items():
        got = getattr(decision, field)
        if isinstance(value, float):
            assert got == pytest.approx(value, abs=1e-6), (case, field)
        else:
            assert got == value, (case, field)
    assert stored is not None
    assert stored.anchor_model == decision.model
    assert stored.last_used == int(NOW)


def test_no_session_honours_candidate_and_stores_nothing() -> None:
    facts = RouteFacts(None, 1, 0, PRICEY, "r", CLIENT_MODEL)
    decision, stored = decide(facts, seeded(), budget(1.0), rates, NOW)
    assert stored is None
    assert (decision.model, decision.route_name, decision.warm, decision.switched) == (
        PRICEY,
        "r",
        False,
        False,
    )
    assert decision.span_attributes() == {}


def test_warm_return_refreshes_the_candidates_history_entry() -> None:
    decision, _ = decide(facts_for(PRICEY), WARM_RETURN, budget(25.0), rates, NOW)
    assert decision.candidate_warm_tokens == 100_000
    assert RouteVisit(PRICEY, int(NOW), 100_000) in decision.history


def test_multi_turn_session_cost_stays_within_overhead_cap() -> None:
    """ceiling(k) = 0.25 * 0.03k first covers the $0.47 switch at warm turn 63, as in Plano."""
    b = budget(25.0)
    now = NOW
    d, stored = decide(facts_for(EXPENSIVE, context=100_000), None, b, rates, now)
    assert (d.model, d.warm, d.default_model) == (EXPENSIVE, False, EXPENSIVE)

    first_switch = None
    turns = 0
    for turn in range(1, 71):
        now += 1
        d, stored = decide(facts_for(PRICEY, context=100_000), stored, b, rates, now)
        turns = turn
        assert d.warm
        assert d.switch_spend_usd <= 0.25 * d.baseline_usd + 1e-9
        assert d.baseline_usd == pytest.approx(0.03 * turn, abs=1e-6)
        if d.model == PRICEY:
            first_switch = turn
            assert d.switches == 1
            assert d.switch_spend_usd == pytest.approx(0.47, abs=1e-6)
            break
        assert (d.model, d.switches, d.switch_spend_usd) == (EXPENSIVE, 0, 0.0)
        assert (d.switch_decision, d.switch_reason) == ("retained", "over_cap")
    assert first_switch == 63
    after_switch = d

    # Same anchor after the switch: no further spend.
    now += 1
    d, stored = decide(facts_for(PRICEY, context=100_000), stored, b, rates, now)
    turns += 1
    assert (d.model, d.switches, d.switch_reason) == (PRICEY, 1, "same_anchor")
    assert d.switch_spend_usd == after_switch.switch_spend_usd

    # A -> B -> A: `expensive` still holds the context, the return is free.
    now += 1
    d, stored = decide(facts_for(EXPENSIVE, context=100_000), stored, b, rates, now)
    turns += 1
    assert (d.model, d.switches, d.switch_reason) == (EXPENSIVE, 2, "free")
    assert d.switch_spend_usd == after_switch.switch_spend_usd
    assert d.baseline_usd == pytest.approx(0.03 * turns, abs=1e-6)
    assert d.switch_spend_usd <= 0.25 * d.baseline_usd + 1e-9


# -- decide: the other branches -------------------------------------------------------------


def test_warm_without_budget_follows_router_freely() -> None:
    d, _ = decide(facts_for(PRICEY), seeded(1.0, 0.2), None, rates, NOW)
    assert (d.model, d.switched, d.switches, d.switch_reason) == (PRICEY, True, 1, "free")
    # No budget: the baseline does not grow and nothing is priced.
    assert (d.baseline_usd, d.switch_spend_usd, d.switch_cost_usd) == (1.0, 0.2, None)
    assert "plano.session.baseline_in_usd" not in d.span_attributes()


@pytest.mark.parametrize("candidate", ["madeup/model-x", PRICEY])
def test_missing_pricing_fails_open(candidate: str) -> None:
    only = {candidate: RATES[candidate]} if candidate in RATES else {}
    d, _ = decide(facts_for(candidate), seeded(0.0), budget(0.0), only.get, NOW)
    assert (d.model, d.switched, d.switch_reason, d.switch_cost_usd) == (candidate, True, "no_pricing", None)
    # The anchor is unpriced in both cases, so the baseline cannot grow either.
    assert d.baseline_usd == 0.0


def test_zero_percent_allows_only_cheaper_switches() -> None:
    assert decide(facts_for(PRICEY), seeded(100.0), budget(0.0), rates, NOW)[0].model == EXPENSIVE
    assert decide(facts_for(CHEAP), seeded(100.0), budget(0.0), rates, NOW)[0].model == CHEAP


@pytest.mark.parametrize(
    ("route", "record", "expected"),
    [
        ("code gen", True, f"{PRICEY} (code gen)"),
        ("none", True, PRICEY),
        ("", True, PRICEY),
        (None, True, PRICEY),
        ("code gen", False, None),
    ],
)
def test_vetoed_switch_counterfactual(route: str | None, record: bool, expected: str | None) -> None:
    d, stored = decide(
        facts_for(PRICEY, route=route),
        seeded(1.0, route_name="anchor route"),
        budget(25.0, record_counterfactual=record),
        rates,
        NOW,
    )
    assert d.counterfactual_route == expected
    # The anchor's own route is replayed with it.
    assert (d.model, d.route_name) == (EXPENSIVE, "anchor route")
    assert stored is not None and stored.route_name == "anchor route"
    attrs = d.span_attributes()
    assert attrs["plano.switch.decision"] == "retained"
    assert attrs.get("plano.switch.counterfactual_route") == expected


def test_span_attributes_of_an_allowed_paid_switch() -> None:
    d, _ = decide(facts_for(PRICEY), seeded(2.0), budget(25.0), rates, NOW)
    attrs = d.span_attributes()
    assert attrs["plano.cache.warm"] is True
    assert attrs["plano.cache.idle_ms"] == 30_000
    assert attrs["plano.switch.decision"] == "allowed"
    assert attrs["plano.switch.cost_in_usd"] == pytest.approx(0.47)
    assert attrs["plano.switch.overhead_ceiling_in_usd"] == pytest.approx(0.25 * 2.03)
    assert attrs["plano.session.overhead_pct"] == pytest.approx(100 * 0.47 / 2.03)
    assert attrs["plano.session.switches"] == 1
    assert attrs["plano.session.total_cost_in_usd"] == 0.0


@pytest.mark.parametrize(
    ("replenish", "expected"),
    [(True, (0.0, 0.0, PRICEY)), (False, (5.0, 3.0, EXPENSIVE))],
)
def test_cold_rebind_replenishes_unless_told_not_to(
    replenish: bool, expected: tuple[float, float, str]
) -> None:
    binding = seeded(5.0, 3.0, idle=600, switches=4)
    d, _ = decide(facts_for(PRICEY), binding, budget(25.0, replenish_on_rebind=replenish), rates, NOW)
    assert (d.baseline_usd, d.switch_spend_usd, d.default_model) == expected
    assert (d.warm, d.switches, d.switch_decision) == (False, 0, None)


def test_cold_rebind_without_budget_resets() -> None:
    d, _ = decide(facts_for(PRICEY), seeded(5.0, 3.0, idle=600), None, rates, NOW)
    assert (d.baseline_usd, d.switch_spend_usd, d.default_model) == (0.0, 0.0, PRICEY)


def test_carried_rebind_with_empty_default_uses_the_new_model() -> None:
    binding = msgspec.structs.replace(seeded(5.0, 3.0, idle=600), default_model="")
    d, _ = decide(facts_for(PRICEY), binding, budget(25.0, replenish_on_rebind=False), rates, NOW)
    assert d.default_model == PRICEY


def test_drifted_prefix_is_cold_and_clears_history() -> None:
    binding = seeded(2.0, history=(RouteVisit(CHEAP, int(NOW - 10), 5),))
    d, stored = decide(facts_for(PRICEY, prefix=2), binding, budget(25.0), rates, NOW)
    assert (d.model, d.warm, d.baseline_usd) == (PRICEY, False, 0.0)
    assert d.history == (RouteVisit(PRICEY, int(NOW), 100_000),)
    assert stored is not None and stored.prefix_hash == 2


def test_unknown_prefix_on_either_side_is_not_drift() -> None:
    assert decide(facts_for(EXPENSIVE, prefix=2), seeded(prefix_hash=None), None, rates, NOW)[0].warm
    facts = RouteFacts("s1", None, 0, EXPENSIVE, None, CLIENT_MODEL)
    assert decide(facts, seeded(), None, rates, NOW)[0].warm


def test_legacy_binding_without_default_prices_the_anchor() -> None:
    binding = msgspec.structs.replace(seeded(0.0), default_model="")
    d, _ = decide(facts_for(EXPENSIVE), binding, budget(25.0), rates, NOW)
    assert d.default_model == EXPENSIVE
    assert d.baseline_usd == pytest.approx(0.03)


@pytest.mark.parametrize(
    ("facts_context", "binding_tokens", "expected"), [(50_000, 100_000, 50_000), (0, 100_000, 100_000)]
)
def test_stored_context_size(facts_context: int, binding_tokens: int, expected: int) -> None:
    binding = msgspec.structs.replace(seeded(), cached_tokens=binding_tokens)
    d, stored = decide(facts_for(EXPENSIVE, context=facts_context), binding, None, rates, NOW)
    assert d.cached_tokens == expected
    assert stored is not None and stored.cached_tokens == expected


def test_warm_binding_prices_its_own_context_over_the_estimate() -> None:
    # The binding's provider-reported 100k wins over the request's 1k estimate.
    d, _ = decide(facts_for(PRICEY, context=1_000), seeded(2.0), budget(25.0), rates, NOW)
    assert d.switch_cost_usd == pytest.approx(0.47)


def test_stored_binding_carries_the_decision() -> None:
    d, stored = decide(facts_for(PRICEY, route="code gen"), seeded(2.0), budget(25.0), rates, NOW)
    assert stored == SessionBinding(
        anchor_model=PRICEY,
        last_used=int(NOW),
        default_model=EXPENSIVE,
        requested_model=CLIENT_MODEL,
        route_name="code gen",
        prefix_hash=1,
        cached_tokens=100_000,
        baseline_usd=d.baseline_usd,
        switch_spend_usd=d.switch_spend_usd,
        switches=1,
        history=d.history,
        session_cost_usd=0.0,
    )
    assert d.gc_ttl_s == 300.0


# -- warmth ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("idle", "expected"),
    [(0, True), (60, True), (300, True), (301, False), (600, False), (-100, True)],
)
def test_warmth_boundaries(idle: float, expected: bool) -> None:
    assert warm(seeded(idle=idle), 1, NOW) is expected


def test_warmth_needs_a_binding_and_the_same_prefix() -> None:
    assert not warm(None, 1, NOW)
    assert not warm(seeded(), 2, NOW)
    assert warm(seeded(), None, NOW)


@pytest.mark.parametrize(
    ("cap", "idle", "expected"),
    [
        (DEFAULT_CAPABILITY, 300, True),
        (DEFAULT_CAPABILITY, 300.5, False),
        (DEFAULT_CAPABILITY._replace(extended_retention=True), 600, True),
        (DEFAULT_CAPABILITY._replace(extended_retention=True), 3601, False),
        (CacheCapability(idle_ttl_s=7200, hard_ttl_s=3600), 3601, False),
    ],
)
def test_warm_after_idle(cap: CacheCapability, idle: float, expected: bool) -> None:
    assert warm_after_idle(cap, idle) is expected


@pytest.mark.parametrize(
    "model", ["anthropic/claude-sonnet-4-5", "madeup/model-x", "Google/gemini", "gpt-4o", "do/x", ""]
)
def test_every_provider_has_the_default_window(model: str) -> None:
    assert capability_for_model(model) == DEFAULT_CAPABILITY
    assert warmth_window_s(capability_for_model(model)) == 300.0


def test_extended_window() -> None:
    assert warmth_window_s(DEFAULT_CAPABILITY._replace(extended_retention=True)) == 3600.0


@pytest.mark.parametrize(
    ("visit_age", "expected_cost"),
    [
        (30, 0.02),  # warm visit: cached-rate delta
        (300, 0.02),  # boundary is inclusive
        (301, 0.47),  # cold visit: full re-read
        (-5, 0.47),  # a visit dated in the future gets no credit
    ],
)
def test_history_credit_boundaries(visit_age: float, expected_cost: float) -> None:
    binding = seeded(100.0, history=(RouteVisit(PRICEY, int(NOW - visit_age), 100_000),))
    d, _ = decide(facts_for(PRICEY), binding, budget(25.0), rates, NOW)
    assert d.switch_cost_usd == pytest.approx(expected_cost)


# -- reuse_prior_decision (route_on_user_only) ----------------------------------------------


def lane(
    anchor: str, route: str | None = None, idle: float = 5, requested: str = CLIENT_MODEL
) -> SessionBinding:
    return seeded(anchor=anchor, route_name=route, idle=idle, requested=requested)


@pytest.mark.parametrize(
    ("case", "binding", "requested", "prefix", "expected"),
    [
        (
            "warm binding on the same lane",
            lane(PRICEY, "code gen"),
            CLIENT_MODEL,
            1,
            Reuse(PRICEY, "code gen"),
        ),
        ("unrouted first turn", lane(CLIENT_MODEL), CLIENT_MODEL, 1, Reuse(CLIENT_MODEL, None)),
        ("different model lane", lane(PRICEY, "code gen"), "anthropic/claude-haiku-4-5", 1, None),
        ("cold binding", lane(PRICEY, idle=24 * 3600), CLIENT_MODEL, 1, None),
        ("drifted prefix", lane(PRICEY), CLIENT_MODEL, 999, None),
        ("no binding", None, CLIENT_MODEL, 1, None),
        ("prefix unknown now", lane(PRICEY), CLIENT_MODEL, None, Reuse(PRICEY, None)),
    ],
)
def test_reuse_prior_decision(
    case: str, binding: SessionBinding | None, requested: str, prefix: int | None, expected: Reuse | None
) -> None:
    assert reuse_prior_decision(binding, requested, prefix, NOW) == expected, case


def test_a_side_call_on_a_shared_affinity_id_evicts_the_loop_pin() -> None:
    side = RouteFacts("s1", 2, 1_000, CHEAP, "summarize", "anthropic/small-fast")
    _, stored = decide(side, lane(PRICEY, "code gen"), None, rates, NOW)
    assert reuse_prior_decision(stored, CLIENT_MODEL, 1, NOW + 1) is None


def test_replaying_the_loop_model_refreshes_the_binding_without_switching() -> None:
    binding = lane(PRICEY, "code gen", idle=30)
    reuse = reuse_prior_decision(binding, CLIENT_MODEL, 1, NOW)
    assert reuse is not None
    d, stored = decide(facts_for(reuse.model), binding, None, rates, NOW)
    assert (d.model, d.switches, d.warm) == (PRICEY, 0, True)
    assert stored is not None
    assert (stored.anchor_model, stored.requested_model, stored.last_used) == (PRICEY, CLIENT_MODEL, int(NOW))


# -- the response side ----------------------------------------------------------------------


def test_refreshed_binding_records_real_usage() -> None:
    _, stored = decide(facts_for(EXPENSIVE, context=90_000), seeded(1.0), budget(25.0), rates, NOW)
    assert stored is not None
    stored = msgspec.structs.replace(stored, session_cost_usd=0.5)
    fresh = refreshed_binding(stored, 120_000, 0.25, NOW + 7)
    assert fresh.last_used == int(NOW + 7)
    assert fresh.cached_tokens == 120_000
    assert fresh.session_cost_usd == 0.75
    assert RouteVisit(EXPENSIVE, int(NOW + 7), 120_000) in fresh.history
    unchanged = ("anchor_model", "default_model", "requested_model", "route_name", "prefix_hash")
    for field in (*unchanged, "baseline_usd", "switch_spend_usd", "switches"):
        assert getattr(fresh, field) == getattr(stored, field)


@pytest.mark.parametrize("prompt_tokens", [None, 0, -3])
def test_refresh_without_usage_keeps_the_estimate(prompt_tokens: int | None) -> None:
    fresh = refreshed_binding(seeded(), prompt_tokens, None, NOW)
    assert (fresh.cached_tokens, fresh.session_cost_usd) == (100_000, 0.0)


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        # OpenAI shape: cached tokens are inside prompt_tokens.
        (dict(prompt_tokens=1000, cached_tokens=400, completion_tokens=100), (0.00192, 0.0015)),
        # Anthropic shape: uncached input alone, cache writes at the input rate.
        (
            dict(
                prompt_tokens=600,
                cached_tokens=400,
                cache_creation_tokens=200,
                completion_tokens=100,
                prompt_includes_cached=False,
            ),
            (0.00252, 0.0015),
        ),
        # More cached than prompt (a provider bug): uncached floors at 0.
        (dict(prompt_tokens=10, cached_tokens=400, completion_tokens=0), (0.00012, 0.0)),
        (dict(prompt_tokens=-5, cached_tokens=-1, completion_tokens=-1), (0.0, 0.0)),
    ],
)
def test_request_cost(kw: dict[str, Any], expected: tuple[float, float]) -> None:
    got = request_cost_usd(RATES[EXPENSIVE], **kw)
    assert got == pytest.approx(expected)


def test_turn_cost_and_discount_fallback() -> None:
    no_cached_rate = ModelRates(3.0, 15.0)
    assert cached_input_rate(no_cached_rate, 0.1) == pytest.approx(0.3)
    assert cached_input_rate(RATES[CHEAP], 0.5) == 0.01
    got = turn_cost_usd(no_cached_rate, 1000, 100, 400, 0.1)
    assert got == pytest.approx(0.00192 + 0.0015)


@pytest.mark.parametrize(
    ("ctx", "warm_tokens", "expected"),
    [(100_000, 0, 0.47), (100_000, 100_000, 0.02), (100_000, 250_000, 0.02), (100_000, 50_000, 0.245)],
)
def test_switch_cost(ctx: int, warm_tokens: int, expected: float) -> None:
    assert switch_cost_usd(ctx, warm_tokens, 0.3, 5.0, 0.5) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("texts", "expected"), [([], 0), (["abcd", "efgh"], 2), (["é" * 4], 2), (["abc"], 0)]
)
def test_context_tokens_is_utf8_bytes_over_four(texts: list[str], expected: int) -> None:
    assert context_tokens(texts, "openai/gpt-4o") == expected


# -- the routing budget header ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("15", 15.0),
        ("12.5", 12.5),
        ("0", 0.0),
        ("100", 100.0),
        (" 7 ", 7.0),
        ("\t7", 7.0),
        ("+5", 5.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e1", 10.0),
        ("-0", 0.0),
        ("101", None),
        ("100.01", None),
        ("-1", None),
        ("", None),
        ("abc", None),
        ("1_0", None),
        ("\u0661\u0660", None),  # Arabic-Indic digits: Python float() reads them
        ("inf", None),
        ("NaN", None),
        ("0x10", None),
        ("5%", None),
        ("1e400", None),
        ("5\n", None),
    ],
)
def test_parse_max_switch_spend_pct(raw: str, expected: float | None) -> None:
    assert parse_max_switch_spend_pct(raw) == expected


def test_header_overrides_configured_budget() -> None:
    base = budget(20.0, record_counterfactual=True, cache_read_discount=0.2)
    got = budget_for_request(base, "5")
    assert got == budget(5.0, record_counterfactual=True, cache_read_discount=0.2)


@pytest.mark.parametrize(
    ("base", "header", "expected"),
    [
        (None, None, None),
        (None, "junk", None),
        (None, "10", RoutingBudgetSettings(max_switch_spend_pct=10.0)),
        (budget(20.0), None, budget(20.0)),
        (budget(20.0), "101", budget(20.0)),
        (budget(20.0), "7", budget(7.0)),
    ],
)
def test_budget_for_request(
    base: RoutingBudget | None, header: str | None, expected: RoutingBudget | None
) -> None:
    got = budget_for_request(base, header)
    assert got == expected
    if got is not None and base is None:
        assert (got.replenish_on_rebind, got.cache_read_discount, got.record_counterfactual) == (
            True,
            0.1,
            False,
        )


# -- the binding: history, JSON ----------------------------------------------------------------


def test_history_refreshes_in_place_and_evicts_the_least_recent() -> None:
    history: tuple[RouteVisit, ...] = ()
    for i in range(MAX_ROUTE_HISTORY):
        history = record_route_visit(history, f"m/{i}", 100 + i, i)
    history = record_route_visit(history, "m/0", 500, 7)
    assert history[0] == RouteVisit("m/0", 500, 7)
    assert len(history) == MAX_ROUTE_HISTORY
    history = record_route_visit(history, "m/new", 600, 1)
    assert len(history) == MAX_ROUTE_HISTORY
    assert "m/1" not in {v.model for v in history}  # the oldest (last_used 101) went
    assert history[-1] == RouteVisit("m/new", 600, 1)


def test_history_eviction_of_a_long_history_keeps_the_most_recent_in_order() -> None:
    # Evicting one least-recent entry at a time (first of equals first) would scan the list once per
    # entry; one sort gives the same survivors, in their original order.
    history = tuple(RouteVisit(f"m/{i}", (i * 7919) % 97, 0) for i in range(5_000))
    got = record_route_visit(history, "m/new", 1_000, 0)
    ranked = sorted(range(len(history)), key=lambda i: (history[i].last_used, i))
    keep = sorted(ranked[-(MAX_ROUTE_HISTORY - 1) :])
    assert got == (*(history[i] for i in keep), RouteVisit("m/new", 1_000, 0))


def test_history_eviction_takes_the_first_of_equals() -> None:
    history = tuple(RouteVisit(f"m/{i}", 100, 0) for i in range(MAX_ROUTE_HISTORY))
    got = record_route_visit(history, "m/new", 100, 0)
    assert [v.model for v in got] == [f"m/{i}" for i in range(1, MAX_ROUTE_HISTORY)] + ["m/new"]


FULL = SessionBinding(
    anchor_model="openai/gpt-4o",
    last_used=1_700_000_000,
    default_model="anthropic/claude",
    requested_model="gpt-4o",
    route_name="code gen",
    prefix_hash=2**64 - 1,
    cached_tokens=1234,
    baseline_usd=0.5,
    switch_spend_usd=0.0,
    switches=2,
    history=(RouteVisit("openai/gpt-4o", 1_700_000_000, 1234),),
    session_cost_usd=1.25,
)


def test_full_binding_json_is_plano_shaped() -> None:
    assert encode_binding(FULL) == (
        b'{"anchor_model":"openai/gpt-4o","default_model":"anthropic/claude","requested_model":"gpt-4o",'
        b'"route_name":"code gen","prefix_hash":18446744073709551615,"last_used":1700000000,'
        b'"cached_tokens":1234,"baseline_usd":0.5,"switch_spend_usd":0.0,"switches":2,'
        b'"history":[{"model":"openai/gpt-4o","last_used":1700000000,"cached_tokens":1234}],'
        b'"session_cost_usd":1.25}'
    )


def test_empty_optionals_are_left_out() -> None:
    minimal = SessionBinding(anchor_model="m", last_used=5)
    assert encode_binding(minimal) == (
        b'{"anchor_model":"m","default_model":"","requested_model":"","last_used":5,"cached_tokens":0,'
        b'"baseline_usd":0.0,"switch_spend_usd":0.0,"switches":0,"session_cost_usd":0.0}'
    )


def test_round_trip() -> None:
    assert decode_binding(encode_binding(FULL), NOW) == FULL


def test_older_binding_decodes_with_defaults() -> None:
    got = decode_binding(b'{"anchor_model":"m","unknown":{"x":[1]},"route_name":null}', NOW)
    assert got == SessionBinding(anchor_model="m", last_used=int(NOW))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"null",
        b"[]",
        b"{}",
        b'{"anchor_model":null}',
        b'{"anchor_model":"m","default_model":null}',
        b'{"anchor_model":"m","last_used":null}',
        b'{"anchor_model":"m","last_used":-1}',
        b'{"anchor_model":"m","last_used":1.5}',
        b'{"anchor_model":"m","cached_tokens":18446744073709551616}',
        b'{"anchor_model":"m","switches":4294967296}',
        b'{"anchor_model":"m","baseline_usd":"1"}',
        b'{"anchor_model":"m","baseline_usd":1e400}',
        b'{"anchor_model":"m","history":null}',
        b'{"anchor_model":"m","history":[{"model":"x"}]}',
        b'{"anchor_model":"m","history":[{"last_used":1}]}',
        b'{"anchor_model":"m","prefix_hash":"ab"}',
        b'{"anchor_model":"\\ud800"}',
        b'{"anchor_model":"m"} trailing',
        b"\xff\xfe",
        b"[" * 10_000,
    ],
)
def test_hostile_values_are_no_binding(raw: bytes) -> None:
    assert decode_binding(raw, NOW) is None


def test_lenient_where_plano_is() -> None:
    got = decode_binding(
        b'{"anchor_model":"m","last_used":3,"baseline_usd":2,"switches":4294967295,'
        b'"history":[{"model":"x","last_used":1}]}',
        NOW,
    )
    assert got == SessionBinding(
        anchor_model="m", last_used=3, baseline_usd=2.0, switches=2**32 - 1, history=(RouteVisit("x", 1, 0),)
    )


def test_a_poisoned_history_is_cut_to_its_last_entries_on_decode() -> None:
    # What another writer of a shared Redis could store: as many visits as fit under the size bound.
    visits = [{"model": f"m{i}", "last_used": i, "cached_tokens": 0} for i in range(1_200)]
    raw = msgspec.json.encode({"anchor_model": "m", "last_used": 5, "history": visits})
    assert len(raw) <= MAX_BINDING_BYTES
    got = decode_binding(raw, NOW)
    assert got is not None
    assert got.history == tuple(RouteVisit(f"m{i}", i, 0) for i in range(1_200 - MAX_ROUTE_HISTORY, 1_200))
    # and the turn built on it carries a bounded history
    _, stored = decide(facts_for(PRICEY), got, budget(25.0), rates, NOW)
    assert stored is not None and len(stored.history) == MAX_ROUTE_HISTORY
    assert len(refreshed_binding(stored, 10, None, NOW).history) == MAX_ROUTE_HISTORY


def test_oversized_value_is_not_parsed() -> None:
    padded = b'{"anchor_model":"' + b"m" * MAX_BINDING_BYTES + b'"}'
    assert decode_binding(padded, NOW) is None


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_decode_binding_never_raises_on_bytes(raw: bytes) -> None:
    got = decode_binding(raw, NOW)
    assert got is None or isinstance(got, SessionBinding)


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    [
        "anchor_model",
        "default_model",
        "requested_model",
        "route_name",
        "prefix_hash",
        "last_used",
        "cached_tokens",
        "baseline_usd",
        "switch_spend_usd",
        "switches",
        "history",
        "session_cost_usd",
        "model",
    ]
)


@settings(max_examples=300)
@given(st.dictionaries(FIELDS, JSON, max_size=12))
def test_decode_binding_on_binding_shaped_json(obj: dict[str, Any]) -> None:
    got = decode_binding(msgspec.json.encode(obj), NOW)
    if got is not None:
        assert all(math.isfinite(x) for x in (got.baseline_usd, got.switch_spend_usd, got.session_cost_usd))
        assert decode_binding(encode_binding(got), NOW) == got


U64S = st.integers(0, 2**64 - 1)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
VISITS = st.builds(RouteVisit, st.text(max_size=10), U64S, U64S)
BINDINGS = st.builds(
    SessionBinding,
    anchor_model=st.text(max_size=10),
    last_used=U64S,
    default_model=st.text(max_size=10),
    requested_model=st.text(max_size=10),
    route_name=st.none() | st.text(max_size=10),
    prefix_hash=st.none() | U64S,
    cached_tokens=U64S,
    baseline_usd=FINITE,
    switch_spend_usd=FINITE,
    switches=st.integers(0, 2**32 - 1),
    history=st.lists(VISITS, max_size=MAX_ROUTE_HISTORY).map(tuple),
    session_cost_usd=FINITE,
)


@given(BINDINGS)
def test_round_trip_property(binding: SessionBinding) -> None:
    assert decode_binding(encode_binding(binding), NOW) == binding


# -- rebinding after ranked failover -------------------------------------------------------------

RANKED = "openai/ranked-second"


def _failed_over(
    binding: SessionBinding | None, pct: float, **kw: Any
) -> tuple[SessionBinding, SessionBinding]:
    """The binding `decide` stored for PRICEY, and the rebind after RANKED answered instead."""
    _, stored = decide(
        facts_for(PRICEY, route="code", context=50_000), binding, budget(pct, **kw), rates, NOW
    )
    assert stored is not None
    rebound, ttl = rebound_binding(binding, stored, RANKED, budget(pct, **kw), NOW + 2)
    assert ttl == warmth_window_s(capability_for_model(RANKED))
    return stored, rebound


def test_failover_rebinds_the_session_to_the_model_that_answered() -> None:
    prior = seeded(3.0, 0.1, switches=3, history=(RouteVisit(CHEAP, int(NOW - 60), 9),))
    prior = msgspec.structs.replace(prior, session_cost_usd=4.0)
    stored, rebound = _failed_over(prior, 25.0)
    assert stored.anchor_model == PRICEY and stored.switch_spend_usd > 0.1  # the decided, paid switch
    assert rebound.anchor_model == rebound.default_model == RANKED  # a new warm episode on it
    assert (rebound.switches, rebound.baseline_usd, rebound.switch_spend_usd) == (0, 0.0, 0.0)  # replenished
    assert rebound.route_name == "code" and rebound.requested_model == CLIENT_MODEL
    assert rebound.cached_tokens == 50_000 and rebound.prefix_hash == 1
    assert rebound.session_cost_usd == 4.0  # the conversation's cost survives rebinds
    assert rebound.last_used == int(NOW + 2)
    # the failed model's visit of this turn is not remembered; earlier visits are
    assert rebound.history == (RouteVisit(CHEAP, int(NOW - 60), 9), RouteVisit(RANKED, int(NOW + 2), 50_000))


def test_failover_rebind_carries_the_totals_when_replenish_on_rebind_is_off() -> None:
    prior = seeded(2.0, 0.1, switches=3, default=CHEAP)
    _, rebound = _failed_over(prior, 25.0, replenish_on_rebind=False)
    # as Plano's cold rebind: the totals the turn found (not the failed switch's spend), the old default
    assert (rebound.baseline_usd, rebound.switch_spend_usd, rebound.switches) == (2.0, 0.1, 0)
    assert rebound.default_model == CHEAP and rebound.anchor_model == RANKED


def test_failover_rebind_of_a_new_session() -> None:
    _, rebound = _failed_over(None, 25.0, replenish_on_rebind=False)
    assert (rebound.anchor_model, rebound.default_model, rebound.baseline_usd) == (RANKED, RANKED, 0.0)
    assert rebound.history == (RouteVisit(RANKED, int(NOW + 2), 50_000),)


def test_failover_rebind_after_a_drifted_prefix_forgets_the_history() -> None:
    prior = seeded(history=(RouteVisit(CHEAP, int(NOW - 60), 9),), prefix_hash=7)
    _, rebound = _failed_over(prior, 25.0)
    assert rebound.history == (RouteVisit(RANKED, int(NOW + 2), 50_000),)


def test_decision_is_a_plain_tuple() -> None:
    d, _ = decide(facts_for(EXPENSIVE), None, None, rates, NOW)
    assert isinstance(d, RouteDecision)
    assert (d.overhead_pct, d.switch_decision, d.warm) == (0.0, None, False)
