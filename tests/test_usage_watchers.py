"""Usage read from relayed answers in each client API's shape: tables, and hostile bytes (hypothesis)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.apis.kind import Api
from plano_trio.apis.openai_chat import PromptTokensDetails, Usage
from plano_trio.gateway.usage import EventUsage, UsageWatcher, _may_hold_usage, usage_of_answer


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(
        b"event: %s\ndata: %s\n\n" % (str(e.get("type", "x")).encode(), json.dumps(e).encode())
        for e in events
    )


MESSAGE_START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "model": "claude-sonnet-4-6",
        "usage": {"input_tokens": 12, "cache_read_input_tokens": 100, "output_tokens": 1},
    },
}
TEXT = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 'say "usage"'}}
MESSAGE_DELTA = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}
MESSAGES_USAGE = Usage(112, 7, 119, PromptTokensDetails(100))


@pytest.mark.parametrize(
    ("api", "events", "expected", "model"),
    [
        (Api.CHAT, [{"choices": []}, {"usage": {"prompt_tokens": 3, "completion_tokens": 4}, "model": "m"}],
         Usage(3, 4, 7, None), "m"),
        (Api.CHAT, [{"choices": [{"delta": {"content": "hi"}}]}], None, None),
        (Api.MESSAGES, [MESSAGE_START, TEXT, MESSAGE_DELTA], MESSAGES_USAGE, "claude-sonnet-4-6"),
        (Api.MESSAGES, [MESSAGE_START], Usage(112, 1, 113, PromptTokensDetails(100)), "claude-sonnet-4-6"),
        (Api.MESSAGES, [{"type": "message_delta", "usage": "oops"}, {"type": "message_start", "message": 3}],
         None, None),
        (Api.RESPONSES,
         [{"type": "response.output_text.delta", "delta": "x"},
          {"type": "response.completed",
           "response": {"model": "r", "usage": {"input_tokens": 5, "output_tokens": 6}}}],
         Usage(5, 6, 11, None), "r"),
        (Api.RESPONSES, [{"type": "response.created", "response": {"usage": {"input_tokens": 5}}}],
         None, None),
    ],
)  # fmt: skip
def test_event_usage(
    api: Api, events: list[dict[str, Any]], expected: Usage | None, model: str | None
) -> None:
    tally = EventUsage(api)
    for event in events:
        tally.observe(event)
    assert (tally.usage, tally.model) == (expected, model)


@pytest.mark.parametrize("cut", [1, 7, 40, 97, 150, 300])
def test_a_relayed_messages_stream_gives_its_usage_however_it_is_cut(cut: int) -> None:
    data = sse(MESSAGE_START, TEXT, MESSAGE_DELTA, {"type": "message_stop"})
    watcher = EventUsage(Api.MESSAGES)
    for start in range(0, len(data), cut):
        watcher.feed(data[start : start + cut])
    assert (watcher.usage, watcher.model) == (MESSAGES_USAGE, "claude-sonnet-4-6")


def test_a_whole_messages_answer_gives_its_usage() -> None:
    watcher = EventUsage(Api.MESSAGES)
    watcher.observe_body(
        json.dumps({"model": "c", "usage": {"input_tokens": 2, "output_tokens": 3}}).encode()
    )
    assert (watcher.usage, watcher.model) == (Usage(2, 3, 5, None), "c")
    watcher.observe_body(b"not json")
    assert watcher.usage == Usage(2, 3, 5, None)


def test_anthropic_input_counts_cache_reads_and_writes_as_chat_does() -> None:
    answer = {"usage": {"input_tokens": 1, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 100}}
    assert usage_of_answer(answer) == Usage(111, 0, 111, PromptTokensDetails(10))


@given(st.binary(max_size=2000))
def test_hostile_bytes_never_raise(data: bytes) -> None:
    for watcher in (*(EventUsage(api) for api in Api), UsageWatcher()):
        watcher.feed(data)
        watcher.observe_body(data)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=20,
)


@given(
    st.sampled_from(list(Api)),
    st.dictionaries(st.sampled_from(["type", "usage", "message", "response"]), _json),
)
def test_any_event_shape_is_watched_without_error(api: Api, event: dict[str, Any]) -> None:
    EventUsage(api).observe(event)


def _chat_stream(usage_null: bool = False) -> bytes:
    """A Chat stream that reports usage in its last chunk; `usage_null`: every other chunk carries
    `"usage":null`, as OpenAI writes them (compact JSON) when the request asked for usage."""
    null = {"usage": None} if usage_null else {}
    chunks = [{"choices": [{"delta": {"content": f"token {i}"}}], **null} for i in range(5)]
    usage = {
        "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        "model": "m",
    }
    return (
        b"".join(b"data: %s\n\n" % json.dumps(c, separators=(",", ":")).encode() for c in [*chunks, usage])
        + b"data: [DONE]\n\n"
    )


@given(st.data())
def test_skipping_chunks_without_usage_changes_nothing(data: st.DataObject) -> None:
    """However a stream is cut (whole events per chunk, or not; CRLF or LF), watching it gives what
    parsing every byte gives: the fast path skips only chunks that cannot matter."""
    stream = _chat_stream(usage_null=data.draw(st.booleans()))
    if data.draw(st.booleans()):
        stream = stream.replace(b"\n", b"\r\n")
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=12)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    for watcher in (UsageWatcher(), EventUsage(Api.CHAT)):
        for piece in pieces:
            watcher.feed(piece)
        assert (watcher.usage, watcher.model) == (Usage(3, 5, 8, None), "m")


@pytest.mark.parametrize(
    ("chunk", "may_hold"),
    [
        (b'data: {"choices":[]}\n\n', False),
        (b'data: {"choices":[],"usage":null}\n\n', False),
        (b'data: {"usage":null}\n\ndata: {"usage":null}\n\n', False),
        (b'data: {"usage":null}\n\ndata: {"usage":{"prompt_tokens":1}}\n\n', True),
        (b'data: {"usage": null}\n\n', True),  # not OpenAI's spelling: parsed, to be safe
        (b'data: {"usage":{"prompt_tokens":1}}\n\n', True),
        (b'data: {"text":"say \\"usage\\":null"}\n\n', False),
    ],
)
def test_which_chunks_may_hold_usage(chunk: bytes, may_hold: bool) -> None:
    assert _may_hold_usage(chunk) is may_hold


@pytest.mark.parametrize(
    ("before", "boundary"),
    [
        (b"", True),
        (b"data: x\n\n", True),
        (b"data: x\n", False),
        (b"data: x", False),
        (b"data: x\n\r", False),
    ],
)
def test_at_event_boundary(before: bytes, boundary: bool) -> None:
    watcher = UsageWatcher()
    watcher.parser.feed(before)
    assert watcher.parser.at_event_boundary is boundary
