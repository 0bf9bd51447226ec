"""Responses client ↔ Chat Completions provider: request, response object and event stream (pure).

Every emitted response object and stream event is parsed with the official
`openai` SDK types, and streams are replayed through the SDK's own stream
accumulator, so the SDK is guaranteed to accept what the gateway sends.
"""

from __future__ import annotations

import json
import random
from typing import Any

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from plano_trio.translate.base import Json, StreamError, TranslationError, compose
from plano_trio.translate.client_responses import (
    build_response,
    chat_response_to_responses,
    item_id,
    response_id,
    responses_request_to_chat,
)
from plano_trio.translate.client_responses_stream import ChatStreamToResponses

STREAM_EVENT = TypeAdapter(ResponseStreamEvent)
CHAT_ONLY = "Chat Completions only"


def user(text: str) -> Json:
    return {"role": "user", "content": text}


def call(call_id: str, name: str, arguments: str) -> Json:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def fc_item(call_id: str, name: str = "f", arguments: str = "{}") -> Json:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


# --- request: Responses -> Chat ---------------------------------------------

REQUEST_CASES: list[tuple[str, Json, Json]] = [
    ("input string", {"input": "hi"}, {"messages": [user("hi")]}),
    (
        "instructions lead",
        {"instructions": "be brief", "input": "hi"},
        {"messages": [{"role": "system", "content": "be brief"}, user("hi")]},
    ),
    (
        "easy message without type",
        {"input": [{"role": "user", "content": "hi"}]},
        {"messages": [user("hi")]},
    ),
    (
        "developer and system roles",
        {
            "input": [
                {"type": "message", "role": "developer", "content": "d"},
                {"role": "system", "content": "s"},
            ]
        },
        {"messages": [{"role": "system", "content": "d"}, {"role": "system", "content": "s"}]},
    ),
    (
        "text parts collapse to one string",
        {
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
                }
            ]
        },
        {"messages": [user("a\nb")]},
    ),
    (
        "assistant output item with refusal part skipped",
        {
            "input": [
                {
                    "type": "message",
                    "id": "msg_1",
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": "ok", "annotations": []},
                        {"type": "refusal", "refusal": "no"},
                    ],
                }
            ]
        },
        {"messages": [{"role": "assistant", "content": "ok"}]},
    ),
    (
        "refusal-only assistant message dropped",
        {
            "input": [
                user("x"),
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
                user("y"),
            ]
        },
        {"messages": [user("x"), user("y")]},
    ),
    (
        "image url keeps parts",
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what?"},
                        {"type": "input_image", "image_url": "https://x/i.png", "detail": "low"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": None},
                    ],
                }
            ]
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what?"},
                        {"type": "image_url", "image_url": {"url": "https://x/i.png", "detail": "low"}},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                    ],
                }
            ]
        },
    ),
    (
        "function_call alone",
        {"input": [user("q"), fc_item("c1", "f", '{"a":1}')]},
        {"messages": [user("q"), {"role": "assistant", "tool_calls": [call("c1", "f", '{"a":1}')]}]},
    ),
    (
        "assistant text and consecutive calls merge into one turn",
        {
            "input": [
                user("q"),
                {"role": "assistant", "content": "let me check"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                fc_item("c1", "f"),
                fc_item("c2", "g", '{"b":2}'),
                {"type": "function_call_output", "call_id": "c1", "output": "one"},
                {"type": "function_call_output", "call_id": "c2", "output": "two"},
                fc_item("c3", "h"),
            ]
        },
        {
            "messages": [
                user("q"),
                {
                    "role": "assistant",
                    "content": "let me check",
                    "tool_calls": [call("c1", "f", "{}"), call("c2", "g", '{"b":2}')],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "one"},
                {"role": "tool", "tool_call_id": "c2", "content": "two"},
                {"role": "assistant", "tool_calls": [call("c3", "h", "{}")]},
            ]
        },
    ),
    (
        "dict arguments are serialized",
        {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {"a": 1}}]},
        {"messages": [{"role": "assistant", "tool_calls": [call("c", "f", '{"a": 1}')]}]},
    ),
    (
        "function_call_output content list",
        {
            "input": [
                fc_item("c1"),
                {
                    "type": "function_call_output",
                    "call_id": "c1",
                    "output": [{"type": "input_text", "text": "x"}, {"type": "input_text", "text": "y"}],
                },
            ]
        },
        {
            "messages": [
                {"role": "assistant", "tool_calls": [call("c1", "f", "{}")]},
                {"role": "tool", "tool_call_id": "c1", "content": "x\ny"},
            ]
        },
    ),
    (
        "reasoning items dropped",
        {"input": [{"type": "reasoning", "id": "rs", "summary": [], "encrypted_content": "x"}, user("hi")]},
        {"messages": [user("hi")]},
    ),
    (
        "function tools, default parameters",
        {
            "input": "hi",
            "tools": [
                {"type": "function", "name": "f"},
                {
                    "type": "function",
                    "name": "g",
                    "description": "G",
                    "parameters": {"type": "object", "properties": {"a": {"type": "string"}}},
                    "strict": True,
                },
            ],
            "parallel_tool_calls": False,
        },
        {
            "messages": [user("hi")],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
                },
                {
                    "type": "function",
                    "function": {
                        "name": "g",
                        "parameters": {"type": "object", "properties": {"a": {"type": "string"}}},
                        "description": "G",
                        "strict": True,
                    },
                },
            ],
            "parallel_tool_calls": False,
        },
    ),
    (
        "parallel_tool_calls needs tools",
        {"input": "hi", "parallel_tool_calls": True},
        {"messages": [user("hi")]},
    ),
    (
        "sampling and limits",
        {"input": "hi", "max_output_tokens": 50, "temperature": 0.2, "top_p": 0.9, "user": "u1"},
        {"messages": [user("hi")], "max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "user": "u1"},
    ),
    (
        "ignored fields",
        {
            "input": "hi",
            "metadata": {"k": "v"},
            "store": True,
            "truncation": "auto",
            "include": ["reasoning.encrypted_content"],
            "previous_response_id": None,
            "background": False,
            "text": {"format": {"type": "text"}, "verbosity": "low"},
            "reasoning": {"summary": "auto"},
        },
        {"messages": [user("hi")]},
    ),
    (
        "stream asks for usage",
        {"input": "hi", "stream": True},
        {"messages": [user("hi")], "stream": True, "stream_options": {"include_usage": True}},
    ),
    (
        "reasoning effort",
        {"input": "hi", "reasoning": {"effort": "low"}},
        {"messages": [user("hi")], "reasoning_effort": "low"},
    ),
    (
        "json_object",
        {"input": "hi", "text": {"format": {"type": "json_object"}}},
        {"messages": [user("hi")], "response_format": {"type": "json_object"}},
    ),
    (
        "json_schema",
        {
            "input": "hi",
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "out",
                    "schema": {"type": "object"},
                    "description": "D",
                    "strict": True,
                }
            },
        },
        {
            "messages": [user("hi")],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "out",
                    "schema": {"type": "object"},
                    "description": "D",
                    "strict": True,
                },
            },
        },
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [case[1:] for case in REQUEST_CASES], ids=[c[0] for c in REQUEST_CASES]
)
def test_request_rules(body: Json, expected: Json) -> None:
    assert responses_request_to_chat({"model": "m", **body}) == {"model": "m", **expected}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_tool_choice(choice: Any, expected: Any) -> None:
    chat = responses_request_to_chat({"model": "m", "input": "hi", "tool_choice": choice})
    assert chat["tool_choice"] == expected


def image(**fields: Any) -> Json:
    return {"role": "user", "content": [{"type": "input_image", **fields}]}


HOSTED_TOOLS: list[Json] = [
    {"type": "web_search_preview"},
    {"type": "web_search"},
    {"type": "file_search", "vector_store_ids": ["vs"]},
    {"type": "code_interpreter", "container": {"type": "auto"}},
    {"type": "computer_use_preview", "display_width": 1, "display_height": 1, "environment": "linux"},
    {"type": "image_generation"},
    {"type": "mcp", "server_label": "s", "server_url": "https://x"},
    {"type": "local_shell"},
    {"type": "custom", "name": "c"},
]

ERROR_CASES: list[tuple[str, Json, str, str]] = [
    ("no input", {}, "input", "required"),
    ("input not a list", {"input": 3}, "input", "string or a list"),
    ("bad instructions", {"input": "x", "instructions": ["a"]}, "instructions", "string"),
    ("item not an object", {"input": ["x"]}, "input[0]", "object"),
    ("part not an object", {"input": [{"role": "user", "content": ["x"]}]}, "input[0].content[0]", "object"),
    ("tools not a list", {"input": "x", "tools": {"type": "function"}}, "tools", "list"),
    ("tool not an object", {"input": "x", "tools": ["f"]}, "tools[0]", "object"),
    ("unknown role", {"input": [{"role": "tool", "content": "x"}]}, "input[0].role", "tool"),
    (
        "input_file",
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
        "input[0].content[0]",
        "input_file",
    ),
    ("image by file_id", {"input": [image(file_id="file_1")]}, "input[0].content[0].file_id", "file_id"),
    ("image without source", {"input": [image()]}, "input[0].content[0].image_url", "image_url"),
    (
        "image in assistant message",
        {"input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "u"}]}]},
        "input[0].content[0]",
        "user messages",
    ),
    (
        "unknown content part",
        {"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
        "input[0].content[0].type",
        "input_audio",
    ),
    (
        "content not a list",
        {"input": [{"role": "user", "content": 5}]},
        "input[0].content",
        "string or a list",
    ),
    (
        "item_reference",
        {"input": [user("x"), {"type": "item_reference", "id": "msg_1"}]},
        "input[1]",
        "item_reference",
    ),
    ("custom tool call item", {"input": [{"type": "custom_tool_call"}]}, "input[0].type", "custom_tool_call"),
    (
        "call without call_id",
        {"input": [{"type": "function_call", "name": "f"}]},
        "input[0].call_id",
        "required",
    ),
    (
        "call without name",
        {"input": [{"type": "function_call", "call_id": "c"}]},
        "input[0].name",
        "required",
    ),
    (
        "output with an image",
        {
            "input": [
                {
                    "type": "function_call_output",
                    "call_id": "c",
                    "output": [{"type": "input_image", "image_url": "u"}],
                }
            ]
        },
        "input[0].output[0]",
        "user messages",
    ),
    (
        "output missing",
        {"input": [{"type": "function_call_output", "call_id": "c"}]},
        "input[0].output",
        "required",
    ),
    (
        "function tool without name",
        {"input": "x", "tools": [{"type": "function"}]},
        "tools[0].name",
        "required",
    ),
    *[
        (
            f"tool {tool['type']}",
            {"input": "x", "tools": [{"type": "function", "name": "f"}, tool]},
            "tools[1].type",
            tool["type"],
        )
        for tool in HOSTED_TOOLS
    ],
    (
        "hosted tool_choice",
        {"input": "x", "tool_choice": {"type": "file_search"}},
        "tool_choice",
        "file_search",
    ),
    (
        "allowed_tools choice",
        {"input": "x", "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}},
        "tool_choice",
        "allowed_tools",
    ),
    ("unknown tool_choice", {"input": "x", "tool_choice": "any"}, "tool_choice", "any"),
    ("text format", {"input": "x", "text": {"format": {"type": "grammar"}}}, "text.format.type", "grammar"),
    (
        "schema without name",
        {"input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}},
        "text.format.name",
        "required",
    ),
    (
        "previous_response_id",
        {"input": "x", "previous_response_id": "resp_1"},
        "previous_response_id",
        "state",
    ),
    ("background", {"input": "x", "background": True}, "background", "background"),
    ("conversation", {"input": "x", "conversation": "conv_1"}, "conversation", "conversation"),
    ("prompt template", {"input": "x", "prompt": {"id": "pmpt_1"}}, "prompt", "prompt"),
]


@pytest.mark.parametrize(
    ("body", "param", "fragment"), [case[1:] for case in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_request_errors(body: Json, param: str, fragment: str) -> None:
    with pytest.raises(TranslationError) as caught:
        responses_request_to_chat({"model": "m", **body})
    assert caught.value.param == param
    assert fragment in caught.value.message


@pytest.mark.parametrize("tool", HOSTED_TOOLS, ids=[tool["type"] for tool in HOSTED_TOOLS])
def test_hosted_tool_message_says_chat_only(tool: Json) -> None:
    with pytest.raises(TranslationError, match=CHAT_ONLY):
        responses_request_to_chat({"model": "m", "input": "x", "tools": [tool]})


def test_request_is_not_mutated() -> None:
    body = {"model": "m", "input": [fc_item("a"), fc_item("b")], "tools": [{"type": "function", "name": "f"}]}
    snapshot = json.loads(json.dumps(body))
    responses_request_to_chat(body)
    assert body == snapshot


# --- ids and the response object ---------------------------------------------


def test_ids() -> None:
    rid = response_id()
    assert rid.startswith("resp_") and len(rid) == 5 + 32 and int(rid[5:], 16) >= 0
    assert item_id("msg").startswith("msg_") and item_id("fc") != item_id("fc")


def chat_completion(message: Json, finish_reason: str | None = "stop", usage: Json | None = None) -> Json:
    body: Json = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "claude-x",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def validated(response: Json) -> Response:
    """The SDK must accept the object exactly as the client would receive it."""
    return Response.model_validate(json.loads(json.dumps(response)))


def test_text_response() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    out = chat_response_to_responses(
        chat_completion({"content": "Hello"}, usage=usage), request={"model": "claude", "input": "hi"}
    )
    parsed = validated(out)
    assert out["id"].startswith("resp_") and out["object"] == "response" and out["created_at"] == 1700000000
    assert (out["status"], out["model"], parsed.output_text) == ("completed", "claude-x", "Hello")
    [message] = out["output"]
    assert message["id"].startswith("msg_")
    assert {k: message[k] for k in ("type", "status", "role")} == {
        "type": "message",
        "status": "completed",
        "role": "assistant",
    }
    assert message["content"] == [{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}]
    assert out["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 15,
    }


def test_tool_call_response() -> None:
    message = {
        "content": "checking",
        "tool_calls": [call("call_a", "f", '{"x":1}'), {"type": "function", "function": {"name": "g"}}],
    }
    out = chat_response_to_responses(chat_completion(message, "tool_calls"), request={"model": "m"})
    validated(out)
    assert [item["type"] for item in out["output"]] == ["message", "function_call", "function_call"]
    first, second = out["output"][1:]
    assert first["id"].startswith("fc_") and first["status"] == "completed"
    assert (first["call_id"], first["name"], first["arguments"]) == ("call_a", "f", '{"x":1}')
    assert second["call_id"].startswith("call_") and second["arguments"] == ""
    assert out["status"] == "completed" and out["usage"] is None


def test_refusal_response() -> None:
    out = chat_response_to_responses(chat_completion({"content": None, "refusal": "no"}), request={})
    validated(out)
    assert out["output"][0]["content"] == [{"type": "refusal", "refusal": "no"}]


@pytest.mark.parametrize(
    ("finish_reason", "status", "details"),
    [
        ("stop", "completed", None),
        ("tool_calls", "completed", None),
        ("function_call", "completed", None),
        (None, "completed", None),
        ("length", "incomplete", {"reason": "max_output_tokens"}),
        ("content_filter", "incomplete", {"reason": "content_filter"}),
    ],
)
def test_finish_reason_to_status(finish_reason: str | None, status: str, details: Json | None) -> None:
    out = chat_response_to_responses(chat_completion({"content": "x"}, finish_reason), request={})
    validated(out)
    assert (out["status"], out["incomplete_details"]) == (status, details)
    assert out["output"][-1]["status"] == ("completed" if status == "completed" else "incomplete")
    assert (out["completed_at"] is not None) == (status == "completed")


def test_empty_answer_has_empty_output() -> None:
    out = chat_response_to_responses(chat_completion({"content": ""}), request={}, response_id="resp_given")
    assert validated(out).output == [] and out["id"] == "resp_given"


def test_request_fields_are_echoed() -> None:
    request = {
        "model": "m",
        "input": "hi",
        "instructions": "sys",
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
        "tool_choice": {"type": "function", "name": "f"},
        "temperature": 0.3,
        "top_p": 0.5,
        "parallel_tool_calls": False,
        "max_output_tokens": 99,
        "previous_response_id": "resp_prev",
        "store": False,
        "text": {"format": {"type": "json_schema", "name": "o", "schema": {"type": "object"}}},
        "metadata": {"k": "v"},
        "truncation": "auto",
        "reasoning": {"effort": "low"},
        "user": "u",
    }
    out = chat_response_to_responses(chat_completion({"content": "{}"}), request=request)
    validated(out)
    for key in set(request) - {"model", "input"}:
        assert out[key] == request[key], key


def test_defaults_when_request_is_bare() -> None:
    out = build_response(
        {}, response_id="resp_x", created_at=1, model="m", output=[], status="in_progress", usage=None
    )
    validated(out)
    assert {
        k: out[k] for k in ("tools", "tool_choice", "parallel_tool_calls", "store", "metadata", "truncation")
    } == {
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "store": True,
        "metadata": {},
        "truncation": "disabled",
    }
    assert out["text"] == {"format": {"type": "text"}} and out["completed_at"] is None


def test_chat_list_content_and_missing_total() -> None:
    body = chat_completion(
        {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        usage={"prompt_tokens": 2, "completion_tokens": 3},
    )
    out = chat_response_to_responses(body, request={})
    assert validated(out).output_text == "ab" and out["usage"]["total_tokens"] == 5


# --- streaming ---------------------------------------------------------------


def chunk(delta: Json | None = None, finish_reason: str | None = None, **extra: Any) -> Json:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "claude-x",
        "choices": choices,
        **extra,
    }


def tool_delta(index: int, arguments: str = "", call_id: str | None = None, name: str | None = None) -> Json:
    tool: Json = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        tool.update(id=call_id, type="function")
        tool["function"]["name"] = name
    return chunk({"tool_calls": [tool]})


ROLE = chunk({"role": "assistant", "content": ""})
USAGE = chunk(usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})


def run(chunks: list[Json], request: Json | None = None) -> tuple[ChatStreamToResponses, list[Json]]:
    """Feed the chunks, finish, and check every event against the SDK and its accumulator."""
    translator = ChatStreamToResponses(request or {"model": "m", "input": "hi", "stream": True})
    events = [event for piece in chunks for event in translator.feed(piece)] + translator.finish()
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=openai.omit, text_format=openai.omit)
    for event in events:
        parsed = STREAM_EVENT.validate_python(json.loads(json.dumps(event)))
        state.handle_event(parsed)  # raises on any ordering or identity inconsistency
    assert translator.response is events[-1]["response"]
    return translator, events


def types(events: list[Json]) -> list[str]:
    return [event["type"].removeprefix("response.") for event in events]


MESSAGE_OPEN = ["output_item.added", "content_part.added"]
MESSAGE_CLOSE = ["output_text.done", "content_part.done", "output_item.done"]
CALL_CLOSE = ["function_call_arguments.done", "output_item.done"]


@given(
    text=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=30),
    arguments=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=30),
)
def test_streamed_pieces_join_to_the_done_text_and_arguments(text: list[str], arguments: list[str]) -> None:
    """Text and tool arguments are kept as pieces and joined when read (appending to an attribute
    copied the whole string per delta: quadratic); the `.done` events and the final object carry
    exactly the concatenation, however the deltas fell."""
    first, *rest = arguments
    chunks = [ROLE, *(chunk({"content": piece}) for piece in text), tool_delta(0, first, "call_1", "f")]
    chunks += [tool_delta(0, piece) for piece in rest] + [chunk({}, "tool_calls"), USAGE]
    _, events = run(chunks)
    (text_done,) = [event for event in events if event["type"] == "response.output_text.done"]
    (arguments_done,) = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert text_done["text"] == "".join(text)
    assert arguments_done["arguments"] == "".join(arguments)
    message, call = events[-1]["response"]["output"]
    assert message["content"][0]["text"] == "".join(text) and call["arguments"] == "".join(arguments)


def test_text_stream() -> None:
    translator, events = run(
        [ROLE, chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk({}, "stop"), USAGE]
    )
    assert types(events) == [
        "created",
        "in_progress",
        *MESSAGE_OPEN,
        "output_text.delta",
        "output_text.delta",
        *MESSAGE_CLOSE,
        "completed",
    ]
    created, in_progress, added, part_added, delta, _, text_done, part_done, item_done, completed = events
    for envelope in (created, in_progress):
        assert envelope["response"]["status"] == "in_progress" and envelope["response"]["output"] == []
        assert envelope["response"]["id"] == translator.id
    item = added["item"]
    assert (item["type"], item["status"], item["content"]) == ("message", "in_progress", [])
    assert part_added["part"] == {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    for event in (part_added, delta, text_done, part_done):
        assert (event["item_id"], event["output_index"], event["content_index"]) == (item["id"], 0, 0)
    assert (delta["delta"], delta["logprobs"]) == ("Hel", [])
    assert text_done["text"] == "Hello" and part_done["part"]["text"] == "Hello"
    assert item_done["item"]["status"] == "completed" and item_done["item"]["id"] == item["id"]
    final = completed["response"]
    assert final["status"] == "completed" and final["output"] == [item_done["item"]]
    assert final["usage"]["total_tokens"] == 10 and translator.usage == final["usage"]
    assert final["model"] == "claude-x" and final["created_at"] == 1700000000
    assert validated(final).output_text == "Hello"


def test_text_then_tool_call_stream() -> None:
    translator, events = run(
        [
            ROLE,
            chunk({"content": "Checking."}),
            tool_delta(0, "", "call_1", "get_weather"),
            tool_delta(0, '{"city":'),
            tool_delta(0, '"Paris"}'),
            chunk({}, "tool_calls"),
            USAGE,
        ]
    )
    assert types(events) == [
        "created",
        "in_progress",
        *MESSAGE_OPEN,
        "output_text.delta",
        *MESSAGE_CLOSE,
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.delta",
        *CALL_CLOSE,
        "completed",
    ]
    added = events[8]
    assert added["output_index"] == 1
    assert {k: added["item"][k] for k in ("type", "status", "call_id", "name", "arguments")} == {
        "type": "function_call",
        "status": "in_progress",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": "",
    }
    assert added["item"]["id"].startswith("fc_")
    assert [e["item_id"] for e in events[9:12]] == [added["item"]["id"]] * 3
    assert events[11]["arguments"] == '{"city":"Paris"}' and events[11]["name"] == "get_weather"
    final = translator.response
    assert final is not None
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert (
        final["output"][1]["arguments"] == '{"city":"Paris"}' and final["output"][1]["status"] == "completed"
    )


def test_parallel_interleaved_tool_calls() -> None:
    translator, events = run(
        [
            ROLE,
            tool_delta(0, "", "call_a", "f"),
            tool_delta(1, '{"n"', "call_b", "g"),
            tool_delta(0, '{"m"'),
            tool_delta(1, ":2}"),
            tool_delta(0, ":1}"),
            chunk({}, "tool_calls"),
        ]
    )
    assert types(events) == [
        "created",
        "in_progress",
        "output_item.added",
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.delta",
        "function_call_arguments.delta",
        "function_call_arguments.delta",
        *CALL_CLOSE,
        *CALL_CLOSE,
        "completed",
    ]
    ids = [events[2]["item"]["id"], events[3]["item"]["id"]]
    assert [events[2]["output_index"], events[3]["output_index"]] == [0, 1]
    assert [(e["item_id"], e["delta"]) for e in events[4:8]] == [
        (ids[1], '{"n"'),
        (ids[0], '{"m"'),
        (ids[1], ":2}"),
        (ids[0], ":1}"),
    ]
    assert [(e["item_id"], e["arguments"]) for e in (events[8], events[10])] == [
        (ids[0], '{"m":1}'),
        (ids[1], '{"n":2}'),
    ]
    assert translator.response is not None and translator.usage is None
    assert [i["arguments"] for i in translator.response["output"]] == ['{"m":1}', '{"n":2}']


@pytest.mark.parametrize(
    ("finish_reason", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_cut_off_stream_is_incomplete(finish_reason: str, reason: str) -> None:
    _, events = run([ROLE, chunk({"content": "partial"}), chunk({}, finish_reason), USAGE])
    assert types(events)[-4:] == [*MESSAGE_CLOSE, "incomplete"]
    assert events[-2]["item"]["status"] == "incomplete"
    final = events[-1]["response"]
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": reason}
    assert final["usage"]["output_tokens"] == 3 and final["output"][0]["status"] == "incomplete"


def test_cut_off_inside_tool_arguments() -> None:
    _, events = run([ROLE, tool_delta(0, '{"a": "unfini', "call_1", "f"), chunk({}, "length")])
    assert events[-3]["arguments"] == '{"a": "unfini'
    assert events[-2]["item"]["status"] == "incomplete" and events[-1]["type"] == "response.incomplete"


@pytest.mark.parametrize(
    "chunks",
    [[], [ROLE], [ROLE, chunk({}, "stop")], [ROLE, chunk({}, "stop"), USAGE]],
    ids=["nothing", "role only", "finish", "finish and usage"],
)
def test_empty_stream_completes_with_empty_output(chunks: list[Json]) -> None:
    translator, events = run(chunks)
    assert types(events) == ["created", "in_progress", "completed"]
    assert events[-1]["response"]["output"] == [] and events[-1]["response"]["status"] == "completed"
    assert translator.response is not None


def test_no_finish_reason_still_closes_items() -> None:
    _, events = run([ROLE, chunk({"content": "x"}), tool_delta(0, "{}", "c", "f")])
    assert types(events)[-3:] == [*CALL_CLOSE, "completed"]
    assert events[-1]["response"]["output"][1]["status"] == "completed"


def test_text_after_tool_call_opens_new_message() -> None:
    _, events = run(
        [
            ROLE,
            tool_delta(0, "{}", "c", "f"),
            chunk({"content": "and"}),
            chunk({"content": " more"}),
            chunk({}, "stop"),
        ]
    )
    assert types(events) == [
        "created",
        "in_progress",
        "output_item.added",
        "function_call_arguments.delta",
        *MESSAGE_OPEN,
        "output_text.delta",
        "output_text.delta",
        *CALL_CLOSE,
        *MESSAGE_CLOSE,
        "completed",
    ]
    assert [item["type"] for item in events[-1]["response"]["output"]] == ["function_call", "message"]
    assert events[4]["output_index"] == 1


def test_refusal_stream() -> None:
    _, events = run(
        [
            ROLE,
            chunk({"content": "I"}),
            chunk({"refusal": "can't"}),
            chunk({"refusal": "!"}),
            chunk({}, "stop"),
        ]
    )
    assert types(events) == [
        "created",
        "in_progress",
        *MESSAGE_OPEN,
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "content_part.added",
        "refusal.delta",
        "refusal.delta",
        "refusal.done",
        "content_part.done",
        "output_item.done",
        "completed",
    ]
    assert events[7]["part"] == {"type": "refusal", "refusal": ""} and events[7]["content_index"] == 1
    assert events[10]["refusal"] == "can't!"
    assert events[-1]["response"]["output"][0]["content"][1] == {"type": "refusal", "refusal": "can't!"}


def test_calls_without_index_are_keyed_by_id() -> None:
    def whole(call_id: str, arguments: str) -> Json:
        return chunk(
            {
                "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": "f", "arguments": arguments}}
                ]
            }
        )

    translator, _ = run([whole("c1", '{"a":1}'), whole("c2", '{"b":2}'), chunk({}, "tool_calls")])
    assert translator.response is not None
    assert [(i["call_id"], i["arguments"]) for i in translator.response["output"]] == [
        ("c1", '{"a":1}'),
        ("c2", '{"b":2}'),
    ]


def test_other_choices_and_late_events_are_ignored() -> None:
    translator = ChatStreamToResponses({"model": "m"}, response_id="resp_fixed")
    other = {"choices": [{"index": 1, "delta": {"content": "other"}}]}
    events = translator.feed(other) + translator.feed(chunk({"content": "mine"}))
    events += translator.finish()
    assert translator.finish() == [] and translator.feed(chunk({"content": "late"})) == []
    assert translator.response is not None and translator.response["id"] == "resp_fixed"
    assert [c["text"] for c in translator.response["output"][0]["content"]] == ["mine"]
    assert all(event["response"]["id"] == "resp_fixed" for event in events if "response" in event)


def test_stream_echoes_request() -> None:
    request = {"model": "m", "input": "x", "instructions": "sys", "temperature": 0.1, "stream": True}
    translator, events = run([ROLE, chunk({"content": "y"}), chunk({}, "stop")], request)
    assert all(e["response"]["instructions"] == "sys" for e in events if "response" in e)
    assert translator.response is not None and translator.response["temperature"] == 0.1


def fragments(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(0, 8))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@pytest.mark.parametrize("seed", range(25))
def test_random_fragmentation_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    arguments = [
        json.dumps({"city": "Zürich", "n": i, "tags": ["a", "ü\n", '"q"'] * rng.randint(1, 3)})
        for i in range(rng.randint(1, 4))
    ]
    pending = [
        [tool_delta(i, "", f"call_{i}", f"fn{i}")] + [tool_delta(i, piece) for piece in fragments(a, rng)]
        for i, a in enumerate(arguments)
    ]
    chunks = [ROLE]
    while any(pending):
        queue = rng.choice([q for q in pending if q])  # interleave the calls at random
        chunks.append(queue.pop(0))
    translator, events = run([*chunks, chunk({}, "tool_calls"), USAGE])
    added = {
        e["item"]["id"]: e["item"]["call_id"] for e in events if e["type"] == "response.output_item.added"
    }
    assert sorted(added.values()) == [f"call_{i}" for i in range(len(arguments))]
    for item, call_id in added.items():
        deltas = "".join(
            e["delta"] for e in events if e.get("item_id") == item and e["type"].endswith(".delta")
        )
        [done] = [e for e in events if e.get("item_id") == item and e["type"].endswith("arguments.done")]
        assert deltas == done["arguments"] == arguments[int(call_id.removeprefix("call_"))]
    assert translator.response is not None
    final = {item["call_id"]: item["arguments"] for item in translator.response["output"]}
    assert final == {f"call_{i}": a for i, a in enumerate(arguments)}


class _Passthrough:
    """A stand-in for an upstream translator (e.g. Messages→Chat) in a composed chain."""

    def feed(self, event: Json) -> list[Json]:
        return [event]

    def finish(self) -> list[Json]:
        return [chunk({}, "stop")]


def test_composes_as_second_stage() -> None:
    translator = ChatStreamToResponses({"model": "m"})
    chain = compose(_Passthrough(), translator)
    events = chain.feed(ROLE) + chain.feed(chunk({"content": "hi"})) + chain.finish()
    assert types(events) == [
        "created",
        "in_progress",
        *MESSAGE_OPEN,
        "output_text.delta",
        *MESSAGE_CLOSE,
        "completed",
    ]
    assert translator.response is not None and translator.response["output"][0]["content"][0]["text"] == "hi"


def test_in_band_error_chunk_raises_stream_error() -> None:
    translator = ChatStreamToResponses({"model": "m"})
    translator.feed(chunk({"content": "partial"}))
    with pytest.raises(StreamError) as caught:
        translator.feed({"error": {"message": "overloaded", "type": "overloaded_error"}})
    assert (caught.value.message, caught.value.error_type) == ("overloaded", "overloaded_error")
