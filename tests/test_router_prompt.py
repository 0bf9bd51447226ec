"""The router prompt, byte for byte as Plano builds it (expected texts from Plano's own tests)."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.apis.kind import Api
from plano_trio.config.schema import RoutingPreference
from plano_trio.router.conversation import RouterMessage, router_messages
from plano_trio.router.prompt import (
    MAX_ROUTING_TURNS,
    PROMPT_TEMPLATE,
    TRIM_MARKER,
    render_conversation,
    render_prompt,
    render_routes,
    router_request_body,
    select_conversation,
    trim_middle,
)

M = RouterMessage
UNLIMITED = sys.maxsize

IMAGE = RoutingPreference(name="Image generation", description="generating image", models=("gpt-4o",))

HEAD = """
You are a helpful assistant that selects the most suitable routes based on user intent.
You are provided with a list of available routes enclosed within <routes></routes> XML tags:
<routes>
"""

TAIL = """
</conversation>

## Instructions
1. Analyze the latest user intent from the conversation.
2. Compare it against the available routes to find which routes can help fulfill the request.
3. Respond only with the exact route names from <routes>.
4. If no routes can help or the intent is already fulfilled, return an empty list.

## Response Format
Return your answer strictly in JSON as follows:
{{"route": ["route_name_1", "route_name_2", "..."]}}
If no routes are needed, return an empty list for `route`.
"""

IMAGE_ROUTE = (
    '{"name": "Image generation", "description": "generating image", '
    '"parameters": {"type": "object", "properties": {}, "required": []}}'
)


def expected_prompt(routes: str, conversation: str) -> str:
    middle = (
        "\n</routes>\n\nYou are also given the conversation context enclosed within "
        "<conversation></conversation> XML tags:\n<conversation>\n"
    )
    return HEAD + routes + middle + conversation + TAIL


def test_template_is_plano_s() -> None:
    assert expected_prompt("{routes}", "{conversation}") == PROMPT_TEMPLATE
    assert len(PROMPT_TEMPLATE.encode()) // 4 == 211


HI_CONVERSATION = [
    M("user", "hi"),
    M("assistant", "Hello! How can I assist you today?"),
    M("user", "given the image In style of Andy Warhol, portrait of Bart and Lisa Simpson"),
]

HI_RENDERED = """[
    {
        "role": "user",
        "content": "hi"
    },
    {
        "role": "assistant",
        "content": "Hello! How can I assist you today?"
    },
    {
        "role": "user",
        "content": "given the image In style of Andy Warhol, portrait of Bart and Lisa Simpson"
    }
]"""

LONG = (
    "given the image In style of Andy Warhol, portrait of Bart and Lisa Simpson and this is a very long "
    "message that exceeds the max token length of the routing model, so it should be truncated and only the "
    "last user message should be included in the conversation for routing."
)


def one(role: str, content: str) -> str:
    return f'[\n    {{\n        "role": "{role}",\n        "content": "{content}"\n    }}\n]'


PLANO_CASES: list[tuple[str, list[RoutingPreference], list[RouterMessage], int, str]] = [
    ("system prompt format", [IMAGE], HI_CONVERSATION, UNLIMITED, expected_prompt(IMAGE_ROUTE, HI_RENDERED)),
    (
        "request preferences",
        [
            RoutingPreference(
                name="code-generation",
                description="generating new code snippets, functions, or boilerplate based on user "
                "prompts or requirements",
                models=("claude/claude-3-7-sonnet",),
            )
        ],
        HI_CONVERSATION,
        UNLIMITED,
        expected_prompt(
            '{"name": "code-generation", "description": "generating new code snippets, functions, or '
            'boilerplate based on user prompts or requirements", "parameters": {"type": "object", '
            '"properties": {}, "required": []}}',
            HI_RENDERED,
        ),
    ),
    (
        "conversation exceeds the token budget: only the last message",
        [IMAGE],
        HI_CONVERSATION,
        235,
        expected_prompt(IMAGE_ROUTE, one("user", HI_CONVERSATION[2].content)),
    ),
    (
        "nothing fits at all: the last message whole",
        [IMAGE],
        [*HI_CONVERSATION[:2], M("user", LONG)],
        200,
        expected_prompt(IMAGE_ROUTE, one("user", LONG)),
    ),
    (
        "an older user message is middle-trimmed to fit",
        [IMAGE],
        [
            M("user", "hi"),
            M("assistant", "Hello! How can I assist you today?"),
            M("user", "given the image In style of Andy Warhol"),
            M("assistant", "ok here is the image"),
            M("user", "pls give me another image about Bart and Lisa"),
        ],
        230,
        expected_prompt(
            IMAGE_ROUTE,
            """[
    {
        "role": "user",
        "content": "given\u2026rhol"
    },
    {
        "role": "assistant",
        "content": "ok here is the image"
    },
    {
        "role": "user",
        "content": "pls give me another image about Bart and Lisa"
    }
]""",
        ),
    ),
]


@pytest.mark.parametrize(
    ("preferences", "messages", "max_tokens", "expected"),
    [case[1:] for case in PLANO_CASES],
    ids=[case[0] for case in PLANO_CASES],
)
def test_prompt_matches_plano(
    preferences: list[RoutingPreference], messages: list[RouterMessage], max_tokens: int, expected: str
) -> None:
    assert render_prompt(preferences, select_conversation(messages, max_tokens)) == expected


def test_image_part_is_not_text_and_tool_traffic_is_skipped() -> None:
    """Plano's test_non_text_input and test_skip_tool_call, from the client JSON."""
    image = router_messages(
        Api.CHAT,
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/image.png"}},
                    ],
                },
                {"role": "assistant", "content": "Hello! How can I assist you today?"},
                {"role": "user", "content": HI_CONVERSATION[2].content},
            ]
        },
    )
    assert render_prompt([IMAGE], select_conversation(image, UNLIMITED)) == expected_prompt(
        IMAGE_ROUTE, HI_RENDERED
    )
    tools = router_messages(
        Api.CHAT,
        {
            "messages": [
                {"role": "user", "content": "What's the weather like in Tokyo?"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "id": "toolcall-abc123",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{ "location": "Tokyo" }'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "toolcall-abc123", "content": '{ "temperature": "22°C" }'},
                {"role": "assistant", "content": "The current weather in Tokyo is 22°C and sunny."},
                {"role": "user", "content": "What about in New York?"},
            ]
        },
    )
    expected = """[
    {
        "role": "user",
        "content": "What's the weather like in Tokyo?"
    },
    {
        "role": "assistant",
        "content": "The current weather in Tokyo is 22°C and sunny."
    },
    {
        "role": "user",
        "content": "What about in New York?"
    }
]"""
    assert render_prompt([IMAGE], select_conversation(tools, UNLIMITED)) == expected_prompt(
        IMAGE_ROUTE, expected
    )


def test_example_exchange_of_the_reference() -> None:
    code = RoutingPreference(
        name="code generation",
        description="generating new code snippets",
        models=("anthropic/claude-sonnet-4-6", "openai/gpt-4o"),
    )
    prompt = render_prompt([code], select_conversation([M("user", "write a sorting algorithm in Python")]))
    assert (
        '<routes>\n{"name": "code generation", "description": "generating new code snippets", "parameters": '
        '{"type": "object", "properties": {}, "required": []}}\n</routes>'
    ) in prompt
    assert (
        '<conversation>\n[\n    {\n        "role": "user",\n        '
        '"content": "write a sorting algorithm in Python"\n    }\n]\n</conversation>'
    ) in prompt


# -- selection -------------------------------------------------------------------------------------


def test_turn_cap_keeps_the_last_16() -> None:
    messages = [
        M("user" if i % 2 == 0 else "assistant", f"turn-{i:03}") for i in range(MAX_ROUTING_TURNS * 2)
    ]
    selected = select_conversation(messages, UNLIMITED)
    assert [m.content for m in selected] == [f"turn-{i:03}" for i in range(16, 32)]


def test_cap_counts_after_dropping() -> None:
    messages = [M("user", f"u{i}") for i in range(20)]
    interleaved = [x for i, m in enumerate(messages) for x in (m, M("tool", f"t{i}"), M("system", "s"))]
    assert [m.content for m in select_conversation(interleaved, UNLIMITED)] == [f"u{i}" for i in range(4, 20)]


SELECTION_CASES: list[tuple[str, list[RouterMessage], int, list[RouterMessage]]] = [
    (
        "system, developer, tool and empty messages are dropped; whitespace is text",
        [
            M("system", "s"),
            M("developer", "d"),
            M("user", "a"),
            M("tool", "t"),
            M("assistant", ""),
            M("user", " "),
        ],
        UNLIMITED,
        [M("user", "a"), M("user", " ")],
    ),
    ("nothing left: an empty conversation", [M("system", "s"), M("tool", "t")], UNLIMITED, []),
    (
        "an overflowing assistant message ends the walk without a trim",
        [M("user", "u" * 40), M("assistant", "a" * 400), M("user", "last")],
        211 + 10,
        [M("user", "last")],
    ),
    (
        "nothing fits and the newest is the assistant's: used whole",
        [M("user", "u"), M("assistant", "a" * 4000)],
        211 + 10,
        [M("assistant", "a" * 4000)],
    ),
    (
        "a zero budget: the newest message whole",
        [M("user", "x" * 10_000)],
        0,
        [M("user", "x" * 10_000)],
    ),
    (
        "exactly at the budget fits (tokens round down per message)",
        [M("user", "abcdefg"), M("user", "abc")],
        211 + 1,
        [M("user", "abcdefg"), M("user", "abc")],
    ),
    (
        "the budget counts UTF-8 bytes",
        [M("user", "é" * 8), M("user", "x")],
        211 + 3,
        [M("user", "éé\u2026éé"), M("user", "x")],
    ),
]


@pytest.mark.parametrize(
    ("messages", "max_tokens", "expected"),
    [case[1:] for case in SELECTION_CASES],
    ids=[case[0] for case in SELECTION_CASES],
)
def test_select_conversation(
    messages: list[RouterMessage], max_tokens: int, expected: list[RouterMessage]
) -> None:
    assert select_conversation(messages, max_tokens) == expected


def test_huge_user_message_is_middle_trimmed() -> None:
    head, tail = "HEAD_MARKER_START ", " TAIL_MARKER_END"
    huge = head + "A" * 500_000 + tail
    prompt = render_prompt([IMAGE], select_conversation([M("user", huge)], 2048))
    assert len(prompt) < 2048 * 4 + len(PROMPT_TEMPLATE) + 1024
    assert 0 < prompt.count("A") < 500_000
    assert head in prompt and tail in prompt and TRIM_MARKER in prompt


# -- trim_middle -----------------------------------------------------------------------------------

TRIM_CASES = [
    ("hello", 100, "hello"),
    ("hello", 5, "hello"),
    ("a" * 20, 10, "aaaa\u2026aaa"),
    ("abcdefgh", 2, "ab"),
    ("abcdefgh", 3, "abc"),
    ("abcdefgh", 0, ""),
    ("é" * 50, 25, "é" * 6 + "\u2026" + "é" * 5),
    ("é" * 4, 3, "é"),
    ("given the image In style of Andy Warhol", 12, "given\u2026rhol"),
    ("😀" * 10, 20, "😀😀\u2026😀😀"),
]


@pytest.mark.parametrize(("text", "max_bytes", "expected"), TRIM_CASES)
def test_trim_middle(text: str, max_bytes: int, expected: str) -> None:
    assert trim_middle(text, max_bytes) == expected


@given(st.text(), st.integers(min_value=0, max_value=200))
def test_trim_middle_stays_within_budget(text: str, max_bytes: int) -> None:
    trimmed = trim_middle(text, max_bytes)
    size = len(trimmed.encode("utf-8", "surrogatepass"))
    if len(text.encode("utf-8", "surrogatepass")) <= max_bytes:
        assert trimmed == text
    else:
        assert size <= max_bytes
        assert trimmed.count(TRIM_MARKER) >= (1 if max_bytes > 3 else 0)


# -- rendering -------------------------------------------------------------------------------------

ROUTE_CASES = [
    ("non-ASCII is not escaped", [RoutingPreference(name="café", description="naïve ü", models=())]),
    (
        "quotes and control characters escape as serde does",
        [RoutingPreference(name='a"b\\', description="t\tn\n\x01\x7f", models=())],
    ),
]


@pytest.mark.parametrize(
    "preferences", [case[1] for case in ROUTE_CASES], ids=[case[0] for case in ROUTE_CASES]
)
def test_render_routes_escaping(preferences: list[RoutingPreference]) -> None:
    line = render_routes(preferences)
    assert json.loads(line)["name"] == preferences[0].name
    assert "\\u00e9" not in line and "\\u00fc" not in line


def test_render_routes_exact_escapes() -> None:
    preference = RoutingPreference(name='a"b\\é', description="t\tn\n\x01\x7f\u2028", models=())
    assert render_routes([preference]) == (
        '{"name": "a\\"b\\\\é", "description": "t\\tn\\n\\u0001\x7f\u2028", "parameters": {"type": "object", '
        '"properties": {}, "required": []}}'
    )


def test_render_routes_order_and_duplicates() -> None:
    a1 = RoutingPreference(name="a", description="first", models=())
    b = RoutingPreference(name="b", description="b", models=())
    a2 = RoutingPreference(name="a", description="second", models=())
    lines = render_routes([a1, b, a2]).split("\n")
    assert [json.loads(line)["description"] for line in lines] == ["second", "b"]
    assert render_routes([]) == ""


def test_render_conversation_empty_and_escapes() -> None:
    assert render_conversation([]) == "[]"
    assert render_conversation([M("user", 'say "ü"\n')]) == (
        '[\n    {\n        "role": "user",\n        "content": "say \\"ü\\"\\n"\n    }\n]'
    )


def test_placeholders_in_descriptions_are_not_expanded() -> None:
    """One pass over the template: a description naming `{conversation}` cannot multiply the prompt
    (Plano's two sequential replacements would expand it; a client could amplify a request so)."""
    tricky = RoutingPreference(name="x", description="see {conversation}" * 1000, models=())
    prompt = render_prompt([tricky], [M("user", "{routes}" * 1000)])
    assert prompt.count("{conversation}") == 1000
    assert prompt.count("{routes}") == 1000
    assert len(prompt) < 40_000


def test_router_request_body_bytes() -> None:
    assert (
        router_request_body("Plano-Orchestrator", 'hé "x"\n')
        == (
            '{"messages":[{"role":"user","content":"hé \\"x\\"\\n"}],'
            '"model":"Plano-Orchestrator","temperature":0.01}'
        ).encode()
    )


def test_router_request_body_never_fails_on_a_lone_surrogate() -> None:
    body = router_request_body("m", "a\ud800b")
    assert json.loads(body)["messages"][0]["content"] == "a?b"


# The JSON is written by msgspec for speed; the bytes must stay the stdlib's (what Plano's tests pin).
ROLES = st.sampled_from(["user", "assistant", "tool", "x"])


@given(st.lists(st.builds(M, ROLES, st.text()), max_size=4))
def test_the_conversation_is_json_dumps_indent_4_exactly(messages: list[RouterMessage]) -> None:
    expected = json.dumps(
        [{"role": m.role, "content": m.content} for m in messages], ensure_ascii=False, indent=4
    )
    assert render_conversation(messages) == expected


@given(st.text(), st.text())
def test_route_lines_are_json_dumps_exactly(name: str, description: str) -> None:
    line = render_routes([RoutingPreference(name=name, description=description, models=("m",))])
    parameters = {"type": "object", "properties": {}, "required": []}
    assert line == json.dumps(
        {"name": name, "description": description, "parameters": parameters}, ensure_ascii=False
    )


@given(st.text(), st.text())
def test_the_router_body_is_compact_json_dumps_exactly(model: str, prompt: str) -> None:
    body = {"messages": [{"role": "user", "content": prompt}], "model": model, "temperature": 0.01}
    expected = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
    assert router_request_body(model, prompt) == expected


WITH_SURROGATES = st.text(st.characters(codec=None, exclude_categories=()))


@given(WITH_SURROGATES, WITH_SURROGATES)
def test_lone_surrogates_take_the_stdlib_path(content: str, prompt: str) -> None:
    messages = [M("user", content + "\ud800")]
    expected = json.dumps([{"role": "user", "content": content + "\ud800"}], ensure_ascii=False, indent=4)
    assert render_conversation(messages) == expected
    body = {"messages": [{"role": "user", "content": prompt + "\udfff"}], "model": "m", "temperature": 0.01}
    assert router_request_body("m", prompt + "\udfff") == json.dumps(
        body, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8", "replace")
