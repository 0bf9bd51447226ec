"""Prompt-cache markers end to end: what the provider receives, with the real SDKs in front.

The marking itself is table-tested in `test_cache_markers.py`; here the
gateway decides per attempt whether to mark (config, `X-Plano-Cache: off`,
the provider's API), for an untranslated Anthropic client and for a Chat
client translated to Anthropic (which Plano leaves unmarked).
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from tests.mock_provider import MockProvider
from tests.support import in_thread, running_gateway

LONG_SYSTEM = "You are a meticulous assistant. " * 200  # ~6,400 bytes: past the 1,024-token floor
EPHEMERAL = {"type": "ephemeral"}


def config(url: str, caching: str) -> str:
    return f"""
version: v0.4.0
listeners:
  - {{name: llm, type: model, address: 127.0.0.1, port: 0, timeout: 10s}}
model_providers:
  - model: anthropic/claude-sonnet-4-6
    access_key: k
    base_url: {url}/v1
    default: true
{caching}
"""


ON = "prompt_caching: {enabled: true}"


def anthropic_call(base: str, **headers: str) -> None:
    client = anthropic.Anthropic(
        base_url=base, api_key="c", max_retries=0, timeout=10, default_headers=headers
    )
    client.messages.create(
        model="anthropic/claude-sonnet-4-6",
        max_tokens=32,
        system=LONG_SYSTEM,
        messages=[{"role": "user", "content": "hello"}],
    )


def chat_call(base: str) -> None:
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="c", max_retries=0, timeout=10)
    client.chat.completions.create(
        model="anthropic/claude-sonnet-4-6",
        messages=[{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": "hello"}],
    )


def sent(mock: MockProvider) -> dict[str, Any]:
    body: dict[str, Any] = mock.requests[-1].json
    return body


@pytest.mark.parametrize("call", [anthropic_call, chat_call])
async def test_anthropic_upstreams_get_two_breakpoints(mock: MockProvider, call: Any) -> None:
    async with running_gateway(config(mock.url, ON)) as gw:
        await in_thread(lambda: call(gw.base))
    body = sent(mock)
    assert body["system"][-1]["cache_control"] == EPHEMERAL
    last = body["messages"][-1]["content"]
    assert isinstance(last, list) and last[-1]["cache_control"] == EPHEMERAL


@pytest.mark.parametrize(
    "caching",
    ["", "prompt_caching: {enabled: false}", "prompt_caching: {enabled: true, inject_cache_control: false}"],
)
async def test_no_markers_unless_enabled(mock: MockProvider, caching: str) -> None:
    async with running_gateway(config(mock.url, caching)) as gw:
        await in_thread(lambda: anthropic_call(gw.base))
    assert "cache_control" not in mock.requests[-1].body.decode()


async def test_x_plano_cache_off_opts_out(mock: MockProvider) -> None:
    async with running_gateway(config(mock.url, ON)) as gw:
        await in_thread(lambda: anthropic_call(gw.base, **{"X-Plano-Cache": "off"}))
    assert "cache_control" not in mock.requests[-1].body.decode()


async def test_short_prompts_are_not_marked(mock: MockProvider) -> None:
    async with running_gateway(config(mock.url, ON)) as gw:
        client = anthropic.Anthropic(base_url=gw.base, api_key="c", max_retries=0, timeout=10)
        await in_thread(
            lambda: client.messages.create(
                model="anthropic/claude-sonnet-4-6",
                max_tokens=9,
                system="short",
                messages=[{"role": "user", "content": "x"}],
            )
        )
    assert "cache_control" not in mock.requests[-1].body.decode()
