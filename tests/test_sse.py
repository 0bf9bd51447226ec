"""SseParser: events out of arbitrarily split bytes (pure, no sockets)."""

from __future__ import annotations

import pytest

from plano_trio.translate.sse import SseEvent, SseParser, encode_event

STREAM = (
    b'data: {"a":1}\n\n'
    b'event: message_start\ndata: {"b":2}\n\n'
    b": keep-alive comment\n\n"
    b"data: line1\ndata: line2\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SseEvent(b'{"a":1}'),
    SseEvent(b'{"b":2}', "message_start"),
    SseEvent(b"line1\nline2"),
    SseEvent(b"[DONE]"),
]


def feed_all(parser: SseParser, pieces: list[bytes]) -> list[SseEvent]:
    return [event for piece in pieces for event in parser.feed(piece)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, len(STREAM)])
def test_any_split_yields_same_events(size: int) -> None:
    pieces = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert feed_all(SseParser(), pieces) == EXPECTED


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"data: x\r\n\r\n", [SseEvent(b"x")]),
        (b"data: x\r\rdata: y\r\r", [SseEvent(b"x"), SseEvent(b"y")]),
        (b"data:nospace\n\n", [SseEvent(b"nospace")]),
        (b"data:  two spaces\n\n", [SseEvent(b" two spaces")]),
        (b"data\n\n", [SseEvent(b"")]),
        (b"id: 7\ndata: z\n\n", [SseEvent(b"z", None, "7")]),
        (b"retry: 100\nunknown: q\ndata: r\n\n", [SseEvent(b"r")]),
        (b"\n\n\n", []),
        (b"event: ping\n\n", [SseEvent(b"", "ping")]),
    ],
)
def test_field_rules(raw: bytes, expected: list[SseEvent]) -> None:
    assert SseParser().feed(raw) == expected


def test_crlf_split_across_chunks() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n\r") == [SseEvent(b"a")]
    assert parser.feed(b"\ndata: b\r\n\r\n") == [SseEvent(b"b")]


def test_partial_event_is_kept_not_emitted() -> None:
    parser = SseParser()
    assert parser.feed(b'data: {"partial"') == []
    assert parser.has_partial
    assert parser.feed(b"}\n\n") == [SseEvent(b'{"partial"}')]
    assert not parser.has_partial


@pytest.mark.parametrize(
    ("data", "event", "wire"),
    [
        (b"{}", None, b"data: {}\n\n"),
        (b"{}", "message_stop", b"event: message_stop\ndata: {}\n\n"),
        (b"a\nb", None, b"data: a\ndata: b\n\n"),
    ],
)
def test_encode_round_trips(data: bytes, event: str | None, wire: bytes) -> None:
    assert encode_event(data, event) == wire
    assert SseParser().feed(wire) == [SseEvent(data, event)]
