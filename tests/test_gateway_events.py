"""Provider SSE → events for the translators: `SseData` hands on each event's JSON undecoded, `SseEvents`
decoded; `[DONE]` ends both, and what follows it is read and dropped (so the connection can be reused)."""

from __future__ import annotations

import msgspec
import pytest

from plano_trio.gateway.events import SseData, SseEvents
from plano_trio.translate.base import StreamError

CHUNKS_AND_DATA = [
    pytest.param([b'data: {"a":1}\n\n'], [b'{"a":1}'], id="one event"),
    pytest.param(
        [b'event: x\ndata: {"a":1}\n\ndata: {"b":2}\n\n'], [b'{"a":1}', b'{"b":2}'], id="two in one"
    ),
    pytest.param([b'data: {"a"', b":1}\n", b"\n"], [b'{"a":1}'], id="split anywhere"),
    pytest.param([b": keep-alive\n\nevent: ping\n\n"], [], id="comment and no data"),
    pytest.param([b'data: {"a":1}\n\ndata: [DONE]\n\ndata: {"late":1}\n\n'], [b'{"a":1}'], id="done ends it"),
    pytest.param([b"data: [DONE]\n\n", b'data: {"late":1}\n\n'], [], id="nothing after done"),
    pytest.param([b"data: {\ndata: }\n\n"], [b"{\n}"], id="data lines join"),
]


@pytest.mark.parametrize(("chunks", "expected"), CHUNKS_AND_DATA)
def test_sse_data(chunks: list[bytes], expected: list[bytes]) -> None:
    source = SseData(1 << 20)
    assert [data for chunk in chunks for data in source.feed(chunk)] == expected


@pytest.mark.parametrize(("chunks", "expected"), CHUNKS_AND_DATA)
def test_sse_events_decode_the_same_events(chunks: list[bytes], expected: list[bytes]) -> None:
    source = SseEvents(1 << 20)
    assert [event for chunk in chunks for event in source.feed(chunk)] == [
        msgspec.json.decode(d) for d in expected
    ]


@pytest.mark.parametrize(
    ("chunk", "message"),
    [
        (b"data: {nope\n\n", "not valid JSON"),
        (b"data: [1]\n\n", "not a JSON object"),
    ],
)
def test_sse_events_refuse_what_is_no_json_object(chunk: bytes, message: str) -> None:
    with pytest.raises(StreamError, match=message):
        SseEvents(1 << 20).feed(chunk)


def test_an_event_beyond_the_bound_is_a_stream_error() -> None:
    with pytest.raises(StreamError, match="larger than"):
        SseData(16).feed(b"data: " + b"x" * 64 + b"\n\n")
