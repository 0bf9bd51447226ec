"""Plano's `ratelimits` through the real gateway: the OpenAI and Anthropic SDKs see 429 in their own
error shape with Plano's message and `Retry-After`; the fixes (full names, per-value buckets) hold."""

from __future__ import annotations

import secrets
import time

import anthropic
import httpx
import openai
import pytest
import trio

from plano_trio.apis.kind import Api
from plano_trio.ratelimit.tokens import count_tokens, input_text
from tests.mock_provider import MockProvider
from tests.support import Gateway, in_thread, provider_config, running_gateway

PROMPT = "How many tokens does this sentence have?"
MESSAGES = [{"role": "user", "content": PROMPT}]
CHAT_COST = count_tokens("gpt-4o-mini", input_text(Api.CHAT, {"messages": MESSAGES}))
MESSAGES_COST = count_tokens("gpt-4o-mini", input_text(Api.MESSAGES, {"messages": MESSAGES}))


def limits_config(mock_url: str, rules: str, plano_trio: str = "") -> str:
    return provider_config(mock_url, tail=f"ratelimits:\n{rules}\n{plano_trio}")


def rule(model: str, tokens: int, unit: str = "hour", key: str = "x-org", value: str = "*") -> str:
    return (
        f"  - model: {model}\n    selector: {{key: {key}, value: '{value}'}}\n"
        f"    limit: {{tokens: {tokens}, unit: {unit}}}\n"
    )


async def debug_access(gw: Gateway) -> dict[str, int]:
    response = await in_thread(lambda: httpx.get(f"{gw.base}/debug/access", timeout=10))
    stats: dict[str, int] = response.json()
    return stats


def selected(org: str) -> dict[str, str]:
    return {"x-arch-ratelimit-selector": "x-org", "x-org": org}


def oai(gw: Gateway, headers: dict[str, str] | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.v1, api_key="client-key", max_retries=0, timeout=10, default_headers=headers or {}
    )


def ant(gw: Gateway, headers: dict[str, str] | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gw.base, api_key="client-key", max_retries=0, timeout=10, default_headers=headers or {}
    )


async def chat(gw: Gateway, headers: dict[str, str] | None = None, model: str = "openai/gpt-4o-mini") -> str:
    completion = await in_thread(
        lambda: oai(gw, headers).chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
    )
    return completion.choices[0].message.content or ""


async def refused_chat(
    gw: Gateway, headers: dict[str, str] | None = None, model: str = "openai/gpt-4o-mini"
) -> openai.RateLimitError:
    with pytest.raises(openai.RateLimitError) as caught:
        await chat(gw, headers, model)
    return caught.value


async def test_openai_sdk_gets_429_with_plano_message_and_retry_after(mock: MockProvider) -> None:
    org = secrets.token_hex(4)
    config = limits_config(mock.url, rule("openai/gpt-4o-mini", CHAT_COST * 2))
    async with running_gateway(config) as gw:
        await chat(gw, selected(org))
        await chat(gw, selected(org))
        sent = len(mock.requests)
        error = await refused_chat(gw, selected(org))
        assert len(mock.requests) == sent  # refused before the provider
        stats = await debug_access(gw)
    assert error.status_code == 429
    assert error.body == {
        "message": 'exceeded limit provider=openai/gpt-4o-mini, selector=Header { key: "x-org", '
        f'value: "{org}" }}, tokens_used={CHAT_COST}',
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    # 2 * cost tokens an hour: one cost comes back after half an hour.
    assert 1700 <= int(error.response.headers["retry-after"]) <= 1800
    assert stats["ratelimit_checked"] == 3 and stats["ratelimit_limited"] == 1


async def test_anthropic_sdk_gets_429_in_its_shape(mock: MockProvider) -> None:
    org = secrets.token_hex(4)
    config = limits_config(mock.url, rule("openai/gpt-4o-mini", MESSAGES_COST))

    def ask() -> anthropic.types.Message:
        return ant(gw, selected(org)).messages.create(
            model="openai/gpt-4o-mini",
            max_tokens=16,
            messages=MESSAGES,  # type: ignore[arg-type]
        )

    async with running_gateway(config) as gw:
        await in_thread(ask)
        with pytest.raises(anthropic.RateLimitError) as caught:
            await in_thread(ask)
    error = caught.value
    assert error.status_code == 429
    assert error.body == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": f'exceeded limit provider=openai/gpt-4o-mini, selector=Header {{ key: "x-org", '
            f'value: "{org}" }}, tokens_used={MESSAGES_COST}',
        },
    }
    assert int(error.response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "gpt-4o-mini"])
@pytest.mark.parametrize("requested", ["openai/gpt-4o-mini", "gpt-4o-mini", "fast"])
async def test_rule_matches_full_name_and_bare_id(mock: MockProvider, model: str, requested: str) -> None:
    """Plano documents `model: openai/gpt-4o` but compares the bare id only; both match here, whatever
    name (full, bare, alias) the client used."""
    org = secrets.token_hex(4)
    async with running_gateway(limits_config(mock.url, rule(model, CHAT_COST))) as gw:
        await chat(gw, selected(org), requested)
        await refused_chat(gw, selected(org), requested)


async def test_star_is_a_bucket_per_value_and_exact_value_wins(mock: MockProvider) -> None:
    a, b, vip = (secrets.token_hex(4) for _ in range(3))
    rules = rule("openai/gpt-4o-mini", CHAT_COST) + rule("openai/gpt-4o-mini", 100 * CHAT_COST, value=vip)
    async with running_gateway(limits_config(mock.url, rules)) as gw:
        await chat(gw, selected(a))
        await refused_chat(gw, selected(a))
        await chat(gw, selected(b))  # its own bucket
        for _ in range(3):
            await chat(gw, selected(vip))  # the exact rule, not the `*` one


async def test_no_selector_no_limit_and_other_models_free(mock: MockProvider) -> None:
    org = secrets.token_hex(4)
    async with running_gateway(limits_config(mock.url, rule("openai/gpt-4o-mini", CHAT_COST))) as gw:
        for _ in range(3):
            await chat(gw)  # the client did not select a limit (Plano's rule)
            await chat(gw, selected(org), model="openai/gpt-4.1")  # no rule for this model
        stats = await debug_access(gw)
    assert stats["ratelimit_checked"] == 0  # nothing was even counted


async def test_window_refills(mock: MockProvider) -> None:
    org = secrets.token_hex(4)
    config = limits_config(mock.url, rule("openai/gpt-4o-mini", CHAT_COST, unit="second"))
    async with running_gateway(config) as gw:
        await chat(gw, selected(org))
        error = await refused_chat(gw, selected(org))
        assert error.response.headers["retry-after"] == "1"
        await trio.sleep(1.05)
        await chat(gw, selected(org))


async def test_request_larger_than_the_limit_has_no_retry_after(mock: MockProvider) -> None:
    org = secrets.token_hex(4)
    async with running_gateway(limits_config(mock.url, rule("openai/gpt-4o-mini", CHAT_COST - 1))) as gw:
        error = await refused_chat(gw, selected(org))
    assert "retry-after" not in error.response.headers
    assert f"tokens_used={CHAT_COST}" in error.message


async def test_streaming_request_is_limited_before_streaming(mock: MockProvider) -> None:
    org = secrets.token_hex(4)
    async with running_gateway(limits_config(mock.url, rule("gpt-4o-mini", CHAT_COST))) as gw:

        def stream() -> str:
            chunks = oai(gw, selected(org)).chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
            )
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

        assert await in_thread(stream) == "Hello from mock"
        with pytest.raises(openai.RateLimitError):
            await in_thread(stream)


async def test_counting_cost_per_request() -> None:
    """The CPU a limited request pays for counting its input tokens (reported, loosely bounded)."""
    for size, bound_ms in ((1024, 2.0), (32 * 1024, 10.0)):
        text = ("The quick brown fox jumps over the lazy dog. " * 1000)[:size]
        request = {"messages": [{"role": "user", "content": text}]}
        count_tokens("gpt-4o", input_text(Api.CHAT, request))
        rounds = 50
        start = time.process_time()
        for _ in range(rounds):
            count_tokens("gpt-4o", input_text(Api.CHAT, request))
        per_request_ms = (time.process_time() - start) / rounds * 1000
        print(f"counting {size} bytes: {per_request_ms * 1000:.0f} us CPU")
        assert per_request_ms < bound_ms
