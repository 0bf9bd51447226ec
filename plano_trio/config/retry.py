"""Retry and failover policy (`model_providers[].retry_policy`, listener `max_retries`), typed.

The shape follows the design proposed upstream for Plano (its config schema
and retry orchestrator), so configs written for it load unchanged.  Every
default below is that design's default.  The loader fills these Structs once;
the pure planner in `plano_trio.retry` reads them on each failed attempt and
nothing at all when a provider has no policy.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Strategy = Literal["same_model", "same_provider", "different_provider"]
"""Where the next attempt goes: the same model again, another model of the same provider
prefix (`openai/…`), or a model of another provider prefix."""

BlockScope = Literal["model", "provider"]
"""What a Retry-After or high-latency block covers: one model, or every model of its provider."""

ApplyTo = Literal["global", "request"]
"""Whether a block holds for every request of the process, or only for the rest of this one."""

BackoffApplyTo = Literal["same_model", "same_provider", "global"]
"""Which retries wait: only those to the same model, to the same provider, or all of them."""


class StatusRule(msgspec.Struct, frozen=True, kw_only=True):
    """`on_status_codes[]`: what to do on these statuses (ranges like `"502-504"` expanded)."""

    codes: frozenset[int]
    strategy: Strategy
    max_attempts: int


class TimeoutRule(msgspec.Struct, frozen=True, kw_only=True):
    """`on_timeout`: a provider that did not answer within the listener timeout."""

    strategy: Strategy
    max_attempts: int


class HighLatencyRule(msgspec.Struct, frozen=True, kw_only=True):
    """`on_high_latency`: fail over (and block) when a provider is slower than `threshold_ms`."""

    threshold_ms: int
    strategy: Strategy
    max_attempts: int
    block_duration_seconds: int
    measure: Literal["ttfb", "total"] = "ttfb"
    scope: BlockScope = "model"
    apply_to: ApplyTo = "global"
    min_triggers: int = 1
    trigger_window_seconds: int | None = None
    """Sliding window for counting triggers; required when `min_triggers > 1`."""


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """`backoff`: exponential delay between attempts; none at all when absent."""

    apply_to: BackoffApplyTo
    base_ms: int = 100
    max_ms: int = 5000
    jitter: bool = True


class RetryAfterHandling(msgspec.Struct, frozen=True, kw_only=True):
    """`retry_after_handling`: how a provider's `Retry-After` header blocks its model or provider."""

    scope: BlockScope = "model"
    apply_to: ApplyTo = "global"
    max_retry_after_seconds: int = 300


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """`model_providers[].retry_policy`; a provider without one is never retried."""

    fallback_models: tuple[str, ...] = ()
    """Tried first, in this order, before the other configured providers."""
    default_strategy: Strategy = "different_provider"
    default_max_attempts: int = 2
    on_status_codes: tuple[StatusRule, ...] = ()
    on_timeout: TimeoutRule | None = None
    """None: a timeout follows `default_strategy` / `default_max_attempts`."""
    on_high_latency: HighLatencyRule | None = None
    backoff: Backoff | None = None
    retry_after_handling: RetryAfterHandling = msgspec.field(default_factory=RetryAfterHandling)
    max_retry_duration_ms: int | None = None
    """Bound on all retries together, counted from the first retry."""
    fallbacks_only: bool = False
    """Never read from a config file: set for a routed request's ranked models (`retry.ranked`), whose
    failover walks `fallback_models` in order, whatever their provider, and nothing else."""
