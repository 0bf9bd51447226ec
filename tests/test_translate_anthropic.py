"""Anthropic Messages ↔ OpenAI Chat translation, as tables and recorded-shape streams (pure, no sockets)."""

from __future__ import annotations

import random
import re
from typing import Any
from unittest.mock import ANY

import msgspec
import pytest

from plano_trio.apis import provider_chat as chat_wire
from plano_trio.apis import provider_messages as messages_wire
from plano_trio.translate.anthropic_common import (
    anthropic_usage_from_chat,
    chat_usage_from_anthropic,
    finish_reason_for,
    stop_reason_for,
)
from plano_trio.translate.base import Json, StreamError, StreamTranslator, TranslationError, compose
from plano_trio.translate.client_messages import (
    ChatStreamToMessages,
    chat_response_to_messages,
    messages_request_to_chat,
)
from plano_trio.translate.upstream_messages import (
    MessagesStreamToChat,
    chat_request_to_messages,
    messages_response_to_chat,
)

PNG = "iVBORw0KGgo="
USER_HI = {"role": "user", "content": "hi"}
WEATHER_TOOL_CHAT = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def run(translator: StreamTranslator, events: list[Json]) -> list[Json]:
    """Everything a stream translator emits for `events` followed by a clean end."""
    out = [item for event in events for item in translator.feed(event)]
    return out + translator.finish()


# =========================================================================== Chat request → Messages


def chat_req(*messages: Json, **params: Any) -> Json:
    return {"model": "claude-sonnet-4-5", "messages": list(messages), **params}


def msgs_req(*messages: Json, max_tokens: int = 4096, **params: Any) -> Json:
    return {"model": "claude-sonnet-4-5", "messages": list(messages), "max_tokens": max_tokens, **params}


def assistant_calls(*calls: tuple[str, str, str], content: Any = None) -> Json:
    tool_calls = [
        {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
        for cid, name, args in calls
    ]
    return {"role": "assistant", "content": content, "tool_calls": tool_calls}


CHAT_TO_MESSAGES_REQUESTS = [
    pytest.param(chat_req(USER_HI), msgs_req(USER_HI), id="plain-user-default-max-tokens"),
    pytest.param(
        chat_req({"role": "system", "content": "Be brief."}, USER_HI),
        msgs_req(USER_HI, system="Be brief."),
        id="system-string",
    ),
    pytest.param(
        chat_req(
            {"role": "system", "content": "One."},
            {"role": "developer", "content": "Two."},
            USER_HI,
            {"role": "system", "content": [{"type": "text", "text": "Three."}]},
        ),
        msgs_req(
            USER_HI,
            system=[
                {"type": "text", "text": "One."},
                {"type": "text", "text": "Two."},
                {"type": "text", "text": "Three."},
            ],
        ),
        id="all-system-and-developer-messages-kept-in-order",
    ),
    pytest.param(
        chat_req(
            {
                "role": "system",
                "content": [{"type": "text", "text": "Big doc", "cache_control": {"type": "ephemeral"}}],
            },
            USER_HI,
        ),
        msgs_req(
            USER_HI, system=[{"type": "text", "text": "Big doc", "cache_control": {"type": "ephemeral"}}]
        ),
        id="system-cache-control-kept",
    ),
    pytest.param(
        chat_req(USER_HI, max_tokens=100, max_completion_tokens=200),
        msgs_req(USER_HI, max_tokens=200),
        id="max-completion-tokens-wins",
    ),
    pytest.param(chat_req(USER_HI, max_tokens=100), msgs_req(USER_HI, max_tokens=100), id="max-tokens"),
    pytest.param(chat_req(USER_HI, stop="END"), msgs_req(USER_HI, stop_sequences=["END"]), id="stop-string"),
    pytest.param(
        chat_req(USER_HI, stop=["a", "b"]), msgs_req(USER_HI, stop_sequences=["a", "b"]), id="stop-list"
    ),
    pytest.param(
        chat_req(USER_HI, temperature=0.2, top_p=0.9, stream=True, stream_options={"include_usage": True}),
        msgs_req(USER_HI, temperature=0.2, top_p=0.9, stream=True),
        id="sampling-and-stream-stream-options-dropped",
    ),
    pytest.param(
        chat_req(USER_HI, top_k=5, thinking={"type": "enabled", "budget_tokens": 2048}),
        msgs_req(USER_HI, top_k=5, thinking={"type": "enabled", "budget_tokens": 2048}),
        id="anthropic-extras-pass-through",
    ),
    pytest.param(
        chat_req(USER_HI, presence_penalty=1, frequency_penalty=1, seed=7, logit_bias={}, store=True, n=1),
        msgs_req(USER_HI),
        id="hints-without-equivalent-dropped",
    ),
    pytest.param(
        chat_req(USER_HI, response_format={"type": "text"}, temperature=None),
        msgs_req(USER_HI),
        id="text-response-format-and-nulls-dropped",
    ),
    pytest.param(chat_req(USER_HI, user="u-42"), msgs_req(USER_HI, metadata={"user_id": "u-42"}), id="user"),
    pytest.param(
        chat_req(USER_HI, safety_identifier="s-1"),
        msgs_req(USER_HI, metadata={"user_id": "s-1"}),
        id="safety-identifier-as-user",
    ),
    pytest.param(
        chat_req(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?", "cache_control": {"type": "ephemeral"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    {"type": "image_url", "image_url": "http://example.com/dog.gif"},
                ],
            }
        ),
        msgs_req(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?", "cache_control": {"type": "ephemeral"}},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                    {"type": "image", "source": {"type": "url", "url": "http://example.com/dog.gif"}},
                ],
            }
        ),
        id="text-and-image-parts",
    ),
    pytest.param(
        chat_req(
            {
                "role": "user",
                "content": [
                    {
                        "type": "file",
                        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"},
                    }
                ],
            }
        ),
        msgs_req(
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
                    }
                ],
            }
        ),
        id="inline-pdf-file-as-document",
    ),
    pytest.param(
        chat_req(USER_HI, {"role": "user", "content": [{"type": "text", "text": "again"}]}),
        msgs_req(
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "again"}]}
        ),
        id="consecutive-user-messages-merged",
    ),
    pytest.param(
        chat_req(USER_HI, {"role": "assistant", "content": ""}, {"role": "user", "content": "anyone?"}),
        msgs_req(
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "anyone?"}]}
        ),
        id="empty-assistant-dropped-then-users-merged",
    ),
    pytest.param(
        chat_req(
            {"role": "user", "content": "Weather in Paris and time?"},
            assistant_calls(
                ("call_1", "get_weather", '{"city": "Paris"}'),
                ("call_2", "get_time", ""),
                content="Checking.",
            ),
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
            {"role": "user", "content": "thanks"},
        ),
        msgs_req(
            {"role": "user", "content": "Weather in Paris and time?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_2",
                        "content": [{"type": "text", "text": "12:00"}],
                    },
                    {"type": "text", "text": "thanks"},
                ],
            },
        ),
        id="tool-calls-and-merged-tool-results-then-user-text",
    ),
    pytest.param(
        chat_req(
            {"role": "user", "content": "go"},
            assistant_calls(("call_1", "noop", "{}")),
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ),
        msgs_req(
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "call_1", "name": "noop", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "done"}],
            },
        ),
        id="tool-call-without-text",
    ),
    pytest.param(
        chat_req(USER_HI, tools=[WEATHER_TOOL_CHAT, {"type": "function", "function": {"name": "now"}}]),
        msgs_req(
            USER_HI,
            tools=[
                WEATHER_TOOL_ANTHROPIC,
                {"name": "now", "input_schema": {"type": "object", "properties": {}}},
            ],
        ),
        id="tools-missing-parameters-get-empty-schema",
    ),
]


@pytest.mark.parametrize(("body", "expected"), CHAT_TO_MESSAGES_REQUESTS)
def test_chat_request_to_messages(body: Json, expected: Json) -> None:
    assert chat_request_to_messages(body) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"tool_choice": "auto"}, {"type": "auto"}, id="auto"),
        pytest.param({"tool_choice": "required"}, {"type": "any"}, id="required"),
        pytest.param({"tool_choice": "none"}, {"type": "none"}, id="none"),
        pytest.param(
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            {"type": "tool", "name": "get_weather"},
            id="named",
        ),
        pytest.param(
            {"parallel_tool_calls": False},
            {"type": "auto", "disable_parallel_tool_use": True},
            id="serial-default",
        ),
        pytest.param(
            {"tool_choice": "required", "parallel_tool_calls": False},
            {"type": "any", "disable_parallel_tool_use": True},
            id="serial-required",
        ),
        pytest.param(
            {
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "parallel_tool_calls": False,
            },
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            id="serial-named",
        ),
        pytest.param(
            {"tool_choice": "none", "parallel_tool_calls": False}, {"type": "none"}, id="none-takes-no-flag"
        ),
        pytest.param({"parallel_tool_calls": True}, None, id="parallel-is-the-default"),
    ],
)
def test_chat_tool_choice(params: Json, expected: Json | None) -> None:
    out = chat_request_to_messages(chat_req(USER_HI, tools=[WEATHER_TOOL_CHAT], **params))
    assert out.get("tool_choice") == expected


def test_chat_serial_tool_calls_without_tools_adds_nothing() -> None:
    assert "tool_choice" not in chat_request_to_messages(chat_req(USER_HI, parallel_tool_calls=False))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param(chat_req(USER_HI, n=2), "n", id="n"),
        pytest.param(chat_req(USER_HI, logprobs=True), "logprobs", id="logprobs"),
        pytest.param(chat_req(USER_HI, top_logprobs=3), "top_logprobs", id="top-logprobs"),
        pytest.param(
            chat_req(USER_HI, response_format={"type": "json_object"}), "response_format", id="json-object"
        ),
        pytest.param(
            chat_req(
                USER_HI, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
            ),
            "response_format",
            id="json-schema",
        ),
        pytest.param(chat_req(USER_HI, audio={"voice": "alloy"}), "audio", id="audio"),
        pytest.param(chat_req(USER_HI, modalities=["text", "audio"]), "modalities", id="modalities"),
        pytest.param(chat_req(USER_HI, prediction={"type": "content"}), "prediction", id="prediction"),
        pytest.param(chat_req(USER_HI, functions=[{"name": "f"}]), "functions", id="legacy-functions"),
        pytest.param(chat_req(USER_HI, web_search_options={}), "web_search_options", id="web-search"),
        pytest.param({"model": "m"}, "messages", id="no-messages"),
        pytest.param({"model": "m", "messages": ["hi"]}, "messages[0]", id="message-not-object"),
        pytest.param(
            chat_req(USER_HI, assistant_calls(("c1", "f", '{"a": 1}'), ("c2", "f", '{"a": '))),
            "messages[1].tool_calls[1].function.arguments",
            id="invalid-json-arguments",
        ),
        pytest.param(
            chat_req(USER_HI, assistant_calls(("c1", "f", "[1, 2]"))),
            "messages[1].tool_calls[0].function.arguments",
            id="non-object-arguments",
        ),
        pytest.param(
            chat_req(
                USER_HI, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}
            ),
            "messages[1].tool_calls[0].id",
            id="tool-call-without-id",
        ),
        pytest.param(
            chat_req(
                USER_HI, {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {}}]}
            ),
            "messages[1].tool_calls[0].type",
            id="custom-tool-call",
        ),
        pytest.param(
            chat_req({"role": "tool", "content": "x"}), "messages[0].tool_call_id", id="tool-without-id"
        ),
        pytest.param(
            chat_req({"role": "function", "name": "f", "content": "x"}), "messages[0].role", id="role"
        ),
        pytest.param(
            chat_req(
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}
            ),
            "messages[0].content[0].image_url.url",
            id="image-url-scheme",
        ),
        pytest.param(
            chat_req(
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}],
                }
            ),
            "messages[0].content[0].image_url.url",
            id="image-data-url-not-base64",
        ),
        pytest.param(
            chat_req({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}),
            "messages[0].content[0].type",
            id="audio-part",
        ),
        pytest.param(
            chat_req({"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}),
            "messages[0].content[0].file.file_data",
            id="uploaded-file",
        ),
        pytest.param(
            chat_req(
                {
                    "role": "system",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                },
                USER_HI,
            ),
            "messages[0].content[0].type",
            id="image-in-system",
        ),
        pytest.param(
            chat_req(USER_HI, tools=[{"type": "custom", "custom": {"name": "x"}}]),
            "tools[0].type",
            id="custom-tool",
        ),
        pytest.param(
            chat_req(USER_HI, tools=[WEATHER_TOOL_CHAT], tool_choice={"type": "allowed_tools"}),
            "tool_choice",
            id="allowed-tools-choice",
        ),
    ],
)
def test_chat_request_errors_name_the_field(body: Json, param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        chat_request_to_messages(body)
    assert caught.value.param == param


# =========================================================================== Messages request → Chat


def chat_out(*messages: Json, **params: Any) -> Json:
    return {"model": "gpt-4o", "messages": list(messages), **params}


def msgs_in(*messages: Json, **params: Any) -> Json:
    return {"model": "gpt-4o", "max_tokens": 1024, "messages": list(messages), **params}


CHAT_HI = {"role": "user", "content": "hi"}

MESSAGES_TO_CHAT_REQUESTS = [
    pytest.param(
        msgs_in(USER_HI), chat_out(CHAT_HI, max_tokens=1024), id="plain-max-tokens-kept-as-max-tokens"
    ),
    pytest.param(
        msgs_in(USER_HI, system="Be brief."),
        chat_out({"role": "system", "content": "Be brief."}, CHAT_HI, max_tokens=1024),
        id="system-string",
    ),
    pytest.param(
        msgs_in(
            USER_HI,
            system=[
                {"type": "text", "text": "You are Claude Code."},
                {"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}},
            ],
        ),
        chat_out({"role": "system", "content": "You are Claude Code.\nRules."}, CHAT_HI, max_tokens=1024),
        id="system-blocks-joined-cache-control-dropped",
    ),
    pytest.param(msgs_in(USER_HI, system=""), chat_out(CHAT_HI, max_tokens=1024), id="empty-system-dropped"),
    pytest.param(
        msgs_in(
            USER_HI,
            stop_sequences=["END"],
            temperature=0.5,
            top_p=0.8,
            top_k=40,
            thinking={"type": "enabled", "budget_tokens": 1024},
            metadata={"user_id": "u-1"},
        ),
        chat_out(CHAT_HI, max_tokens=1024, temperature=0.5, top_p=0.8, stop=["END"], user="u-1"),
        id="params-top-k-and-thinking-dropped",
    ),
    pytest.param(
        msgs_in(USER_HI, stream=True),
        chat_out(CHAT_HI, max_tokens=1024, stream=True, stream_options={"include_usage": True}),
        id="stream-asks-for-usage",
    ),
    pytest.param(
        msgs_in(USER_HI, stream=False), chat_out(CHAT_HI, max_tokens=1024, stream=False), id="no-stream"
    ),
    pytest.param(
        msgs_in({"role": "user", "content": [{"type": "text", "text": "one block"}]}),
        chat_out({"role": "user", "content": "one block"}, max_tokens=1024),
        id="single-text-block-as-string",
    ),
    pytest.param(
        msgs_in(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<reminder>", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                ],
            }
        ),
        chat_out(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<reminder>"},
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            },
            max_tokens=1024,
        ),
        id="text-and-images",
    ),
    pytest.param(
        msgs_in(
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "title": "spec.pdf",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
                    },
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                    },
                ],
            }
        ),
        chat_out(
            {
                "role": "user",
                "content": [
                    {
                        "type": "file",
                        "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBE"},
                    },
                    {"type": "text", "text": "notes"},
                ],
            },
            max_tokens=1024,
        ),
        id="documents",
    ),
    pytest.param(
        msgs_in(
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "use the tool", "signature": "sig"},
                    {"type": "text", "text": "Checking"},
                    {"type": "text", "text": " now."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "is_error": True,
                        "content": [{"type": "text", "text": "clock"}, {"type": "text", "text": "broken"}],
                    },
                    {"type": "text", "text": "and tomorrow?"},
                ],
            },
        ),
        chat_out(
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": "Checking now.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "toolu_2",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": "{}"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "clock\nbroken"},
            {"role": "user", "content": "and tomorrow?"},
            max_tokens=1024,
        ),
        id="tool-use-and-results-before-user-text",
    ),
    pytest.param(
        msgs_in(
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {"p": "a.png"}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [
                            {"type": "text", "text": "image:"},
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                            },
                        ],
                    },
                    {"type": "tool_result", "tool_use_id": "t2"},
                ],
            },
        ),
        chat_out(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "read", "arguments": '{"p":"a.png"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "image:"},
            {"role": "tool", "tool_call_id": "t2", "content": ""},
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}],
            },
            max_tokens=1024,
        ),
        id="tool-result-images-move-to-a-user-message",
    ),
    pytest.param(
        msgs_in(
            USER_HI,
            {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "xyz"}]},
            {"role": "assistant", "content": "plain"},
        ),
        chat_out(CHAT_HI, {"role": "assistant", "content": "plain"}, max_tokens=1024),
        id="thinking-only-turn-dropped",
    ),
    pytest.param(
        msgs_in(USER_HI, tools=[WEATHER_TOOL_ANTHROPIC, {"type": "custom", "name": "now"}]),
        chat_out(
            CHAT_HI,
            max_tokens=1024,
            tools=[
                WEATHER_TOOL_CHAT,
                {
                    "type": "function",
                    "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
                },
            ],
        ),
        id="tools",
    ),
]


@pytest.mark.parametrize(("body", "expected"), MESSAGES_TO_CHAT_REQUESTS)
def test_messages_request_to_chat(body: Json, expected: Json) -> None:
    assert messages_request_to_chat(body) == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        pytest.param({"type": "auto"}, {"tool_choice": "auto"}, id="auto"),
        pytest.param({"type": "any"}, {"tool_choice": "required"}, id="any"),
        pytest.param({"type": "none"}, {"tool_choice": "none"}, id="none"),
        pytest.param(
            {"type": "tool", "name": "get_weather"},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            id="tool",
        ),
        pytest.param(
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
            id="serial",
        ),
        pytest.param(
            {"type": "any", "disable_parallel_tool_use": False},
            {"tool_choice": "required"},
            id="parallel-default",
        ),
    ],
)
def test_messages_tool_choice(choice: Json, expected: Json) -> None:
    out = messages_request_to_chat(msgs_in(USER_HI, tools=[WEATHER_TOOL_ANTHROPIC], tool_choice=choice))
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param(
            msgs_in(USER_HI, tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools[0].type"
        ),
        pytest.param(
            msgs_in(USER_HI, tools=[WEATHER_TOOL_ANTHROPIC], tool_choice={"type": "x"}), "tool_choice.type"
        ),
        pytest.param(msgs_in(USER_HI, mcp_servers=[{"type": "url", "url": "https://m"}]), "mcp_servers"),
        pytest.param(msgs_in({"role": "system", "content": "x"}), "messages[0].role"),
        pytest.param(
            msgs_in(
                {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}
            ),
            "messages[0].content[0].source.type",
        ),
        pytest.param(
            msgs_in(
                {"role": "user", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search"}]}
            ),
            "messages[0].content[0].type",
        ),
        pytest.param(
            msgs_in({"role": "assistant", "content": [{"type": "web_search_tool_result", "content": []}]}),
            "messages[0].content[0].type",
        ),
        pytest.param(
            msgs_in({"role": "user", "content": [{"type": "tool_result", "content": "x"}]}),
            "messages[0].content[0].tool_use_id",
        ),
        pytest.param(
            msgs_in(
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "base64", "media_type": "image/png", "data": "x"},
                        }
                    ],
                }
            ),
            "messages[0].content[0].source",
        ),
        pytest.param(msgs_in(USER_HI, system=[{"type": "text"}]), "system[0].text"),
        pytest.param({"model": "m", "messages": "hi"}, "messages"),
    ],
)
def test_messages_request_errors_name_the_field(body: Json, param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        messages_request_to_chat(body)
    assert caught.value.param == param


# =========================================================================== stop reasons and usage


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("some_future_reason", "stop"),
        (None, "stop"),
    ],
)
def test_stop_reason_to_finish_reason(stop_reason: str | None, finish_reason: str) -> None:
    assert finish_reason_for(stop_reason) == finish_reason


@pytest.mark.parametrize(
    ("finish_reason", "used_tools", "stop_reason"),
    [
        ("stop", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("tool_calls", True, "tool_use"),
        ("function_call", True, "tool_use"),
        ("content_filter", False, "refusal"),
        (None, False, "end_turn"),
        ("weird", False, "end_turn"),
        ("stop", True, "tool_use"),  # servers that say "stop" after tool calls
        (None, True, "tool_use"),
        ("length", True, "max_tokens"),  # truncation stays truncation
    ],
)
def test_finish_reason_to_stop_reason(finish_reason: str | None, used_tools: bool, stop_reason: str) -> None:
    assert stop_reason_for(finish_reason, used_tools=used_tools) == stop_reason


@pytest.mark.parametrize(
    ("anthropic", "chat"),
    [
        (
            {"input_tokens": 10, "output_tokens": 5},
            {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "total_tokens": 15,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        ),
        (
            {
                "input_tokens": 10,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 50,
                "output_tokens": 5,
            },
            {
                "prompt_tokens": 160,
                "completion_tokens": 5,
                "total_tokens": 165,
                "prompt_tokens_details": {"cached_tokens": 100},
            },
        ),
        (
            {"input_tokens": 3, "cache_read_input_tokens": None, "output_tokens": 1},
            {
                "prompt_tokens": 3,
                "completion_tokens": 1,
                "total_tokens": 4,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        ),
        (
            {},
            {
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        ),
    ],
)
def test_usage_anthropic_to_chat(anthropic: Json, chat: Json) -> None:
    assert chat_usage_from_anthropic(msgspec.convert(anthropic, messages_wire.Usage)) == chat


@pytest.mark.parametrize(
    ("chat", "anthropic"),
    [
        (
            {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 0},
        ),
        (
            {"prompt_tokens": 110, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 100}},
            {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100},
        ),
        (
            {"prompt_tokens": 7, "completion_tokens": 2, "prompt_tokens_details": None},
            {"input_tokens": 7, "output_tokens": 2, "cache_read_input_tokens": 0},
        ),
        ({}, {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0}),
    ],
)
def test_usage_chat_to_anthropic(chat: Json, anthropic: Json) -> None:
    assert anthropic_usage_from_chat(msgspec.convert(chat, chat_wire.Usage)) == anthropic


def test_usage_round_trip_keeps_prompt_size() -> None:
    chat = {
        "prompt_tokens": 110,
        "completion_tokens": 5,
        "total_tokens": 115,
        "prompt_tokens_details": {"cached_tokens": 100},
    }
    anthropic = anthropic_usage_from_chat(msgspec.convert(chat, chat_wire.Usage))
    assert chat_usage_from_anthropic(msgspec.convert(anthropic, messages_wire.Usage)) == chat


# =========================================================================== responses both ways


def anthropic_message(*content: Json, stop_reason: str = "end_turn", usage: Json | None = None) -> Json:
    return {
        "id": "msg_01XYZ",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 12, "output_tokens": 6},
    }


def chat_completion(message: Json, finish_reason: str = "stop", usage: Json | None = None) -> Json:
    return {
        "id": "msg_01XYZ",
        "object": "chat.completion",
        "created": ANY,
        "model": "claude-sonnet-4-5-20250929",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage
        or {
            "prompt_tokens": 12,
            "completion_tokens": 6,
            "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            anthropic_message({"type": "text", "text": "Hello"}),
            chat_completion({"role": "assistant", "content": "Hello"}),
            id="text",
        ),
        pytest.param(
            anthropic_message(
                {"type": "text", "text": "Per the docs, ", "citations": []},
                {"type": "text", "text": "yes."},
                stop_reason="stop_sequence",
            ),
            chat_completion({"role": "assistant", "content": "Per the docs, yes."}),
            id="text-blocks-joined",
        ),
        pytest.param(
            anthropic_message(
                {"type": "thinking", "thinking": "Paris is in France.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris", "n": [1, 2]},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
                stop_reason="tool_use",
            ),
            chat_completion(
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "reasoning_content": "Paris is in France.",
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris","n":[1,2]}'},
                        },
                        {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}},
                    ],
                },
                finish_reason="tool_calls",
            ),
            id="thinking-text-tools",
        ),
        pytest.param(
            anthropic_message(
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": "é"}},
                stop_reason="tool_use",
            ),
            chat_completion(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"x":"é"}'},
                        }
                    ],
                },
                finish_reason="tool_calls",
            ),
            id="tool-only-content-null",
        ),
        pytest.param(
            anthropic_message(
                {"type": "text", "text": "Hel"},
                stop_reason="max_tokens",
                usage={
                    "input_tokens": 2,
                    "cache_read_input_tokens": 8,
                    "cache_creation_input_tokens": 1,
                    "output_tokens": 3,
                },
            ),
            chat_completion(
                {"role": "assistant", "content": "Hel"},
                finish_reason="length",
                usage={
                    "prompt_tokens": 11,
                    "completion_tokens": 3,
                    "total_tokens": 14,
                    "prompt_tokens_details": {"cached_tokens": 8},
                },
            ),
            id="truncated-with-cache-usage",
        ),
    ],
)
def test_messages_response_to_chat(body: Json, expected: Json) -> None:
    out = messages_response_to_chat(body)
    assert out == expected
    assert isinstance(out["created"], int)


def test_messages_response_model_override() -> None:
    out = messages_response_to_chat(anthropic_message({"type": "text", "text": "x"}), model="claude-alias")
    assert out["model"] == "claude-alias"


def openai_completion(message: Json, finish_reason: str | None = "stop", usage: Json | None = None) -> Json:
    return {
        "id": "chatcmpl-AbC123",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage or {"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24},
    }


def messages_message(*content: Json, stop_reason: str = "end_turn", usage: Json | None = None) -> Json:
    return {
        "id": "msg_AbC123",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o-2024-08-06",
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 20, "output_tokens": 4, "cache_read_input_tokens": 0},
    }


def chat_call(cid: str, name: str, arguments: str) -> Json:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": arguments}}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            openai_completion({"role": "assistant", "content": "Hi!", "refusal": None}),
            messages_message({"type": "text", "text": "Hi!"}),
            id="text",
        ),
        pytest.param(
            openai_completion(
                {
                    "role": "assistant",
                    "content": "Let me look.",
                    "tool_calls": [
                        chat_call("call_1", "get_weather", '{"city": "Paris"}'),
                        chat_call("call_2", "now", ""),
                    ],
                },
                finish_reason="tool_calls",
            ),
            messages_message(
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
                stop_reason="tool_use",
            ),
            id="text-and-tools-empty-arguments",
        ),
        pytest.param(
            openai_completion(
                {"role": "assistant", "content": None, "tool_calls": [chat_call("c", "f", '{"a": ')]}
            ),
            messages_message(
                {"type": "tool_use", "id": "c", "name": "f", "input": {"_raw": '{"a": '}},
                stop_reason="tool_use",
            ),
            id="broken-arguments-kept-raw-and-stop-with-tools-is-tool-use",
        ),
        pytest.param(
            openai_completion(
                {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
                "function_call",
            ),
            messages_message(
                {"type": "tool_use", "id": ANY, "name": "f", "input": {}}, stop_reason="tool_use"
            ),
            id="legacy-function-call",
        ),
        pytest.param(
            openai_completion({"role": "assistant", "reasoning_content": "think", "content": "42"}),
            messages_message(
                {"type": "thinking", "thinking": "think", "signature": ""}, {"type": "text", "text": "42"}
            ),
            id="reasoning-content-as-thinking",
        ),
        pytest.param(
            openai_completion(
                {"role": "assistant", "reasoning": "think", "content": [{"type": "text", "text": "42"}]}
            ),
            messages_message(
                {"type": "thinking", "thinking": "think", "signature": ""}, {"type": "text", "text": "42"}
            ),
            id="reasoning-field-and-content-parts",
        ),
        pytest.param(
            openai_completion(
                {"role": "assistant", "content": None, "refusal": "I can't."}, "content_filter"
            ),
            messages_message({"type": "text", "text": "I can't."}, stop_reason="refusal"),
            id="refusal",
        ),
        pytest.param(
            openai_completion(
                {"role": "assistant", "content": ""},
                "length",
                usage={
                    "prompt_tokens": 1000,
                    "completion_tokens": 9,
                    "prompt_tokens_details": {"cached_tokens": 900},
                },
            ),
            messages_message(
                stop_reason="max_tokens",
                usage={"input_tokens": 100, "output_tokens": 9, "cache_read_input_tokens": 900},
            ),
            id="empty-truncated-with-cache",
        ),
    ],
)
def test_chat_response_to_messages(body: Json, expected: Json) -> None:
    assert chat_response_to_messages(body) == expected


@pytest.mark.parametrize(
    ("chat_id", "pattern"),
    [
        ("chatcmpl-AbC", r"msg_AbC"),
        ("msg_keep", r"msg_keep"),
        ("gen-123", r"msg_gen-123"),
        (None, r"msg_[0-9a-f]{32}"),
    ],
)
def test_chat_response_message_id(chat_id: str | None, pattern: str) -> None:
    body = openai_completion({"role": "assistant", "content": "x"}) | {"id": chat_id}
    assert re.fullmatch(pattern, chat_response_to_messages(body)["id"])


def test_chat_response_model_override_and_no_choices() -> None:
    out = chat_response_to_messages({"id": "chatcmpl-1", "choices": [], "model": "up"}, model="alias")
    assert (out["model"], out["content"], out["stop_reason"]) == ("alias", [], "end_turn")


# =========================================================================== stream: Anthropic → Chat


def a_start(msg_id: str = "msg_01", model: str = "claude-sonnet-4-5", **usage: int) -> Json:
    return {
        "type": "message_start",
        "message": {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 25,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
            }
            | usage,
        },
    }


def a_block(index: int, block: Json) -> Json:
    return {"type": "content_block_start", "index": index, "content_block": block}


def a_text(index: int, text: str) -> Json:
    return {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}


def a_json(index: int, partial: str) -> Json:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "input_json_delta", "partial_json": partial},
    }


def a_stop(index: int) -> Json:
    return {"type": "content_block_stop", "index": index}


def a_end(stop_reason: str, output_tokens: int) -> list[Json]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        },
        {"type": "message_stop"},
    ]


def a_tool(index: int, tool_id: str, name: str) -> Json:
    return a_block(index, {"type": "tool_use", "id": tool_id, "name": name, "input": {}})


def cc(delta: Json, finish: str | None = None, *, model: str = "claude-sonnet-4-5") -> Json:
    return {
        "id": "msg_01",
        "object": "chat.completion.chunk",
        "created": ANY,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def cc_usage(prompt: int, completion: int, cached: int = 0) -> Json:
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    return {
        "id": "msg_01",
        "object": "chat.completion.chunk",
        "created": ANY,
        "model": "claude-sonnet-4-5",
        "choices": [],
        "usage": usage,
    }


def cc_tool(k: int, **fields: Any) -> Json:
    return cc({"tool_calls": [{"index": k, **fields}]})


def cc_args(k: int, fragment: str) -> Json:
    return cc_tool(k, function={"arguments": fragment})


ROLE = cc({"role": "assistant", "content": ""})

ANTHROPIC_STREAMS = [
    pytest.param(
        [
            a_start(cache_read_input_tokens=10),
            a_block(0, {"type": "text", "text": ""}),
            {"type": "ping"},
            a_text(0, "Hello"),
            a_text(0, "!"),
            a_stop(0),
            *a_end("end_turn", 12),
        ],
        [ROLE, cc({"content": "Hello"}), cc({"content": "!"}), cc({}, "stop"), cc_usage(35, 12, cached=10)],
        id="text-only",
    ),
    pytest.param(
        [
            a_start(),
            a_block(0, {"type": "text", "text": ""}),
            a_text(0, "Let me check."),
            a_stop(0),
            a_tool(1, "toolu_A", "get_weather"),
            a_json(1, ""),
            a_json(1, '{"city": '),
            a_json(1, '"Paris"}'),
            a_stop(1),
            a_tool(2, "toolu_B", "get_time"),
            a_json(2, '{"tz":"CET"}'),
            a_stop(2),
            *a_end("tool_use", 40),
        ],
        [
            ROLE,
            cc({"content": "Let me check."}),
            cc_tool(0, id="toolu_A", type="function", function={"name": "get_weather", "arguments": ""}),
            cc_args(0, '{"city": '),
            cc_args(0, '"Paris"}'),
            cc_tool(1, id="toolu_B", type="function", function={"name": "get_time", "arguments": ""}),
            cc_args(1, '{"tz":"CET"}'),
            cc({}, "tool_calls"),
            cc_usage(25, 40),
        ],
        id="text-then-two-tools-indexed-among-tools-only",
    ),
    pytest.param(
        [
            a_start(),
            a_block(0, {"type": "thinking", "thinking": "", "signature": ""}),
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "6*7"},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "EqQB"},
            },
            a_stop(0),
            a_block(1, {"type": "redacted_thinking", "data": "opaque"}),
            a_stop(1),
            a_block(2, {"type": "text", "text": ""}),
            a_text(2, "42"),
            a_stop(2),
            {"type": "some_future_event", "x": 1},
            *a_end("max_tokens", 3),
        ],
        [ROLE, cc({"reasoning_content": "6*7"}), cc({"content": "42"}), cc({}, "length"), cc_usage(25, 3)],
        id="thinking-as-reasoning-content",
    ),
    pytest.param(
        [a_start(), {"type": "message_stop"}],
        [ROLE, cc({}, "stop"), cc_usage(25, 1)],
        id="message-stop-without-message-delta",
    ),
]


@pytest.mark.parametrize(("events", "expected"), ANTHROPIC_STREAMS)
def test_messages_to_chat_stream(events: list[Json], expected: list[Json]) -> None:
    out = run(MessagesStreamToChat(), events)
    assert out == expected
    assert len({chunk["created"] for chunk in out}) == 1


def test_messages_to_chat_stream_without_usage_and_model_override() -> None:
    events = [
        a_start(),
        a_block(0, {"type": "text", "text": ""}),
        a_text(0, "x"),
        a_stop(0),
        *a_end("end_turn", 1),
    ]
    out = run(MessagesStreamToChat("alias", include_usage=False), events)
    assert out == [
        cc(d, f, model="alias")
        for d, f in [({"role": "assistant", "content": ""}, None), ({"content": "x"}, None), ({}, "stop")]
    ]


def test_messages_to_chat_stream_error_event() -> None:
    stream = MessagesStreamToChat()
    assert stream.feed(a_start()) == [ROLE]
    with pytest.raises(StreamError) as caught:
        stream.feed({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert (caught.value.message, caught.value.error_type) == ("Overloaded", "overloaded_error")


def test_messages_to_chat_stream_truncated() -> None:
    stream = MessagesStreamToChat()
    for event in [a_start(), a_block(0, {"type": "text", "text": ""}), a_text(0, "partial")]:
        stream.feed(event)
    with pytest.raises(StreamError, match="before message_stop"):
        stream.finish()


# =========================================================================== stream: Chat → Anthropic


def oc(
    delta: Json | None = None, finish: str | None = None, *, usage: Json | None = None, choices: bool = True
) -> Json:
    chunk: Json = {
        "id": "chatcmpl-9x",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}]
        if choices
        else [],
        "usage": usage,
    }
    return chunk


def oc_tool(k: int, call_id: str | None = None, name: str | None = None, arguments: str = "") -> Json:
    call: Json = {"index": k, "function": {"arguments": arguments}}
    if call_id is not None:
        call |= {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return oc({"tool_calls": [call]})


OC_ROLE = oc({"role": "assistant", "content": "", "refusal": None})
OC_USAGE = oc(
    choices=False,
    usage={
        "prompt_tokens": 9,
        "completion_tokens": 2,
        "total_tokens": 11,
        "prompt_tokens_details": {"cached_tokens": 0},
    },
)


def m_start(model: str = "gpt-4o-2024-08-06") -> Json:
    return {
        "type": "message_start",
        "message": {
            "id": ANY,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        },
    }


def m_text_start(index: int) -> Json:
    return {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}


def m_tool_start(index: int, tool_id: str, name: str) -> Json:
    return {
        "type": "content_block_start",
        "index": index,
        "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}},
    }


def m_text(index: int, text: str) -> Json:
    return {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}


def m_json(index: int, partial: str) -> Json:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "input_json_delta", "partial_json": partial},
    }


def m_stop(index: int) -> Json:
    return {"type": "content_block_stop", "index": index}


def m_end(stop_reason: str, input_tokens: int = 0, output_tokens: int = 0) -> list[Json]:
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_read_input_tokens": 0}
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": usage,
        },
        {"type": "message_stop"},
    ]


SEQUENTIAL_TOOL_CHUNKS = [
    OC_ROLE,
    oc({"content": "Checking."}),
    oc_tool(0, "call_A", "get_weather"),
    oc_tool(0, arguments='{"city":'),
    oc_tool(0, arguments='"Paris"}'),
    oc_tool(1, "call_B", "get_time"),
    oc_tool(1, arguments='{"tz":"CET"}'),
    oc({}, "tool_calls"),
    OC_USAGE,
]

CHAT_STREAMS = [
    pytest.param(
        [OC_ROLE, oc({"content": "Hel"}), oc({"content": "lo"}), oc({}, "stop"), OC_USAGE],
        [m_start(), m_text_start(0), m_text(0, "Hel"), m_text(0, "lo"), m_stop(0), *m_end("end_turn", 9, 2)],
        id="text-only",
    ),
    pytest.param(
        SEQUENTIAL_TOOL_CHUNKS,
        [
            m_start(),
            m_text_start(0),
            m_text(0, "Checking."),
            m_stop(0),
            m_tool_start(1, "call_A", "get_weather"),
            m_json(1, '{"city":'),
            m_json(1, '"Paris"}'),
            m_stop(1),
            m_tool_start(2, "call_B", "get_time"),
            m_json(2, '{"tz":"CET"}'),
            m_stop(2),
            *m_end("tool_use", 9, 2),
        ],
        id="text-then-two-sequential-tools-fresh-indexes",
    ),
    pytest.param(
        [
            OC_ROLE,
            oc_tool(0, "call_A", "get_weather", '{"city"'),
            oc_tool(1, "call_B", "get_time", '{"tz"'),
            oc_tool(0, arguments=':"Paris"}'),
            oc_tool(1, arguments=':"CET"}'),
            oc({}, "tool_calls"),
        ],
        [
            m_start(),
            m_tool_start(0, "call_A", "get_weather"),
            m_json(0, '{"city"'),
            m_json(0, ':"Paris"}'),
            m_stop(0),
            m_tool_start(1, "call_B", "get_time"),
            m_json(1, '{"tz"'),
            m_json(1, ':"CET"}'),
            m_stop(1),
            *m_end("tool_use"),
        ],
        id="interleaved-parallel-tools-buffered-until-json-complete",
    ),
    pytest.param(
        [
            OC_ROLE,
            oc(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "c0",
                            "type": "function",
                            "function": {"name": "a", "arguments": '{"x":1}'},
                        },
                        {
                            "index": 1,
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "b", "arguments": "{}"},
                        },
                    ]
                },
                "tool_calls",
            ),
        ],
        [
            m_start(),
            m_tool_start(0, "c0", "a"),
            m_json(0, '{"x":1}'),
            m_stop(0),
            m_tool_start(1, "c1", "b"),
            m_json(1, "{}"),
            m_stop(1),
            *m_end("tool_use"),
        ],
        id="whole-tool-calls-in-one-chunk",
    ),
    pytest.param(
        [
            OC_ROLE,
            oc_tool(0, "c0", "f", '{"a":'),
            oc({"content": "note"}),
            oc_tool(0, arguments="1}"),
            oc({}, "tool_calls"),
        ],
        [
            m_start(),
            m_tool_start(0, "c0", "f"),
            m_json(0, '{"a":'),
            m_json(0, "1}"),
            m_stop(0),
            m_text_start(1),
            m_text(1, "note"),
            m_stop(1),
            *m_end("tool_use"),
        ],
        id="text-waits-for-an-unfinished-tool",
    ),
    pytest.param(
        [
            OC_ROLE,
            oc({"reasoning_content": "6*7"}),
            oc({"reasoning_content": "=42"}),
            oc({"content": "42"}),
            oc({}, "length"),
        ],
        [
            m_start(),
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "6*7"},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "=42"},
            },
            m_stop(0),
            m_text_start(1),
            m_text(1, "42"),
            m_stop(1),
            *m_end("max_tokens"),
        ],
        id="reasoning-as-thinking-block",
    ),
    pytest.param(
        [OC_ROLE, oc_tool(0, "c0", "f", "{}"), oc({}, "stop")],
        [m_start(), m_tool_start(0, "c0", "f"), m_json(0, "{}"), m_stop(0), *m_end("tool_use")],
        id="stop-after-tool-calls-reads-as-tool-use",
    ),
    pytest.param(
        [OC_ROLE, oc({"content": "cut"})],
        [m_start(), m_text_start(0), m_text(0, "cut"), m_stop(0), *m_end("end_turn")],
        id="no-finish-reason-still-closes",
    ),
    pytest.param([OC_ROLE, oc({}, "stop")], [m_start(), *m_end("end_turn")], id="no-content-valid-envelope"),
    pytest.param(
        [OC_ROLE, oc({}, "content_filter"), OC_USAGE],
        [m_start(), *m_end("refusal", 9, 2)],
        id="content-filter",
    ),
]


@pytest.mark.parametrize(("chunks", "expected"), CHAT_STREAMS)
def test_chat_to_messages_stream(chunks: list[Json], expected: list[Json]) -> None:
    out = run(ChatStreamToMessages(), chunks)
    assert out == expected
    assert_envelope(out)
    assert re.fullmatch(r"msg_[0-9a-f]{32}", out[0]["message"]["id"])


def test_chat_to_messages_stream_empty_upstream() -> None:
    out = ChatStreamToMessages("claude-alias").finish()
    assert out == [m_start("claude-alias"), *m_end("end_turn")]


def test_chat_to_messages_stream_finish_is_final() -> None:
    stream = ChatStreamToMessages()
    run(stream, [OC_ROLE, oc({"content": "x"})])
    assert stream.feed(oc({"content": "late"})) == []
    assert stream.finish() == []


def test_chat_to_messages_stream_error_chunk() -> None:
    stream = ChatStreamToMessages()
    stream.feed(OC_ROLE)
    with pytest.raises(StreamError) as caught:
        stream.feed({"error": {"message": "rate limited", "type": "rate_limit_error"}})
    assert (caught.value.message, caught.value.error_type) == ("rate limited", "rate_limit_error")


# =========================================================================== envelope + round-trip properties


def assert_envelope(events: list[Json]) -> None:
    """Anthropic's grammar: message_start, sequential fresh-indexed blocks, message_delta, message_stop."""
    assert events[0]["type"] == "message_start"
    assert [e["type"] for e in events[-2:]] == ["message_delta", "message_stop"]
    open_index: int | None = None
    next_index = 0
    for event in events[1:-2]:
        kind = event["type"]
        if kind == "content_block_start":
            assert open_index is None and event["index"] == next_index
            open_index, next_index = next_index, next_index + 1
        elif kind == "content_block_delta":
            assert event["index"] == open_index
        else:
            assert kind == "content_block_stop" and event["index"] == open_index
            open_index = None
    assert open_index is None


def tool_arguments_from_anthropic(events: list[Json]) -> dict[str, str]:
    ids = {
        e["index"]: e["content_block"]["id"]
        for e in events
        if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"
    }
    out = dict.fromkeys(ids.values(), "")
    for e in events:
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta":
            out[ids[e["index"]]] += e["delta"]["partial_json"]
    return out


def text_from_anthropic(events: list[Json]) -> str:
    return "".join(
        e["delta"]["text"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"
    )


def tool_arguments_from_chat(chunks: list[Json]) -> dict[str, str]:
    ids: dict[int, str] = {}
    args: dict[str, str] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls", []):
                if "id" in call:
                    ids[call["index"]] = call["id"]
                    args[call["id"]] = ""
                args[ids[call["index"]]] += call["function"]["arguments"]
    return args


ARGUMENTS = {
    "call_0": '{"query": "naïve \\"quoted\\" {braces} ☃", "limit": 10}',
    "call_1": '{"path": "/tmp/a b.txt", "lines": [1, 2, {"deep": [true, null]}], "note": "}{"}',
    "call_2": "{}",
}
TEXT = "Sure — I'll run both tools in parallel. ✓"


def split_randomly(text: str, rng: random.Random) -> list[str]:
    cuts = (
        sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(0, 8))))
        if len(text) > 1
        else []
    )
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@pytest.mark.parametrize("seed", range(40))
def test_chat_to_messages_fragments_reassemble_in_any_interleaving(seed: int) -> None:
    rng = random.Random(seed)
    names = {cid: f"tool{k}" for k, cid in enumerate(ARGUMENTS)}
    queues: dict[str, list[str]] = {cid: split_randomly(args, rng) for cid, args in ARGUMENTS.items()}
    queues["text"] = split_randomly(TEXT, rng)
    started: set[str] = set()
    chunks = [OC_ROLE]
    while any(queues.values()):
        lane = rng.choice([name for name, queue in queues.items() if queue])
        fragment = queues[lane].pop(0)
        if lane == "text":
            chunks.append(oc({"content": fragment}))
        elif lane in started:
            chunks.append(oc_tool(int(lane[-1]), arguments=fragment))
        else:
            started.add(lane)
            chunks.append(oc_tool(int(lane[-1]), lane, names[lane], fragment))
    chunks += [oc({}, "tool_calls"), OC_USAGE]
    out = run(ChatStreamToMessages(), chunks)
    assert_envelope(out)
    assert tool_arguments_from_anthropic(out) == ARGUMENTS
    assert text_from_anthropic(out) == TEXT
    assert out[-2]["delta"]["stop_reason"] == "tool_use"


def anthropic_tool_stream(rng: random.Random) -> list[Json]:
    events = [a_start(), a_block(0, {"type": "text", "text": ""})]
    events += [a_text(0, piece) for piece in split_randomly(TEXT, rng)]
    events.append(a_stop(0))
    for index, (cid, args) in enumerate(ARGUMENTS.items(), start=1):
        events += [a_tool(index, cid, f"tool{index - 1}"), a_json(index, "")]
        events += [a_json(index, piece) for piece in split_randomly(args, rng)]
        events.append(a_stop(index))
    return events + a_end("tool_use", 30)


@pytest.mark.parametrize("seed", range(40))
def test_messages_to_chat_fragments_reassemble(seed: int) -> None:
    out = run(MessagesStreamToChat(), anthropic_tool_stream(random.Random(seed)))
    assert tool_arguments_from_chat(out) == ARGUMENTS
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in out if c["choices"]) == TEXT
    assert [c["choices"][0]["finish_reason"] for c in out if c["choices"]][-1] == "tool_calls"


@pytest.mark.parametrize("seed", range(10))
def test_anthropic_round_trip_through_chat(seed: int) -> None:
    """Messages → Chat → Messages (composed) keeps text, tool ids, names and arguments."""
    out = run(
        compose(MessagesStreamToChat(), ChatStreamToMessages()), anthropic_tool_stream(random.Random(seed))
    )
    assert_envelope(out)
    assert tool_arguments_from_anthropic(out) == ARGUMENTS
    assert text_from_anthropic(out) == TEXT
    assert out[-2]["delta"]["stop_reason"] == "tool_use"
    assert out[-2]["usage"] == {"input_tokens": 25, "output_tokens": 30, "cache_read_input_tokens": 0}


# ========================================================================= the official SDKs read our streams


def test_anthropic_sdk_accumulates_translated_stream() -> None:
    streaming = pytest.importorskip("anthropic.lib.streaming._messages")
    chunks = SEQUENTIAL_TOOL_CHUNKS
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in run(ChatStreamToMessages(), chunks):
        snapshot = streaming.accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot is not None
    assert [block.type for block in snapshot.content] == ["text", "tool_use", "tool_use"]
    assert snapshot.content[1].input == {"city": "Paris"}
    assert snapshot.content[2].input == {"tz": "CET"}
    assert (snapshot.stop_reason, snapshot.usage.input_tokens, snapshot.usage.output_tokens) == (
        "tool_use",
        9,
        2,
    )


def test_openai_sdk_accumulates_translated_stream() -> None:
    chat_streaming = pytest.importorskip("openai.lib.streaming.chat")
    chunk_type = pytest.importorskip("openai.types.chat").ChatCompletionChunk
    state = chat_streaming.ChatCompletionStreamState()
    for chunk in run(MessagesStreamToChat(), anthropic_tool_stream(random.Random(0))):
        state.handle_chunk(chunk_type.model_validate(chunk))
    completion = state.get_final_completion()
    message = completion.choices[0].message
    assert message.content == TEXT
    assert {call.id: call.function.arguments for call in message.tool_calls} == ARGUMENTS
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None and completion.usage.completion_tokens == 30
