"""The model listener's `max_retries` (Plano 0.4.36) as a retry policy.

Plano 0.4.36 hands these retries to Envoy, configured with
`retry_on: 5xx,connect-failure,refused-stream,reset,retriable-status-codes`,
`retriable_status_codes: [429, 500, 502, 503, 504]`, `num_retries:
max_retries` and a backoff of 0.5 s base, 5 s maximum.  So: the same
upstream again, on any 5xx (Envoy's `5xx` covers every 5xx, and a
connection that fails or resets, which the caller reports as 502), on 429,
and on a per-try timeout; at most `max_retries` retries in all; Envoy's
jittered backoff; `Retry-After` not looked at (Envoy honours it only when
told to, and Plano does not tell it).

Use the result with `RetryPlan(..., only_listed_statuses=True)`, which
selects those Envoy semantics (listed statuses only, one shared attempt
counter, Envoy's full-jitter backoff).
"""

from __future__ import annotations

import functools

from plano_trio.config.retry import Backoff, RetryAfterHandling, RetryPolicy, StatusRule, TimeoutRule

ENVOY_RETRIED_STATUSES = frozenset({429, *range(500, 600)})
"""Envoy's `5xx` retry condition plus the retriable status 429."""


@functools.lru_cache(maxsize=64)
def listener_policy(max_retries: int) -> RetryPolicy:
    """The policy for a listener's `max_retries` (cached: the same object for the same number, so a
    plan built from it on every request reuses its precomputed candidates)."""
    attempts = max(max_retries, 0) + 1
    return RetryPolicy(
        default_strategy="same_model",
        default_max_attempts=attempts,
        on_status_codes=(
            StatusRule(codes=ENVOY_RETRIED_STATUSES, strategy="same_model", max_attempts=attempts),
        ),
        on_timeout=TimeoutRule(strategy="same_model", max_attempts=attempts),
        backoff=Backoff(apply_to="same_model", base_ms=500, max_ms=5000, jitter=True),
        retry_after_handling=RetryAfterHandling(max_retry_after_seconds=0),
    )
