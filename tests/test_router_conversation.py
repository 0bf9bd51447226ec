"""The conversation routing reads from each client API, and Plano's user-turn and affinity rules on it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.apis.kind import Api
from plano_trio.router.conversation import (
    AffinityParts,
    ChatTurn,
    RouterMessage,
    affinity_parts,
    is_user_turn,
    read_conversation,
    router_messages,
    strip_injected_envelopes,
)

PNG = "data:image/png;base64,iVBORw0KGgo="


def chat(*messages: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": list(messages), **extra}


def anthropic(*messages: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-6", "max_tokens": 1024, "messages": list(messages), **extra}


def responses(*items: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-5.3-codex", "input": list(items), **extra}


HISTORY = [{"role": "user", "content": "fix the bug"}, {"role": "assistant", "content": "Fixed it."}]
RESPONSES_HISTORY = HISTORY


# -- is_user_turn: Plano's session_router tests, as behaviour --------------------------------------

USER_TURN_CASES: list[tuple[str, Api, dict[str, Any], bool]] = [
    (
        "anthropic tool result is a continuation",
        Api.MESSAGES,
        anthropic(
            {"role": "user", "content": "fix the bug in main.rs"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "main.rs"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "fn main() {}"}],
            },
        ),
        False,
    ),
    (
        "anthropic tool result with new user text is a fresh turn",
        Api.MESSAGES,
        anthropic(
            {"role": "user", "content": "fix the bug in main.rs"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "fn main() {}"},
                    {"type": "text", "text": "actually, explain the error handling too"},
                ],
            },
        ),
        True,
    ),
    (
        "chat tool role is a continuation",
        Api.CHAT,
        chat(
            {"role": "user", "content": "fix the bug in main.rs"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "fn main() {}"},
        ),
        False,
    ),
    (
        "chat fresh user turn after earlier tools",
        Api.CHAT,
        chat(
            {"role": "user", "content": "fix the bug in main.rs"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "fn main() {}"},
            {"role": "assistant", "content": "Fixed it."},
            {"role": "user", "content": "now write the tests"},
        ),
        True,
    ),
    (
        "responses function_call_output is a continuation",
        Api.RESPONSES,
        responses(
            {"role": "user", "content": "fix the bug in main.rs"},
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "exec_command",
                "arguments": '{"cmd":"cat main.rs"}',
                "status": "completed",
            },
            {
                "type": "function_call_output",
                "id": "fc_out_1",
                "call_id": "call_1",
                "output": {"stdout": "x"},
            },
        ),
        False,
    ),
    (
        "responses custom_tool_call_output is a continuation",
        Api.RESPONSES,
        responses(
            {"role": "user", "content": "run the tests"},
            {
                "type": "custom_tool_call",
                "id": "ctc_1",
                "call_id": "call_1",
                "name": "shell",
                "input": "cargo test",
                "status": "completed",
            },
            {"type": "custom_tool_call_output", "call_id": "call_1", "output": "test result: ok"},
        ),
        False,
    ),
    ("plain user turn", Api.CHAT, chat({"role": "user", "content": "write a haiku"}), True),
    ("empty history", Api.CHAT, chat(), False),
    (
        "assistant tail",
        Api.CHAT,
        chat({"role": "user", "content": "fix"}, {"role": "assistant", "content": "ok"}),
        False,
    ),
    ("empty user tail", Api.CHAT, chat(*HISTORY, {"role": "user", "content": ""}), False),
    ("whitespace user tail", Api.CHAT, chat(*HISTORY, {"role": "user", "content": "   \n\t "}), False),
    ("null user content", Api.CHAT, chat(*HISTORY, {"role": "user", "content": None}), False),
    ("missing user content", Api.CHAT, chat(*HISTORY, {"role": "user"}), False),
    ("empty parts", Api.CHAT, chat(*HISTORY, {"role": "user", "content": []}), False),
    (
        "blank text part",
        Api.CHAT,
        chat(*HISTORY, {"role": "user", "content": [{"type": "text", "text": "  "}]}),
        False,
    ),
    ("anthropic empty string", Api.MESSAGES, anthropic(*HISTORY, {"role": "user", "content": ""}), False),
    ("anthropic empty blocks", Api.MESSAGES, anthropic(*HISTORY, {"role": "user", "content": []}), False),
    (
        "anthropic newline block",
        Api.MESSAGES,
        anthropic(*HISTORY, {"role": "user", "content": [{"type": "text", "text": "\n"}]}),
        False,
    ),
    ("responses empty string", Api.RESPONSES, responses(*HISTORY, {"role": "user", "content": ""}), False),
    ("responses empty list", Api.RESPONSES, responses(*HISTORY, {"role": "user", "content": []}), False),
    (
        "chat image only",
        Api.CHAT,
        chat(*HISTORY, {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG}}]}),
        True,
    ),
    (
        "anthropic image only",
        Api.MESSAGES,
        anthropic(
            *HISTORY,
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                    }
                ],
            },
        ),
        True,
    ),
    (
        "responses image only",
        Api.RESPONSES,
        responses(*HISTORY, {"role": "user", "content": [{"type": "input_image", "image_url": PNG}]}),
        True,
    ),
    (
        "responses file only (dropped by Plano)",
        Api.RESPONSES,
        responses(
            *HISTORY, {"role": "user", "content": [{"type": "input_file", "file_url": "https://x/y.pdf"}]}
        ),
        False,
    ),
    (
        "chat audio part counts as user input (Plano rejects the request)",
        Api.CHAT,
        chat(*HISTORY, {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]}),
        True,
    ),
    (
        "envelope plus user text",
        Api.CHAT,
        chat(
            *HISTORY,
            {
                "role": "user",
                "content": "<system-reminder>\nTodo list is empty.\n</system-reminder>\nnow write the tests",
            },
        ),
        True,
    ),
    (
        "anthropic tool result with reminder only",
        Api.MESSAGES,
        anthropic(
            {"role": "user", "content": "fix the bug in main.rs"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "read_file", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": "fn main() {}"},
                    {
                        "type": "text",
                        "text": "<system-reminder>\nYour todo list has changed.\n</system-reminder>",
                    },
                ],
            },
        ),
        False,
    ),
    (
        "anthropic empty blocks vanish: the user message before is the tail",
        Api.MESSAGES,
        anthropic({"role": "user", "content": "hello"}, {"role": "user", "content": []}),
        True,
    ),
    (
        "anthropic document-only message vanishes",
        Api.MESSAGES,
        anthropic(
            *HISTORY,
            {"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "u"}}]},
        ),
        False,
    ),
    ("responses string input", Api.RESPONSES, {"model": "m", "input": "hi"}, True),
    (
        "responses single item",
        Api.RESPONSES,
        {"model": "m", "input": {"role": "user", "content": "hi"}},
        True,
    ),
    (
        "responses function call after user is an assistant tail",
        Api.RESPONSES,
        responses(
            {"role": "user", "content": "go"},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        ),
        False,
    ),
    ("bedrock is not a client API", Api.BEDROCK, chat({"role": "user", "content": "hi"}), False),
]


@pytest.mark.parametrize(
    ("api", "request_json", "expected"),
    [case[1:] for case in USER_TURN_CASES],
    ids=[case[0] for case in USER_TURN_CASES],
)
def test_is_user_turn(api: Api, request_json: dict[str, Any], expected: bool) -> None:
    assert is_user_turn(api, request_json) is expected


@pytest.mark.parametrize(
    "content",
    [
        "<system-reminder>\nYour todo list is empty.\n</system-reminder>",
        "<user-prompt-submit-hook>blocked by hook</user-prompt-submit-hook>\n",
        "<system-reminder>a</system-reminder> <system-reminder>b</system-reminder>",
        "<system-reminder>\nYour todo list is empty.",
        "<user-prompt-submit-hook>x</user-prompt-submit-hook><system-reminder>y",
        "\u3000<system-reminder>a</system-reminder>\u2028",
    ],
)
def test_envelope_only_user_tail_is_not_a_user_turn(content: str) -> None:
    assert not is_user_turn(Api.CHAT, chat(*HISTORY, {"role": "user", "content": content}))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("\x1c", True),  # Python's isspace counts it, Rust's trim does not
        ("\x85", False),
        ("\u200b", True),  # zero width space is not White_Space
    ],
)
def test_whitespace_is_rusts(content: str, expected: bool) -> None:
    assert is_user_turn(Api.CHAT, chat({"role": "user", "content": content})) is expected


# -- strip_injected_envelopes: same text as Plano's rescan-from-start loop ------------------------


def plano_strip(text: str) -> str:
    """Plano's algorithm, literally (quadratic), as the reference."""
    for open_tag, close_tag in (
        ("<system-reminder>", "</system-reminder>"),
        ("<user-prompt-submit-hook>", "</user-prompt-submit-hook>"),
    ):
        while (start := text.find(open_tag)) >= 0:
            body = start + len(open_tag)
            close = text.find(close_tag, body)
            end = len(text) if close < 0 else close + len(close_tag)
            text = text[:start] + text[end:]
    return text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("a<system-reminder>x</system-reminder>b", "ab"),
        ("a<system-reminder>x", "a"),
        ("<system-<system-reminder>x</system-reminder>reminder>y</system-reminder>z", "z"),
        ("<system-reminder>a</system-reminder></system-reminder>", "</system-reminder>"),
        ("<user-prompt-submit-hook><system-reminder>x</system-reminder></user-prompt-submit-hook>k", "k"),
        ("<<system-reminder></system-reminder>system-reminder>", ""),
    ],
)
def test_strip_injected_envelopes(text: str, expected: str) -> None:
    assert strip_injected_envelopes(text) == expected == plano_strip(text)


_PIECES = st.sampled_from(
    [
        "<system-reminder>",
        "</system-reminder>",
        "<system-",
        "reminder>",
        "<",
        ">",
        "<user-prompt-submit-hook>",
        "</user-prompt-submit-hook>",
        "<user-prompt-",
        "submit-hook>",
        "x",
        " ",
        "\n",
    ]
)


@given(st.lists(_PIECES, max_size=30).map("".join))
def test_strip_matches_plano_on_tag_soup(text: str) -> None:
    assert strip_injected_envelopes(text) == plano_strip(text)


@given(st.text(alphabet="<>/systemrinduhokpb-x ", max_size=80))
def test_strip_matches_plano_on_near_tags(text: str) -> None:
    assert strip_injected_envelopes(text) == plano_strip(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<system-reminder>r</system-reminder>" * 100_000 + "ask", "ask"),
        ("<system-" * 100_000 + "<system-reminder>x", "<system-" * 100_000),
        ("<system-" * 100_000 + "reminder></system-reminder>" * 100_000 + "ask", "ask"),
        ("k" + "<system-" * 100_000 + "reminder>x</system-reminder>" * 100_000, "k"),
    ],
    ids=["many", "unterminated", "seams", "seams-with-bodies"],
)
def test_strip_is_linear(text: str, expected: str) -> None:
    started = time.perf_counter()
    assert strip_injected_envelopes(text) == expected
    assert time.perf_counter() - started < 2.0


# -- router_messages: the text each message yields, per client API --------------------------------

M = RouterMessage

MESSAGE_CASES: list[tuple[str, Api, dict[str, Any], list[RouterMessage]]] = [
    (
        "chat keeps every role and joins text parts with a newline",
        Api.CHAT,
        chat(
            {"role": "system", "content": "be brief"},
            {
                "role": "developer",
                "content": [{"type": "text", "text": "d1"}, {"type": "text", "text": "d2"}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": PNG}},
                    {"type": "text", "text": "there"},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "tool_call_id": "c", "content": "result"},
        ),
        [
            M("system", "be brief"),
            M("developer", "d1\nd2"),
            M("user", "hi\nthere"),
            M("assistant", ""),
            M("tool", "result"),
        ],
    ),
    (
        "chat skips what Plano could not read",
        Api.CHAT,
        chat(
            "not a message",
            {"role": "function", "content": "x"},
            {"role": 3, "content": "x"},
            {"role": "user", "content": {"text": "object"}},
            {"role": "user", "content": [{"type": "text", "text": 5}, "part", {"text": "untyped"}]},
        ),
        [M("user", ""), M("user", "")],
    ),
    (
        "anthropic system string, tool results before the message's own text",
        Api.MESSAGES,
        anthropic(
            {"role": "user", "content": "start"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "also"},
                    {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "r1"}]},
                    {
                        "type": "mcp_tool_result",
                        "tool_use_id": "t2",
                        "content": [{"type": "text", "text": "r2"}],
                    },
                    {"type": "text", "text": "this"},
                ],
            },
            system="sys",
        ),
        [
            M("system", "sys"),
            M("user", "start"),
            M("assistant", "calling"),
            M("tool", "r1"),
            M("tool", "r2"),
            M("user", "also\nthis"),
        ],
    ),
    (
        "anthropic system blocks joined, tool-use-only message has no content",
        Api.MESSAGES,
        anthropic(
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            system=[{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}],
        ),
        [M("system", "a\nb"), M("assistant", "")],
    ),
    (
        "responses instructions, messages, tool traffic",
        Api.RESPONSES,
        responses(
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "dev"}]},
            {
                "role": "user",
                "content": [{"type": "input_text", "text": "a"}, {"type": "input_image", "image_url": PNG}],
            },
            {"type": "reasoning", "summary": []},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "d", "name": "g", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": {"ok": "ü"}},
            {"type": "item_reference", "id": "r"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "done", "annotations": []}]},
            {"type": "computer_call", "id": "x"},
            {
                "role": "user",
                "content": [{"type": "input_text", "text": "t"}, {"type": "refusal", "refusal": "r"}],
            },
            {"type": "weird", "role": "user", "content": "typed oddly, still a message"},
            instructions="be brief",
        ),
        [
            M("system", "be brief"),
            M("developer", "dev"),
            M("user", "a"),
            M("assistant", ""),
            M("tool", '{"ok":"ü"}'),
            M("assistant", "done"),
            M("user", "typed oddly, still a message"),
        ],
    ),
    (
        "responses string input with instructions",
        Api.RESPONSES,
        {"model": "m", "input": "hello", "instructions": ""},
        [M("system", ""), M("user", "hello")],
    ),
    ("responses unreadable input", Api.RESPONSES, {"model": "m", "input": 5, "instructions": "x"}, []),
    ("not an object", Api.CHAT, ["messages"], []),  # type: ignore[list-item]
]


@pytest.mark.parametrize(
    ("api", "request_json", "expected"),
    [case[1:] for case in MESSAGE_CASES],
    ids=[case[0] for case in MESSAGE_CASES],
)
def test_router_messages(api: Api, request_json: dict[str, Any], expected: list[RouterMessage]) -> None:
    assert router_messages(api, request_json) == expected


def test_attachment_flag_and_missing_content() -> None:
    conversation = read_conversation(
        Api.CHAT,
        chat(
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG}}]},
            {"role": "assistant", "content": None},
        ),
    )
    assert conversation.turns == (ChatTurn("user", "", True), ChatTurn("assistant", None, False))


# -- affinity_parts ----------------------------------------------------------------------------------

AFFINITY_CASES: list[tuple[str, Api, dict[str, Any], AffinityParts]] = [
    (
        "chat system and developer texts joined, tools from tools[]",
        Api.CHAT,
        chat(
            {"role": "system", "content": "s1"},
            {"role": "user", "content": "first"},
            {"role": "developer", "content": ""},
            {"role": "system", "content": None},
            {"role": "user", "content": "second"},
            tools=[
                {"type": "function", "function": {"name": "a"}},
                {"type": "function", "function": {"name": "b"}},
            ],
        ),
        AffinityParts("s1\n", "a,b", "first"),
    ),
    (
        "chat falls back to the deprecated functions list",
        Api.CHAT,
        chat({"role": "user", "content": "u"}, tools=[], functions=[{"function": {"name": "f"}}]),
        AffinityParts("", "f", "u"),
    ),
    (
        "no user message: no first user",
        Api.CHAT,
        chat({"role": "system", "content": "s"}),
        AffinityParts("s", "", None),
    ),
    (
        "first user without content stops the search (Plano's `?`)",
        Api.CHAT,
        chat({"role": "user", "content": None}, {"role": "user", "content": "later"}),
        AffinityParts("", "", None),
    ),
    (
        "anthropic system blocks, tool names, tool results are not the user",
        Api.MESSAGES,
        anthropic(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            system=[{"type": "text", "text": "x"}, {"type": "text", "text": "y"}],
            tools=[{"name": "read", "input_schema": {}}, {"name": "write", "input_schema": {}}],
        ),
        AffinityParts("x\ny", "read,write", "a\nb"),
    ),
    (
        "responses instructions and function/custom tool names only",
        Api.RESPONSES,
        responses(
            {"role": "user", "content": "go"},
            instructions="inst",
            tools=[
                {"type": "function", "name": "f"},
                {"type": "web_search"},
                {"type": "custom", "name": "shell"},
                {"type": "custom"},
                {"type": "namespace", "name": "crm", "description": "", "tools": []},
            ],
        ),
        AffinityParts("inst", "f,shell", "go"),
    ),
]


@pytest.mark.parametrize(
    ("api", "request_json", "expected"),
    [case[1:] for case in AFFINITY_CASES],
    ids=[case[0] for case in AFFINITY_CASES],
)
def test_affinity_parts(api: Api, request_json: dict[str, Any], expected: AffinityParts) -> None:
    assert affinity_parts(api, request_json) == expected


# -- hostile shapes never raise ----------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)
_keys = st.sampled_from(["role", "content", "type", "text", "messages", "input", "system", "tools", "name"])
_shaped = st.recursive(
    st.none() | st.text(max_size=10) | st.sampled_from(["user", "assistant", "text", "image", "tool_result"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=40,
)


@given(st.sampled_from(list(Api)), st.one_of(_json, _shaped))
def test_any_shape_is_read_without_error(api: Api, value: Any) -> None:
    conversation = read_conversation(api, value)
    conversation.router_messages()
    conversation.is_user_turn()
    conversation.affinity_parts()
    if isinstance(value, dict):
        for key in ("messages", "input", "system"):
            read_conversation(api, {key: value})


@pytest.mark.parametrize("api", list(Api))
@pytest.mark.parametrize("kind", [{}, [], [1], {"a": 1}])
def test_a_part_whose_type_is_not_a_string_is_no_known_kind(api: Api, kind: Any) -> None:
    """A list or object as `type` once reached a set lookup and raised TypeError (found by the signals
    normalizer's property tests)."""
    part = {"type": kind, "text": "hi"}
    for request_json in (
        {"messages": [{"role": "user", "content": [part]}]},
        {"input": [part, {"role": "user", "content": [part]}]},
        {"system": [part], "messages": [{"role": "user", "content": [part]}]},
    ):
        conversation = read_conversation(api, request_json)
        conversation.router_messages()
        conversation.is_user_turn()
        conversation.affinity_parts()
