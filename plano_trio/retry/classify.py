"""Which rule of a retry policy governs a failure, and which attempt counter it counts against.

As Plano's proposed design resolves them:

- a status takes the first `on_status_codes` rule that lists it, else
  `default_strategy` / `default_max_attempts`;
- a timeout takes `on_timeout`, else the defaults;
- a high-latency failure takes `on_high_latency`, else the defaults.

Attempts are counted per classification: one counter per HTTP status, one
for all timeouts, one for all high-latency failures.  A counter includes the
failed attempt that is being counted, the very first request included, and
the request stops when a counter reaches its `max_attempts`: so
`max_attempts: 3` on 429 allows three attempts that end in 429 (two
retries), and `max_attempts: 1` means that classification is not retried.
This is how the proposed orchestrator counts (its schema text says "max
retry attempts", but its loop stops at `count >= max_attempts` with the
first attempt counted).
"""

from __future__ import annotations

from plano_trio.config.retry import RetryPolicy, Strategy
from plano_trio.retry.outcome import Failure

CounterKey = tuple[str, int]
"""("status", 429), ("timeout", 0), ("high_latency", 0), or ("any", 0) when all share one counter."""

SHARED_COUNTER: CounterKey = ("any", 0)


def status_of(failure: Failure) -> int:
    """The HTTP status of a status failure; an unknown one is a bad gateway (502)."""
    return failure.status if failure.status is not None else 502


def resolve(failure: Failure, policy: RetryPolicy) -> tuple[Strategy, int]:
    """(strategy, max_attempts) for this failure under `policy`."""
    if failure.kind == "status":
        status = status_of(failure)
        for rule in policy.on_status_codes:
            if status in rule.codes:
                return rule.strategy, rule.max_attempts
    elif failure.kind == "timeout":
        if policy.on_timeout is not None:
            return policy.on_timeout.strategy, policy.on_timeout.max_attempts
    elif policy.on_high_latency is not None:
        return policy.on_high_latency.strategy, policy.on_high_latency.max_attempts
    return policy.default_strategy, policy.default_max_attempts


def counter_key(failure: Failure) -> CounterKey:
    """The attempt counter this failure counts against (per status; timeouts; high latency)."""
    if failure.kind == "status":
        return ("status", status_of(failure))
    return (failure.kind, 0)
