"""The retry planner's decisions, table by table: selection, classification, counting, budget.

Drives `RetryPlan` with plain numbers for time and a fixed random, as the
gateway would after each failed attempt.  The unit-level intent of Plano's
failover tests is here too: a 429 fails over once and the fallback answers;
a success needs no decision at all; the attempt bound holds.
"""

from __future__ import annotations

import pytest

from plano_trio.config.retry import (
    Backoff,
    HighLatencyRule,
    RetryAfterHandling,
    RetryPolicy,
    StatusRule,
    Strategy,
    TimeoutRule,
)
from plano_trio.config.schema import ModelProvider
from plano_trio.retry import BlockState, Exhausted, Failure, Retry
from tests.retry_support import (
    ALL,
    CLAUDE,
    GEMINI,
    GPT4O,
    HTTP_429,
    HTTP_503,
    INTERNAL,
    MINI,
    MISTRAL,
    TIMEOUT,
    WILDCARD,
    plan,
    provider,
    run,
)


def rule(codes: set[int], strategy: Strategy, max_attempts: int) -> StatusRule:
    return StatusRule(codes=frozenset(codes), strategy=strategy, max_attempts=max_attempts)


# -- selection --------------------------------------------------------------------------------------

SELECTION = [
    pytest.param(
        RetryPolicy(default_max_attempts=9),
        [HTTP_503] * 5,
        ["openai/gpt-4o", "anthropic/claude-3-5-sonnet", "mistral/mistral-large", "gemini/gemini-pro"],
        id="different_provider: config order, other prefixes only, wildcard and internal left out",
    ),
    pytest.param(
        RetryPolicy(
            fallback_models=("gemini/gemini-pro", "anthropic/claude-3-5-sonnet"), default_max_attempts=9
        ),
        [HTTP_503] * 5,
        ["openai/gpt-4o", "gemini/gemini-pro", "anthropic/claude-3-5-sonnet", "mistral/mistral-large"],
        id="fallback_models first, in their order, then the rest in config order",
    ),
    pytest.param(
        RetryPolicy(
            fallback_models=("openai/gpt-4o-mini", "anthropic/claude-3-5-sonnet"),
            default_max_attempts=9,
        ),
        [HTTP_503] * 5,
        ["openai/gpt-4o", "anthropic/claude-3-5-sonnet", "mistral/mistral-large", "gemini/gemini-pro"],
        id="a fallback of the primary's own provider is skipped under different_provider",
    ),
    pytest.param(
        RetryPolicy(default_strategy="same_provider", default_max_attempts=9),
        [HTTP_503] * 3,
        ["openai/gpt-4o", "openai/gpt-4o-mini"],
        id="same_provider: only the primary's prefix, each model once",
    ),
    pytest.param(
        RetryPolicy(default_strategy="same_model", default_max_attempts=3),
        [HTTP_503] * 3,
        ["openai/gpt-4o", "openai/gpt-4o", "openai/gpt-4o"],
        id="same_model: the same model again",
    ),
    pytest.param(
        RetryPolicy(
            fallback_models=("xai/grok-9", "openai/*", "mistral/mistral-large"), default_max_attempts=3
        ),
        [HTTP_503] * 2,
        ["openai/gpt-4o", "mistral/mistral-large", "anthropic/claude-3-5-sonnet"],
        id="fallback not configured (or a wildcard) is skipped",
    ),
    pytest.param(
        RetryPolicy(
            default_max_attempts=9,
            on_status_codes=(rule({429}, "same_model", 3), rule({503}, "different_provider", 3)),
        ),
        [HTTP_429, HTTP_503, HTTP_429],
        ["openai/gpt-4o", "openai/gpt-4o", "anthropic/claude-3-5-sonnet", "anthropic/claude-3-5-sonnet"],
        id="same_model after a failover retries the model that failed last",
    ),
    pytest.param(
        RetryPolicy(default_max_attempts=9, on_status_codes=(rule({503}, "same_provider", 9),)),
        [HTTP_429, HTTP_503, HTTP_503],
        ["openai/gpt-4o", "anthropic/claude-3-5-sonnet", "openai/gpt-4o-mini"],
        id="strategies filter relative to the primary's prefix, attempted models skipped",
    ),
]


@pytest.mark.parametrize(("policy", "failures", "tried"), SELECTION)
def test_selection(policy: RetryPolicy, failures: list[Failure], tried: list[str]) -> None:
    got, _ = run(plan(policy), failures)
    assert got == tried


def test_no_candidate_left_is_exhausted_with_the_attempts() -> None:
    policy = RetryPolicy(default_strategy="same_provider", default_max_attempts=9)
    tried, decision = run(plan(policy), [HTTP_503, Failure("status", 500)])
    assert tried == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    assert isinstance(decision, Exhausted)
    assert decision.reason == (
        "all 2 attempts failed (openai/gpt-4o: HTTP 503; openai/gpt-4o-mini: HTTP 500); "
        "no model left to try (same_provider)"
    )
    assert decision.status == 500
    assert decision.attempts == (("openai/gpt-4o", HTTP_503), ("openai/gpt-4o-mini", Failure("status", 500)))


def test_a_429_fails_over_once_and_the_fallback_answers() -> None:
    """Plano's failover exploration: primary 429, secondary 200 → exactly one retry, no delay."""
    retry_plan = plan(RetryPolicy(fallback_models=("anthropic/claude-3-5-sonnet",)))
    assert retry_plan.first(0.0) is GPT4O
    decision = retry_plan.next(GPT4O, HTTP_429, 0.1)
    assert decision == Retry(CLAUDE, 0.0)
    assert retry_plan.attempts == [("openai/gpt-4o", HTTP_429)]


def test_a_success_needs_no_decision() -> None:
    """Plano's preservation intent: nothing is recorded until a failure is reported."""
    blocks = BlockState()
    retry_plan = plan(RetryPolicy(), blocks=blocks)
    assert retry_plan.first(0.0) is GPT4O
    assert retry_plan.attempts == []
    assert len(blocks.retry_after) == len(blocks.latency) == 0


# -- classification → (strategy, max_attempts) ---------------------------------------------------------

CLASSIFIED = RetryPolicy(
    default_strategy="same_provider",
    default_max_attempts=4,
    on_status_codes=(rule({429}, "same_model", 3), rule({502, 503, 504}, "different_provider", 2)),
    on_timeout=TimeoutRule(strategy="different_provider", max_attempts=5),
    on_high_latency=HighLatencyRule(
        threshold_ms=1000, strategy="different_provider", max_attempts=6, block_duration_seconds=60
    ),
)

CLASSIFICATION = [
    (CLASSIFIED, HTTP_429, "same_model", 3),
    (CLASSIFIED, HTTP_503, "different_provider", 2),
    (CLASSIFIED, Failure("status", 500), "same_provider", 4),
    (CLASSIFIED, Failure("status", 400), "same_provider", 4),
    (CLASSIFIED, Failure("status", None), "different_provider", 2),
    (CLASSIFIED, TIMEOUT, "different_provider", 5),
    (CLASSIFIED, Failure("high_latency", measured_ms=2000), "different_provider", 6),
    (RetryPolicy(default_strategy="same_model", default_max_attempts=7), TIMEOUT, "same_model", 7),
    (RetryPolicy(default_max_attempts=7), Failure("high_latency", measured_ms=5), "different_provider", 7),
    (
        RetryPolicy(on_status_codes=(rule({429}, "same_model", 2), rule({429}, "same_provider", 9))),
        HTTP_429,
        "same_model",
        2,
    ),
]


@pytest.mark.parametrize(("policy", "failure", "strategy", "max_attempts"), CLASSIFICATION)
def test_classification(policy: RetryPolicy, failure: Failure, strategy: str, max_attempts: int) -> None:
    from plano_trio.retry.classify import resolve

    assert resolve(failure, policy) == (strategy, max_attempts)


@pytest.mark.parametrize(
    ("status", "retried"),
    [(400, True), (429, True), (499, True), (500, True), (599, True), (302, False), (200, False)],
)
def test_any_4xx_5xx_is_retried_under_a_policy(status: int, retried: bool) -> None:
    assert plan(RetryPolicy()).retries_status(status) is retried


def test_only_listed_statuses() -> None:
    retry_plan = plan(
        RetryPolicy(on_status_codes=(rule({429, 503}, "same_model", 2),)), only_listed_statuses=True
    )
    assert [s for s in (400, 429, 500, 503) if retry_plan.retries_status(s)] == [429, 503]
    decision = retry_plan.next(GPT4O, Failure("status", 400), 0.0)
    assert isinstance(decision, Exhausted)
    assert decision.reason == "1 attempt failed (openai/gpt-4o: HTTP 400); HTTP 400 is not retried"


# -- attempt counting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_attempts", "sends"),
    [(1, 1), (2, 2), (3, 3), (5, 4)],  # 4 candidates in all under different_provider
)
def test_max_attempts_counts_the_first_request(max_attempts: int, sends: int) -> None:
    tried, decision = run(plan(RetryPolicy(default_max_attempts=max_attempts)), [HTTP_503] * 9)
    assert len(tried) == sends
    assert isinstance(decision, Exhausted)


def test_counters_are_per_status_as_the_design_counts() -> None:
    policy = RetryPolicy(default_strategy="same_model", on_status_codes=(rule({429, 503}, "same_model", 2),))
    tried, decision = run(plan(policy), [HTTP_429, HTTP_503, HTTP_429])
    assert tried == ["openai/gpt-4o"] * 3
    assert isinstance(decision, Exhausted)
    assert decision.reason.startswith("all 3 attempts failed (openai/gpt-4o: HTTP 429; ")


def test_timeouts_share_one_counter() -> None:
    policy = RetryPolicy(on_timeout=TimeoutRule(strategy="same_model", max_attempts=2))
    tried, decision = run(plan(policy), [TIMEOUT, Failure("timeout", measured_ms=5)])
    assert tried == ["openai/gpt-4o", "openai/gpt-4o"]
    assert isinstance(decision, Exhausted)
    assert decision.status == 504
    assert decision.reason == (
        "all 2 attempts failed (openai/gpt-4o: timeout after 30000 ms; openai/gpt-4o: timeout after 5 ms)"
    )


def test_it5_max_attempts_one_means_no_retry() -> None:
    policy = RetryPolicy(default_max_attempts=1, on_status_codes=(rule({429}, "different_provider", 1),))
    tried, decision = run(plan(policy), [HTTP_429])
    assert tried == ["openai/gpt-4o"]
    assert isinstance(decision, Exhausted)
    assert decision.status == 429


def test_it7_fallback_priority() -> None:
    policy = RetryPolicy(
        fallback_models=("anthropic/claude-3-5-sonnet", "mistral/mistral-large"),
        default_max_attempts=3,
        on_status_codes=(rule({429}, "different_provider", 3),),
    )
    tried, decision = run(plan(policy), [HTTP_429, HTTP_429])
    assert tried == ["openai/gpt-4o", "anthropic/claude-3-5-sonnet", "mistral/mistral-large"]
    assert isinstance(decision, Retry)


# -- backoff -------------------------------------------------------------------------------------------


def test_it6_backoff_doubles_without_jitter() -> None:
    policy = RetryPolicy(
        default_strategy="same_model",
        default_max_attempts=3,
        backoff=Backoff(apply_to="same_model", base_ms=500, max_ms=5000, jitter=False),
    )
    retry_plan = plan(policy)
    delays = [retry_plan.next(GPT4O, HTTP_429, t) for t in (0.0, 1.0)]
    assert [d.delay_s for d in delays if isinstance(d, Retry)] == [0.5, 1.0]


@pytest.mark.parametrize(
    ("apply_to", "strategy", "delay_s"),
    [
        ("same_model", "same_model", 0.1),
        ("same_model", "different_provider", 0.0),
        ("same_model", "same_provider", 0.0),
        ("same_provider", "same_provider", 0.1),
        ("same_provider", "different_provider", 0.0),
        ("global", "different_provider", 0.1),
        ("global", "same_model", 0.1),
    ],
)
def test_backoff_apply_to_is_relative_to_the_failed_target(
    apply_to: str, strategy: Strategy, delay_s: float
) -> None:
    policy = RetryPolicy(
        default_strategy=strategy,
        backoff=Backoff(apply_to=apply_to, base_ms=100, max_ms=1000, jitter=False),  # type: ignore[arg-type]
    )
    decision = plan(policy).next(GPT4O, HTTP_503, 0.0)
    assert isinstance(decision, Retry)
    assert decision.delay_s == delay_s


def test_no_backoff_means_no_delay() -> None:
    decision = plan(RetryPolicy(default_strategy="same_model")).next(GPT4O, HTTP_503, 0.0)
    assert decision == Retry(GPT4O, 0.0)


# -- Retry-After ---------------------------------------------------------------------------------------


def test_it8_retry_after_is_waited_out_on_the_same_model() -> None:
    policy = RetryPolicy(default_strategy="same_model", on_status_codes=(rule({429}, "same_model", 2),))
    decision = plan(policy).next(GPT4O, Failure("status", 429, retry_after_s=2), 10.0)
    assert decision == Retry(GPT4O, 2.0)


def test_retry_after_is_capped() -> None:
    policy = RetryPolicy(
        default_strategy="same_model",
        retry_after_handling=RetryAfterHandling(max_retry_after_seconds=5),
        backoff=Backoff(apply_to="same_model", base_ms=100, max_ms=1000, jitter=False),
    )
    blocks = BlockState()
    decision = plan(policy, blocks=blocks).next(GPT4O, Failure("status", 429, retry_after_s=3600), 0.0)
    assert decision == Retry(GPT4O, 5.0)
    assert blocks.retry_after.remaining(("model", "openai/gpt-4o"), 0.0) == 5.0


def test_backoff_wins_over_a_shorter_retry_after() -> None:
    policy = RetryPolicy(
        default_strategy="same_model",
        backoff=Backoff(apply_to="global", base_ms=3000, max_ms=9000, jitter=False),
    )
    decision = plan(policy).next(GPT4O, Failure("status", 429, retry_after_s=1), 0.0)
    assert decision == Retry(GPT4O, 3.0)


def test_retry_after_does_not_delay_a_failover_elsewhere() -> None:
    decision = plan(RetryPolicy()).next(GPT4O, Failure("status", 429, retry_after_s=30), 0.0)
    assert decision == Retry(CLAUDE, 0.0)


def test_it9_global_retry_after_blocks_initial_selection_of_later_requests() -> None:
    policy = RetryPolicy(fallback_models=("anthropic/claude-3-5-sonnet",))
    blocks = BlockState()
    first = plan(policy, blocks=blocks)
    assert first.next(GPT4O, Failure("status", 429, retry_after_s=60), 0.0) == Retry(CLAUDE, 0.0)
    assert plan(policy, blocks=blocks).first(30.0) is CLAUDE
    assert plan(policy, blocks=blocks).first(60.0) is GPT4O  # the block has run out


def test_request_scoped_retry_after_does_not_outlive_the_request() -> None:
    policy = RetryPolicy(
        default_strategy="same_provider",
        retry_after_handling=RetryAfterHandling(apply_to="request"),
        default_max_attempts=9,
    )
    blocks = BlockState()
    retry_plan = plan(policy, blocks=blocks)
    assert retry_plan.next(GPT4O, Failure("status", 429, retry_after_s=60), 0.0) == Retry(MINI, 0.0)
    assert len(blocks.retry_after) == 0
    assert plan(policy, blocks=blocks).first(1.0) is GPT4O


def test_provider_scope_blocks_every_model_of_the_provider() -> None:
    policy = RetryPolicy(
        default_strategy="same_provider",
        default_max_attempts=9,
        retry_after_handling=RetryAfterHandling(scope="provider"),
    )
    blocks = BlockState()
    decision = plan(policy, blocks=blocks).next(GPT4O, Failure("status", 429, retry_after_s=12), 0.0)
    assert isinstance(decision, Exhausted)
    assert decision.reason.startswith("every candidate is blocked (Retry-After) for 12 more seconds; ")
    assert decision.retry_after_s == 12
    assert blocks.retry_after.remaining(("provider", "openai"), 0.0) == 12.0


def test_every_candidate_blocked_at_first_selection() -> None:
    policy = RetryPolicy(fallback_models=("anthropic/claude-3-5-sonnet",))
    blocks = BlockState()
    for name, seconds in (("openai/gpt-4o", 40.0), ("anthropic/claude-3-5-sonnet", 20.0)):
        blocks.retry_after.extend(("model", name), seconds, 0.0)
    blocks.retry_after.extend(("model", "mistral/mistral-large"), 30.0, 0.0)
    blocks.retry_after.extend(("model", "gemini/gemini-pro"), 25.5, 0.0)
    decision = plan(policy, blocks=blocks).first(10.0)
    assert decision == Exhausted((), "every candidate is blocked (Retry-After) for 10 more seconds", 10)
    assert decision.status == 503
    assert plan(policy, blocks=blocks).first(20.0) is CLAUDE


def test_same_model_primary_blocked_at_first_selection_is_refused() -> None:
    blocks = BlockState()
    blocks.retry_after.extend(("model", "openai/gpt-4o"), 7.5, 0.0)
    decision = plan(RetryPolicy(default_strategy="same_model"), blocks=blocks).first(0.0)
    assert isinstance(decision, Exhausted)
    assert decision.retry_after_s == 8


def test_exhausted_reports_the_last_retry_after() -> None:
    policy = RetryPolicy(default_max_attempts=1)
    decision = plan(policy).next(GPT4O, Failure("status", 429, retry_after_s=2.5), 0.0)
    assert isinstance(decision, Exhausted)
    assert decision.retry_after_s == 3


def test_blocks_keep_the_later_expiry() -> None:
    blocks = BlockState()
    blocks.retry_after.extend(("model", "m"), 50.0, 0.0)
    blocks.retry_after.extend(("model", "m"), 20.0, 0.0)
    assert blocks.retry_after.remaining(("model", "m"), 0.0) == 50.0


def test_expired_blocks_are_dropped_on_write() -> None:
    blocks = BlockState()
    for index in range(100):
        blocks.retry_after.extend(("model", f"m{index}"), float(index + 1), float(index))
    assert len(blocks.retry_after) == 1


# -- high latency --------------------------------------------------------------------------------------


def latency_policy(**fields: object) -> RetryPolicy:
    settings: dict[str, object] = {
        "threshold_ms": 1000,
        "strategy": "different_provider",
        "max_attempts": 2,
        "block_duration_seconds": 60,
    }
    settings.update(fields)
    return RetryPolicy(
        fallback_models=("anthropic/claude-3-5-sonnet",),
        on_high_latency=HighLatencyRule(**settings),  # type: ignore[arg-type]
    )


def test_it11_slow_success_blocks_the_model_for_later_requests() -> None:
    policy = latency_policy(measure="total")
    blocks = BlockState()
    first = plan(policy, blocks=blocks)
    first.record_slow_success(GPT4O, 1500, 1.5)
    assert plan(policy, blocks=blocks).first(2.0) is CLAUDE
    assert plan(policy, blocks=blocks).first(61.5) is GPT4O


def test_a_fast_enough_success_blocks_nothing() -> None:
    policy = latency_policy(measure="total")
    blocks = BlockState()
    plan(policy, blocks=blocks).record_slow_success(GPT4O, 1000, 1.0)
    assert plan(policy, blocks=blocks).first(2.0) is GPT4O


@pytest.mark.parametrize(
    ("events", "blocked"),
    [
        ([0.0, 5.0], False),  # two of three
        ([0.0, 5.0, 9.0], True),  # three within ten seconds
        ([0.0, 5.0, 11.0], False),  # the first fell out of the window
        ([0.0, 5.0, 11.0, 14.0], True),
    ],
)
def test_min_triggers_within_the_window(events: list[float], blocked: bool) -> None:
    policy = latency_policy(min_triggers=3, trigger_window_seconds=10)
    blocks = BlockState()
    for at in events:
        plan(policy, blocks=blocks, now=at).record_slow_success(GPT4O, 5000, at)
    last = events[-1]
    assert (plan(policy, blocks=blocks).first(last) is CLAUDE) is blocked


def test_a_triggered_block_resets_the_count() -> None:
    policy = latency_policy(min_triggers=2, trigger_window_seconds=100, block_duration_seconds=5)
    blocks = BlockState()
    for at in (0.0, 1.0, 7.0):
        plan(policy, blocks=blocks).record_slow_success(GPT4O, 5000, at)
    assert plan(policy, blocks=blocks).first(7.0) is GPT4O  # 0 and 1 made the block (ended at 6); 7 is alone


def test_ttfb_failure_fails_over_and_blocks_the_provider_scope() -> None:
    policy = latency_policy(scope="provider")
    blocks = BlockState()
    retry_plan = plan(policy, blocks=blocks)
    assert retry_plan.ttfb_threshold_s == 1.0
    decision = retry_plan.next(GPT4O, Failure("high_latency", measured_ms=1200), 1.2)
    assert decision == Retry(CLAUDE, 0.0)
    assert blocks.latency.remaining(("provider", "openai"), 1.2) == 60.0


def test_ttfb_threshold_only_for_ttfb() -> None:
    assert plan(latency_policy(measure="total")).ttfb_threshold_s is None
    assert plan(RetryPolicy()).ttfb_threshold_s is None


def test_a_timeout_past_the_threshold_also_counts_as_high_latency() -> None:
    blocks = BlockState()
    plan(latency_policy(), blocks=blocks).next(GPT4O, Failure("timeout", measured_ms=30_000), 30.0)
    assert blocks.latency.remaining(("model", "openai/gpt-4o"), 30.0) == 60.0


def test_request_scoped_latency_block() -> None:
    policy = RetryPolicy(
        default_strategy="same_provider",
        default_max_attempts=9,
        on_high_latency=HighLatencyRule(
            threshold_ms=10,
            strategy="same_model",
            max_attempts=3,
            block_duration_seconds=60,
            apply_to="request",
        ),
    )
    blocks = BlockState()
    retry_plan = plan(policy, blocks=blocks)
    decision = retry_plan.next(GPT4O, Failure("high_latency", measured_ms=50), 0.0)
    assert isinstance(decision, Exhausted)  # same_model onto a latency-blocked model: nothing to do
    assert decision.reason.startswith("every candidate is blocked (high latency) for 60 more seconds")
    assert len(blocks.latency) == 0
    assert plan(policy, blocks=blocks).first(0.0) is GPT4O


# -- retry budget --------------------------------------------------------------------------------------


def test_budget_counts_from_the_first_failure() -> None:
    policy = RetryPolicy(default_strategy="same_model", default_max_attempts=99, max_retry_duration_ms=2000)
    retry_plan = plan(policy)
    assert isinstance(retry_plan.next(GPT4O, HTTP_503, 100.0), Retry)  # the original request took 100 s
    assert isinstance(retry_plan.next(GPT4O, HTTP_503, 101.9), Retry)
    decision = retry_plan.next(GPT4O, HTTP_503, 102.0)
    assert isinstance(decision, Exhausted)
    assert decision.reason.startswith("retry budget of 2000 ms exhausted; all 3 attempts failed")


def test_budget_zero_disables_retries() -> None:
    decision = plan(RetryPolicy(max_retry_duration_ms=0)).next(GPT4O, HTTP_503, 0.0)
    assert isinstance(decision, Exhausted)


def test_a_delay_that_would_outlast_the_budget_is_not_taken() -> None:
    policy = RetryPolicy(
        default_strategy="same_model",
        max_retry_duration_ms=1000,
        backoff=Backoff(apply_to="same_model", base_ms=1500, max_ms=3000, jitter=False),
    )
    decision = plan(policy).next(GPT4O, HTTP_503, 0.0)
    assert isinstance(decision, Exhausted)
    assert decision.reason.startswith("retry budget of 1000 ms exhausted")


# -- candidates ------------------------------------------------------------------------------------------


def test_candidates_are_cached_per_primary_and_policy() -> None:
    blocks = BlockState()
    policy = RetryPolicy()
    one = plan(policy, blocks=blocks)
    two = plan(policy, blocks=blocks)
    assert one._candidates is two._candidates
    other = plan(policy, blocks=blocks, providers=(GPT4O, MISTRAL))
    assert other._candidates is not one._candidates
    assert other._candidates.different_provider == (MISTRAL,)


def test_fallback_may_name_an_internal_provider_but_never_the_primary() -> None:
    from plano_trio.retry.candidates import ordered

    policy = RetryPolicy(fallback_models=("openai/gpt-4o", "arch/arch-function"))
    assert ordered(GPT4O, policy, ALL) == (INTERNAL, MINI, CLAUDE, MISTRAL, GEMINI)
    assert WILDCARD not in ordered(GPT4O, policy, ALL)


def test_a_model_without_a_prefix_is_its_interface() -> None:
    bare = ModelProvider(name="gpt-4o", model="gpt-4o", provider_interface="openai")
    assert bare.prefix == "openai"
    tried, _ = run(
        plan(RetryPolicy(default_max_attempts=3), primary=bare, providers=(bare, MINI, CLAUDE)), [HTTP_503]
    )
    assert tried == ["gpt-4o", "anthropic/claude-3-5-sonnet"]


def test_failure_descriptions() -> None:
    assert Failure("status", 429).describe() == "HTTP 429"
    assert Failure("timeout").describe() == "timeout"
    assert Failure("high_latency", measured_ms=2400).describe() == "high latency (2400 ms)"
    assert provider("x/y").prefix == "x"


def test_could_fail_over_slow_only_when_another_attempt_would_follow() -> None:
    """The TTFB cut is armed only where a high-latency failure leads somewhere."""
    from plano_trio.config.retry import HighLatencyRule, RetryPolicy
    from plano_trio.config.schema import ModelProvider
    from plano_trio.retry import BlockState, RetryPlan

    def provider(name: str) -> ModelProvider:
        return ModelProvider(name=name, model=name.split("/")[1], provider_interface=name.split("/")[0])

    primary, other = provider("openai/gpt-4o"), provider("anthropic/claude")
    rule = HighLatencyRule(
        threshold_ms=100, strategy="different_provider", max_attempts=2, block_duration_seconds=60
    )
    policy = RetryPolicy(on_high_latency=rule)
    alone = RetryPlan(primary, policy, (primary,), BlockState(), now=0.0)
    assert not alone.could_fail_over_slow(primary, 0.0)  # nowhere to go: keep waiting
    paired = RetryPlan(primary, policy, (primary, other), BlockState(), now=0.0)
    assert paired.could_fail_over_slow(primary, 0.0)
    assert paired.attempts == []  # asking changed nothing
    single_try = RetryPolicy(
        on_high_latency=HighLatencyRule(
            threshold_ms=100, strategy="different_provider", max_attempts=1, block_duration_seconds=60
        )
    )
    assert not RetryPlan(primary, single_try, (primary, other), BlockState(), now=0.0).could_fail_over_slow(
        primary, 0.0
    )
