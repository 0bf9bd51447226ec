"""Requests and answers of the three client APIs as the analysed rows: Plano's conversion, bounded."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plano_trio.apis.kind import Api
from plano_trio.signals import (
    MAX_CALL_ROW,
    MAX_MESSAGE_LENGTH,
    MAX_MESSAGES,
    ConversationError,
    analyze,
    conversation,
)
from tests.test_signals_parity import ACCEPTANCE_CHAT


def call_row(name: str, arguments: str) -> tuple[str, str]:
    return ("function_call", json.dumps({"name": name, "arguments": arguments}, separators=(",", ":")))


CASES: list[tuple[str, Api, dict[str, Any], list[tuple[str, str]]]] = [
    (
        "chat: roles, empty user text, text parts, calls",
        Api.CHAT,
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": "be kind"},
                {"role": "user", "content": None},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look at"},
                        {"type": "image_url", "image_url": {"url": "data:,"}},
                        {"type": "text", "text": "this"},
                    ],
                },
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "1",
                            "type": "function",
                            "function": {"name": "grep", "arguments": '{"q": "x"}'},
                        },
                        {
                            "id": "2",
                            "type": "function",
                            "function": {"name": "ls", "arguments": {"path": "/"}},
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "cat", "arguments": ""}}],
                },
                {"role": "tool", "tool_call_id": "1", "content": "no match"},
                {"role": "function", "content": "deprecated role"},
                "not a message",
            ]
        },
        [
            ("human", ""),
            ("human", "look at\nthis"),
            ("gpt", "Checking."),
            call_row("grep", '{"q": "x"}'),
            call_row("ls", '{"path":"/"}'),
            call_row("cat", ""),
            ("observation", "no match"),
        ],
    ),
    (
        "anthropic: tool results first, tool-result-only user message is no turn, thinking dropped",
        Api.MESSAGES,
        {
            "system": "be brief",
            "messages": [
                {"role": "user", "content": "fix main.rs"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {"type": "text", "text": "Reading it."},
                        {
                            "type": "tool_use",
                            "id": "t1",
                            "name": "read",
                            "input": {"path": "main.rs", "lines": 10},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [{"type": "text", "text": "fn main"}],
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "and?"},
                        {"type": "tool_result", "tool_use_id": "t2", "content": "error: denied"},
                    ],
                },
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "only thoughts"}]},
            ],
        },
        [
            ("human", "fix main.rs"),
            ("gpt", "Reading it."),
            call_row("read", '{"path":"main.rs","lines":10}'),
            ("observation", "fn main"),
            ("observation", "error: denied"),
            ("human", "and?"),
        ],
    ),
    (
        "responses: items in order, outputs as JSON, custom calls, references and reasoning dropped",
        Api.RESPONSES,
        {
            "instructions": "be brief",
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_text", "text": "find"}, {"type": "input_text", "text": "it"}],
                },
                {"type": "reasoning", "summary": []},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Searching."}],
                },
                {"type": "function_call", "call_id": "c1", "name": "search", "arguments": '{"q":"it"}'},
                {"type": "function_call_output", "call_id": "c1", "output": {"hits": 0}},
                {"type": "custom_tool_call", "call_id": "c2", "name": "shell", "input": "ls -la"},
                {"type": "custom_tool_call_output", "call_id": "c2", "output": "total 0"},
                {"type": "item_reference", "id": "msg_1"},
                {"type": "function_call", "call_id": "c3", "name": "broken"},
            ],
        },
        [
            ("human", "find\nit"),
            ("gpt", "Searching."),
            call_row("search", '{"q":"it"}'),
            ("observation", '{"hits":0}'),
            call_row("shell", '{"input":"ls -la"}'),
            ("observation", "total 0"),
        ],
    ),
    ("responses: a string input is one user turn", Api.RESPONSES, {"input": "hello"}, [("human", "hello")]),
    (
        "responses: a message with a content entry Plano cannot read is dropped",
        Api.RESPONSES,
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "kept"},
                        {"type": "input_image", "image_url": "u"},
                    ],
                },
                {"role": "user", "content": [{"type": "input_text", "text": "dropped"}, {"type": "video"}]},
                {"role": "user", "content": [{"type": "input_text", "text": 3}]},
            ]
        },
        [("human", "kept")],
    ),
    (
        "responses: one item instead of a list",
        Api.RESPONSES,
        {"input": {"role": "user", "content": "hi"}},
        [("human", "hi")],
    ),
]


@pytest.mark.parametrize(("api", "request_", "rows"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_conversion(api: Api, request_: dict[str, Any], rows: list[tuple[str, str]]) -> None:
    assert list(conversation(api, request_)) == rows


ANSWERS: list[tuple[str, Api, dict[str, Any], list[tuple[str, str]]]] = [
    (
        "chat completion",
        Api.CHAT,
        {
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": "Done.",
                        "tool_calls": [
                            {"id": "1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
                        ],
                    }
                }
            ]
        },
        [("gpt", "Done."), call_row("ls", "{}")],
    ),
    (
        "anthropic message",
        Api.MESSAGES,
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Done."}, {"type": "tool_use", "name": "ls", "input": {}}],
        },
        [("gpt", "Done."), call_row("ls", "{}")],
    ),
    (
        "responses output",
        Api.RESPONSES,
        {
            "output": [
                {"type": "reasoning", "summary": []},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Done."}],
                },
                {"type": "function_call", "call_id": "c", "name": "ls", "arguments": "{}"},
            ]
        },
        [("gpt", "Done."), call_row("ls", "{}")],
    ),
]

QUESTION = {
    Api.CHAT: {"messages": [{"role": "user", "content": "list files"}]},
    Api.MESSAGES: {"messages": [{"role": "user", "content": "list files"}]},
    Api.RESPONSES: {"input": "list files"},
}


@pytest.mark.parametrize(("api", "answer", "rows"), [c[1:] for c in ANSWERS], ids=[c[0] for c in ANSWERS])
def test_the_answer_is_appended_when_given(
    api: Api, answer: dict[str, Any], rows: list[tuple[str, str]]
) -> None:
    assert list(conversation(api, QUESTION[api], answer)) == [("human", "list files"), *rows]
    assert list(conversation(api, QUESTION[api])) == [("human", "list files")]


def test_acceptance_case_reads_the_same_in_every_client_api() -> None:
    anthropic: dict[str, Any] = {"system": "You are the order desk.", "messages": []}
    responses: dict[str, Any] = {"instructions": "You are the order desk.", "input": []}
    for message in ACCEPTANCE_CHAT["messages"][1:]:
        role, content = message["role"], message["content"]
        if role == "user":
            anthropic["messages"].append({"role": "user", "content": content})
            responses["input"].append({"role": "user", "content": content})
        elif role == "tool":
            result = {"type": "tool_result", "tool_use_id": message["tool_call_id"], "content": content}
            anthropic["messages"].append({"role": "user", "content": [result]})
            output = {"type": "function_call_output", "call_id": message["tool_call_id"], "output": content}
            responses["input"].append(output)
        elif content:
            anthropic["messages"].append({"role": "assistant", "content": content})
            responses["input"].append({"role": "assistant", "content": content})
        else:
            function = message["tool_calls"][0]["function"]
            use = {
                "type": "tool_use",
                "id": "x",
                "name": function["name"],
                "input": json.loads(function["arguments"]),
            }
            anthropic["messages"].append({"role": "assistant", "content": [use]})
            responses["input"].append({"type": "function_call", "call_id": "x", **function})
    expected = analyze(Api.CHAT, ACCEPTANCE_CHAT)
    for api, request in ((Api.MESSAGES, anthropic), (Api.RESPONSES, responses)):
        report = analyze(api, request)
        assert report.types() == expected.types()
        assert report.span_attributes() == expected.span_attributes()


# -- bounds ------------------------------------------------------------------------------------------


def test_only_the_last_hundred_rows_are_kept() -> None:
    request = {"messages": [{"role": "user", "content": f"message {i}"} for i in range(150)]}
    rows = conversation(Api.CHAT, request)
    assert len(rows) == MAX_MESSAGES
    assert rows[0] == ("human", "message 50")


def test_long_texts_keep_their_first_fifth_and_last_four_fifths() -> None:
    text = "a" * 1000 + "b" * 3000
    ((_, value),) = conversation(Api.CHAT, {"messages": [{"role": "tool", "content": text}]})
    assert value == "a" * 400 + " " + "b" * 1599


def test_long_call_arguments_keep_their_equality() -> None:
    same = json.dumps({"blob": "x" * 5000})
    other = json.dumps({"blob": "x" * 4999 + "y"})

    def calls(*arguments: str) -> dict[str, Any]:
        return {
            "messages": [
                {"role": "assistant", "tool_calls": [{"function": {"name": "save", "arguments": a}}]}
                for a in arguments
            ]
        }

    rows = conversation(Api.CHAT, calls(same, same, other))
    assert all(len(value) <= MAX_CALL_ROW for _, value in rows)
    assert rows[0] == rows[1] != rows[2]
    assert analyze(Api.CHAT, calls(same, same, same)).types() == {"execution.loops.retry": 1}
    assert analyze(Api.CHAT, calls(same, other, same)).types() == {"execution.loops.parameter_drift": 1}


def test_lone_surrogates_become_replacement_characters() -> None:
    rows = conversation(Api.CHAT, {"messages": [{"role": "user", "content": "bad \ud800 text \U0001f600"}]})
    assert rows == (("human", "bad \ufffd text \U0001f600"),)


@pytest.mark.parametrize("request_", [None, [], "text", 3, True])
def test_a_request_that_is_not_an_object_is_refused(request_: object) -> None:
    with pytest.raises(ConversationError):
        conversation(Api.CHAT, request_)


# -- any JSON: only the typed error, and the bounds hold ---------------------------------------------

KEYS = st.sampled_from(
    (
        *(
            "messages",
            "input",
            "role",
            "content",
            "type",
            "text",
            "tool_calls",
            "function",
            "name",
            "arguments",
        ),
        *("output", "call_id", "tool_use_id", "choices", "message", "system", "instructions", "x"),
    )
)
VALUES = st.sampled_from(
    (
        *(
            "user",
            "assistant",
            "tool",
            "system",
            "text",
            "tool_use",
            "tool_result",
            "function_call",
            "message",
        ),
        *("function_call_output", "custom_tool_call", "input_text", "output_text", "image", "reasoning"),
    )
)
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30) | VALUES
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(KEYS | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=40,
)


def check_bounds(rows: tuple[tuple[str, str], ...]) -> None:
    assert len(rows) <= MAX_MESSAGES
    for role, value in rows:
        assert role in ("human", "gpt", "function_call", "observation")
        assert len(value) <= (MAX_CALL_ROW if role == "function_call" else MAX_MESSAGE_LENGTH)
        value.encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([Api.CHAT, Api.MESSAGES, Api.RESPONSES]), JSON, JSON | st.none())
def test_any_json_yields_bounded_rows_or_the_typed_error(api: Api, request: object, response: object) -> None:
    try:
        rows = conversation(api, request, response)
    except ConversationError:
        assert not isinstance(request, dict)
        return
    check_bounds(rows)
    analyze(api, request, response)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([Api.CHAT, Api.MESSAGES, Api.RESPONSES]),
    st.lists(st.dictionaries(KEYS, JSON | VALUES, max_size=6), max_size=8),
    st.text(max_size=3000),
)
def test_message_lists_of_any_shape(api: Api, messages: list[dict[str, Any]], long_text: str) -> None:
    messages.append({"role": "user", "content": long_text})
    request = {"messages": messages} if api is not Api.RESPONSES else {"input": messages}
    rows = conversation(api, request)
    check_bounds(rows)
    analyze(api, request)
