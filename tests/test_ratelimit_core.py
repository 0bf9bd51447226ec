"""The rate limits' pure parts: GCRA arithmetic (tables and properties), rule selection, token counting."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.apis.kind import Api
from plano_trio.config.access_settings import InboundKey, RateLimitRule, TokenLimit, digest_of
from plano_trio.ratelimit.gcra import PERIOD_US, Decision, Quota, decide, retry_after_s
from plano_trio.ratelimit.rules import RateLimitRules, key_charge
from plano_trio.ratelimit.store import MemoryBuckets, RateLimitCounters
from plano_trio.ratelimit.tokens import CL100K, O200K, count_tokens, encoding_for, input_text

S = 1_000_000
MINUTE = Quota(60, 60 * S)  # 60 tokens a minute: one token back every second


# --- GCRA ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tat", "cost", "expected"),
    [
        (None, 60, Decision(True, (60 * S,))),  # a fresh bucket takes a whole period at once (the burst)
        (None, 61, Decision(False, retry_after_us=None, refused=0)),  # over a period: never
        (60 * S, 1, Decision(False, retry_after_us=1 * S, refused=0)),  # empty: one token a second
        (59 * S, 1, Decision(True, (60 * S,))),  # one token back after a second
        (30 * S, 10, Decision(True, (40 * S,))),
        (30 * S, 31, Decision(False, retry_after_us=1 * S, refused=0)),
        (-5 * S, 1, Decision(True, (1 * S,))),  # a TAT in the past is a full bucket
        (10 * S, 0, Decision(True, (10 * S,))),  # nothing to charge passes, unchanged
    ],
)
def test_decide_one_bucket(tat: int | None, cost: int, expected: Decision) -> None:
    assert decide(0, cost, [MINUTE], [tat]) == expected


def test_day_is_a_real_day() -> None:
    day = Quota.per(2400, "day")
    assert day.period_us == 86_400 * S
    assert decide(0, 2400, [day], [None]).allowed  # Plano's day was 100 an hour: this took 24 hours' worth
    empty = 86_400 * S
    refused = decide(0, 1, [day], [empty])
    assert refused.retry_after_us == 36 * S  # one token per 36 s


def test_increment_rounds_up() -> None:
    assert Quota(3, 1 * S).increment_us(1) == 333_334
    assert Quota(7, 1).increment_us(1) == 1


def test_all_or_nothing_and_longest_wait() -> None:
    hour = Quota(100, 3600 * S)
    # The minute bucket admits, the hour bucket refuses: neither is charged, the hour's wait is told.
    refused = decide(0, 10, [MINUTE, hour], [None, 3600 * S])
    assert refused == Decision(False, retry_after_us=360 * S, refused=1)
    both = decide(0, 10, [MINUTE, hour], [None, None])
    assert both == Decision(True, (10 * S, 360 * S))


def test_retry_after_seconds() -> None:
    assert retry_after_s(1) == 1
    assert retry_after_s(1_000_000) == 1
    assert retry_after_s(1_000_001) == 2


@given(
    tokens=st.integers(1, 1000),
    unit=st.sampled_from(list(PERIOD_US)),
    steps=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 300)), max_size=60),
)
def test_never_more_than_burst_plus_rate(tokens: int, unit: str, steps: list[tuple[int, int]]) -> None:
    """Whatever arrives when: tokens admitted in [0, t] <= tokens + t * rate (GCRA's guarantee)."""
    quota = Quota.per(tokens, unit)
    now, tat, admitted = 0, None, 0
    for gap, cost in steps:
        now += gap
        decision = decide(now, cost, [quota], [tat])
        if decision.allowed:
            admitted += cost
            (tat,) = decision.tats
            assert tat - now <= quota.period_us
        else:
            wait = decision.retry_after_us
            if wait is None:
                assert cost > tokens
            else:  # waiting exactly as told admits the same request
                assert wait > 0
                assert decide(now + wait, cost, [quota], [tat]).allowed
                assert not decide(now + wait - 1, cost, [quota], [tat]).allowed
        assert admitted <= tokens + now * tokens // quota.period_us + 1


@given(st.lists(st.integers(1, 50), min_size=1, max_size=40))
def test_memory_buckets_match_decide(costs: list[int]) -> None:
    clock = [0.0]
    counters = RateLimitCounters()
    buckets = MemoryBuckets(10, counters, clock=lambda: clock[0])
    charge = key_charge(_key(limit=TokenLimit(tokens=100, unit="minute")))
    assert charge is not None
    tat: int | None = None
    for i, cost in enumerate(costs):
        clock[0] = i * 0.25
        expected = decide(int(clock[0] * S), cost, [charge.quota], [tat])
        assert buckets.take_now([charge], cost) == expected
        if expected.allowed:
            (tat,) = expected.tats


def test_memory_buckets_are_bounded_lru() -> None:
    counters = RateLimitCounters()
    buckets = MemoryBuckets(3, counters, clock=lambda: 0.0)
    rules = RateLimitRules([_rule(value="*")])
    for value in ("a", "b", "c", "d"):
        charges = rules.charges(["m"], _selector(value))
        assert buckets.take_now(charges, 10).allowed
    assert len(buckets) == 3
    assert counters.evicted_live == 1  # "a" still held use when it was dropped
    again = rules.charges(["m"], _selector("a"))
    assert buckets.take_now(again, 100).allowed  # forgotten: a fresh bucket


# --- rules ----------------------------------------------------------------------------------------------


def _rule(model: str = "m", header: str = "x-org", value: str = "acme", tokens: int = 100) -> RateLimitRule:
    return RateLimitRule(
        model=model, header=header, value=value, limit=TokenLimit(tokens=tokens, unit="minute")
    )


def _selector(value: str, header: bytes = b"x-org", named: bytes | None = None) -> list[tuple[bytes, bytes]]:
    return [(b"x-arch-ratelimit-selector", named or header), (header, value.encode())]


def _key(limit: TokenLimit | None = None) -> InboundKey:
    return InboundKey(name="team", digest=digest_of("k" * 20), rate_limit=limit)


def test_rule_needs_the_selector_header_and_the_model() -> None:
    rules = RateLimitRules([_rule()])
    assert rules.charges(["m"], [(b"x-org", b"acme")]) == []  # not selected by the client
    assert rules.charges(["other"], _selector("acme")) == []
    assert rules.charges(["m"], [(b"x-arch-ratelimit-selector", b"x-org")]) == []  # named header absent
    assert rules.charges(["m"], _selector("someone-else")) == []  # exact value only
    (charge,) = rules.charges(["m"], _selector("acme"))
    assert charge.quota == Quota(100, 60 * S)


def test_model_matches_any_of_the_route_names() -> None:
    rules = RateLimitRules([_rule(model="openai/gpt-4o")])
    names = ["openai/gpt-4o", "gpt-4o", "openai/*"]
    assert len(rules.charges(names, _selector("acme"))) == 1
    bare = RateLimitRules([_rule(model="gpt-4o")])
    assert len(bare.charges(names, _selector("acme"))) == 1
    wildcard = RateLimitRules([_rule(model="openai/*")])
    assert len(wildcard.charges(names, _selector("acme"))) == 1


def test_header_name_is_case_insensitive() -> None:
    rules = RateLimitRules([_rule(header="x-org")])
    assert len(rules.charges(["m"], _selector("acme", named=b"X-Org"))) == 1


def test_star_gives_a_bucket_per_value_and_exact_wins() -> None:
    rules = RateLimitRules([_rule(value="*", tokens=10), _rule(value="vip", tokens=1000)])
    a = rules.charges(["m"], _selector("a"))
    b = rules.charges(["m"], _selector("b"))
    assert len(a) == len(b) == 1 and a[0].bucket != b[0].bucket
    assert a[0].bucket == rules.charges(["m"], _selector("a"))[0].bucket  # stable
    (vip,) = rules.charges(["m"], _selector("vip"))
    assert vip.quota.tokens == 1000


def test_plano_message_and_key_message() -> None:
    (charge,) = RateLimitRules([_rule(model="gpt-4o")]).charges(["gpt-4o"], _selector("acme"))
    assert charge.exceeded(42) == (
        'exceeded limit provider=gpt-4o, selector=Header { key: "x-org", value: "acme" }, tokens_used=42'
    )
    own = key_charge(_key(TokenLimit(tokens=5, unit="hour")))
    assert own is not None and own.exceeded(7) == "exceeded limit key=team, tokens_used=7"
    assert key_charge(_key()) is None


# --- tokens ---------------------------------------------------------------------------------------------


def test_encoding_as_plano_chooses() -> None:
    assert encoding_for("gpt-4") == CL100K
    assert encoding_for("gpt-4-turbo") == CL100K
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "claude-sonnet-4-6", "llama-3.3-70b"):
        assert encoding_for(model) == O200K


def test_count_tokens_known_values() -> None:
    # tiktoken's own numbers (Plano's tokenizer test: 8 tokens in cl100k for this sentence).
    assert count_tokens("gpt-4", "How many tokens does this sentence have?") == 8
    assert count_tokens("gpt-4o", "hello world") == 2
    assert count_tokens("gpt-4o", "") == 0
    assert count_tokens("gpt-4o", "<|endoftext|>") > 1  # special-token text counts as text


TEXTS: list[tuple[Api, dict[str, Any], str]] = [
    (
        Api.CHAT,
        {
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}]},
                {"role": "assistant", "content": None, "tool_calls": []},
                {"role": "tool", "content": "result"},
            ]
        },
        " sys a [Image]  result",
    ),
    (
        Api.MESSAGES,
        {
            "system": [{"type": "text", "text": "sys"}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "yo"}, {"type": "tool_use"}]},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "content": [{"type": "text", "text": "r"}]}],
                },
            ],
        },
        "sys hi yo r",
    ),
    (Api.RESPONSES, {"input": "just text"}, "just text"),
    (
        Api.RESPONSES,
        {
            "input": [
                {"role": "user", "content": "hi"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}]},
                {"type": "function_call_output", "output": "out"},
                {"type": "reasoning"},
                {"role": "user", "content": [{"type": "input_image"}, {"type": "input_file"}]},
            ]
        },
        " hi  a out  [Image] [File]",
    ),
    (Api.RESPONSES, {"input": {"role": "user", "content": "single"}}, "single"),
]


@pytest.mark.parametrize(("api", "request_", "expected"), TEXTS)
def test_input_text_as_plano(api: Api, request_: dict[str, Any], expected: str) -> None:
    assert input_text(api, request_) == expected


@given(
    st.recursive(st.none() | st.text() | st.integers(), lambda c: st.lists(c) | st.dictionaries(st.text(), c))
)
def test_input_text_never_fails_on_any_json(value: Any) -> None:
    for api in (Api.CHAT, Api.MESSAGES, Api.RESPONSES):
        for field in ("messages", "system", "input"):
            assert isinstance(input_text(api, {field: value}), str)
