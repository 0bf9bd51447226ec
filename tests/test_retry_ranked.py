"""Failover along a routed request's ranked models: the ranking in order, each once, nothing else."""

from __future__ import annotations

import pytest
from retry_support import ALL, CLAUDE, GEMINI, GPT4O, HTTP_429, HTTP_503, MINI, TIMEOUT, plan

from plano_trio.retry import Exhausted, Failure, Retry, ranked_policy


def _walk(ranking: tuple[str, ...], failures: list[Failure]) -> list[str]:
    """The targets a request visits when each attempt fails with the next failure in turn."""
    primary = next(p for p in ALL if p.name == ranking[0])
    current = primary
    planned = plan(ranked_policy(ranking[1:]), primary=primary, only_listed_statuses=True)
    visited = [current.name]
    for failure in failures:
        decision = planned.next(current, failure, 1.0)
        if isinstance(decision, Exhausted):
            visited.append("exhausted")
            return visited
        assert isinstance(decision, Retry)
        assert decision.delay_s == 0
        current = decision.target
        visited.append(current.name)
    return visited


@pytest.mark.parametrize(
    ("ranking", "failures", "visited"),
    [
        # same-prefix and cross-prefix models alike follow the ranking
        ((GPT4O.name, MINI.name, CLAUDE.name), [HTTP_503, HTTP_429], [GPT4O.name, MINI.name, CLAUDE.name]),
        ((CLAUDE.name, GPT4O.name), [TIMEOUT], [CLAUDE.name, GPT4O.name]),
        # never beyond the ranking, though other providers are configured
        ((GPT4O.name, CLAUDE.name), [HTTP_503, HTTP_503], [GPT4O.name, CLAUDE.name, "exhausted"]),
        ((GEMINI.name,), [HTTP_503], [GEMINI.name, "exhausted"]),
        # a client error is the client's: not retried
        ((GPT4O.name, CLAUDE.name), [Failure("status", 400)], [GPT4O.name, "exhausted"]),
        ((GPT4O.name, CLAUDE.name), [Failure("status", 404)], [GPT4O.name, "exhausted"]),
    ],
)
def test_ranked_failover_walks_the_ranking(
    ranking: tuple[str, ...], failures: list[Failure], visited: list[str]
) -> None:
    assert _walk(ranking, failures) == visited


@pytest.mark.parametrize("status", [502, 504])
def test_unreachable_and_silent_providers_fail_over(status: int) -> None:
    """The exchange stage reports a connect failure or reset as 502, a head timeout as 504."""
    assert _walk((GPT4O.name, CLAUDE.name), [Failure("status", status)]) == [GPT4O.name, CLAUDE.name]


def test_the_same_ranking_gives_the_same_policy_object() -> None:
    assert ranked_policy(("a", "b")) is ranked_policy(("a", "b"))
