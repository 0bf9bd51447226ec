"""Chat Completions ↔ Bedrock Converse: request/response tables, stream translation of real captures."""

from __future__ import annotations

import json
import random
from itertools import pairwise
from typing import Any

import pytest

from plano_trio.apis.kind import Api
from plano_trio.providers.catalog import api_path, spec_for
from plano_trio.translate.base import Json, StreamError, TranslationError
from plano_trio.translate.eventstream import EventMessage, EventStreamDecoder, encode_message
from plano_trio.translate.upstream_bedrock import (
    FINISH_REASONS,
    BedrockStreamError,
    ConverseStreamToChat,
    chat_request_to_converse,
    converse_response_to_chat,
    converse_stream_event,
)
from tests.fixtures.bedrock.captures import TEXT_CAPTURE, TOOLS_CAPTURE, load_capture

PNG = "iVBORw0KGgo="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_SPEC = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Weather for a city",
        "inputSchema": {
            "json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        },
    }
}


def user(content: Any) -> Json:
    return {"role": "user", "content": content}


def call(call_id: str, name: str, arguments: Any) -> Json:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("model", "stream", "path"),
    [
        (
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            False,
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
        ),
        ("us.amazon.nova-pro-v1:0", True, "/model/us.amazon.nova-pro-v1%3A0/converse-stream"),
        # the exact path botocore sent in boto/botocore#3525
        (
            "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
            False,
            "/model/eu.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse",
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-2-1b-instruct-v1:0",
            True,
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
            "us.meta.llama3-2-1b-instruct-v1%3A0/converse-stream",
        ),
        ("plain_model~id", False, "/model/plain_model~id/converse"),
    ],
)
def test_converse_path(model: str, stream: bool, path: str) -> None:
    assert api_path(spec_for("amazon_bedrock"), Api.BEDROCK, "", "", model, stream=stream) == path


# --------------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {
                "model": "m",
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [user("hi")],
            },
            {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
            id="model-and-stream-live-in-the-url",
        ),
        pytest.param(
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    user("hi"),
                    {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
                ]
            },
            {
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                "system": [{"text": "Be brief."}, {"text": "No emoji."}],
            },
            id="system-and-developer-hoisted-in-order",
        ),
        pytest.param(
            {
                "messages": [
                    user("a"),
                    {"role": "assistant", "content": "b"},
                    user([{"type": "text", "text": "c"}]),
                ]
            },
            {
                "messages": [
                    {"role": "user", "content": [{"text": "a"}]},
                    {"role": "assistant", "content": [{"text": "b"}]},
                    {"role": "user", "content": [{"text": "c"}]},
                ]
            },
            id="alternating-turns",
        ),
        pytest.param(
            {"messages": [user("a"), user("b"), {"role": "assistant", "content": "  "}, user("c")]},
            {"messages": [{"role": "user", "content": [{"text": "a"}, {"text": "b"}, {"text": "c"}]}]},
            id="same-role-merged-blank-assistant-dropped",
        ),
        pytest.param(
            {
                "messages": [
                    user([{"type": "text", "text": ""}, {"type": "text", "text": "x"}]),
                    {"role": "system", "content": " "},
                ]
            },
            {"messages": [{"role": "user", "content": [{"text": "x"}]}]},
            id="blank-text-parts-dropped",
        ),
        pytest.param(
            {
                "messages": [
                    user("weather in Paris and Rome?"),
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            call("t1", "get_weather", '{"city": "Paris"}'),
                            call("t2", "get_weather", '{"city":"Rome"}'),
                        ],
                    },
                    {"role": "tool", "tool_call_id": "t1", "content": "18C"},
                    {"role": "tool", "tool_call_id": "t2", "content": [{"type": "text", "text": "25C"}]},
                    user("thanks, and Oslo?"),
                ],
                "tools": [WEATHER_TOOL],
            },
            {
                "messages": [
                    {"role": "user", "content": [{"text": "weather in Paris and Rome?"}]},
                    {
                        "role": "assistant",
                        "content": [
                            {
                                "toolUse": {
                                    "toolUseId": "t1",
                                    "name": "get_weather",
                                    "input": {"city": "Paris"},
                                }
                            },
                            {
                                "toolUse": {
                                    "toolUseId": "t2",
                                    "name": "get_weather",
                                    "input": {"city": "Rome"},
                                }
                            },
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"toolResult": {"toolUseId": "t1", "content": [{"text": "18C"}]}},
                            {"toolResult": {"toolUseId": "t2", "content": [{"text": "25C"}]}},
                            {"text": "thanks, and Oslo?"},
                        ],
                    },
                ],
                "toolConfig": {"tools": [WEATHER_SPEC]},
            },
            id="tool-round-trip-results-merged-into-one-user-turn",
        ),
        pytest.param(
            {
                "messages": [
                    user("go"),
                    {"role": "assistant", "content": "Calling.", "tool_calls": [call("t1", "ping", "")]},
                    {"role": "tool", "tool_call_id": "t1", "content": ""},
                ]
            },
            {
                "messages": [
                    {"role": "user", "content": [{"text": "go"}]},
                    {
                        "role": "assistant",
                        "content": [
                            {"text": "Calling."},
                            {"toolUse": {"toolUseId": "t1", "name": "ping", "input": {}}},
                        ],
                    },
                    {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": []}}]},
                ]
            },
            id="text-plus-tool-call-empty-arguments-empty-result",
        ),
        pytest.param(
            {"messages": [{"role": "assistant", "tool_calls": [call("t", "f", {"already": "parsed"})]}]},
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [
                            {"toolUse": {"toolUseId": "t", "name": "f", "input": {"already": "parsed"}}}
                        ],
                    }
                ]
            },
            id="arguments-already-an-object",
        ),
        pytest.param(
            {
                "messages": [
                    user(
                        [
                            {"type": "text", "text": "what is this?"},
                            {
                                "type": "image_url",
                                "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"},
                            },
                            {"type": "image_url", "image_url": {"url": f"data:image/JPG;base64,{PNG}"}},
                            {"type": "image_url", "image_url": f"data:image/webp;charset=x;base64,{PNG}"},
                        ]
                    )
                ]
            },
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"text": "what is this?"},
                            {"image": {"format": "png", "source": {"bytes": PNG}}},
                            {"image": {"format": "jpeg", "source": {"bytes": PNG}}},
                            {"image": {"format": "webp", "source": {"bytes": PNG}}},
                        ],
                    }
                ]
            },
            id="data-url-images",
        ),
    ],
)
def test_request_messages(body: Json, expected: Json) -> None:
    assert chat_request_to_converse(body) == expected


HI = [user("hi")]


@pytest.mark.parametrize(
    ("fields", "inference"),
    [
        ({}, None),
        ({"max_tokens": 100}, {"maxTokens": 100}),
        ({"max_tokens": 100, "max_completion_tokens": 50}, {"maxTokens": 50}),
        ({"max_completion_tokens": 0}, {"maxTokens": 0}),
        ({"temperature": 0, "top_p": 0.5}, {"temperature": 0, "topP": 0.5}),
        ({"temperature": None, "top_p": None, "max_tokens": None, "stop": None}, None),
        ({"stop": "END"}, {"stopSequences": ["END"]}),
        ({"stop": ["a", "b"]}, {"stopSequences": ["a", "b"]}),
        ({"stop": []}, None),
        (
            {"max_tokens": 9, "temperature": 1.5, "top_p": 1, "stop": ["x"]},
            {"maxTokens": 9, "temperature": 1.5, "topP": 1, "stopSequences": ["x"]},
        ),
        # knobs Converse has no field for are dropped (as Plano does)
        (
            {
                "seed": 1,
                "presence_penalty": 1,
                "logprobs": True,
                "user": "u",
                "parallel_tool_calls": False,
                "n": 1,
            },
            None,
        ),
    ],
)
def test_request_inference_config(fields: Json, inference: Json | None) -> None:
    converse = chat_request_to_converse({"messages": HI, **fields})
    assert converse.get("inferenceConfig") == inference
    assert set(converse) <= {"messages", "inferenceConfig"}


@pytest.mark.parametrize(
    ("fields", "tool_config"),
    [
        ({"tools": [WEATHER_TOOL]}, {"tools": [WEATHER_SPEC]}),
        (
            {"tools": [WEATHER_TOOL], "tool_choice": "auto"},
            {"tools": [WEATHER_SPEC], "toolChoice": {"auto": {}}},
        ),
        (
            {"tools": [WEATHER_TOOL], "tool_choice": "required"},
            {"tools": [WEATHER_SPEC], "toolChoice": {"any": {}}},
        ),
        (
            {
                "tools": [WEATHER_TOOL],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            },
            {"tools": [WEATHER_SPEC], "toolChoice": {"tool": {"name": "get_weather"}}},
        ),
        ({"tools": [WEATHER_TOOL], "tool_choice": "none"}, None),
        ({"tool_choice": "auto"}, None),
        ({"tool_choice": "none"}, None),
        ({"tools": []}, None),
        (
            {"tools": [{"type": "function", "function": {"name": "ping"}}]},
            {
                "tools": [
                    {
                        "toolSpec": {
                            "name": "ping",
                            "inputSchema": {"json": {"type": "object", "properties": {}}},
                        }
                    }
                ]
            },
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "description": "",
                            "parameters": {"type": "object"},
                            "strict": True,
                        },
                    }
                ]
            },
            {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]},
        ),
    ],
)
def test_request_tools(fields: Json, tool_config: Json | None) -> None:
    assert chat_request_to_converse({"messages": HI, **fields}).get("toolConfig") == tool_config


def test_tool_choice_none_keeps_tools_when_history_uses_them() -> None:
    """Converse rejects toolUse/toolResult blocks without a toolConfig, so `none` cannot drop them there."""
    body = {
        "messages": [
            user("weather?"),
            {"role": "assistant", "tool_calls": [call("t1", "get_weather", '{"city":"Oslo"}')]},
            {"role": "tool", "tool_call_id": "t1", "content": "3C"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": "none",
    }
    assert chat_request_to_converse(body)["toolConfig"] == {"tools": [WEATHER_SPEC]}


def image(url: Any) -> Json:
    return {"type": "image_url", "image_url": {"url": url}}


def asking(*messages: Json, **fields: Any) -> Json:
    """A request whose first turn is a plain user question, so message indices start at 1."""
    return {"messages": [*HI, *messages], **fields}


def assistant_calling(*calls: Any) -> Json:
    return {"role": "assistant", "tool_calls": list(calls)}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        (asking(n=2), "n"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
        ({"messages": [user(42)]}, "messages[0].content"),
        ({"messages": [user([{"type": "text", "text": 42}])]}, "messages[0].content[0].text"),
        (
            asking(user([{"type": "text", "text": "a"}, image("https://x/cat.png")])),
            "messages[1].content[1].image_url.url",
        ),
        (asking(user([image(f"data:image/bmp;base64,{PNG}")])), "messages[1].content[0].image_url.url"),
        (asking(user([image("data:image/png,not-base64")])), "messages[1].content[0].image_url.url"),
        (asking(user([image(None)])), "messages[1].content[0].image_url.url"),
        (asking(user([{"type": "input_audio", "input_audio": {}}])), "messages[1].content[0].type"),
        (asking(user(["bare string part"])), "messages[1].content[0].type"),
        (asking({"role": "assistant", "content": [image("x")]}), "messages[1].content[0].type"),
        ({"messages": [{"role": "system", "content": [image("x")]}, *HI]}, "messages[0].content[0].type"),
        (
            asking(assistant_calling(call("t", "f", "{not json"))),
            "messages[1].tool_calls[0].function.arguments",
        ),
        (asking(assistant_calling(call("t", "f", "[1, 2]"))), "messages[1].tool_calls[0].function.arguments"),
        (
            asking(assistant_calling({"type": "function", "function": {"name": "f"}})),
            "messages[1].tool_calls[0].id",
        ),
        (
            asking(assistant_calling({"id": "t", "type": "function"})),
            "messages[1].tool_calls[0].function.name",
        ),
        (
            asking(assistant_calling({"id": "t", "type": "custom", "custom": {}})),
            "messages[1].tool_calls[0].type",
        ),
        (asking({"role": "assistant", "tool_calls": {"id": "t"}}), "messages[1].tool_calls"),
        (asking({"role": "tool", "content": "x"}), "messages[1].tool_call_id"),
        (asking(tools=[{"type": "web_search"}]), "tools[0].type"),
        (asking(tools=[WEATHER_TOOL, {"type": "function", "function": {}}]), "tools[1].function.name"),
        (asking(tools={"type": "function"}), "tools"),
        (asking(tool_choice="required"), "tool_choice"),
        (asking(tool_choice={"type": "function", "function": {"name": "f"}}), "tool_choice"),
        (asking(tools=[WEATHER_TOOL], tool_choice="sometimes"), "tool_choice"),
        (asking(tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {}}), "tool_choice"),
        (asking(tools=[WEATHER_TOOL], tool_choice={"type": "allowed_tools"}), "tool_choice"),
        (asking(stop=[1, 2]), "stop"),
    ],
)
def test_request_errors_name_the_field(body: Json, param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        chat_request_to_converse(body)
    assert caught.value.param == param


def test_request_does_not_mutate_its_input() -> None:
    body = {"messages": [user("a"), user("b")], "tools": [WEATHER_TOOL], "stop": "x"}
    snapshot = json.loads(json.dumps(body))
    chat_request_to_converse(body)
    assert body == snapshot


# --------------------------------------------------------------------------- responses


def converse_response(content: list[Json], stop_reason: str | None = "end_turn", **extra: Any) -> Json:
    usage = {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": usage,
        "metrics": {"latencyMs": 12},
        **extra,
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([{"text": "Hello"}], {"role": "assistant", "content": "Hello"}),
        ([{"text": "Hel"}, {"text": "lo"}], {"role": "assistant", "content": "Hello"}),
        ([], {"role": "assistant", "content": ""}),
        (
            [
                {
                    "toolUse": {
                        "toolUseId": "tooluse_1",
                        "name": "get_weather",
                        "input": {"city": "Zürich", "days": [1, 2]},
                    }
                }
            ],
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "tooluse_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Zürich","days":[1,2]}'},
                    }
                ],
            },
        ),
        (
            [
                {"text": "Let me check."},
                {"toolUse": {"toolUseId": "a", "name": "f", "input": {}}},
                {"toolUse": {"toolUseId": "b", "name": "g", "input": {"x": None}}},
            ],
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"x":null}'}},
                ],
            },
        ),
        (
            [
                {"reasoningContent": {"reasoningText": {"text": "think", "signature": "sig"}}},
                {"reasoningContent": {"redactedContent": "b64"}},
                {"text": "answer"},
            ],
            {"role": "assistant", "content": "answer", "reasoning_content": "think"},
        ),
        (
            [{"image": {"format": "png", "source": {"bytes": PNG}}}, {"text": "a picture"}],
            {"role": "assistant", "content": "a picture"},
        ),
    ],
)
def test_response_message(content: list[Json], message: Json) -> None:
    chat = converse_response_to_chat(converse_response(content), model="bedrock/claude")
    assert chat["choices"] == [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}]
    assert chat["object"] == "chat.completion"
    assert chat["model"] == "bedrock/claude"
    assert chat["id"].startswith("chatcmpl-")
    assert isinstance(chat["created"], int)


STOP_REASONS = [
    ("end_turn", "stop"),
    ("stop_sequence", "stop"),
    ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"),
    ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"),
    ("content_filtered", "content_filter"),
    ("malformed_tool_use", "stop"),
    ("malformed_model_output", "stop"),
    ("a_future_reason", "stop"),
    (None, "stop"),
]


def test_stop_reason_table_covers_the_map() -> None:
    assert {reason: finish for reason, finish in STOP_REASONS if reason in FINISH_REASONS} == FINISH_REASONS


@pytest.mark.parametrize(("stop_reason", "finish"), STOP_REASONS)
def test_response_finish_reason(stop_reason: str | None, finish: str) -> None:
    chat = converse_response_to_chat(converse_response([{"text": "x"}], stop_reason), model="m")
    assert chat["choices"][0]["finish_reason"] == finish


USAGE_CASES = [
    (
        {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
        {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    ),
    (
        {
            "inputTokens": 4,
            "outputTokens": 50,
            "totalTokens": 3118,
            "cacheReadInputTokens": 3000,
            "cacheWriteInputTokens": 64,
        },
        {
            "prompt_tokens": 3068,
            "completion_tokens": 50,
            "total_tokens": 3118,
            "prompt_tokens_details": {"cached_tokens": 3000},
        },
    ),
    (
        {"inputTokens": 4, "outputTokens": 1, "totalTokens": 105, "cacheWriteInputTokens": 100},
        {"prompt_tokens": 104, "completion_tokens": 1, "total_tokens": 105},
    ),
    (
        {
            "inputTokens": 4,
            "outputTokens": 1,
            "totalTokens": 5,
            "cacheReadInputTokens": 0,
            "serverToolUsage": {},
        },
        {
            "prompt_tokens": 4,
            "completion_tokens": 1,
            "total_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    ),
    ({}, {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
]


@pytest.mark.parametrize(("usage", "expected"), USAGE_CASES)
def test_response_usage(usage: Json, expected: Json) -> None:
    assert converse_response_to_chat(converse_response([], usage=usage), model="m")["usage"] == expected


def test_response_without_usage_or_output() -> None:
    chat = converse_response_to_chat({"stopReason": "end_turn"}, model="m")
    assert "usage" not in chat
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": ""}


# --------------------------------------------------------------------------- streaming


def translate(events: list[Json], model: str = "m") -> list[Json]:
    translator = ConverseStreamToChat(model)
    chunks = [chunk for event in events for chunk in translator.feed(event)]
    return chunks + translator.finish()


def capture_events(capture: str) -> list[Json]:
    return [converse_stream_event(m) for m in EventStreamDecoder().feed(load_capture(capture))]


def deltas(chunks: list[Json]) -> list[Json]:
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]


def content_of(chunks: list[Json], key: str = "content") -> str:
    return "".join(delta.get(key) or "" for delta in deltas(chunks))


def tool_calls_of(chunks: list[Json]) -> dict[int, Json]:
    """Tool calls reassembled the way OpenAI clients do: by index, arguments concatenated."""
    calls: dict[int, Json] = {}
    for delta in deltas(chunks):
        for piece in delta.get("tool_calls", []):
            current = calls.setdefault(piece["index"], {"id": None, "name": None, "arguments": ""})
            current["id"] = piece.get("id") or current["id"]
            current["name"] = piece.get("function", {}).get("name") or current["name"]
            current["arguments"] += piece.get("function", {}).get("arguments", "")
    return calls


def finish_reasons(chunks: list[Json]) -> list[str]:
    return [
        c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]
    ]


def usages(chunks: list[Json]) -> list[Json]:
    return [chunk["usage"] for chunk in chunks if "usage" in chunk]


def test_text_capture_end_to_end() -> None:
    chunks = translate(capture_events(TEXT_CAPTURE), model="us.anthropic.claude")
    assert deltas(chunks)[0] == {"role": "assistant", "content": ""}
    text = content_of(chunks)
    assert text.startswith("# Binary Search in a Sorted Array\n\nHere's a Python program")
    assert "def binary_search(arr, target):" in text
    assert len(deltas(chunks)) == 1 + 84 + 1  # role, one chunk per text delta, finish
    assert finish_reasons(chunks) == ["length"]
    assert usages(chunks) == [{"prompt_tokens": 19, "completion_tokens": 500, "total_tokens": 519}]
    assert chunks[-1]["choices"] == []  # usage comes last, after the finish chunk
    assert {(c["id"], c["created"], c["model"], c["object"]) for c in chunks} == {
        (chunks[0]["id"], chunks[0]["created"], "us.anthropic.claude", "chat.completion.chunk")
    }


def test_tools_capture_end_to_end() -> None:
    events = capture_events(TOOLS_CAPTURE)
    raw_input = "".join(
        e["payload"]["delta"]["toolUse"]["input"]
        for e in events
        if "toolUse" in e["payload"].get("delta", {})
    )
    chunks = translate(events)
    assert tool_calls_of(chunks) == {
        0: {"id": "tooluse_U1VDb22VSDOVjwFzz5AqyQ", "name": "run_python_code", "arguments": raw_input}
    }
    assert "def factorial(n)" in json.loads(raw_input)["code"]
    text = content_of(chunks)
    assert text.startswith("<thinking>The user wants to create a Python function to calculate factorials.")
    assert (
        "</thinking>\n\n\n\n<thinking>The code executed successfully" in text
    )  # blocks 0 and 2 back to back
    assert text.endswith("Would you like me to add any additional features or error handling?")
    assert finish_reasons(chunks) == ["tool_calls"]
    assert usages(chunks) == [{"prompt_tokens": 742, "completion_tokens": 539, "total_tokens": 1281}]


@pytest.mark.parametrize("seed", range(3))
def test_capture_chunks_do_not_depend_on_network_chunking(seed: int) -> None:
    data = load_capture(TOOLS_CAPTURE)
    rng = random.Random(seed)
    decoder = EventStreamDecoder()
    translator = ConverseStreamToChat("m")
    chunks: list[Json] = []
    position = 0
    while position < len(data):
        step = rng.randint(1, 700)
        for message in decoder.feed(data[position : position + step]):
            chunks.extend(translator.feed(converse_stream_event(message)))
        position += step
    decoder.finish()
    chunks.extend(translator.finish())
    assert deltas(chunks) == deltas(translate(capture_events(TOOLS_CAPTURE)))


def event(event_type: str, **payload: Any) -> Json:
    return {"event_type": event_type, "payload": {"p": "abc", **payload}}


def tool_events(block: int, tool_id: str, name: str, arguments: str, rng: random.Random) -> list[Json]:
    cuts = sorted(rng.sample(range(1, len(arguments)), rng.randint(1, min(20, len(arguments) - 1))))
    pieces = [arguments[a:b] for a, b in pairwise([0, *cuts, len(arguments)])]
    return [
        event(
            "contentBlockStart",
            contentBlockIndex=block,
            start={"toolUse": {"toolUseId": tool_id, "name": name}},
        ),
        *[
            event("contentBlockDelta", contentBlockIndex=block, delta={"toolUse": {"input": p}})
            for p in pieces
        ],
        event("contentBlockStop", contentBlockIndex=block),
    ]


@pytest.mark.parametrize("seed", range(20))
def test_fragmented_tool_input_reassembles_exactly(seed: int) -> None:
    rng = random.Random(seed)
    first = json.dumps({"city": "São Paulo", "units": "c", "note": 'quote " and \\ backslash'})
    second = json.dumps({"query": "x" * rng.randint(1, 300), "nested": {"list": [1, 2.5, None, True]}})
    events = [
        event("messageStart", role="assistant"),
        event("contentBlockDelta", contentBlockIndex=0, delta={"text": "Checking both."}),
        event("contentBlockStop", contentBlockIndex=0),
        *tool_events(1, "tooluse_a", "get_weather", first, rng),
        *tool_events(2, "tooluse_b", "search", second, rng),
        event("messageStop", stopReason="tool_use"),
        event("metadata", usage={"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}),
    ]
    chunks = translate(events)
    assert tool_calls_of(chunks) == {
        0: {"id": "tooluse_a", "name": "get_weather", "arguments": first},
        1: {"id": "tooluse_b", "name": "search", "arguments": second},
    }
    assert content_of(chunks) == "Checking both."
    assert finish_reasons(chunks) == ["tool_calls"]


def test_chunk_shapes() -> None:
    translator = ConverseStreamToChat("claude")
    role = translator.feed(event("messageStart", role="assistant"))
    envelope = {
        "id": role[0]["id"],
        "object": "chat.completion.chunk",
        "created": role[0]["created"],
        "model": "claude",
    }

    def chunk(delta: Json, finish: str | None = None) -> Json:
        return {
            **envelope,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    start = event(
        "contentBlockStart", contentBlockIndex=3, start={"toolUse": {"toolUseId": "t", "name": "f"}}
    )
    usage = {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3, "cacheReadInputTokens": 7}
    assert role == [chunk({"role": "assistant", "content": ""})]
    assert translator.feed(start) == [
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "t", "type": "function", "function": {"name": "f", "arguments": ""}}
                ]
            }
        )
    ]
    assert translator.feed(
        event("contentBlockDelta", contentBlockIndex=3, delta={"toolUse": {"input": '{"a"'}})
    ) == [chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]})]
    assert translator.feed(event("messageStop", stopReason="tool_use")) == [chunk({}, "tool_calls")]
    assert translator.feed(event("metadata", usage=usage, metrics={"latencyMs": 5})) == [
        {
            **envelope,
            "choices": [],
            "usage": {
                "prompt_tokens": 8,
                "completion_tokens": 2,
                "total_tokens": 10,
                "prompt_tokens_details": {"cached_tokens": 7},
            },
        }
    ]
    assert translator.finish() == []


@pytest.mark.parametrize(
    ("payload_event", "expected"),
    [
        (
            event("contentBlockDelta", contentBlockIndex=0, delta={"reasoningContent": {"text": "hmm"}}),
            [{"reasoning_content": "hmm"}],
        ),
        (
            event("contentBlockDelta", contentBlockIndex=0, delta={"reasoningContent": {"signature": "sig"}}),
            [],
        ),
        (event("contentBlockDelta", contentBlockIndex=0, delta={"text": ""}), []),
        (event("contentBlockDelta", contentBlockIndex=0, delta={"citation": {"title": "t"}}), []),
        (event("contentBlockStart", contentBlockIndex=0, start={"image": {}}), []),
        (event("contentBlockStop", contentBlockIndex=0), []),
        (event("aFutureEvent", anything=1), []),
        (event("metadata", metrics={"latencyMs": 1}), []),
    ],
)
def test_stream_events_with_little_or_nothing_for_chat(payload_event: Json, expected: list[Json]) -> None:
    assert deltas(ConverseStreamToChat("m").feed(payload_event)) == expected


def test_empty_tool_fragment_emits_nothing() -> None:
    translator = ConverseStreamToChat("m")
    translator.feed(
        event("contentBlockStart", contentBlockIndex=0, start={"toolUse": {"toolUseId": "t", "name": "f"}})
    )
    assert (
        translator.feed(event("contentBlockDelta", contentBlockIndex=0, delta={"toolUse": {"input": ""}}))
        == []
    )


def test_stream_that_ends_without_message_stop_fails() -> None:
    translator = ConverseStreamToChat("m")
    translator.feed(event("messageStart", role="assistant"))
    translator.feed(event("contentBlockDelta", contentBlockIndex=0, delta={"text": "half an ans"}))
    with pytest.raises(BedrockStreamError, match="stream ended early") as caught:
        translator.finish()
    assert isinstance(caught.value, StreamError)


def test_tool_delta_without_start_fails() -> None:
    with pytest.raises(BedrockStreamError, match="content block 4"):
        ConverseStreamToChat("m").feed(
            event("contentBlockDelta", contentBlockIndex=4, delta={"toolUse": {"input": "{"}})
        )


@pytest.mark.parametrize(
    ("headers", "payload", "error_type", "text"),
    [
        (
            {
                ":message-type": "exception",
                ":exception-type": "throttlingException",
                ":content-type": "application/json",
            },
            b'{"message":"Too many tokens, please wait"}',
            "throttlingException",
            "Too many tokens, please wait",
        ),
        (
            {":message-type": "exception", ":exception-type": "modelStreamErrorException"},
            b'{"originalMessage":"model blew up","originalStatusCode":500}',
            "modelStreamErrorException",
            "model blew up",
        ),
        # Plano reads the exception name from :event-type; accept that too
        (
            {":message-type": "exception", ":event-type": "validationException"},
            b'{"message":"bad"}',
            "validationException",
            "bad",
        ),
        (
            {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "oops"},
            b"",
            "InternalFailure",
            "oops",
        ),
    ],
)
def test_exception_frames_raise(headers: dict[str, str], payload: bytes, error_type: str, text: str) -> None:
    (message,) = EventStreamDecoder().feed(encode_message(headers, payload))
    translator = ConverseStreamToChat("m")
    translator.feed(event("messageStart", role="assistant"))
    with pytest.raises(BedrockStreamError, match=text) as caught:
        translator.feed(converse_stream_event(message))
    assert caught.value.error_type == error_type


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            EventMessage(
                {":message-type": "event", ":event-type": "messageStart"}, b'{"p":"ab","role":"assistant"}'
            ),
            {"event_type": "messageStart", "payload": {"p": "ab", "role": "assistant"}},
        ),
        (
            EventMessage({":message-type": "event", ":event-type": "contentBlockStop"}, b""),
            {"event_type": "contentBlockStop", "payload": {}},
        ),
    ],
)
def test_converse_stream_event(message: EventMessage, expected: Json) -> None:
    assert converse_stream_event(message) == expected


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (EventMessage({":message-type": "event", ":event-type": "x"}, b"{not json"), "undecodable"),
        (EventMessage({":message-type": "event", ":event-type": "x"}, b"\xff\xfe"), "undecodable"),
        (EventMessage({":message-type": "event", ":event-type": "x"}, b"[1]"), "not a JSON object"),
        (EventMessage({":event-type": "x"}, b"{}"), "unknown event-stream message type None"),
    ],
)
def test_converse_stream_event_rejects_garbage(message: EventMessage, match: str) -> None:
    with pytest.raises(BedrockStreamError, match=match):
        converse_stream_event(message)
