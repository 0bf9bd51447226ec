"""Prompt-cache markers: Plano's strategy table, its injection rules, and hostile bodies.

Expected values follow Plano's own tests of `cache_marker_strategy`,
`inject_cache_breakpoints` and `inject_cache_control` (as behaviour), plus
the edges they leave implicit: the exact threshold (UTF-8 bytes // 4 against
`max(min_prefix_tokens, 1024)`), where a client marker counts, and bodies
of the wrong shape, which must come back untouched and never raise.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plano_trio.apis.kind import Api
from plano_trio.translate.cache_markers import (
    MAX_BREAKPOINTS,
    CacheMarkerStrategy,
    estimated_prefix_tokens,
    has_cache_markers,
    inject_cache_markers,
    is_claude_family,
    strategy_for,
)

ANTHROPIC = CacheMarkerStrategy.ANTHROPIC_MESSAGES
SYSTEM_PART = CacheMarkerStrategy.SYSTEM_TEXT_PART
NONE = CacheMarkerStrategy.NONE
EPHEMERAL = {"type": "ephemeral"}
LONG = "x" * 8192  # ~2048 estimated tokens, as in Plano's tests


def count_markers(value: Any) -> int:
    """Every `cache_control` key with a non-null value, anywhere in a JSON value."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            count += item.get("cache_control") is not None
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


# --- strategy table ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "upstream", "client", "expected"),
    [
        # Plano's own cases.
        ("digitalocean", "anthropic-claude-3-5-sonnet", Api.CHAT, Api.CHAT, SYSTEM_PART),
        ("openrouter", "anthropic/claude-3.5-sonnet", Api.CHAT, Api.CHAT, SYSTEM_PART),
        ("digitalocean", "openai-gpt-4o", Api.CHAT, Api.CHAT, NONE),
        ("openai", "gpt-4o", Api.CHAT, Api.CHAT, NONE),
        ("anthropic", "claude-3-5-sonnet-20241022", Api.MESSAGES, Api.MESSAGES, ANTHROPIC),
        ("vercel", "anthropic/claude-3.5", Api.CHAT, Api.CHAT, NONE),
        ("amazon_bedrock", "anthropic.claude-3-5-sonnet", Api.BEDROCK, Api.BEDROCK, NONE),
        # EdenAI is the third content-part gateway.
        ("edenai", "anthropic/claude-sonnet-4", Api.CHAT, Api.CHAT, SYSTEM_PART),
        # Family by substring, any case, either word.
        ("openrouter", "Anthropic/Some-Model", Api.CHAT, Api.CHAT, SYSTEM_PART),
        ("digitalocean", "CLAUDE-opus", Api.CHAT, Api.CHAT, SYSTEM_PART),
        ("OpenRouter", "anthropic/claude-3.5-sonnet", Api.CHAT, Api.CHAT, SYSTEM_PART),
        ("digitalocean", "llama3.3-70b-instruct", Api.CHAT, Api.CHAT, NONE),
        ("openrouter", "openai/gpt-4o", Api.CHAT, Api.CHAT, NONE),
        # A Claude model on any other Chat gateway has no marking path.
        ("groq", "claude-lookalike", Api.CHAT, Api.CHAT, NONE),
        ("anthropic", "claude-3-5-sonnet", Api.CHAT, Api.CHAT, NONE),
        ("openai", "claude-proxy", Api.CHAT, Api.CHAT, NONE),
        # A Messages upstream is marked whatever the provider or model (Vercel's Messages endpoint).
        ("vercel", "anthropic/claude-sonnet-4", Api.MESSAGES, Api.MESSAGES, ANTHROPIC),
        ("vercel", "openai/gpt-4o", Api.MESSAGES, Api.MESSAGES, ANTHROPIC),
        # Responses caches automatically; Bedrock cache points are not implemented.
        ("openai", "gpt-4o", Api.RESPONSES, Api.RESPONSES, NONE),
        ("vercel", "anthropic/claude-sonnet-4", Api.RESPONSES, Api.RESPONSES, NONE),
        ("amazon_bedrock", "us.anthropic.claude-sonnet-4", Api.BEDROCK, Api.CHAT, NONE),
        # Plano marks before translating: a translated body is never marked.
        ("anthropic", "claude-sonnet-4", Api.MESSAGES, Api.CHAT, NONE),
        ("anthropic", "claude-sonnet-4", Api.MESSAGES, Api.RESPONSES, NONE),
        ("digitalocean", "anthropic-claude-3-5-sonnet", Api.CHAT, Api.MESSAGES, NONE),
        ("openrouter", "anthropic/claude-3.5-sonnet", Api.CHAT, Api.RESPONSES, NONE),
    ],
)
def test_strategy_table(
    provider: str, model: str, upstream: Api, client: Api, expected: CacheMarkerStrategy
) -> None:
    assert strategy_for(provider, model, upstream, client_api=client) is expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-3-5-sonnet", True),
        ("anthropic-claude-3-5-sonnet", True),
        ("anthropic/claude-3.5-sonnet", True),
        ("us.anthropic.claude-sonnet-4", True),
        ("ClAuDe", True),
        ("gpt-4o", False),
        ("llama-3", False),
        ("", False),
    ],
)
def test_claude_family(model: str, expected: bool) -> None:
    assert is_claude_family(model) is expected


# --- Anthropic Messages -----------------------------------------------------------------------------


def messages_body(system: Any = None, tools: Any = None, last: Any = "second user turn") -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "first user turn"},
            {"role": "assistant", "content": "assistant reply"},
            {"role": "user", "content": last},
        ],
    }
    if system is not None:
        body["system"] = system
    if tools is not None:
        body["tools"] = tools
    return body


def test_messages_marks_system_and_tail() -> None:
    body = messages_body(system=LONG)
    assert inject_cache_markers(body, ANTHROPIC, 1024)
    assert body["system"] == [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]
    assert body["messages"][-1]["content"] == [
        {"type": "text", "text": "second user turn", "cache_control": EPHEMERAL}
    ]
    # Earlier turns are untouched.
    assert body["messages"][0]["content"] == "first user turn"
    assert count_markers(body) == 2


def test_messages_below_threshold_is_noop() -> None:
    body = messages_body(system="short system")
    before = copy.deepcopy(body)
    assert not inject_cache_markers(body, ANTHROPIC, 1024)
    assert body == before


def test_messages_respects_client_marker() -> None:
    body = messages_body(system=[{"type": "text", "text": LONG, "cache_control": EPHEMERAL}])
    before = copy.deepcopy(body)
    assert not inject_cache_markers(body, ANTHROPIC, 1024)
    assert body == before


def test_messages_marks_last_tool_without_system() -> None:
    tools = [
        {"name": "small_tool", "input_schema": {"type": "object"}},
        {"name": "big_tool", "description": "d" * 8192, "input_schema": {"type": "object"}},
    ]
    body = messages_body(tools=tools)
    assert inject_cache_markers(body, ANTHROPIC, 1024)
    assert body["tools"][-1]["cache_control"] == EPHEMERAL
    assert "cache_control" not in body["tools"][0]
    assert body["messages"][-1]["content"][-1]["cache_control"] == EPHEMERAL


def test_messages_system_blocks_mark_last_text_block() -> None:
    system = [
        {"type": "text", "text": LONG},
        {"type": "text", "text": "tail of the system prompt"},
    ]
    body = messages_body(system=system, tools=[{"name": "t", "input_schema": {}}])
    assert inject_cache_markers(body, ANTHROPIC, 1024)
    assert "cache_control" not in body["system"][0]
    assert body["system"][1]["cache_control"] == EPHEMERAL
    # With a system prompt the tools are covered by its breakpoint, not marked themselves.
    assert "cache_control" not in body["tools"][0]


def test_messages_system_blocks_without_cacheable_block_do_not_fall_back_to_tools() -> None:
    # As Plano: a system given as blocks is the prefix end, even when none can carry a marker.
    system = [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]
    body = messages_body(system=system, tools=[{"name": "t", "description": LONG, "input_schema": {}}])
    assert inject_cache_markers(body, ANTHROPIC, 1024)
    assert "cache_control" not in body["system"][0]
    assert "cache_control" not in body["tools"][0]
    assert count_markers(body) == 1  # only the tail


def test_messages_empty_system_string_counts_as_no_system() -> None:
    # Anthropic rejects a marked empty text block, so the last tool takes the breakpoint.
    body = messages_body(system="", tools=[{"name": "t", "description": LONG, "input_schema": {}}])
    assert inject_cache_markers(body, ANTHROPIC, 1024)
    assert body["system"] == ""
    assert body["tools"][0]["cache_control"] == EPHEMERAL


def test_messages_empty_tail_string_is_not_marked() -> None:
    body = messages_body(system=LONG, last="")
    assert inject_cache_markers(body, ANTHROPIC, 1024)
    assert body["messages"][-1]["content"] == ""
    assert count_markers(body) == 1


@pytest.mark.parametrize(
    ("tail", "marked_index"),
    [
        ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], 1),
        ([{"type": "text", "text": "look"}, {"type": "image", "source": {"type": "url", "url": "u"}}], 0),
        ([{"type": "tool_result", "tool_use_id": "t1", "content": "42"}], 0),
        ([{"type": "tool_use", "id": "t1", "name": "f", "input": {}}, {"type": "document", "source": {}}], 0),
        ([{"type": "thinking", "thinking": "hm", "signature": "s"}], 0),
        ([{"type": "image", "source": {}}, {"type": "document", "source": {}}], None),
        ([], None),
    ],
)
def test_messages_tail_marks_last_cacheable_block(
    tail: list[dict[str, Any]], marked_index: int | None
) -> None:
    body = messages_body(system=LONG, last=tail)
    assert inject_cache_markers(body, ANTHROPIC, 1024)  # the system breakpoint is always written here
    marked = [i for i, block in enumerate(body["messages"][-1]["content"]) if "cache_control" in block]
    assert marked == ([] if marked_index is None else [marked_index])


def test_messages_nothing_cacheable_anywhere_is_unchanged() -> None:
    body = messages_body(
        system=[{"type": "image", "source": {}}],
        tools=[{"name": "t", "description": LONG, "input_schema": {}}],
        last=[{"type": "image"}],
    )
    before = copy.deepcopy(body)
    assert not inject_cache_markers(body, ANTHROPIC, 1024)
    assert body == before


def test_messages_without_messages_marks_prefix_only() -> None:
    body: dict[str, Any] = {"model": "m", "system": LONG, "messages": []}
    assert inject_cache_markers(body, ANTHROPIC, 1024)
    assert body["system"][0]["cache_control"] == EPHEMERAL


@pytest.mark.parametrize(
    "marked_body",
    [
        # Where Plano looks: system blocks, tools, message blocks.
        messages_body(system=[{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]),
        messages_body(system=LONG, tools=[{"name": "t", "input_schema": {}, "cache_control": EPHEMERAL}]),
        messages_body(system=LONG, last=[{"type": "text", "text": "hi", "cache_control": EPHEMERAL}]),
        messages_body(
            system=LONG, last=[{"type": "tool_result", "tool_use_id": "1", "cache_control": EPHEMERAL}]
        ),
        # Beyond it, because Anthropic counts these towards its four: any block type, nested
        # tool-result blocks, a TTL'd marker, and the request-level automatic-caching field.
        messages_body(system=LONG, last=[{"type": "image", "source": {}, "cache_control": EPHEMERAL}]),
        messages_body(
            system=LONG,
            last=[
                {
                    "type": "tool_result",
                    "tool_use_id": "1",
                    "content": [{"type": "text", "text": "r", "cache_control": EPHEMERAL}],
                }
            ],
        ),
        messages_body(
            system=[{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
        ),
        {**messages_body(system=LONG), "cache_control": EPHEMERAL},
    ],
)
def test_messages_client_markers_anywhere_block_injection(marked_body: dict[str, Any]) -> None:
    before = copy.deepcopy(marked_body)
    assert has_cache_markers(marked_body, ANTHROPIC)
    assert not inject_cache_markers(marked_body, ANTHROPIC, 1024)
    assert marked_body == before


def test_messages_null_cache_control_is_no_marker() -> None:
    body = messages_body(system=[{"type": "text", "text": LONG, "cache_control": None}])
    assert has_cache_markers(body, ANTHROPIC) is False
    assert inject_cache_markers(body, ANTHROPIC, 1024)
    assert body["system"][0]["cache_control"] == EPHEMERAL


def test_messages_tool_input_is_data_not_a_marker() -> None:
    # A `cache_control` key inside a tool call's arguments is the model's data.
    tail = [{"type": "tool_use", "id": "1", "name": "f", "input": {"cache_control": "yes"}}]
    body = messages_body(system=LONG, last=tail)
    assert has_cache_markers(body, ANTHROPIC) is False
    assert inject_cache_markers(body, ANTHROPIC, 1024)


# --- threshold --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("system_bytes", "min_prefix_tokens", "injected"),
    [
        (4095, 1024, False),
        (4096, 1024, True),
        # The configured minimum never goes below Anthropic's 1024.
        (4095, 0, False),
        (4096, 0, True),
        (4095, -5, False),
        (4095, 1, False),
        # Raised by config.
        (8191, 2048, False),
        (8192, 2048, True),
        (8192, 2049, False),
    ],
)
def test_threshold_boundary(system_bytes: int, min_prefix_tokens: int, injected: bool) -> None:
    body = messages_body(system="s" * system_bytes)
    assert inject_cache_markers(body, ANTHROPIC, min_prefix_tokens) is injected
    chat = chat_body(system="s" * system_bytes)
    assert inject_cache_markers(chat, SYSTEM_PART, min_prefix_tokens) is injected


@pytest.mark.parametrize(
    ("system", "tools", "expected_bytes"),
    [
        ("abcd", None, 4),
        # UTF-8 bytes, as Plano's Rust `len`: é is two, 😀 four.
        ("é" * 10, None, 20),
        ("😀", None, 4),
        # Text blocks joined with newlines; other blocks ignored.
        (
            [{"type": "text", "text": "ab"}, {"type": "image", "source": {}}, {"type": "text", "text": "cd"}],
            None,
            5,
        ),
        # Tools: name + description + compact JSON of the schema.
        (None, [{"name": "fn", "description": "desc", "input_schema": {"type": "object"}}], 2 + 4 + 17),
        (
            None,
            [{"name": "fn", "input_schema": {"a": [1, 2], "b": "é"}}],
            2 + len('{"a":[1,2],"b":"é"}'.encode()),
        ),
        ("xyz", [{"name": "n", "description": None, "input_schema": {}}], 3 + 1 + 2),
    ],
)
def test_messages_prefix_estimate(system: Any, tools: Any, expected_bytes: int) -> None:
    body = messages_body(system=system, tools=tools)
    assert_prefix_bytes(body, ANTHROPIC, expected_bytes, lambda k: {"name": "p" * k})


def assert_prefix_bytes(
    body: dict[str, Any], strategy: CacheMarkerStrategy, expected: int, pad_tool: Any
) -> None:
    """The estimate counts exactly `expected` bytes: adding k = 0..3 bytes moves it as (expected + k) // 4."""
    for k in range(4):
        padded = copy.deepcopy(body)
        padded["tools"] = [*(padded.get("tools") or []), pad_tool(k)]
        assert estimated_prefix_tokens(padded, strategy) == (expected + k) // 4, k


def test_non_ascii_counts_bytes_at_the_boundary() -> None:
    assert inject_cache_markers(messages_body(system="é" * 2048), ANTHROPIC, 1024)
    assert not inject_cache_markers(messages_body(system="é" * 2047 + "a"), ANTHROPIC, 1024)


def test_messages_history_is_not_prefix() -> None:
    # Only tools and system count: a long conversation with a short system is not marked.
    body = messages_body(system="short", last=LONG * 4)
    assert not inject_cache_markers(body, ANTHROPIC, 1024)


# --- OpenAI Chat ------------------------------------------------------------------------------------


def chat_body(
    system: Any = None, user: Any = "hi", tools: Any = None, role: str = "system"
) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({"role": role, "content": system})
    messages.append({"role": "user", "content": user})
    body: dict[str, Any] = {"model": "anthropic/claude-3.5-sonnet", "messages": messages}
    if tools is not None:
        body["tools"] = tools
    return body


def test_chat_normalizes_string_system_and_marks_it() -> None:
    body = chat_body(system="x" * 8000)
    assert inject_cache_markers(body, SYSTEM_PART, 1024)
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "x" * 8000, "cache_control": EPHEMERAL}
    ]
    assert body["messages"][1]["content"] == "hi"
    assert count_markers(body) == 1


def test_chat_is_idempotent() -> None:
    body = chat_body(system="x" * 8000)
    assert inject_cache_markers(body, SYSTEM_PART, 1024)
    after_first = copy.deepcopy(body)
    assert not inject_cache_markers(body, SYSTEM_PART, 1024)
    assert body == after_first


def test_chat_below_threshold_is_noop() -> None:
    body = chat_body(system="short system")
    before = copy.deepcopy(body)
    assert not inject_cache_markers(body, SYSTEM_PART, 1024)
    assert body == before


def test_chat_client_marker_is_kept_and_blocks_injection() -> None:
    marker = {"type": "ephemeral", "ttl": "5m"}
    body = chat_body(system=[{"type": "text", "text": "big stable prefix", "cache_control": marker}])
    before = copy.deepcopy(body)
    assert has_cache_markers(body, SYSTEM_PART)
    assert not inject_cache_markers(body, SYSTEM_PART, 0)
    assert body == before


@pytest.mark.parametrize(
    "marked_body",
    [
        chat_body(system=LONG, user=[{"type": "text", "text": "hi", "cache_control": EPHEMERAL}]),
        chat_body(
            system=LONG, user=[{"type": "image_url", "image_url": {"url": "u"}, "cache_control": EPHEMERAL}]
        ),
        chat_body(
            system=LONG,
            tools=[
                {"type": "function", "function": {"name": "f", "parameters": {}}, "cache_control": EPHEMERAL}
            ],
        ),
        {**chat_body(system=LONG), "cache_control": EPHEMERAL},
    ],
)
def test_chat_client_markers_anywhere_block_injection(marked_body: dict[str, Any]) -> None:
    before = copy.deepcopy(marked_body)
    assert not inject_cache_markers(marked_body, SYSTEM_PART, 1024)
    assert marked_body == before


def test_chat_developer_role_is_the_prefix() -> None:
    body = chat_body(system=LONG, role="developer")
    assert inject_cache_markers(body, SYSTEM_PART, 1024)
    assert body["messages"][0]["content"][0]["cache_control"] == EPHEMERAL


def test_chat_marks_first_system_message_but_counts_all() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "a" * 2048},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": "b" * 2048},
        ],
    }
    assert estimated_prefix_tokens(body, SYSTEM_PART) == 1024
    assert inject_cache_markers(body, SYSTEM_PART, 1024)
    assert body["messages"][0]["content"][0]["cache_control"] == EPHEMERAL
    assert body["messages"][2]["content"] == "b" * 2048


def test_chat_without_system_marks_first_message() -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": LONG, "parameters": {}}}]
    body = chat_body(user="hello", tools=tools)
    assert inject_cache_markers(body, SYSTEM_PART, 1024)
    assert body["messages"][0]["content"] == [{"type": "text", "text": "hello", "cache_control": EPHEMERAL}]
    assert "cache_control" not in body["tools"][0]


def test_chat_marks_last_text_part() -> None:
    parts = [
        {"type": "text", "text": LONG},
        {"type": "text", "text": "more"},
        {"type": "image_url", "image_url": {"url": "u"}},
    ]
    body = chat_body(system=parts)
    assert inject_cache_markers(body, SYSTEM_PART, 1024)
    assert [("cache_control" in part) for part in body["messages"][0]["content"]] == [False, True, False]


@pytest.mark.parametrize(
    "system_content",
    [
        [{"type": "image_url", "image_url": {"url": "u"}}],
        "",
    ],
)
def test_chat_unmarkable_target_is_unchanged(system_content: Any) -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": LONG, "parameters": {}}}]
    body = chat_body(system=system_content, tools=tools)
    before = copy.deepcopy(body)
    assert not inject_cache_markers(body, SYSTEM_PART, 1024)
    assert body == before


def test_chat_null_content_target_is_unchanged() -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": LONG, "parameters": {}}}]
    body = {"model": "m", "messages": [{"role": "assistant", "content": None}], "tools": tools}
    before = copy.deepcopy(body)
    assert not inject_cache_markers(body, SYSTEM_PART, 1024)
    assert body == before


@pytest.mark.parametrize(
    ("messages", "tools", "expected_bytes"),
    [
        ([{"role": "system", "content": "abcd"}], None, 4),
        ([{"role": "system", "content": "é"}, {"role": "developer", "content": "xy"}], None, 4),
        # Parts: text joined with newlines; images ignored; other roles ignored.
        (
            [
                {
                    "role": "system",
                    "content": [{"type": "text", "text": "ab"}, {"type": "text", "text": "c"}],
                },
                {"role": "user", "content": "not prefix"},
                {"role": "assistant", "content": None},
            ],
            None,
            4,
        ),
        (
            [{"role": "system", "content": None}],
            [
                {
                    "type": "function",
                    "function": {"name": "fn", "description": "desc", "parameters": {"type": "object"}},
                }
            ],
            2 + 4 + 17,
        ),
        # A tool without a function (another tool type) counts nothing.
        ([], [{"type": "custom", "name": "c" * 100}], 0),
    ],
)
def test_chat_prefix_estimate(messages: Any, tools: Any, expected_bytes: int) -> None:
    body: dict[str, Any] = {"model": "m", "messages": messages}
    if tools is not None:
        body["tools"] = tools
    assert_prefix_bytes(body, SYSTEM_PART, expected_bytes, lambda k: {"function": {"name": "p" * k}})


def test_strategy_none_never_writes() -> None:
    body = messages_body(system=LONG)
    before = copy.deepcopy(body)
    assert not inject_cache_markers(body, NONE, 0)
    assert body == before
    assert has_cache_markers(body, NONE) is None
    assert estimated_prefix_tokens(body, NONE) is None


def test_wrong_shape_for_strategy_is_unchanged() -> None:
    # A Chat body under the Messages strategy: its messages are fine, but there is no system to
    # speak of, so only the tail could be marked, and the prefix is below threshold.
    body = chat_body(system=LONG)
    assert estimated_prefix_tokens(body, ANTHROPIC) == 0
    before = copy.deepcopy(body)
    assert not inject_cache_markers(body, ANTHROPIC, 1024)
    assert body == before


# --- idempotence and the breakpoint limit -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "strategy"),
    [
        (messages_body(system=LONG), ANTHROPIC),
        (messages_body(tools=[{"name": "t", "description": LONG, "input_schema": {}}]), ANTHROPIC),
        (
            messages_body(system=[{"type": "text", "text": LONG}], last=[{"type": "text", "text": "q"}]),
            ANTHROPIC,
        ),
        (chat_body(system=LONG), SYSTEM_PART),
        (chat_body(system=[{"type": "text", "text": LONG}]), SYSTEM_PART),
    ],
)
def test_injecting_twice_adds_nothing(body: dict[str, Any], strategy: CacheMarkerStrategy) -> None:
    assert inject_cache_markers(body, strategy, 1024)
    once = copy.deepcopy(body)
    assert not inject_cache_markers(body, strategy, 1024)
    assert body == once
    assert count_markers(body) <= 2 <= MAX_BREAKPOINTS


# --- hostile shapes ---------------------------------------------------------------------------------


def deeply_nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        child: dict[str, Any] = {}
        node["x"] = child
        node = child
    return root


HOSTILE_MESSAGES: list[Any] = [
    {},
    {"messages": None, "system": LONG},
    {"messages": "hello", "system": LONG},
    {"messages": {"role": "user"}, "system": LONG},
    {"messages": [None], "system": LONG},
    {"messages": ["hi"], "system": LONG},
    {"messages": [{"role": "user"}], "system": LONG},
    {"messages": [{"role": "user", "content": 5}], "system": LONG},
    {"messages": [{"role": "user", "content": [None]}], "system": LONG},
    {"messages": [{"role": "user", "content": ["text"]}], "system": LONG},
    {"messages": [{"role": "user", "content": "hi"}], "system": 42},
    {"messages": [{"role": "user", "content": "hi"}], "system": [LONG]},
    {"messages": [{"role": "user", "content": "hi"}], "system": [{"type": "text", "text": None}]},
    {
        "messages": [{"role": "user", "content": "hi"}],
        "system": [{"type": "text"}, {"type": "text", "text": LONG}],
    },
    {"messages": [{"role": "user", "content": "hi"}], "system": LONG, "tools": "all"},
    {"messages": [{"role": "user", "content": "hi"}], "system": LONG, "tools": [None]},
    {"messages": [{"role": "user", "content": "hi"}], "tools": [{"description": LONG}]},
    {"messages": [{"role": "user", "content": "hi"}], "tools": [{"name": 1, "description": LONG}]},
    {"messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "t", "description": [LONG]}]},
    {"messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "t", "input_schema": {1j: 2}}]},
]

HOSTILE_CHAT: list[Any] = [
    {},
    {"messages": None},
    {"messages": "hello"},
    {"messages": [None, {"role": "system", "content": LONG}]},
    {"messages": [{"role": "system", "content": 7}]},
    {"messages": [{"role": "system", "content": [LONG]}]},
    {"messages": [{"role": "system", "content": [{"type": "text", "text": 3}]}]},
    {"messages": [{"role": "system", "content": [{"type": "text"}, {"type": "text", "text": LONG}]}]},
    {"messages": [{"role": "system", "content": LONG}], "tools": {"a": 1}},
    {"messages": [{"role": "system", "content": LONG}], "tools": ["f"]},
    {"messages": [{"role": "system", "content": "s"}], "tools": [{"function": "f"}]},
    {"messages": [{"role": "system", "content": "s"}], "tools": [{"function": {"description": LONG}}]},
    {
        "messages": [{"role": "system", "content": "s"}],
        "tools": [{"function": {"name": "f", "parameters": {1j}}}],
    },
    {"messages": [{"role": ["system"], "content": LONG}, {"role": {}, "content": "x"}], "tools": None},
]


@pytest.mark.parametrize("strategy", [ANTHROPIC, SYSTEM_PART])
@pytest.mark.parametrize("body", HOSTILE_MESSAGES + HOSTILE_CHAT)
def test_hostile_bodies_are_unchanged(body: Any, strategy: CacheMarkerStrategy) -> None:
    before = copy.deepcopy(body)
    assert inject_cache_markers(body, strategy, 1024) is False
    assert body == before


@pytest.mark.parametrize("body", [None, [], "body", 3, [{"messages": []}]])
def test_non_dict_bodies(body: Any) -> None:
    for strategy in CacheMarkerStrategy:
        assert inject_cache_markers(body, strategy, 0) is False
        assert has_cache_markers(body, strategy) is None
        assert estimated_prefix_tokens(body, strategy) is None


def test_schema_too_deep_to_measure_is_unchanged() -> None:
    # Deeper than the JSON encoder's recursion allows; compared by hand, not with deepcopy.
    schema = deeply_nested(50_000)
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "t", "input_schema": schema}],
    }
    assert inject_cache_markers(body, ANTHROPIC, 1024) is False
    assert set(body["tools"][0]) == {"name", "input_schema"}
    assert body["messages"][0]["content"] == "hi"
    assert estimated_prefix_tokens(body, ANTHROPIC) is None


def test_unknown_block_type_is_not_marked() -> None:
    # Not a tag we know (not even hashable): the block is skipped like an image, not an error.
    weird = {"type": ["text"], "text": "x"}
    body = messages_body(system=LONG, last=[{"type": "text", "text": "q"}, weird])
    assert inject_cache_markers(body, ANTHROPIC, 1024)
    assert body["messages"][-1]["content"] == [
        {"type": "text", "text": "q", "cache_control": EPHEMERAL},
        weird,
    ]


def test_lone_surrogates_are_measured_not_raised() -> None:
    body = messages_body(system="\ud800" * 1366)  # 3 bytes each with surrogatepass: 4098
    assert inject_cache_markers(body, ANTHROPIC, 1024)


KEYS = st.sampled_from(
    [
        "messages",
        "system",
        "tools",
        "content",
        "role",
        "type",
        "text",
        "name",
        "description",
        "input_schema",
        "function",
        "parameters",
        "cache_control",
        "input",
    ]
)
# No NaN: a decoded JSON body never holds one, and NaN != NaN would fail the unchanged-body check.
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
SCALARS |= st.sampled_from(["text", "system", "developer", "user", "tool_result", "image", "x" * 5000])
JSONISH = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=30,
)


def replace_somewhere(value: Any, data: st.DataObject) -> Any:
    """`value` with one nested value swapped for arbitrary JSON (a near-valid body)."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        return {**value, key: replace_somewhere(value[key], data)}
    if isinstance(value, list) and value and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(value) - 1))
        return [*value[:index], replace_somewhere(value[index], data), *value[index + 1 :]]
    return data.draw(JSONISH)


def check_contract(body: Any, strategy: CacheMarkerStrategy, min_prefix_tokens: int) -> None:
    before = copy.deepcopy(body)
    changed = inject_cache_markers(body, strategy, min_prefix_tokens)
    if not changed:
        assert body == before
        return
    # One or two markers added (a key we never read, like a tool call's input, may hold others).
    assert 1 <= count_markers(body) - count_markers(before) <= 2 <= MAX_BREAKPOINTS
    once = copy.deepcopy(body)
    assert inject_cache_markers(body, strategy, min_prefix_tokens) is False
    assert body == once


@settings(max_examples=300)
@given(body=st.dictionaries(KEYS, JSONISH, max_size=5), strategy=st.sampled_from(list(CacheMarkerStrategy)))
def test_arbitrary_dicts_never_raise(body: dict[str, Any], strategy: CacheMarkerStrategy) -> None:
    check_contract(body, strategy, 0)


NEAR_VALID = [
    messages_body(
        system=[{"type": "text", "text": LONG}],
        tools=[{"name": "t", "description": "d", "input_schema": {"type": "object"}}],
        last=[{"type": "tool_result", "tool_use_id": "1", "content": [{"type": "text", "text": "r"}]}],
    ),
    messages_body(system=LONG),
    chat_body(
        system=[{"type": "text", "text": LONG}],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    ),
    chat_body(system=LONG),
]


@settings(max_examples=400)
@given(
    data=st.data(),
    base=st.sampled_from(NEAR_VALID),
    strategy=st.sampled_from([ANTHROPIC, SYSTEM_PART]),
)
def test_near_valid_bodies_keep_the_contract(
    data: st.DataObject, base: dict[str, Any], strategy: CacheMarkerStrategy
) -> None:
    check_contract(replace_somewhere(copy.deepcopy(base), data), strategy, 1024)
