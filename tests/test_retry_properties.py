"""Properties of the retry planner for arbitrary policies, configs and sequences of failures.

Whatever happens, `next`:
- never sends to a model this request already tried, nor to a blocked one
  (except `same_model`, which retries the model that failed, after waiting
  out its Retry-After block);
- never lets a classification's attempts exceed its `max_attempts`, nor the
  retries outlast `max_retry_duration_ms`;
- never waits less than 0 or longer than the larger of `backoff.max_ms`
  and what is left of the target's (capped) Retry-After block.
The block maps are read directly here (not through the planner), so the
check does not trust the code it checks.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from plano_trio.config.retry import (
    Backoff,
    HighLatencyRule,
    RetryAfterHandling,
    RetryPolicy,
    StatusRule,
    TimeoutRule,
)
from plano_trio.config.schema import ModelProvider
from plano_trio.retry import BlockState, Exhausted, Failure, Retry, RetryPlan
from plano_trio.retry.blocks import Blocks, block_key
from plano_trio.retry.classify import counter_key, resolve
from tests.retry_support import ALL, GPT4O

NAMES = [p.name for p in ALL] + ["xai/grok-9"]

strategies_ = st.sampled_from(["same_model", "same_provider", "different_provider"])
scopes = st.sampled_from(["model", "provider"])
apply_tos = st.sampled_from(["global", "request"])
attempts_ = st.integers(min_value=1, max_value=4)

status_rules = st.builds(
    StatusRule,
    codes=st.frozensets(st.sampled_from([429, 500, 502, 503, 504]), min_size=1),
    strategy=strategies_,
    max_attempts=attempts_,
)
latency_rules = st.builds(
    HighLatencyRule,
    threshold_ms=st.integers(1, 5000),
    strategy=strategies_,
    max_attempts=attempts_,
    block_duration_seconds=st.integers(1, 120),
    measure=st.sampled_from(["ttfb", "total"]),
    scope=scopes,
    apply_to=apply_tos,
    min_triggers=st.integers(1, 3),
    trigger_window_seconds=st.one_of(st.none(), st.integers(1, 60)),
)
backoffs = st.builds(
    Backoff,
    apply_to=st.sampled_from(["same_model", "same_provider", "global"]),
    base_ms=st.integers(1, 1000),
    max_ms=st.integers(1000, 10_000),
    jitter=st.booleans(),
)
policies = st.builds(
    RetryPolicy,
    fallback_models=st.lists(st.sampled_from(NAMES), max_size=4).map(tuple),
    default_strategy=strategies_,
    default_max_attempts=attempts_,
    on_status_codes=st.lists(status_rules, max_size=3).map(tuple),
    on_timeout=st.one_of(st.none(), st.builds(TimeoutRule, strategy=strategies_, max_attempts=attempts_)),
    on_high_latency=st.one_of(st.none(), latency_rules),
    backoff=st.one_of(st.none(), backoffs),
    retry_after_handling=st.builds(
        RetryAfterHandling, scope=scopes, apply_to=apply_tos, max_retry_after_seconds=st.integers(0, 600)
    ),
    max_retry_duration_ms=st.one_of(st.none(), st.integers(0, 60_000)),
)
failures = st.one_of(
    st.builds(
        Failure,
        kind=st.just("status"),
        status=st.sampled_from([400, 404, 429, 500, 502, 503, 504]),
        retry_after_s=st.one_of(st.none(), st.floats(0, 2000)),
    ),
    st.builds(Failure, kind=st.just("timeout"), measured_ms=st.one_of(st.none(), st.integers(0, 60_000))),
    st.builds(Failure, kind=st.just("high_latency"), measured_ms=st.integers(0, 60_000)),
)
configs = st.lists(st.sampled_from(ALL[1:]), unique=True).map(lambda rest: (GPT4O, *rest))


def _maps(policy_apply_to: str, blocks: BlockState, retry_plan: RetryPlan) -> Blocks | None:
    return blocks if policy_apply_to == "global" else retry_plan._local


def _retry_after_left(
    policy: RetryPolicy, blocks: BlockState, plan_: RetryPlan, target: ModelProvider, now: float
) -> float:
    """Seconds left on the Retry-After block covering `target`, capped as the policy caps waits."""
    handling = policy.retry_after_handling
    maps = _maps(handling.apply_to, blocks, plan_)
    left = None if maps is None else maps.retry_after.remaining(block_key(target, handling.scope), now)
    return min(left or 0.0, float(handling.max_retry_after_seconds))


def _latency_blocked(
    policy: RetryPolicy, blocks: BlockState, plan_: RetryPlan, target: ModelProvider, now: float
) -> bool:
    rule = policy.on_high_latency
    if rule is None:
        return False
    maps = _maps(rule.apply_to, blocks, plan_)
    return maps is not None and maps.latency.remaining(block_key(target, rule.scope), now) is not None


@settings(max_examples=400, deadline=None)
@given(
    policy=policies,
    providers=configs,
    steps=st.lists(st.tuples(failures, st.floats(0, 100)), min_size=1, max_size=12),
    random=st.floats(0, 0.999),
    prewarm=st.lists(st.tuples(st.sampled_from(ALL), st.floats(0, 50)), max_size=3),
)
def test_next_respects_attempted_blocks_bounds_and_budget(
    policy: RetryPolicy,
    providers: tuple[ModelProvider, ...],
    steps: list[tuple[Failure, float]],
    random: float,
    prewarm: list[tuple[ModelProvider, float]],
) -> None:
    blocks = BlockState()
    for blocked, seconds in prewarm:  # other requests' Retry-After blocks
        blocks.retry_after.extend(block_key(blocked, policy.retry_after_handling.scope), seconds, 0.0)
    retry_plan = RetryPlan(GPT4O, policy, providers, blocks, now=0.0, random=lambda: random)
    now = 0.0
    first = retry_plan.first(now)
    if isinstance(first, Exhausted):
        assert first.attempts == () and first.retry_after_s is not None and first.retry_after_s >= 1
        return
    assert first is GPT4O or (
        not _retry_after_left(policy, blocks, retry_plan, first, now)
        and not _latency_blocked(policy, blocks, retry_plan, first, now)
    )
    target: ModelProvider = first
    tried = [target.name]
    counts: dict[tuple[str, int], int] = {}
    first_failure: float | None = None
    backoff_cap_s = policy.backoff.max_ms / 1000 if policy.backoff else 0.0
    for failure, elapsed in steps:
        now += elapsed
        first_failure = now if first_failure is None else first_failure
        key = counter_key(failure)
        counts[key] = counts.get(key, 0) + 1
        decision = retry_plan.next(target, failure, now)
        assert len(retry_plan.attempts) == len(tried)
        if isinstance(decision, Exhausted):
            assert decision.attempts == tuple(zip(tried, (f for _, f in retry_plan.attempts), strict=True))
            return
        strategy, max_attempts = resolve(failure, policy)
        assert counts[key] < max_attempts
        waited_out = _retry_after_left(policy, blocks, retry_plan, decision.target, now)
        assert 0.0 <= decision.delay_s <= max(backoff_cap_s, waited_out)
        if policy.max_retry_duration_ms is not None:
            assert (now - first_failure + decision.delay_s) * 1000 < policy.max_retry_duration_ms
        if strategy == "same_model":
            assert decision.target is target
            assert decision.delay_s >= _retry_after_left(policy, blocks, retry_plan, target, now)
        else:
            assert decision.target.name not in tried
            assert decision.target is not GPT4O
            assert not _retry_after_left(policy, blocks, retry_plan, decision.target, now)
        assert not _latency_blocked(policy, blocks, retry_plan, decision.target, now)
        now += decision.delay_s
        target = decision.target
        tried.append(target.name)


@settings(max_examples=200, deadline=None)
@given(policy=policies, n=st.integers(1, 30), random=st.floats(0, 0.999))
def test_same_failure_forever_ends_within_its_max_attempts(
    policy: RetryPolicy, n: int, random: float
) -> None:
    retry_plan = RetryPlan(GPT4O, policy, ALL, BlockState(), now=0.0, random=lambda: random)
    failure = Failure("status", 503)
    _, max_attempts = resolve(failure, policy)
    target = GPT4O
    for step in range(n):
        decision = retry_plan.next(target, failure, float(step))
        if isinstance(decision, Exhausted):
            break
        target = decision.target
    assert len(retry_plan.attempts) <= max_attempts


@settings(max_examples=200, deadline=None)
@given(
    window=st.integers(1, 30),
    min_triggers=st.integers(1, 4),
    events=st.lists(st.floats(0, 1000), max_size=40).map(sorted),
)
def test_block_state_stays_small(window: int, min_triggers: int, events: list[float]) -> None:
    blocks = BlockState()
    for index, at in enumerate(events):
        key = block_key(ALL[index % len(ALL)], "model")
        blocks.triggers.hit(key, at, min_triggers, window)
        blocks.latency.extend(key, at + window, at)
        assert len(blocks.triggers) <= len(ALL)
        assert len(blocks.latency) <= len(ALL)
    assert all(len(seen) <= min_triggers for seen in blocks.triggers._events.values())


def test_retry_is_a_plain_value() -> None:
    assert Retry(GPT4O, 0.0)._replace(delay_s=1.0).delay_s == 1.0
