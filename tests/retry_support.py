"""Shared builders for the retry planner's tests: providers, policies and a plan driver."""

from __future__ import annotations

from collections.abc import Sequence

from plano_trio.config.retry import RetryPolicy
from plano_trio.config.schema import ModelProvider
from plano_trio.retry import BlockState, Exhausted, Failure, Retry, RetryPlan


def provider(name: str, policy: RetryPolicy | None = None, **fields: object) -> ModelProvider:
    """`provider("openai/gpt-4o")`: a provider whose prefix is the part before the slash."""
    prefix, _, model = name.partition("/")
    return ModelProvider(
        name=name,
        model=model or name,
        provider_interface=prefix,
        retry_policy=policy,
        **fields,  # type: ignore[arg-type]
    )


GPT4O = provider("openai/gpt-4o")
MINI = provider("openai/gpt-4o-mini")
CLAUDE = provider("anthropic/claude-3-5-sonnet")
MISTRAL = provider("mistral/mistral-large")
GEMINI = provider("gemini/gemini-pro")
WILDCARD = provider("openai/*")
INTERNAL = provider("arch/arch-function", internal=True)

ALL = (GPT4O, MINI, CLAUDE, MISTRAL, GEMINI, WILDCARD, INTERNAL)
"""Config order: the order the planner falls back in after `fallback_models`."""

HTTP_429 = Failure("status", 429)
HTTP_503 = Failure("status", 503)
TIMEOUT = Failure("timeout", measured_ms=30_000)


def plan(
    policy: RetryPolicy,
    *,
    primary: ModelProvider = GPT4O,
    providers: Sequence[ModelProvider] = ALL,
    blocks: BlockState | None = None,
    now: float = 0.0,
    random: float = 0.5,
    only_listed_statuses: bool = False,
) -> RetryPlan:
    return RetryPlan(
        primary,
        policy,
        providers,
        BlockState() if blocks is None else blocks,
        now=now,
        random=lambda: random,
        only_listed_statuses=only_listed_statuses,
    )


def run(
    retry_plan: RetryPlan,
    failures: Sequence[Failure],
    *,
    start: float = 0.0,
    step_s: float = 0.0,
) -> tuple[list[str], Retry | Exhausted | None]:
    """Fail each attempt in turn with the next failure; the targets tried and the last decision.

    Time advances by `step_s` per attempt plus each retry's delay.
    """
    now = start
    first = retry_plan.first(now)
    if isinstance(first, Exhausted):
        return [], first
    target = first
    tried = [target.name]
    decision: Retry | Exhausted | None = None
    for failure in failures:
        now += step_s
        decision = retry_plan.next(target, failure, now)
        if isinstance(decision, Exhausted):
            return tried, decision
        now += decision.delay_s
        target = decision.target
        tried.append(target.name)
    return tried, decision
