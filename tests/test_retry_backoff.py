"""Backoff delays (the policy's and Envoy's) and the listener's `max_retries` policy."""

from __future__ import annotations

import pytest

from plano_trio.config.retry import Backoff
from plano_trio.retry import Exhausted, Failure, Retry, listener_policy
from plano_trio.retry.backoff import envoy_delay_s, policy_delay_s
from tests.retry_support import GPT4O, HTTP_429, HTTP_503, TIMEOUT, plan

PLAIN = Backoff(apply_to="global", base_ms=100, max_ms=5000, jitter=False)
JITTERED = Backoff(apply_to="global", base_ms=100, max_ms=5000, jitter=True)
ENVOY = Backoff(apply_to="same_model", base_ms=500, max_ms=5000, jitter=True)


@pytest.mark.parametrize(
    ("retry_index", "delay_s"),
    [(0, 0.1), (1, 0.2), (2, 0.4), (5, 3.2), (6, 5.0), (64, 5.0), (10_000, 5.0)],
)
def test_policy_backoff_doubles_up_to_max(retry_index: int, delay_s: float) -> None:
    assert policy_delay_s(PLAIN, retry_index, lambda: 0.0) == delay_s


@pytest.mark.parametrize(("random", "delay_s"), [(0.0, 0.2), (0.5, 0.3), (0.999, 0.399)])
def test_policy_jitter_keeps_at_least_half(random: float, delay_s: float) -> None:
    assert policy_delay_s(JITTERED, 2, lambda: random) == delay_s


@pytest.mark.parametrize(
    ("retry_number", "delay_s"),
    [(1, 0.25), (2, 0.75), (3, 1.75), (4, 3.75), (5, 5.0), (200, 5.0)],
)
def test_envoy_backoff_is_full_jitter_of_2n_minus_1_base(retry_number: int, delay_s: float) -> None:
    assert envoy_delay_s(ENVOY, retry_number, lambda: 0.5) == delay_s


def test_envoy_backoff_can_be_zero() -> None:
    assert envoy_delay_s(ENVOY, 3, lambda: 0.0) == 0.0


# -- listener max_retries ------------------------------------------------------------------------------


def test_listener_policy_is_cached() -> None:
    assert listener_policy(3) is listener_policy(3)
    assert listener_policy(3) is not listener_policy(2)


@pytest.mark.parametrize(
    ("status", "retried"),
    [(429, True), (500, True), (501, True), (502, True), (503, True), (504, True), (599, True), (400, False)],
)
def test_listener_retries_429_and_5xx_only(status: int, retried: bool) -> None:
    assert plan(listener_policy(2), only_listed_statuses=True).retries_status(status) is retried


def test_listener_retries_the_same_model_max_retries_times_in_all() -> None:
    retry_plan = plan(listener_policy(2), only_listed_statuses=True)
    first = retry_plan.next(GPT4O, HTTP_429, 0.0)
    second = retry_plan.next(GPT4O, Failure("status", 502), 1.0)  # connection refused
    third = retry_plan.next(GPT4O, TIMEOUT, 2.0)
    assert first == Retry(GPT4O, 0.25)
    assert second == Retry(GPT4O, 0.75)
    assert isinstance(third, Exhausted)
    assert third.status == 504


def test_listener_zero_retries() -> None:
    decision = plan(listener_policy(0), only_listed_statuses=True).next(GPT4O, HTTP_503, 0.0)
    assert isinstance(decision, Exhausted)


def test_listener_ignores_retry_after_as_envoy_does() -> None:
    retry_plan = plan(listener_policy(1), only_listed_statuses=True, random=0.0)
    assert retry_plan.next(GPT4O, Failure("status", 429, retry_after_s=30), 0.0) == Retry(GPT4O, 0.0)
    assert retry_plan.first(1.0) is GPT4O
