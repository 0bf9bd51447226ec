"""End to end: a gateway whose event loop really lags sheds new LLM requests, then admits them again.

The lag is made for real, in the gateway's own process and loop: a task that blocks the thread
(`time.sleep`) for `BLOCK_S` on every pass of the run loop, as a CPU-bound overload would.  Every wake-up
of the monitor then comes at least `BLOCK_S - PERIOD_S` (100 ms) late, twice `LIMIT_MS`; once the
task stops, the loop is idle again.  The clients are the official SDKs, in a worker thread.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anthropic
import httpx
import openai
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from plano_trio.server.lag_monitor import PERIOD_S
from tests.mock_provider import MockProvider
from tests.support import Gateway, in_thread, provider_config, running_gateway, task_names

LIMIT_MS = 50
BLOCK_S = 0.15
MONITOR = "watch_loop_lag"
MESSAGES = [{"role": "user", "content": "reply with exactly: pong"}]
REFUSED = re.compile(r"The gateway's event loop is running (\d+) ms late \(limit 50 ms\); retry shortly")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(mock_url: str, metrics_port: int, settings: str) -> str:
    anthropic_model = f"  - model: anthropic/claude-sonnet-4-6\n    access_key: k\n    base_url: {mock_url}\n"
    tail = f"plano_trio:\n  metrics_bind_address: 127.0.0.1:{metrics_port}\n{settings}"
    return provider_config(mock_url, extra_providers=anthropic_model, tail=tail)


@asynccontextmanager
async def lagging(block_s: float = BLOCK_S) -> AsyncIterator[None]:
    """While inside: every pass of this trio loop blocks its thread for `block_s`."""

    async def hog() -> None:
        while True:
            time.sleep(block_s)
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hog)
        # Enough wake-ups of the monitor (each one pass late) to fill its window with late ones.
        await trio.sleep(6 * (PERIOD_S + block_s))
        yield
        nursery.cancel_scope.cancel()


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key="client-key", max_retries=0, timeout=30)


def ant(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base, api_key="client-key", max_retries=0, timeout=30)


async def chat(gw: Gateway) -> str:
    completion = await in_thread(
        lambda: oai(gw).chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    )
    return completion.choices[0].message.content or ""


async def message(gw: Gateway) -> str:
    answer = await in_thread(
        lambda: ant(gw).messages.create(
            model="anthropic/claude-sonnet-4-6",
            max_tokens=16,
            messages=MESSAGES,  # type: ignore[arg-type]
        )
    )
    block = answer.content[0]
    assert block.type == "text"
    return block.text


async def metric(port: int, name: str, **labels: str) -> float | None:
    """One sample's value from the gateway's `/metrics` (None: no such sample)."""
    response = await in_thread(lambda: httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30))
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


async def admitted_again(gw: Gateway, deadline_s: float = 20) -> str:
    """The answer to the first chat request the gateway admits, once the loop has caught up (its
    refusals until then must be for the lag)."""
    with trio.fail_after(deadline_s):
        while True:
            try:
                return await chat(gw)
            except openai.InternalServerError as error:
                _lag_ms(error.response.json()["error"]["message"])
                await trio.sleep(0.1)


def _lag_ms(message: str) -> int:
    found = REFUSED.search(message)
    assert found, message
    return int(found.group(1))


async def test_a_lagging_loop_sheds_llm_requests_in_each_sdk_shape(mock: MockProvider) -> None:
    port = _free_port()
    async with running_gateway(_config(mock.url, port, f"  max_loop_lag_ms: {LIMIT_MS}\n")) as gw:
        assert await chat(gw) == "pong"  # an idle loop admits
        assert any(name.endswith(MONITOR) for name in task_names())
        async with lagging():
            with pytest.raises(openai.InternalServerError) as shed:
                await chat(gw)
            with pytest.raises(anthropic.InternalServerError) as shed_messages:
                await message(gw)
            health = await in_thread(lambda: httpx.get(f"{gw.base}/healthz", timeout=30))
            assert health.status_code == 200  # health checks are never shed
            lag_s = await metric(port, "plano_trio_event_loop_lag_seconds")
            assert lag_s is not None and lag_s > LIMIT_MS / 1000
        assert await admitted_again(gw) == "pong"
        assert await message(gw) == "pong"
        refused = await metric(port, "plano_trio_llm_requests_refused_total", reason="loop_lag")
        assert refused is not None and refused >= 2

    error = shed.value
    assert error.status_code == 503
    assert error.response.headers["retry-after"] == "1"
    body = error.response.json()
    assert set(body) == {"error"}
    assert (body["error"]["type"], body["error"]["code"], body["error"]["param"]) == (
        "server_error",
        "overloaded",
        None,
    )
    assert _lag_ms(body["error"]["message"]) > LIMIT_MS

    error_messages = shed_messages.value
    assert error_messages.status_code == 503
    assert error_messages.response.headers["retry-after"] == "1"
    body = error_messages.response.json()
    assert set(body) == {"type", "error"} and body["type"] == "error"
    assert body["error"]["type"] == "overloaded_error"
    assert _lag_ms(body["error"]["message"]) > LIMIT_MS


async def test_without_the_key_nothing_is_shed_and_no_monitor_runs(mock: MockProvider) -> None:
    port = _free_port()
    async with running_gateway(_config(mock.url, port, "")) as gw:
        assert not any(name.endswith(MONITOR) for name in task_names())
        async with lagging(block_s=0.05):
            assert await chat(gw) == "pong"
            assert await message(gw) == "pong"
        assert await metric(port, "plano_trio_event_loop_lag_seconds") is None
        assert await metric(port, "plano_trio_llm_requests_refused_total", reason="loop_lag") is None
