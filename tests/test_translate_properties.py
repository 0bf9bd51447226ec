"""Provider output is untrusted: every translated pair fails only with the typed errors of `translate.base`.

For each (client, upstream) pair of `translate.matrix`, arbitrary JSON and
near-valid provider bodies and stream events (a recorded-shape event with
one value anywhere inside replaced by arbitrary JSON) go through
`Plan.response` and through a stream translator (`feed` each, then
`finish`).  Allowed outcomes: client-shaped output that encodes as JSON, or
`ProviderShapeError` (responses) / `StreamError` (streams).  Anything else,
a TypeError or KeyError from reading a wrong shape, would reach the client
as a 500 or a silently cut stream.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.apis.kind import Api
from plano_trio.translate.base import Json, ProviderShapeError, StreamError
from plano_trio.translate.matrix import Context, Plan, pairs, plan_for

PAIRS = pairs()
PAIR_IDS = [f"{client.value}-via-{upstream.value}" for client, upstream in PAIRS]

# Keys the translators read, so random objects hit real fields, not only random names.
KEYS = st.sampled_from(
    [
        "type",
        "id",
        "model",
        "content",
        "message",
        "delta",
        "index",
        "choices",
        "usage",
        "text",
        "thinking",
        "name",
        "input",
        "partial_json",
        "stop_reason",
        "finish_reason",
        "tool_calls",
        "function",
        "arguments",
        "error",
        "payload",
        "event_type",
        "exception_type",
        "toolUse",
        "contentBlockIndex",
        "stopReason",
        "output",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)

# --- recorded shapes of what each provider API sends ---------------------------------------------------

CHAT_RESPONSE: Json = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "hi",
                "reasoning_content": "think",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 1},
    },
}


def _chunk(delta: Json, finish: str | None = None) -> Json:
    return {
        "id": "chatcmpl-1",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


CHAT_STREAM: list[Json] = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "hi"}),
    _chunk(
        {
            "tool_calls": [
                {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
            ]
        }
    ),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":1}'}}]}),
    _chunk({}, "tool_calls"),
    {"id": "chatcmpl-1", "model": "m", "choices": [], "usage": CHAT_RESPONSE["usage"]},
]

MESSAGES_RESPONSE: Json = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "m",
    "content": [
        {"type": "thinking", "thinking": "think", "signature": "s"},
        {"type": "text", "text": "hi"},
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
    ],
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 3, "output_tokens": 2, "cache_read_input_tokens": 1},
}

MESSAGES_STREAM: list[Json] = [
    {"type": "message_start", "message": {**MESSAGES_RESPONSE, "content": [], "stop_reason": None}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"a":1}'},
    },
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 2}},
    {"type": "message_stop"},
]

CONVERSE_RESPONSE: Json = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {"reasoningContent": {"reasoningText": {"text": "think", "signature": "s"}}},
                {"text": "hi"},
                {"toolUse": {"toolUseId": "t", "name": "f", "input": {"a": 1}}},
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5, "cacheReadInputTokens": 1},
}

CONVERSE_STREAM: list[Json] = [
    {"event_type": "messageStart", "payload": {"role": "assistant"}},
    {"event_type": "contentBlockDelta", "payload": {"delta": {"text": "hi"}, "contentBlockIndex": 0}},
    {"event_type": "contentBlockStop", "payload": {"contentBlockIndex": 0}},
    {
        "event_type": "contentBlockStart",
        "payload": {"start": {"toolUse": {"toolUseId": "t", "name": "f"}}, "contentBlockIndex": 1},
    },
    {
        "event_type": "contentBlockDelta",
        "payload": {"delta": {"toolUse": {"input": '{"a":1}'}}, "contentBlockIndex": 1},
    },
    {"event_type": "messageStop", "payload": {"stopReason": "tool_use"}},
    {"event_type": "metadata", "payload": {"usage": {"inputTokens": 3, "outputTokens": 2}}},
]

RECORDED: dict[Api, tuple[Json, list[Json]]] = {
    Api.CHAT: (CHAT_RESPONSE, CHAT_STREAM),
    Api.MESSAGES: (MESSAGES_RESPONSE, MESSAGES_STREAM),
    Api.BEDROCK: (CONVERSE_RESPONSE, CONVERSE_STREAM),
}


def _context(client: Api) -> Context:
    request: Json = (
        {"model": "m", "input": "hi", "stream": True} if client is Api.RESPONSES else {"model": "m"}
    )
    return Context(model="m", request=request, include_usage=True)


def _plan(client: Api, upstream: Api) -> Plan:
    plan = plan_for(client, upstream)
    assert plan is not None
    return plan


# --- the checks ----------------------------------------------------------------------------------------


def check_response(client: Api, upstream: Api, body: Any) -> None:
    """`Plan.response` returns encodable output or raises ProviderShapeError, nothing else."""
    try:
        out = _plan(client, upstream).response(body, _context(client))
    except ProviderShapeError:
        return
    msgspec.json.encode(out)


def check_stream(client: Api, upstream: Api, events: list[Any]) -> None:
    """A stream translator fed `events` then finished emits encodable events or raises StreamError."""
    translator = _plan(client, upstream).stream(_context(client))
    try:
        out = [item for event in events for item in translator.feed(event)]
        out += translator.finish()
    except StreamError:
        return
    msgspec.json.encode(out)


def _paths(value: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place inside a JSON value (its root excluded), depth first."""
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in children:
        yield (*here, key)
        yield from _paths(child, (*here, key))


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    out = copy.deepcopy(value)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return out


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """`value` with one value anywhere inside it (at any depth) replaced by arbitrary JSON."""
    path = draw(st.sampled_from(list(_paths(value))))
    return _replaced(value, path, draw(JSON))


# --- recorded shapes pass: the properties below are not vacuous -----------------------------------------


@pytest.mark.parametrize(("client", "upstream"), PAIRS, ids=PAIR_IDS)
def test_recorded_shapes_translate_without_error(client: Api, upstream: Api) -> None:
    body, events = RECORDED[upstream]
    plan = _plan(client, upstream)
    assert plan.response(copy.deepcopy(body), _context(client))
    translator = plan.stream(_context(client))
    assert [item for event in copy.deepcopy(events) for item in translator.feed(event)] + translator.finish()


# --- the reported breakages, one per row -------------------------------------------------------------------


def for_every_client(rows: list[tuple[Api, Any, str]]) -> list[tuple[Api, Api, Any, str]]:
    """Each (upstream, input, expected) row for every client API that reaches that upstream translated."""
    return [
        (client, upstream, value, named)
        for client, upstream in PAIRS
        for row_upstream, value, named in rows
        if row_upstream is upstream
    ]


BROKEN_RESPONSES = [
    (Api.MESSAGES, {"content": "abc"}, "Anthropic message"),
    (Api.MESSAGES, {"content": [7, None, "s"]}, "Anthropic message"),
    (Api.MESSAGES, {"content": [{"type": "text", "text": None}]}, "Anthropic message"),
    (Api.CHAT, {"choices": [{"message": {"content": 5}}]}, "chat.completion"),
    (Api.CHAT, {"choices": "no"}, "chat.completion"),
    (Api.BEDROCK, {"output": {"message": {"content": [{"text": None, "toolUse": 3}]}}}, "Converse response"),
    (Api.BEDROCK, [], "Converse response"),
]


@pytest.mark.parametrize(("client", "upstream", "body", "named"), for_every_client(BROKEN_RESPONSES))
def test_broken_response_is_a_provider_shape_error(client: Api, upstream: Api, body: Any, named: str) -> None:
    with pytest.raises(ProviderShapeError, match=f"provider sent a malformed {named}"):
        _plan(client, upstream).response(body, _context(client))


BROKEN_STREAMS = [
    (Api.MESSAGES, {"type": "message_start", "message": "oops"}, "message_start"),
    (Api.MESSAGES, {"type": "content_block_delta", "index": 0, "delta": 42}, "content_block_delta"),
    (Api.MESSAGES, {"type": "content_block_start", "index": "0", "content_block": {"type": "text"}}, "index"),
    (Api.CHAT, {"choices": [{"delta": {"tool_calls": "x"}}]}, "chat.completion.chunk"),
    (Api.CHAT, {"choices": [7]}, "chat.completion.chunk"),
    (Api.BEDROCK, {"event_type": "contentBlockDelta", "payload": {"delta": 42}}, "contentBlockDelta"),
    (Api.BEDROCK, {"event_type": "metadata", "payload": {"usage": {"inputTokens": "3"}}}, "metadata"),
    (Api.BEDROCK, {"exception_type": 5, "payload": {}}, "ConverseStream exception"),
]


@pytest.mark.parametrize(("client", "upstream", "event", "named"), for_every_client(BROKEN_STREAMS))
def test_broken_stream_event_is_a_provider_shape_error(
    client: Api, upstream: Api, event: Json, named: str
) -> None:
    translator = _plan(client, upstream).stream(_context(client))
    first = RECORDED[upstream][1][0]
    translator.feed(copy.deepcopy(first))
    with pytest.raises(ProviderShapeError, match=named):
        translator.feed(event)


# --- properties ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("client", "upstream"), PAIRS, ids=PAIR_IDS)
@given(body=JSON)
def test_any_json_response_fails_only_typed(client: Api, upstream: Api, body: Any) -> None:
    check_response(client, upstream, body)


@pytest.mark.parametrize(("client", "upstream"), PAIRS, ids=PAIR_IDS)
@given(data=st.data())
def test_near_valid_response_fails_only_typed(client: Api, upstream: Api, data: st.DataObject) -> None:
    check_response(client, upstream, data.draw(mutated(RECORDED[upstream][0])))


@pytest.mark.parametrize(("client", "upstream"), PAIRS, ids=PAIR_IDS)
@given(events=st.lists(JSON, max_size=5))
def test_any_json_stream_fails_only_typed(client: Api, upstream: Api, events: list[Any]) -> None:
    check_stream(client, upstream, events)


@pytest.mark.parametrize(("client", "upstream"), PAIRS, ids=PAIR_IDS)
@given(data=st.data())
def test_near_valid_stream_fails_only_typed(client: Api, upstream: Api, data: st.DataObject) -> None:
    events = RECORDED[upstream][1]
    position = data.draw(st.integers(0, len(events) - 1))
    bad = data.draw(mutated({"event": events[position]}))["event"]
    check_stream(client, upstream, [*events[:position], bad, *events[position + 1 :]])
