"""Retries and failover end to end: the real gateway, mock providers over real sockets.

The first part ports the intent of Plano's retry integration tests (IT-1 to
IT-13) to our gateway: each simulated provider is its own mock, so every
test says exactly which provider received how many requests, in which wire
format and with whose key.  The rest covers what plano-trio adds: failover
across wire formats for all three client APIs, a client that leaves during
a backoff, the listener's `max_retries`, and streams that already started.

`max_attempts` counts attempts of one kind of failure, the first one
included, as Plano's proposed retry design counts them: with
`max_attempts: 2` a primary that answers 429 gets one retry elsewhere.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import httpx
import openai
import pytest
import trio

from plano_trio.translate.sse import SseParser
from tests.failover_support import (
    ANTHROPIC,
    CHAT_OK,
    GROQ,
    MISTRAL,
    MOCK_TEXT,
    PRIMARY,
    Sequence,
    access_fields,
    access_records,
    assert_answered_by,
    config,
    error_message,
    hang_up,
    mocks,
    openai_error,
    provider,
    reply,
    status_policy,
    unused_port,
)
from tests.mock_provider import MockProvider
from tests.scripted_provider import Script, scripted_provider
from tests.support import Gateway, in_thread, running_gateway

CHAT_PATH = "/v1/chat/completions"
MESSAGES_PATH = "/v1/messages"
CHAT = {"model": PRIMARY, "messages": [{"role": "user", "content": "Hello"}]}


async def post(gw: Gateway, path: str, body: dict[str, Any], *, timeout: float = 10) -> httpx.Response:
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.post(f"{gw.base}{path}", json=body, headers={"authorization": "Bearer client"})


def chat_text(response: httpx.Response) -> str:
    text: str = response.json()["choices"][0]["message"]["content"]
    return text


def sse_data(body: bytes) -> list[bytes]:
    return [event.data for event in SseParser().feed(body)]


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key="client-key", max_retries=0, timeout=10)


def ant(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base, api_key="client-key", max_retries=0, timeout=10)


def paths(mock: MockProvider) -> list[str]:
    return [request.path for request in mock.requests]


def body_of(mock: MockProvider, index: int = 0) -> Any:
    """The JSON body of the `index`-th request `mock` received."""
    return mock.requests[index].json


@asynccontextmanager
async def primary_scripted(script: Script, *, policy: str = "", listener: str = "") -> AsyncIterator[Gateway]:
    """The gateway in front of one scripted primary (for answers that change from request to request)."""
    async with scripted_provider(script) as primary:
        text = config(provider(PRIMARY, primary.url, policy=policy, default=True), listener=listener)
        async with running_gateway(text) as gw:
            yield gw


# --- IT-1, IT-2: a failing primary, a healthy provider of another prefix ----------------------------------


@pytest.mark.parametrize("status", [429, 503])
async def test_failing_primary_fails_over_to_a_different_provider(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plano_trio.access")
    with mocks(2) as (primary, secondary):
        text = config(
            provider(
                PRIMARY,
                primary.url,
                query=f"status={status}",
                policy=status_policy(f"[{status}]"),
                default=True,
            ),
            provider(ANTHROPIC, secondary.url),
        )
        async with running_gateway(text) as gw:
            response = await post(gw, CHAT_PATH, CHAT)
            async with httpx.AsyncClient() as client:
                counts = (await client.get(f"{gw.base}/debug/failover")).json()
    assert response.status_code == 200, response.text
    assert counts == {"failed_over": 1, "recovered": 1}
    assert chat_text(response) == MOCK_TEXT
    assert_answered_by(response, ANTHROPIC, 2)
    assert paths(primary) == ["/v1/chat/completions"]
    assert paths(secondary) == ["/v1/messages"]  # spoken to natively, with its own key
    assert secondary.requests[0].headers["x-api-key"] == "key-anthropic"
    assert body_of(secondary)["model"] == "claude-3-5-sonnet"
    fields = access_fields(caplog, CHAT_PATH)
    assert (fields["outcome"], fields["attempts"], fields["upstream"]) == ("ok", 2, ANTHROPIC)


async def test_a_healthy_primary_answers_in_one_attempt() -> None:
    with mocks(2) as (primary, secondary):
        text = config(
            provider(PRIMARY, primary.url, policy=status_policy(), default=True),
            provider(ANTHROPIC, secondary.url),
        )
        async with running_gateway(text) as gw:
            response = await post(gw, CHAT_PATH, CHAT)
    assert response.status_code == 200
    assert_answered_by(response, PRIMARY, 1)
    assert (len(primary.requests), len(secondary.requests)) == (1, 0)


# --- IT-3: every attempt fails ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CHAT_PATH, MESSAGES_PATH])
async def test_all_attempts_failing_answers_the_last_status_in_the_clients_shape(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plano_trio.access")
    with mocks(2) as (primary, secondary):
        text = config(
            provider(
                PRIMARY, primary.url, query="status=429", policy=status_policy("[429, 503]"), default=True
            ),
            provider(ANTHROPIC, secondary.url, query="status=503"),
        )
        async with running_gateway(text) as gw:
            body = {**CHAT, "max_tokens": 50} if path == MESSAGES_PATH else CHAT
            response = await post(gw, path, body)
    assert response.status_code == 503, response.text  # the last attempt's status
    payload = response.json()
    if path == MESSAGES_PATH:
        assert payload["type"] == "error" and "type" in payload["error"]
    else:
        assert "type" in payload["error"]
    message = error_message(response)
    assert "attempts" in message and PRIMARY in message and ANTHROPIC in message, message
    assert_answered_by(response, ANTHROPIC, 2)
    assert (len(primary.requests), len(secondary.requests)) == (1, 1)
    fields = access_fields(caplog, path)
    assert (fields["outcome"], fields["attempts"]) == ("upstream_error", 2)


# --- IT-4: no policy, no retry ------------------------------------------------------------------------


async def test_without_a_policy_the_error_is_answered_directly() -> None:
    with mocks(2) as (primary, secondary):
        text = config(
            provider(PRIMARY, primary.url, query="status=429", default=True),
            provider(ANTHROPIC, secondary.url),
        )
        async with running_gateway(text) as gw:
            response = await post(gw, CHAT_PATH, CHAT)
    assert response.status_code == 429
    assert (len(primary.requests), len(secondary.requests)) == (1, 0)


# --- IT-5: max_attempts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_attempts", "calls"), [(1, (1, 0, 0)), (2, (1, 1, 0))])
async def test_max_attempts_bounds_the_attempts(max_attempts: int, calls: tuple[int, int, int]) -> None:
    with mocks(3) as (primary, secondary, tertiary):
        text = config(
            provider(
                PRIMARY,
                primary.url,
                query="status=429",
                policy=status_policy(attempts=max_attempts),
                default=True,
            ),
            provider(ANTHROPIC, secondary.url, query="status=429"),
            provider(MISTRAL, tertiary.url),  # healthy, but one attempt too far
        )
        async with running_gateway(text) as gw:
            response = await post(gw, CHAT_PATH, CHAT)
    assert response.status_code == 429
    # a single first-try answer carries no failover headers
    assert response.headers.get("x-plano-attempts") == (None if max_attempts == 1 else str(max_attempts))
    assert (len(primary.requests), len(secondary.requests), len(tertiary.requests)) == calls


# --- IT-6: backoff ------------------------------------------------------------------------------------------


async def test_same_model_retries_wait_the_exponential_backoff() -> None:
    """base_ms 100 without jitter: 100 ms before the second attempt, 200 ms before the third."""
    policy = (
        status_policy(strategy="same_model", attempts=3)
        + """
        backoff:
          apply_to: same_model
          base_ms: 100
          max_ms: 5000
          jitter: false
    """
    )
    script = Sequence(reply(429, openai_error(429)), reply(429, openai_error(429)), reply(200, CHAT_OK))
    async with primary_scripted(script, policy=policy) as gw:
        response = await post(gw, CHAT_PATH, CHAT)
    assert response.status_code == 200, response.text
    assert_answered_by(response, PRIMARY, 3)
    assert len(script.arrivals) == 3
    first, second = script.gaps
    assert 0.09 <= first < 0.5 and 0.19 <= second < 0.7, script.gaps


# --- IT-7: fallback_models order ----------------------------------------------------------------------------


async def test_fallback_models_are_tried_in_their_order_before_other_providers() -> None:
    policy = (
        status_policy(attempts=3)
        + f"""
        fallback_models: [{ANTHROPIC}, {MISTRAL}]
    """
    )
    with mocks(4) as (primary, groq, mistral, claude):
        text = config(
            provider(PRIMARY, primary.url, query="status=429", policy=policy, default=True),
            provider(GROQ, groq.url),  # healthy and first in config order, but not a fallback model
            provider(MISTRAL, mistral.url),
            provider(ANTHROPIC, claude.url, query="status=429"),
        )
        async with running_gateway(text) as gw:
            response = await post(gw, CHAT_PATH, CHAT)
    assert response.status_code == 200, response.text
    assert_answered_by(response, MISTRAL, 3)
    assert (len(primary.requests), len(claude.requests), len(mistral.requests), len(groq.requests)) == (
        1,
        1,
        1,
        0,
    )
    assert primary.requests[0].time < claude.requests[0].time < mistral.requests[0].time


# --- IT-8, IT-9: Retry-After ----------------------------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "cap"), [(1, 300), (30, 1)])
async def test_retry_after_is_waited_out_up_to_its_cap(retry_after: int, cap: int) -> None:
    policy = (
        status_policy(strategy="same_model")
        + f"""
        retry_after_handling:
          scope: model
          apply_to: request
          max_retry_after_seconds: {cap}
    """
    )
    script = Sequence(reply(429, openai_error(429), ("retry-after", str(retry_after))), reply(200, CHAT_OK))
    async with primary_scripted(script, policy=policy) as gw:
        with trio.fail_after(5):
            response = await post(gw, CHAT_PATH, CHAT)
    assert response.status_code == 200, response.text
    assert_answered_by(response, PRIMARY, 2)
    (gap,) = script.gaps
    assert 0.95 <= gap < 2.5, gap  # one second: the header's value, or the cap below it


async def test_retry_after_blocks_the_model_for_later_requests() -> None:
    """A global Retry-After block: the next request goes straight to the fallback, and the
    failed request itself fails over at once (the block covers the primary, not its fallback)."""
    policy = (
        status_policy()
        + f"""
        fallback_models: [{ANTHROPIC}]
        retry_after_handling:
          scope: model
          apply_to: global
          max_retry_after_seconds: 300
    """
    )
    script = Sequence(reply(429, openai_error(429), ("retry-after", "60")), reply(200, CHAT_OK))
    with mocks(1) as (secondary,):
        async with scripted_provider(script) as primary:
            text = config(
                provider(PRIMARY, primary.url, policy=policy, default=True),
                provider(ANTHROPIC, secondary.url),
            )
            async with running_gateway(text) as gw:
                with trio.fail_after(5):
                    first = await post(gw, CHAT_PATH, CHAT)
                    second = await post(
                        gw, CHAT_PATH, {**CHAT, "messages": [{"role": "user", "content": "again"}]}
                    )
    assert first.status_code == 200, first.text
    assert_answered_by(first, ANTHROPIC, 2)
    assert second.status_code == 200, second.text
    assert_answered_by(second, ANTHROPIC, 1)  # the blocked primary is skipped at initial selection
    assert len(script.arrivals) == 1
    assert len(secondary.requests) == 2


# --- IT-10: timeout -------------------------------------------------------------------------------------


async def test_a_primary_that_does_not_answer_in_time_fails_over() -> None:
    policy = (
        status_policy()
        + """
        on_timeout:
          strategy: different_provider
          max_attempts: 2
    """
    )
    with mocks(2) as (primary, secondary):
        text = config(
            provider(PRIMARY, primary.url, query="ttft-ms=5000", policy=policy, default=True),
            provider(ANTHROPIC, secondary.url),
            timeout="1s",
        )
        async with running_gateway(text) as gw:
            started = trio.current_time()
            response = await post(gw, CHAT_PATH, CHAT)
            elapsed = trio.current_time() - started
    assert response.status_code == 200, response.text
    assert chat_text(response) == MOCK_TEXT
    assert_answered_by(response, ANTHROPIC, 2)
    assert 0.9 <= elapsed < 3, elapsed
    assert (len(primary.requests), len(secondary.requests)) == (1, 1)


# --- IT-11: high latency ---------------------------------------------------------------------------------


def latency_policy(measure: str, threshold_ms: int) -> str:
    return (
        status_policy()
        + f"""
        fallback_models: [{ANTHROPIC}]
        on_high_latency:
          threshold_ms: {threshold_ms}
          measure: {measure}
          min_triggers: 1
          strategy: different_provider
          max_attempts: 2
          block_duration_seconds: 60
          scope: model
          apply_to: global
    """
    )


async def test_a_slow_answer_is_delivered_and_blocks_the_model_for_the_next_request() -> None:
    with mocks(2) as (primary, secondary):
        text = config(
            provider(
                PRIMARY, primary.url, query="ttft-ms=400", policy=latency_policy("total", 200), default=True
            ),
            provider(ANTHROPIC, secondary.url),
        )
        async with running_gateway(text) as gw:
            slow = await post(gw, CHAT_PATH, CHAT)
            fast = await post(gw, CHAT_PATH, CHAT)
    assert slow.status_code == 200 and chat_text(slow) == MOCK_TEXT
    assert_answered_by(slow, PRIMARY, 1)  # completed but slow: delivered as it is
    assert fast.status_code == 200 and chat_text(fast) == MOCK_TEXT
    assert_answered_by(fast, ANTHROPIC, 1)  # the primary is latency-blocked at initial selection
    assert (len(primary.requests), len(secondary.requests)) == (1, 1)


async def test_a_stream_slower_than_the_ttfb_threshold_fails_over_before_it_starts() -> None:
    with mocks(2) as (primary, secondary):
        text = config(
            provider(
                PRIMARY, primary.url, query="ttft-ms=3000", policy=latency_policy("ttfb", 300), default=True
            ),
            provider(ANTHROPIC, secondary.url),
        )
        async with running_gateway(text) as gw:
            started = trio.current_time()
            response = await post(gw, CHAT_PATH, {**CHAT, "stream": True})
            elapsed = trio.current_time() - started
    assert response.status_code == 200
    assert_answered_by(response, ANTHROPIC, 2)
    events = sse_data(response.content)
    assert events[-1] == b"[DONE]"
    text_out = "".join(
        json.loads(data)["choices"][0]["delta"].get("content") or ""
        for data in events[:-1]
        if json.loads(data)["choices"]
    )
    assert text_out == MOCK_TEXT
    assert elapsed < 2, elapsed  # the primary's 3 s were not waited out
    assert (len(primary.requests), len(secondary.requests)) == (1, 1)


# --- IT-12, IT-13 and cross-API failover: the request is preserved, translated afresh per target --------


SYSTEM = "You are a helpful assistant."
QUESTION = "Tell me about retry mechanisms."
DISTINCT = {
    "model": PRIMARY,
    "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
    "temperature": 0.7,
    "max_tokens": 100,
}


async def test_same_wire_fallback_receives_the_clients_request_unchanged_but_for_the_model() -> None:
    with mocks(2) as (primary, secondary):
        text = config(
            provider(PRIMARY, primary.url, query="status=429", policy=status_policy(), default=True),
            provider(MISTRAL, secondary.url),
        )
        async with running_gateway(text) as gw:
            response = await post(gw, CHAT_PATH, DISTINCT)
    assert response.status_code == 200, response.text
    assert_answered_by(response, MISTRAL, 2)
    assert body_of(primary) == {**DISTINCT, "model": "gpt-4o"}
    assert body_of(secondary) == {**DISTINCT, "model": "mistral-large"}
    assert secondary.requests[0].headers["authorization"] == "Bearer key-mistral"


async def test_anthropic_fallback_receives_the_clients_request_translated() -> None:
    with mocks(2) as (primary, secondary):
        text = config(
            provider(PRIMARY, primary.url, query="status=429", policy=status_policy(), default=True),
            provider(ANTHROPIC, secondary.url),
        )
        async with running_gateway(text) as gw:
            response = await post(gw, CHAT_PATH, DISTINCT)
    assert response.status_code == 200, response.text
    seen = body_of(secondary)
    assert seen["model"] == "claude-3-5-sonnet"
    assert seen["system"] == SYSTEM
    assert seen["temperature"] == 0.7 and seen["max_tokens"] == 100
    assert [m["role"] for m in seen["messages"]] == ["user"]
    content = seen["messages"][0]["content"]
    assert content == QUESTION or content == [{"type": "text", "text": QUESTION}]


def cross_config(
    primary: MockProvider, fallback: MockProvider, *, primary_model: str, fallback_model: str
) -> str:
    policy = (
        status_policy("[429, 503]")
        + f"""
        fallback_models: [{fallback_model}]
    """
    )
    return config(
        provider(primary_model, primary.url, query="status=503", policy=policy, default=True),
        provider(fallback_model, fallback.url),
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_sdk_chat_fails_over_to_anthropic(stream: bool) -> None:
    def run() -> tuple[str, dict[str, str]]:
        client = oai(gw)
        messages: Any = [{"role": "user", "content": "reply with exactly: failed over"}]
        if not stream:
            raw = client.chat.completions.with_raw_response.create(model=PRIMARY, messages=messages)
            return raw.parse().choices[0].message.content or "", dict(raw.headers)
        raw_stream = client.chat.completions.with_raw_response.create(
            model=PRIMARY, messages=messages, stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in raw_stream.parse() if chunk.choices)
        return text, dict(raw_stream.headers)

    with mocks(2) as (primary, fallback):
        async with running_gateway(
            cross_config(primary, fallback, primary_model=PRIMARY, fallback_model=ANTHROPIC)
        ) as gw:
            text, headers = await in_thread(run)
    assert text == "failed over"
    assert (headers["x-plano-model"], headers["x-plano-attempts"]) == (ANTHROPIC, "2")
    assert paths(primary) == ["/v1/chat/completions"] and paths(fallback) == ["/v1/messages"]
    assert body_of(fallback).get("stream", False) is stream


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_sdk_fails_over_to_an_openai_compatible_model(stream: bool) -> None:
    def run() -> tuple[str, str]:
        client = ant(gw)
        messages: Any = [{"role": "user", "content": "reply with exactly: failed over"}]
        create = client.messages.with_raw_response.create
        if not stream:
            raw = create(model=ANTHROPIC, max_tokens=50, system="be brief", messages=messages)
            block = raw.parse().content[0]
            return (block.text if block.type == "text" else ""), raw.headers["x-plano-model"]
        raw_stream = create(model=ANTHROPIC, max_tokens=50, system="be brief", messages=messages, stream=True)
        text = "".join(
            event.delta.text
            for event in raw_stream.parse()
            if event.type == "content_block_delta" and event.delta.type == "text_delta"
        )
        return text, raw_stream.headers["x-plano-model"]

    with mocks(2) as (primary, fallback):
        async with running_gateway(
            cross_config(primary, fallback, primary_model=ANTHROPIC, fallback_model=PRIMARY)
        ) as gw:
            text, answered_by = await in_thread(run)
    assert (text, answered_by) == ("failed over", PRIMARY)
    assert paths(primary) == ["/v1/messages"] and paths(fallback) == ["/v1/chat/completions"]
    seen = body_of(fallback)
    assert seen["model"] == "gpt-4o"
    assert seen["messages"][0] == {"role": "system", "content": "be brief"}


@pytest.mark.parametrize(
    ("primary_model", "fallback_model", "fallback_path"),
    [(PRIMARY, ANTHROPIC, "/v1/messages"), (ANTHROPIC, PRIMARY, "/v1/responses")],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_responses_client_fails_over_across_wire_formats(
    primary_model: str, fallback_model: str, fallback_path: str, stream: bool
) -> None:
    def run() -> tuple[str, str]:
        create = oai(gw).responses.with_raw_response.create
        prompt = "reply with exactly: failed over"
        if not stream:
            raw = create(model=primary_model, input=prompt)
            return raw.parse().output_text, raw.headers["x-plano-model"]
        raw_stream = create(model=primary_model, input=prompt, stream=True)
        finals = [event.response for event in raw_stream.parse() if event.type == "response.completed"]
        return finals[0].output_text, raw_stream.headers["x-plano-model"]

    with mocks(2) as (primary, fallback):
        text_config = cross_config(
            primary, fallback, primary_model=primary_model, fallback_model=fallback_model
        )
        async with running_gateway(text_config) as gw:
            text, answered_by = await in_thread(run)
    assert (text, answered_by) == ("failed over", fallback_model)
    assert len(primary.requests) == 1
    assert paths(fallback) == [fallback_path]


# --- a client that leaves during a backoff -------------------------------------------------------------


async def test_client_leaving_during_backoff_ends_the_retry_loop_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="plano_trio.access")
    policy = (
        status_policy()
        + """
        backoff:
          apply_to: global
          base_ms: 1500
          max_ms: 5000
          jitter: false
    """
    )
    body = json.dumps(CHAT).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    with mocks(2) as (primary, fallback):
        text = config(
            provider(PRIMARY, primary.url, query="status=429", policy=policy, default=True),
            provider(MISTRAL, fallback.url),
        )
        async with running_gateway(text) as gw:
            stream = await trio.open_tcp_stream(gw.host, gw.port)
            await stream.send_all(request)
            with trio.fail_after(5):
                while not primary.requests:
                    await trio.sleep(0.01)
            await trio.sleep(0.1)  # the 429 is in; the gateway is in its 1.5 s backoff
            await stream.aclose()
            left = trio.current_time()
            with trio.fail_after(1):
                while not access_records(caplog, CHAT_PATH):
                    await trio.sleep(0.01)
            ended_after = trio.current_time() - left
            await trio.sleep(max(0.0, 1.8 - (trio.current_time() - left)))  # past the backoff's end
    assert ended_after < 0.5, ended_after
    assert fallback.requests == []
    assert access_fields(caplog, CHAT_PATH)["outcome"] == "client_disconnected"


# --- listener max_retries: the same model again ---------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [reply(503, openai_error(503, "overloaded")), hang_up],
    ids=["503", "reset"],
)
async def test_listener_max_retries_retries_the_same_model(first: Any) -> None:
    script = Sequence(first, reply(200, CHAT_OK))
    async with primary_scripted(script, listener="max_retries: 1") as gw:
        response = await post(gw, CHAT_PATH, CHAT)
    assert response.status_code == 200, response.text
    assert chat_text(response) == MOCK_TEXT
    assert_answered_by(response, PRIMARY, 2)
    assert len(script.arrivals) == 2


async def test_listener_max_retries_retries_a_refused_connection_then_gives_up() -> None:
    text = config(
        provider(PRIMARY, f"http://127.0.0.1:{unused_port()}", default=True), listener="max_retries: 2"
    )
    async with running_gateway(text) as gw:
        with trio.fail_after(5):
            response = await post(gw, CHAT_PATH, CHAT)
    assert response.status_code in (502, 503), response.text
    assert_answered_by(response, PRIMARY, 3)
    assert "attempts" in error_message(response)


async def test_listener_max_retries_does_not_retry_a_client_error() -> None:
    script = Sequence(reply(400, openai_error(400, "bad request")), reply(200, CHAT_OK))
    async with primary_scripted(script, listener="max_retries: 2") as gw:
        response = await post(gw, CHAT_PATH, CHAT)
    assert response.status_code == 400
    assert len(script.arrivals) == 1


# --- no retry once a stream has started ---------------------------------------------------------------


@pytest.mark.parametrize("path", [CHAT_PATH, MESSAGES_PATH])
async def test_a_stream_that_breaks_after_its_first_bytes_is_not_retried(path: str) -> None:
    with mocks(2) as (primary, fallback):
        text = config(
            provider(
                PRIMARY,
                primary.url,
                query="drop-after=2",
                policy=status_policy("[429, 500-504]"),
                default=True,
            ),
            provider(ANTHROPIC, fallback.url),
        )
        async with running_gateway(text) as gw:
            response = await post(gw, path, {**CHAT, "stream": True, "max_tokens": 50})
    assert response.status_code == 200
    assert_answered_by(response, PRIMARY, 1)
    events = sse_data(response.content)
    assert len(events) >= 2, response.content
    assert b'"error"' in events[-1], response.content
    json.loads(events[-1])
    assert b"[DONE]" not in response.content
    assert fallback.requests == []
