"""The routing budget's arithmetic: what a switch costs, what staying costs, what a turn cost.

A switch off a warm model makes the candidate re-read the whole context at
its uncached rate, where staying would have re-read it at the anchor's
cached rate; that difference is the switch's cost.  The budget allows paid
switches while their running total stays within `max_switch_spend_pct`% of
what the session would have cost by never switching (`baseline`), grown each
warm turn by the context's cached read on the session's default model.
Provider caches are assumed real whenever the budget is on (most providers
cache without being asked).  Only input is priced for a switch: output
savings are unknowable before the answer is written.

Rates are USD per million tokens (`ModelRates`); a missing cached rate is
estimated as `input * cache_read_discount`.  The formulas keep Plano's order
of operations so the float results, and so the turn on which a switch first
becomes affordable, are the same.
"""

from __future__ import annotations

import math
import re

import msgspec

from plano_trio.config.routing_settings import RoutingBudgetSettings as RoutingBudget

from .rates import ModelRates

__all__ = [
    "DEFAULT_CACHE_READ_DISCOUNT",
    "MAX_SWITCH_SPEND_PCT_HEADER",
    "RoutingBudget",
    "budget_for_request",
    "cached_input_rate",
    "context_read_cost_usd",
    "parse_max_switch_spend_pct",
    "request_cost_usd",
    "switch_cost_usd",
    "turn_cost_usd",
]

MAX_SWITCH_SPEND_PCT_HEADER = "x-plano-max-switch-spend-pct"
DEFAULT_CACHE_READ_DISCOUNT = 0.1
TOKENS_PER_MILLION = 1_000_000.0

_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""A finite decimal as Rust's float parser reads one: no underscores, no non-ASCII digits, no hex."""


def parse_max_switch_spend_pct(raw: str) -> float | None:
    """A header's percentage in [0, 100], or None (Plano then ignores the header with a warning).

    Only visible ASCII (and tab) makes a header value readable at all;
    surrounding blanks are trimmed.
    """
    if any(not (" " <= c <= "~" or c == "\t") for c in raw):
        return None
    text = raw.strip(" \t")
    if _FLOAT.fullmatch(text) is None:
        return None
    pct = float(text)
    return pct if math.isfinite(pct) and 0.0 <= pct <= 100.0 else None


def budget_for_request(budget: RoutingBudget | None, header_value: str | None) -> RoutingBudget | None:
    """The configured budget with `x-plano-max-switch-spend-pct` applied.

    A valid header overrides the percentage, and turns the budget on with
    default settings when the configuration has none (the cost feed it needs
    is then the operator's business); an invalid header is ignored.
    """
    pct = None if header_value is None else parse_max_switch_spend_pct(header_value)
    if pct is None:
        return budget
    if budget is None:
        return RoutingBudget(max_switch_spend_pct=pct)
    return msgspec.structs.replace(budget, max_switch_spend_pct=pct)


def cached_input_rate(rates: ModelRates, cache_read_discount: float) -> float:
    """The feed's cache-read price, else `input * cache_read_discount`."""
    if rates.cached_input_per_m is not None:
        return rates.cached_input_per_m
    return rates.input_per_m * cache_read_discount


def switch_cost_usd(
    context_tokens: int,
    candidate_warm_tokens: int,
    anchor_read_rate: float,
    candidate_uncached_rate: float,
    candidate_cached_rate: float,
) -> float:
    """Input cost of moving the session to the candidate, less the cost of staying.

    The candidate re-reads what it still holds from an earlier visit at its
    cached rate and the rest at its uncached rate; staying re-reads the
    whole context at the anchor's rate.  Negative when switching is cheaper.
    """
    warm = min(candidate_warm_tokens, context_tokens)
    fresh = context_tokens - warm
    candidate_cost = (fresh * candidate_uncached_rate + warm * candidate_cached_rate) / TOKENS_PER_MILLION
    anchor_cost = context_tokens * anchor_read_rate / TOKENS_PER_MILLION
    return candidate_cost - anchor_cost


def context_read_cost_usd(context_tokens: int, rates: ModelRates, cache_read_discount: float) -> float:
    """One warm turn's read of the context at the model's cached rate: the baseline's growth."""
    return (context_tokens / TOKENS_PER_MILLION) * cached_input_rate(rates, cache_read_discount)


def request_cost_usd(
    rates: ModelRates,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    cache_creation_tokens: int = 0,
    prompt_includes_cached: bool = True,
    cache_read_discount: float = DEFAULT_CACHE_READ_DISCOUNT,
) -> tuple[float, float]:
    """`(input_usd, output_usd)` of one response from its usage, as Plano prices it.

    OpenAI-shaped usage counts cached tokens inside `prompt_tokens`
    (`prompt_includes_cached`: uncached = prompt - cached); Anthropic-shaped
    usage reports uncached input alone.  Cache reads are priced at the cached
    rate, cache writes at the plain input rate (no write premium).  Negative
    counts from a provider count as 0.
    """
    prompt, cached = max(0, prompt_tokens), max(0, cached_tokens)
    creation, completion = max(0, cache_creation_tokens), max(0, completion_tokens)
    read_rate = cached_input_rate(rates, cache_read_discount)
    uncached = max(0, prompt - cached) if prompt_includes_cached else prompt
    input_usd = (
        uncached * rates.input_per_m + cached * read_rate + creation * rates.input_per_m
    ) / TOKENS_PER_MILLION
    output_usd = completion * rates.output_per_m / TOKENS_PER_MILLION
    return input_usd, output_usd


def turn_cost_usd(
    rates: ModelRates,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int,
    cache_read_discount: float,
    *,
    cache_creation_tokens: int = 0,
    prompt_includes_cached: bool = True,
) -> float:
    """What the session's running cost grows by for one response: input plus output."""
    input_usd, output_usd = request_cost_usd(
        rates,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
        cache_creation_tokens=cache_creation_tokens,
        prompt_includes_cached=prompt_includes_cached,
        cache_read_discount=cache_read_discount,
    )
    return input_usd + output_usd
