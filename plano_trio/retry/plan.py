"""The retry planner: for one request, where each attempt goes and how long to wait before it.

Sans-I/O, like the translators: the caller sends, measures and sleeps; the
plan is told what happened (`next(failed, Failure(...), now)`) and answers
`Retry(target, delay_s)` or `Exhausted(...)`.  Time comes in as `now`
(monotonic seconds) and randomness as `random()`, so every decision is a
function of its inputs and tests need no clock.

The semantics are those of Plano's proposed retry design, so configs
written for it behave the same; where plano-trio chooses differently it says
so below and in `candidates` (config order instead of a random pick):

- the primary's policy governs the whole request, whichever model failed;
- `same_model` retries the model that just failed (the design retries the
  primary, which after a failover to another model is already spent and
  ends the request);
- a `Retry-After` delays only a retry that the resulting block covers (the
  same model, or the same provider with `scope: provider`); a failover to
  another model goes at once (the design sleeps out the Retry-After before
  any retry, even one to another provider);
- the delay is never longer than `max_retry_after_seconds` (the design
  caps the block but sleeps the uncapped header value);
- `retry_after_handling` always applies, with its defaults when omitted, as
  the config schema describes (the design's selector only looks at
  Retry-After blocks when the key is written out);
- a latency block with `apply_to: request` is also counted per request
  (the design counts triggers process-wide in both cases).

With `only_listed_statuses=True` the plan follows Envoy's retry semantics for
the listener's `max_retries` (see `listener_policy`): only the statuses the
policy lists are retried, every failure counts against one shared attempt
counter (Envoy's `num_retries` is a total), and backoff is Envoy's full
jitter.
"""

from __future__ import annotations

import math
import random as _random_module
from collections.abc import Callable, Sequence

from plano_trio.config.retry import RetryPolicy, Strategy
from plano_trio.config.schema import ModelProvider
from plano_trio.retry import backoff as _backoff
from plano_trio.retry.blocks import Blocks, BlockState, block_key
from plano_trio.retry.candidates import Candidates, compute
from plano_trio.retry.classify import SHARED_COUNTER, CounterKey, counter_key, resolve, status_of
from plano_trio.retry.outcome import Attempt, Exhausted, Failure, Retry, describe_attempts

_DEFAULT_TRIGGER_WINDOW_S = 60
"""Sliding window for latency triggers when the policy gives none (the design's default)."""

Blocked = tuple[str, float]
"""("Retry-After" | "high latency", seconds left)."""


class RetryPlan:
    """The retry decisions for one request whose provider has a retry policy.

    `attempts` lists every failed attempt in order, as (provider name, failure);
    `created_at` is the `now` the plan was made at (for the caller's logs).
    `max_attempts` counts attempts per classification, the first request
    included (see `plano_trio.retry.classify`).  `max_retry_duration_ms` is
    counted from the first failure, i.e. it bounds the retries (their sends
    and their waits), not the original request; a retry whose delay would end
    past it is not made.
    """

    __slots__ = (
        "_attempted",
        "_blocks",
        "_candidates",
        "_counts",
        "_envoy",
        "_local",
        "_policy",
        "_random",
        "_retry_start",
        "attempts",
        "created_at",
    )

    def __init__(
        self,
        primary: ModelProvider,
        policy: RetryPolicy,
        providers: Sequence[ModelProvider],
        blocks: BlockState,
        *,
        now: float,
        random: Callable[[], float] = _random_module.random,
        only_listed_statuses: bool = False,
    ) -> None:
        key = (id(primary), id(policy))
        candidates = blocks.cached_candidates(key)
        if candidates is None or not candidates.matches(primary, policy, providers):
            candidates = compute(primary, policy, providers)
            blocks.cache_candidates(key, candidates)
        self._candidates: Candidates = candidates
        self._policy = policy
        self._blocks = blocks
        self._random = random
        self._envoy = only_listed_statuses
        self._local: Blocks | None = None
        """Blocks with `apply_to: request`; made on the first one."""
        self._counts: dict[CounterKey, int] = {}
        self._attempted: set[str] = set()
        self._retry_start: float | None = None
        self.attempts: list[Attempt] = []
        self.created_at = now

    # -- questions the caller asks -------------------------------------------------------------

    @property
    def records_slow_answers(self) -> bool:
        """With `on_high_latency` measured on the total time: completed answers are timed."""
        rule = self._policy.on_high_latency
        return rule is not None and rule.measure == "total"

    @property
    def ttfb_threshold_s(self) -> float | None:
        """With `on_high_latency` measured on TTFB: how long one attempt may wait for its first byte."""
        rule = self._policy.on_high_latency
        if rule is None or rule.measure != "ttfb":
            return None
        return rule.threshold_ms / 1000.0

    def could_fail_over_slow(self, current: ModelProvider, now: float) -> bool:
        """Whether a high-latency failure of `current` would lead to another attempt (no side effects).

        The caller stops waiting for a provider's first byte at the TTFB
        threshold only when this is true: cutting an attempt that no other
        attempt could replace would turn a slow answer into none.
        """
        failure = Failure("high_latency")
        strategy, max_attempts = resolve(failure, self._policy)
        key = SHARED_COUNTER if self._envoy else counter_key(failure)
        if self._counts.get(key, 0) + 1 >= max_attempts or self._budget_spent(now, 0.0):
            return False
        if strategy == "same_model":
            return self._latency_left(current, now) is None
        attempted = self._attempted
        self._attempted = {*attempted, current.name}
        try:
            picked, _ = self._pick(strategy, now)
        finally:
            self._attempted = attempted
        return picked is not None

    def retries_status(self, status: int) -> bool:
        """Whether an answer with this status is a failure to retry (else it goes to the client as is).

        Under a retry policy every 4xx and 5xx is retried, as the design's
        error detector does: `on_status_codes` only picks the strategy.  With
        `only_listed_statuses`, only the listed codes are.
        """
        if self._envoy:
            return status in self._candidates.listed_statuses
        return 400 <= status < 600

    def first(self, now: float) -> ModelProvider | Exhausted:
        """The target of the first attempt.

        The primary, unless a Retry-After or latency block covers it (only a
        process-wide block can: a new request has none of its own).  Then the
        first eligible candidate for `default_strategy` (see `candidates`);
        with `same_model` there is none, and the request is refused with the
        time the block has left.
        """
        primary = self._candidates.primary
        blocked = self._blocked(primary, now)
        if blocked is None:
            return primary
        strategy = self._policy.default_strategy
        if strategy == "same_model":
            return self._refuse_blocked(blocked)
        target, shortest = self._pick(strategy, now)
        if target is not None:
            return target
        return self._refuse_blocked(blocked if shortest is None else _shorter(blocked, shortest))

    # -- the decision after a failure ----------------------------------------------------------

    def next(self, failed: ModelProvider, failure: Failure, now: float) -> Retry | Exhausted:
        """Record that the attempt on `failed` failed, then decide the next one."""
        self.attempts.append((failed.name, failure))
        self._attempted.add(failed.name)
        if failure.kind == "status" and not self.retries_status(status_of(failure)):
            return self._exhausted(
                f"{describe_attempts(self.attempts)}; HTTP {status_of(failure)} is not retried"
            )
        self._record_retry_after(failed, failure, now)
        self._record_latency_failure(failed, failure, now)

        strategy, max_attempts = resolve(failure, self._policy)
        key = SHARED_COUNTER if self._envoy else counter_key(failure)
        count = self._counts[key] = self._counts.get(key, 0) + 1
        if count >= max_attempts:
            return self._exhausted(describe_attempts(self.attempts))
        if self._budget_spent(now, 0.0):
            return self._budget_exhausted()

        if strategy == "same_model":
            target, wait_s = failed, self._retry_after_left(failed, now)
            latency = self._latency_left(failed, now)
            if latency is not None:
                return self._refuse_blocked(("high latency", latency))
        else:
            picked, shortest = self._pick(strategy, now)
            if picked is None:
                if shortest is not None:
                    return self._refuse_blocked(shortest)
                return self._exhausted(
                    f"{describe_attempts(self.attempts)}; no model left to try ({strategy})"
                )
            target, wait_s = picked, 0.0

        delay_s = max(self._backoff_s(failed, target), wait_s)
        if self._budget_spent(now, delay_s):
            return self._budget_exhausted()
        return Retry(target, delay_s)

    def record_slow_success(self, target: ModelProvider, measured_ms: int, now: float) -> None:
        """A slow answer that completed (measure `total`, or a stream already under way).

        It is delivered as it is (fail-open: a slow answer beats none), but
        counts toward a latency block, so later requests avoid a provider that
        keeps being slow.
        """
        rule = self._policy.on_high_latency
        if rule is not None and measured_ms > rule.threshold_ms:
            self._record_latency(target, now)

    # -- selection ------------------------------------------------------------------------------

    def _pick(self, strategy: Strategy, now: float) -> tuple[ModelProvider | None, Blocked | None]:
        """The first candidate not yet attempted and not blocked; else the shortest block seen."""
        pool = (
            self._candidates.same_provider
            if strategy == "same_provider"
            else self._candidates.different_provider
        )
        shortest: Blocked | None = None
        for candidate in pool:
            if candidate.name in self._attempted:
                continue
            blocked = self._blocked(candidate, now)
            if blocked is None:
                return candidate, None
            shortest = blocked if shortest is None else _shorter(shortest, blocked)
        return None, shortest

    def _blocked(self, target: ModelProvider, now: float) -> Blocked | None:
        """Whether a Retry-After or latency block of this policy's scope covers `target`."""
        retry_after = self._retry_after_left(target, now)
        if retry_after:
            return ("Retry-After", retry_after)
        latency = self._latency_left(target, now)
        return None if latency is None else ("high latency", latency)

    def _retry_after_left(self, target: ModelProvider, now: float) -> float:
        """Seconds left on a Retry-After block covering `target` (0 when none), capped by the policy."""
        handling = self._policy.retry_after_handling
        maps = self._blocks if handling.apply_to == "global" else self._local
        if maps is None or not maps.retry_after:
            return 0.0
        left = maps.retry_after.remaining(block_key(target, handling.scope), now)
        return 0.0 if left is None else min(left, float(handling.max_retry_after_seconds))

    def _latency_left(self, target: ModelProvider, now: float) -> float | None:
        """Seconds left on a latency block covering `target`, or None."""
        rule = self._policy.on_high_latency
        if rule is None:
            return None
        maps = self._blocks if rule.apply_to == "global" else self._local
        if maps is None or not maps.latency:
            return None
        return maps.latency.remaining(block_key(target, rule.scope), now)

    # -- recording ------------------------------------------------------------------------------

    def _local_blocks(self) -> Blocks:
        if self._local is None:
            self._local = Blocks()
        return self._local

    def _record_retry_after(self, failed: ModelProvider, failure: Failure, now: float) -> None:
        if failure.kind != "status" or not failure.retry_after_s or failure.retry_after_s <= 0:
            return
        handling = self._policy.retry_after_handling
        seconds = min(failure.retry_after_s, float(handling.max_retry_after_seconds))
        maps = self._blocks if handling.apply_to == "global" else self._local_blocks()
        maps.retry_after.extend(block_key(failed, handling.scope), now + seconds, now)

    def _record_latency_failure(self, failed: ModelProvider, failure: Failure, now: float) -> None:
        """A too-slow attempt counts toward a latency block; so does a timeout past the threshold."""
        rule = self._policy.on_high_latency
        if rule is None:
            return
        if failure.kind == "high_latency" or (
            failure.kind == "timeout"
            and failure.measured_ms is not None
            and failure.measured_ms > rule.threshold_ms
        ):
            self._record_latency(failed, now)

    def _record_latency(self, target: ModelProvider, now: float) -> None:
        rule = self._policy.on_high_latency
        assert rule is not None
        maps = self._blocks if rule.apply_to == "global" else self._local_blocks()
        key = block_key(target, rule.scope)
        window = rule.trigger_window_seconds
        if maps.triggers.hit(
            key, now, rule.min_triggers, _DEFAULT_TRIGGER_WINDOW_S if window is None else window
        ):
            maps.latency.extend(key, now + rule.block_duration_seconds, now)

    # -- delays and budget ----------------------------------------------------------------------

    def _backoff_s(self, failed: ModelProvider, target: ModelProvider) -> float:
        config = self._policy.backoff
        if config is None or not _backoff.applies(config, failed, target):
            return 0.0
        if self._envoy:
            return _backoff.envoy_delay_s(config, len(self.attempts), self._random)
        return _backoff.policy_delay_s(config, len(self.attempts) - 1, self._random)

    def _budget_spent(self, now: float, delay_s: float) -> bool:
        """Whether retrying would outlast `max_retry_duration_ms` (its clock starts at the first failure)."""
        limit_ms = self._policy.max_retry_duration_ms
        if limit_ms is None:
            return False
        if self._retry_start is None:
            self._retry_start = now
        return (now - self._retry_start + delay_s) * 1000.0 >= limit_ms

    # -- answers --------------------------------------------------------------------------------

    def _exhausted(self, reason: str, blocked_s: float | None = None) -> Exhausted:
        retry_after: int | None = None
        if blocked_s is not None:
            retry_after = max(1, math.ceil(blocked_s))
        elif self.attempts and self.attempts[-1][1].retry_after_s:
            cap = float(self._policy.retry_after_handling.max_retry_after_seconds)
            seconds = min(self.attempts[-1][1].retry_after_s or 0.0, cap)
            retry_after = math.ceil(seconds) if seconds > 0 else None
        return Exhausted(tuple(self.attempts), reason, retry_after)

    def _budget_exhausted(self) -> Exhausted:
        limit = self._policy.max_retry_duration_ms
        return self._exhausted(f"retry budget of {limit} ms exhausted; {describe_attempts(self.attempts)}")

    def _refuse_blocked(self, blocked: Blocked) -> Exhausted:
        kind, left = blocked
        text = f"every candidate is blocked ({kind}) for {max(1, math.ceil(left))} more seconds"
        if self.attempts:
            text = f"{text}; {describe_attempts(self.attempts)}"
        return self._exhausted(text, left)


def _shorter(a: Blocked, b: Blocked) -> Blocked:
    """The block that ends first."""
    return a if a[1] <= b[1] else b
