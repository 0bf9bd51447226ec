"""Rate-limit buckets in real Redis (127.0.0.1:6379): the Lua script agrees with `gcra.decide`, the
native client's EVALSHA falls back to EVAL, two gateways share one limit, and a missing or silent
Redis lets requests through within the bound, counted."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Iterator
from functools import partial
from typing import TypeVar

import openai
import pytest
import redis
import trio
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.config.access_settings import InboundKey, RateLimitRule, TokenLimit, digest_of
from plano_trio.ratelimit.gcra import PERIOD_US, Decision, Quota, decide
from plano_trio.ratelimit.redis_store import (
    GCRA_SCRIPT,
    GCRA_SHA1,
    KEY_PREFIX,
    SKIP_AFTER_FAILURE_S,
    decision_of,
    open_redis_buckets,
    script_args,
)
from plano_trio.ratelimit.rules import Charge, RateLimitRules, key_charge
from plano_trio.ratelimit.store import RateLimitCounters
from tests.mock_provider import MockProvider
from tests.support import Gateway, in_thread, provider_config, running_gateway
from tests.test_ratelimit_gateway import CHAT_COST, MESSAGES, debug_access, rule, selected
from tests.test_session_redis import SLACK_S, free_port, silent

SHARED_URL = "redis://127.0.0.1:6379"
T = TypeVar("T")


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(SHARED_URL)
    yield client
    client.close()


async def timed(call: Awaitable[T]) -> tuple[T, float]:
    start = time.monotonic()
    result = await call
    return result, time.monotonic() - start


def charges_for(*quotas: Quota) -> list[Charge]:
    """Charges on fresh buckets (random names, so runs never share state)."""
    run = secrets.token_hex(6)
    return [Charge(f"test:{run}:{i}", quota) for i, quota in enumerate(quotas)]


QUOTAS = st.builds(Quota.per, st.integers(1, 500), st.sampled_from(list(PERIOD_US)))


@given(
    quotas=st.lists(QUOTAS, min_size=1, max_size=3),
    steps=st.lists(st.tuples(st.integers(0, 5 * 10**9), st.integers(0, 600)), min_size=1, max_size=25),
)
def test_script_agrees_with_decide(quotas: list[Quota], steps: list[tuple[int, int]]) -> None:
    """The script and the pure core give the same answers, step by step, on the same clock."""
    client = redis.Redis.from_url(SHARED_URL)
    charges = charges_for(*quotas)
    keys = [KEY_PREFIX + c.bucket for c in charges]
    now = 1_700_000_000_000_000
    tats: list[int | None] = [None] * len(charges)
    try:
        for gap, cost in steps:
            now += gap
            expected = decide(now, cost, quotas, tats)
            reply = client.eval(GCRA_SCRIPT, len(keys), *keys, *script_args(charges, cost, now))  # type: ignore[no-untyped-call]
            got = decision_of(reply)
            assert got == (Decision(True) if expected.allowed else expected)
            if expected.allowed:
                tats = list(expected.tats)
                stored = [int(v) if v is not None else None for v in client.mget(keys)]
                assert stored == [t if t is not None and t > now else stored[i] for i, t in enumerate(tats)]
    finally:
        client.delete(*keys)
        client.close()


async def test_evalsha_after_script_flush_and_expiry(raw: redis.Redis) -> None:
    raw.script_flush()
    counters = RateLimitCounters()
    (charge,) = charges_for(Quota.per(10, "second"))
    async with open_redis_buckets(SHARED_URL, counters, timeout_s=2.0) as buckets:
        assert (await buckets.take([charge], 10)).allowed  # NOSCRIPT, then EVAL
        assert raw.script_exists(GCRA_SHA1.decode()) == [True]
        refused = await buckets.take([charge], 1)
        assert not refused.allowed and refused.retry_after_us is not None
        assert 0 < refused.retry_after_us <= 100_000
        ttl = raw.pttl(KEY_PREFIX + charge.bucket)
        assert 0 < ttl <= 1001  # the bucket lives until it is full again
        assert not (await buckets.take([charge], 11)).allowed
    assert counters.failed_open == counters.store_errors == 0


async def test_key_and_rule_buckets_charged_together(raw: redis.Redis) -> None:
    run = secrets.token_hex(4)
    rules = RateLimitRules(
        [RateLimitRule(model="m", header="x-org", value="*", limit=TokenLimit(tokens=100, unit="hour"))]
    )
    (rule_charge,) = rules.charges(
        ["m"], [(b"x-arch-ratelimit-selector", b"x-org"), (b"x-org", run.encode())]
    )
    own = key_charge(
        InboundKey(name=run, digest=digest_of(run * 4), rate_limit=TokenLimit(tokens=30, unit="hour"))
    )
    assert own is not None
    counters = RateLimitCounters()
    async with open_redis_buckets(SHARED_URL, counters, timeout_s=2.0) as buckets:
        assert (await buckets.take([rule_charge, own], 30)).allowed
        refused = await buckets.take([rule_charge, own], 10)
        assert not refused.allowed and refused.refused == 1  # the key's bucket
        # all or nothing: the rule bucket was not charged by the refused request
        rule_tat = int(raw.get(KEY_PREFIX + rule_charge.bucket) or 0)
        assert (await buckets.take([rule_charge], 70)).allowed
        assert int(raw.get(KEY_PREFIX + rule_charge.bucket) or 0) > rule_tat
        assert not (await buckets.take([rule_charge], 1)).allowed
    raw.delete(KEY_PREFIX + rule_charge.bucket, KEY_PREFIX + own.bucket)


async def test_nothing_listening_fails_open_at_once_and_is_counted() -> None:
    counters = RateLimitCounters()
    (charge,) = charges_for(Quota.per(1, "hour"))
    async with open_redis_buckets(f"redis://127.0.0.1:{free_port()}", counters, timeout_s=0.2) as buckets:
        for _ in range(3):
            decision, took = await timed(buckets.take([charge], 100))
            assert decision.allowed and took < 0.2 + SLACK_S
    assert counters.failed_open == 3
    assert counters.store_errors == 1  # then the skip window: no further tries


async def test_silent_redis_fails_open_within_the_timeout() -> None:
    counters = RateLimitCounters()
    (charge,) = charges_for(Quota.per(1, "hour"))
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with open_redis_buckets(f"redis://127.0.0.1:{port}", counters, timeout_s=0.2) as buckets:
            decision, took = await timed(buckets.take([charge], 100))
            assert decision.allowed and 0.15 <= took < 0.2 + SLACK_S
            decision, took = await timed(buckets.take([charge], 100))  # in the skip window
            assert decision.allowed and took < 0.05
            await trio.sleep(SKIP_AFTER_FAILURE_S + 0.05)
            decision, took = await timed(buckets.take([charge], 100))
            assert decision.allowed and 0.15 <= took < 0.2 + SLACK_S
        nursery.cancel_scope.cancel()
    assert counters.store_timeouts == 2 and counters.failed_open == 3


def shared_config(mock_url: str, store: str, tokens: int) -> str:
    return provider_config(
        mock_url,
        tail=f"ratelimits:\n{rule('openai/gpt-4o-mini', tokens)}\n"
        f"plano_trio:\n  ratelimit_store: {store}\n  ratelimit_timeout_s: 0.2\n",
    )


async def chat(gw: Gateway, org: str) -> None:
    client = openai.OpenAI(
        base_url=gw.v1, api_key="k", max_retries=0, timeout=10, default_headers=selected(org)
    )
    await in_thread(lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))  # type: ignore[arg-type]


async def test_two_gateways_share_one_limit(mock: MockProvider) -> None:
    org = secrets.token_hex(4)
    config = shared_config(mock.url, SHARED_URL, 3 * CHAT_COST)
    async with running_gateway(config) as one, running_gateway(config) as two:
        await chat(one, org)
        await chat(two, org)
        await chat(one, org)
        for gw in (two, one):  # each instance alone would still have room
            with pytest.raises(openai.RateLimitError) as refused:
                await chat(gw, org)
            assert int(refused.value.response.headers["retry-after"]) >= 1
        await chat(two, secrets.token_hex(4))  # another selector value: its own bucket
        assert (await debug_access(one))["ratelimit_limited"] == 1
        assert (await debug_access(two))["ratelimit_limited"] == 1


async def test_gateway_with_redis_down_fails_open_within_the_bound(mock: MockProvider) -> None:
    org = secrets.token_hex(4)
    config = shared_config(mock.url, f"redis://127.0.0.1:{free_port()}", CHAT_COST)
    async with running_gateway(config) as gw:
        for _ in range(3):
            _, took = await timed(chat(gw, org))  # each would be refused by a working store
            assert took < 0.2 + 2.0
        stats = await debug_access(gw)
    assert stats["ratelimit_failed_open"] == 3 and stats["ratelimit_limited"] == 0
