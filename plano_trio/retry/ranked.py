"""Failover along a routing decision's ranked models.

The router names a route; the route's `models`, ranked by cost or latency,
are the request's targets in order.  Plano hands the first one to its
gateway and leaves the rest to the client.  plano-trio tries the next model
of the ranking when one fails before its first byte, as Envoy's retry
conditions would (429, any 5xx, a connect failure or reset, a timeout), and
nothing else: not the other configured providers, which the router did not
choose.  A top-ranked provider with a `retry_policy` of its own keeps its
policy instead (the gateway decides which applies).
"""

from __future__ import annotations

import functools

from plano_trio.config.retry import RetryPolicy, StatusRule, TimeoutRule
from plano_trio.retry.listener import ENVOY_RETRIED_STATUSES


@functools.lru_cache(maxsize=1024)
def ranked_policy(alternatives: tuple[str, ...]) -> RetryPolicy:
    """The policy that walks `alternatives` (the ranking after its first model), each tried once.

    Cached, so the same ranking gives the same policy object and the plan reuses its precomputed
    candidates.  Use it with `RetryPlan(..., only_listed_statuses=True)`: only the listed statuses
    are failures, and one counter bounds the attempts at one per ranked model.
    """
    attempts = len(alternatives) + 1
    return RetryPolicy(
        fallback_models=alternatives,
        fallbacks_only=True,
        default_strategy="different_provider",
        default_max_attempts=attempts,
        on_status_codes=(
            StatusRule(codes=ENVOY_RETRIED_STATUSES, strategy="different_provider", max_attempts=attempts),
        ),
        on_timeout=TimeoutRule(strategy="different_provider", max_attempts=attempts),
    )
