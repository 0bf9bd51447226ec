"""Backoff delays between attempts: exponential, capped, jittered.

Two flavours, because two configs ask for them:

- `policy_delay_s` is Plano's proposed `retry_policy.backoff`: `base_ms * 2**n`
  capped at `max_ms`, and with `jitter` multiplied by a random factor in
  [0.5, 1.0), so that many clients failing together do not retry together but
  each still waits at least half the nominal delay;
- `envoy_delay_s` is what Envoy does for the listener's `max_retries` (Plano
  0.4.36 delegates those retries to Envoy): retry N waits a uniformly random
  time in [0, (2**N - 1) * base), capped at `max_ms` (full jitter).

Whether a given retry waits at all (`backoff.apply_to`) is decided by
`applies`: only retries to the same model, to the same provider, or all.
"""

from __future__ import annotations

from collections.abc import Callable

from plano_trio.config.retry import Backoff
from plano_trio.config.schema import ModelProvider

_MAX_SHIFT = 62
"""2**62 * any sane base_ms already exceeds every max_ms; larger shifts only waste big ints."""


def applies(backoff: Backoff, failed: ModelProvider, target: ModelProvider) -> bool:
    """Whether a retry from `failed` to `target` waits, per `backoff.apply_to`."""
    if backoff.apply_to == "same_model":
        return target.name == failed.name
    if backoff.apply_to == "same_provider":
        return target.prefix == failed.prefix
    return True


def policy_delay_s(backoff: Backoff, retry_index: int, random: Callable[[], float]) -> float:
    """Delay before retry number `retry_index` (0 for the first retry), in seconds.

    Whole milliseconds, as the design computes them: `min(base * 2**n, max)`,
    then with jitter truncated after multiplying by `0.5 + random() / 2`.
    """
    nominal = min(backoff.base_ms << min(max(retry_index, 0), _MAX_SHIFT), backoff.max_ms)
    if backoff.jitter:
        nominal = int(nominal * (0.5 + random() * 0.5))
    return max(nominal, 0) / 1000.0


def envoy_delay_s(backoff: Backoff, retry_number: int, random: Callable[[], float]) -> float:
    """Envoy's jittered exponential backoff for retry `retry_number` (1 for the first), in seconds."""
    ceiling = ((1 << min(max(retry_number, 1), _MAX_SHIFT)) - 1) * backoff.base_ms
    drawn = int(random() * ceiling) if backoff.jitter else ceiling
    return max(min(drawn, backoff.max_ms), 0) / 1000.0
