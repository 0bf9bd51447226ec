"""Where a request may fail over to, precomputed once per primary provider.

Selection walks a fixed order: the primary's `fallback_models` first, in the
order written (names not configured, wildcard entries and the primary itself
are left out), then every other configured provider in config order (wildcard
and internal providers left out: neither is a concrete model a client asked
for).  Plano's proposed design picks at random among the providers of that
second group; plano-trio takes them in config order, so that which model
answers is predictable and testable.

The order is then split by strategy, relative to the primary's provider
prefix (as the design does, whichever model failed last): `same_provider`
keeps models of the primary's prefix, `different_provider` the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from plano_trio.config.retry import RetryPolicy
from plano_trio.config.schema import ModelProvider


class Candidates(NamedTuple):
    """What the planner needs from the config for one (primary, policy, providers)."""

    primary: ModelProvider
    policy: RetryPolicy
    providers: Sequence[ModelProvider]
    same_provider: tuple[ModelProvider, ...]
    different_provider: tuple[ModelProvider, ...]
    listed_statuses: frozenset[int]
    """Every status named in `on_status_codes`."""

    def matches(
        self, primary: ModelProvider, policy: RetryPolicy, providers: Sequence[ModelProvider]
    ) -> bool:
        """True when this was computed from these very objects (identity: no deep compare per request)."""
        return self.primary is primary and self.policy is policy and self.providers is providers


def ordered(
    primary: ModelProvider, policy: RetryPolicy, providers: Sequence[ModelProvider]
) -> tuple[ModelProvider, ...]:
    """Every failover candidate, fallbacks first then config order, each once, never the primary."""
    by_name = {p.name: p for p in providers}
    chosen: dict[str, ModelProvider] = {}
    for name in policy.fallback_models:
        found = by_name.get(name)
        if found is not None and not found.is_wildcard and name != primary.name:
            chosen.setdefault(name, found)
    if policy.fallbacks_only:
        return tuple(chosen.values())
    for provider in providers:
        if provider.is_wildcard or provider.internal or provider.name == primary.name:
            continue
        chosen.setdefault(provider.name, provider)
    return tuple(chosen.values())


def compute(primary: ModelProvider, policy: RetryPolicy, providers: Sequence[ModelProvider]) -> Candidates:
    """Precompute the candidate lists and the listed statuses for one primary."""
    everyone = ordered(primary, policy, providers)
    prefix = primary.prefix
    listed: frozenset[int] = frozenset().union(*(rule.codes for rule in policy.on_status_codes))
    if policy.fallbacks_only:  # a ranking has no provider preference: either strategy walks it in order
        same = different = everyone
    else:
        same = tuple(p for p in everyone if p.prefix == prefix)
        different = tuple(p for p in everyone if p.prefix != prefix)
    return Candidates(
        primary=primary,
        policy=policy,
        providers=providers,
        same_provider=same,
        different_provider=different,
        listed_statuses=listed,
    )
