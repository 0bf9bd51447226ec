"""Every client SDK against every provider format: official SDKs → real gateway → mock provider.

For each pair the test checks what the SDK got (text, tool-call arguments, stop reason, usage)
and what the mock received (the provider's native request, on its native path, with its auth).
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from tests.mock_provider import MockProvider
from tests.support import Gateway, in_thread, provider_config, running_gateway

WEATHER_OPENAI = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
]
WEATHER_ANTHROPIC = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
    }
]
WEATHER_RESPONSES = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    }
]


def matrix_config(mock_url: str) -> str:
    extra = f"""  - model: anthropic/claude-sonnet-4-6
    access_key: anthropic-server-key
    base_url: {mock_url}
  - model: mistral/mistral-small
    access_key: mistral-key
    base_url: {mock_url}
  - model: amazon_bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0
    access_key: bedrock-api-key
    base_url: {mock_url}
"""
    return provider_config(mock_url, extra_providers=extra)


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key="client-key", max_retries=0, timeout=10)


def ant(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base, api_key="client-key", max_retries=0, timeout=10)


def last(mock: MockProvider) -> Any:
    return mock.requests[-1]


# --- Anthropic SDK → OpenAI-compatible provider ------------------------------------------------------


async def test_anthropic_sdk_to_openai_provider(mock: MockProvider) -> None:
    async with running_gateway(matrix_config(mock.url)) as gw:
        message = await in_thread(
            lambda: ant(gw).messages.create(
                model="openai/gpt-4o-mini",
                max_tokens=100,
                system="be brief",
                messages=[{"role": "user", "content": "reply with exactly: hi there"}],
            )
        )
    assert message.content[0].type == "text" and message.content[0].text == "hi there"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0
    seen = last(mock)
    assert seen.path == "/v1/chat/completions"
    assert seen.json["model"] == "gpt-4o-mini"
    assert seen.json["messages"][0] == {"role": "system", "content": "be brief"}
    assert seen.json["max_tokens"] == 100
    assert seen.headers["authorization"] == "Bearer server-key"


async def test_anthropic_sdk_streams_tool_call_through_openai_provider(mock: MockProvider) -> None:
    def run() -> anthropic.types.Message:
        with ant(gw).messages.stream(
            model="gpt-4o-mini",
            max_tokens=100,
            tools=WEATHER_ANTHROPIC,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "call tool"}],
            extra_headers={"x-mock-chunks": "7"},
        ) as stream:
            return stream.get_final_message()

    async with running_gateway(matrix_config(mock.url)) as gw:
        message = await in_thread(run)
    tool = next(block for block in message.content if block.type == "tool_use")
    assert tool.name == "get_weather"
    assert tool.input == {"location": "Seattle"}
    assert message.stop_reason == "tool_use"
    seen = last(mock).json
    assert seen["stream"] is True and seen["tools"][0]["function"]["name"] == "get_weather"


async def test_anthropic_sdk_streams_text_through_openai_provider(mock: MockProvider) -> None:
    def run() -> tuple[str, list[str]]:
        kinds: list[str] = []
        text = ""
        with ant(gw).messages.stream(
            model="gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            for event in stream:
                kinds.append(event.type)
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    text += event.delta.text
        return text, kinds

    async with running_gateway(matrix_config(mock.url)) as gw:
        text, kinds = await in_thread(run)
    assert text == "Hello from mock"
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"


# --- OpenAI SDK (chat) → Anthropic provider ----------------------------------------------------------


async def test_openai_chat_to_anthropic_provider_native_messages(mock: MockProvider) -> None:
    async with running_gateway(matrix_config(mock.url)) as gw:
        completion = await in_thread(
            lambda: oai(gw).chat.completions.create(
                model="anthropic/claude-sonnet-4-6",
                messages=[
                    {"role": "system", "content": "you are terse"},
                    {"role": "user", "content": "reply with exactly: native"},
                ],
                stop=["END"],
            )
        )
    assert completion.choices[0].message.content == "native"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    seen = last(mock)
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == "anthropic-server-key"
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers
    assert seen.json["system"] == "you are terse"
    assert seen.json["max_tokens"] == 4096
    assert seen.json["stop_sequences"] == ["END"]
    assert seen.json["model"] == "claude-sonnet-4-6"


async def test_openai_chat_streams_tool_call_from_anthropic_provider(mock: MockProvider) -> None:
    def run() -> tuple[str, str, str | None, Any]:
        stream = oai(gw).chat.completions.create(
            model="claude-sonnet-4-6",
            messages=[{"role": "user", "content": "call tool"}],
            tools=WEATHER_OPENAI,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-mock-chunks": "6"},
        )
        name, args, finish, usage = "", "", None, None
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for call in choice.delta.tool_calls or []:
                    if call.function is not None:
                        name += call.function.name or ""
                        args += call.function.arguments or ""
        return name, args, finish, usage

    async with running_gateway(matrix_config(mock.url)) as gw:
        name, args, finish, usage = await in_thread(run)
    assert name == "get_weather"
    assert json.loads(args) == {"location": "Seattle"}
    assert finish == "tool_calls"
    assert usage is not None and usage.completion_tokens > 0
    seen = last(mock).json
    assert seen["tools"][0] == {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
    }


# --- OpenAI SDK (responses) → Anthropic / chat-only / native providers ----------------------------------


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("anthropic/claude-sonnet-4-6", "/v1/messages"),
        ("mistral/mistral-small", "/v1/chat/completions"),
        ("openai/gpt-4o-mini", "/v1/responses"),
    ],
)
async def test_openai_responses_non_streaming(mock: MockProvider, model: str, path: str) -> None:
    async with running_gateway(matrix_config(mock.url)) as gw:
        response = await in_thread(
            lambda: oai(gw).responses.create(
                model=model, instructions="be kind", input="reply with exactly: from responses"
            )
        )
    assert response.output_text == "from responses"
    assert response.status == "completed"
    assert response.usage is not None and response.usage.output_tokens > 0
    assert last(mock).path == path


@pytest.mark.parametrize(
    "model", ["anthropic/claude-sonnet-4-6", "mistral/mistral-small", "openai/gpt-4o-mini"]
)
async def test_openai_responses_stream_with_tool_call(mock: MockProvider, model: str) -> None:
    def run() -> tuple[list[str], Any]:
        kinds: list[str] = []
        with oai(gw).responses.stream(
            model=model,
            input="call tool",
            tools=WEATHER_RESPONSES,  # type: ignore[arg-type]
            extra_headers={"x-mock-chunks": "5"},
        ) as stream:
            for event in stream:
                kinds.append(event.type)
            return kinds, stream.get_final_response()

    async with running_gateway(matrix_config(mock.url)) as gw:
        kinds, final = await in_thread(run)
    calls = [item for item in final.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"location": "Seattle"}
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.function_call_arguments.done" in kinds
    assert final.usage is not None and final.usage.output_tokens > 0


async def test_openai_responses_stream_text_events(mock: MockProvider) -> None:
    def run() -> tuple[str, list[str]]:
        kinds: list[str] = []
        text = ""
        stream = oai(gw).responses.create(model="claude-sonnet-4-6", input="hi", stream=True)
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
        return text, kinds

    async with running_gateway(matrix_config(mock.url)) as gw:
        text, kinds = await in_thread(run)
    assert text == "Hello from mock"
    for expected in (
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ):
        assert expected in kinds


async def test_untranslatable_responses_tool_is_400_naming_field(mock: MockProvider) -> None:
    async with running_gateway(matrix_config(mock.url)) as gw:
        with pytest.raises(openai.BadRequestError) as caught:
            await in_thread(
                lambda: oai(gw).responses.create(
                    model="mistral/mistral-small",
                    input="x",
                    tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}],
                )
            )
    assert caught.value.status_code == 400
    assert "file_search" in caught.value.message
    assert caught.value.param == "tools[0].type"
    assert mock.requests == []


# --- errors across APIs ----------------------------------------------------------------------------------


async def test_openai_provider_429_reaches_anthropic_sdk(mock: MockProvider) -> None:
    async with running_gateway(matrix_config(mock.url)) as gw:
        with pytest.raises(anthropic.RateLimitError) as caught:
            await in_thread(
                lambda: ant(gw).messages.create(
                    model="gpt-4o-mini",
                    max_tokens=10,
                    messages=[{"role": "user", "content": "x"}],
                    extra_headers={"x-mock-status": "429", "x-mock-error-message": "openai says slow down"},
                )
            )
    assert caught.value.status_code == 429
    assert "openai says slow down" in str(caught.value)
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


async def test_anthropic_provider_error_reaches_openai_sdk(mock: MockProvider) -> None:
    async with running_gateway(matrix_config(mock.url)) as gw:
        with pytest.raises(openai.RateLimitError) as caught:
            await in_thread(
                lambda: oai(gw).chat.completions.create(
                    model="claude-sonnet-4-6",
                    messages=[{"role": "user", "content": "x"}],
                    extra_headers={"x-mock-status": "429", "x-mock-error-message": "anthropic is busy"},
                )
            )
    assert caught.value.status_code == 429
    assert "anthropic is busy" in caught.value.message


async def test_anthropic_sdk_gets_anthropic_error_shape_for_unknown_model(mock: MockProvider) -> None:
    async with running_gateway(matrix_config(mock.url)) as gw:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await in_thread(
                lambda: ant(gw).messages.create(
                    model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}]
                )
            )
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "Model 'nope' not found in configured providers",
        },
    }


async def test_anthropic_sdk_to_anthropic_provider_is_passthrough(mock: MockProvider) -> None:
    async with running_gateway(matrix_config(mock.url)) as gw:
        message = await in_thread(
            lambda: ant(gw).messages.create(
                model="anthropic/claude-sonnet-4-6",
                max_tokens=10,
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
                    }
                ],
                extra_body={"top_k": 5},
            )
        )
    assert message.content[0].type == "text"
    seen = last(mock)
    assert seen.json["top_k"] == 5
    assert seen.json["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert seen.headers["x-api-key"] == "anthropic-server-key"


async def test_mid_stream_drop_reaches_anthropic_sdk_as_error(mock: MockProvider) -> None:
    def run() -> None:
        with ant(gw).messages.stream(
            model="gpt-4o-mini",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-drop-after": "2", "x-mock-chunks": "8"},
        ) as stream:
            for _ in stream:
                pass

    async with running_gateway(matrix_config(mock.url)) as gw:
        with pytest.raises(anthropic.APIError) as caught:
            await in_thread(run)
    assert "broke off" in str(caught.value)


# --- Amazon Bedrock (Converse / ConverseStream, binary event-stream) ---------------------------------------

BEDROCK = "amazon_bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0"
BEDROCK_PATH = "/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0"


async def test_openai_chat_to_bedrock_converse(mock: MockProvider) -> None:
    async with running_gateway(matrix_config(mock.url)) as gw:
        completion = await in_thread(
            lambda: oai(gw).chat.completions.create(
                model=BEDROCK,
                messages=[
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": "reply with exactly: rock"},
                ],
                max_tokens=64,
            )
        )
    assert completion.choices[0].message.content == "rock"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    seen = last(mock)
    assert seen.path == f"{BEDROCK_PATH}/converse"
    assert seen.headers["authorization"] == "Bearer bedrock-api-key"
    assert seen.json["system"] == [{"text": "sys"}]
    assert seen.json["inferenceConfig"]["maxTokens"] == 64
    assert "model" not in seen.json and "stream" not in seen.json


async def test_openai_chat_streams_tool_call_from_bedrock_with_done(mock: MockProvider) -> None:
    def run() -> tuple[str, str, str | None, bytes]:
        stream = oai(gw).chat.completions.create(
            model=BEDROCK,
            messages=[{"role": "user", "content": "call tool"}],
            tools=WEATHER_OPENAI,  # type: ignore[arg-type]
            stream=True,
            extra_headers={"x-mock-chunks": "5"},
        )
        name, args, finish = "", "", None
        for chunk in stream:
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for call in choice.delta.tool_calls or []:
                    if call.function is not None:
                        name += call.function.name or ""
                        args += call.function.arguments or ""
        raw = oai(gw).chat.completions.with_raw_response.create(
            model=BEDROCK, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        return name, args, finish, raw.http_response.read()

    async with running_gateway(matrix_config(mock.url)) as gw:
        name, args, finish, raw = await in_thread(run)
    assert name == "get_weather" and json.loads(args) == {"location": "Seattle"}
    assert finish == "tool_calls"
    assert raw.rstrip().endswith(b"data: [DONE]")  # Plano forgets it after Bedrock streams
    assert mock.requests[0].path == f"{BEDROCK_PATH}/converse-stream"
    assert mock.requests[0].json["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"


async def test_openai_responses_stream_from_bedrock(mock: MockProvider) -> None:
    def run() -> Any:
        with oai(gw).responses.stream(model=BEDROCK, input="reply with exactly: via converse") as stream:
            for _ in stream:
                pass
            return stream.get_final_response()

    async with running_gateway(matrix_config(mock.url)) as gw:
        final = await in_thread(run)
    assert final.output_text == "via converse"
    assert final.usage is not None and final.usage.input_tokens > 0


async def test_anthropic_sdk_streams_tool_call_from_bedrock(mock: MockProvider) -> None:
    def run() -> anthropic.types.Message:
        with ant(gw).messages.stream(
            model=BEDROCK,
            max_tokens=100,
            tools=WEATHER_ANTHROPIC,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "call tool"}],
        ) as stream:
            return stream.get_final_message()

    async with running_gateway(matrix_config(mock.url)) as gw:
        message = await in_thread(run)
    tool = next(block for block in message.content if block.type == "tool_use")
    assert tool.input == {"location": "Seattle"} and message.stop_reason == "tool_use"


async def test_bedrock_stream_exception_becomes_client_error(mock: MockProvider) -> None:
    def run() -> None:
        stream = oai(gw).chat.completions.create(
            model=BEDROCK,
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            extra_headers={"x-mock-bedrock-exception": "throttlingException"},
        )
        for _ in stream:
            pass

    async with running_gateway(matrix_config(mock.url)) as gw:
        with pytest.raises(openai.APIError) as caught:
            await in_thread(run)
    assert "throttling" in str(caught.value).lower()


async def test_bedrock_error_status_translated(mock: MockProvider) -> None:
    async with running_gateway(matrix_config(mock.url)) as gw:
        with pytest.raises(anthropic.RateLimitError) as caught:
            await in_thread(
                lambda: ant(gw).messages.create(
                    model=BEDROCK,
                    max_tokens=10,
                    messages=[{"role": "user", "content": "x"}],
                    extra_headers={"x-mock-status": "429", "x-mock-error-message": "too many tokens"},
                )
            )
    assert "too many tokens" in str(caught.value)
