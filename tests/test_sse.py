"""SseParser and SseEventFramer: events from arbitrarily split bytes, bounded and linear (no sockets)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from plano_trio.translate.base import StreamError
from plano_trio.translate.sse import SseError, SseEvent, SseEventFramer, SseParser, encode_event

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


def test_split_crlf_at_a_chunk_edge_survives_an_empty_chunk() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\ndata: b\n\n") == [SseEvent(b"a\nb")]


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    "pieces",
    [
        [b"data: " + b"x" * 11],  # an unfinished line past the bound
        [b"data: " + b"x" * 11 + b"\n\n"],  # a finished one, in one chunk
        [b"data: xxxxx", b"xxxxxx", b"\n"],  # built up across chunks
        [b"data: ok\n" + b"y" * 17 + b"\n\n"],  # a later line of the same chunk
    ],
)
def test_a_line_over_the_bound_is_an_sse_error(pieces: list[bytes]) -> None:
    parser = SseParser(max_line_bytes=16)
    with pytest.raises(SseError, match="line longer than 16"):
        feed_all(parser, pieces)


def test_a_line_at_the_bound_is_fine() -> None:
    assert SseParser(max_line_bytes=16).feed(b"data: 0123456789\n\n") == [SseEvent(b"0123456789")]


def test_an_event_over_the_bound_is_an_sse_error_and_the_parser_stays_failed() -> None:
    parser = SseParser(max_event_bytes=20)
    assert parser.feed(b"data: 0123456789\n\ndata: 0123456789\n\n") == [SseEvent(b"0123456789")] * 2
    with pytest.raises(SseError, match="event larger than 20") as caught:
        parser.feed(b"data: 0123456789\ndata: 0123456789\n")
    assert isinstance(caught.value, StreamError)  # the edge reports it as an in-stream error
    with pytest.raises(SseError):
        parser.feed(b"\n")


def _cpu_bounded(feed: Callable[[bytes], object], total: int, chunk_size: int, budget_s: float) -> None:
    """Feed `total` bytes without a line break; fail as soon as CPU time passes the budget."""
    chunk = b"x" * chunk_size
    start = time.process_time()
    for _ in range(total // chunk_size):
        feed(chunk)
        assert time.process_time() - start < budget_s, "quadratic: rescanning what was already seen"


def test_a_long_line_costs_linear_time() -> None:
    """16 MiB in 4 KiB chunks: milliseconds when linear, tens of seconds when each feed rescans."""
    _cpu_bounded(SseParser(max_line_bytes=32 << 20).feed, 16 << 20, 4096, budget_s=2.0)


def test_a_long_line_hits_the_default_bound_quickly() -> None:
    parser = SseParser()
    with pytest.raises(SseError, match="line longer"):
        _cpu_bounded(parser.feed, 4 << 20, 4096, budget_s=2.0)


# --------------------------------------------------------------------------- framer


@pytest.mark.parametrize(
    ("pieces", "outputs", "pending"),
    [
        ([b"data: a\n\n"], [b"data: a\n\n"], b""),
        ([b"data: a\r\n\r\n"], [b"data: a\r\n\r\n"], b""),
        ([b"data: a\r\r"], [b"data: a\r\r"], b""),
        ([b"data: a\n\r\n"], [b"data: a\n\r\n"], b""),
        ([b"data: a\r\n\n"], [b"data: a\r\n\n"], b""),
        ([b"data: a\n\rdata: b"], [b"data: a\n\r"], b"data: b"),
        ([b"data: a\r\n"], [b""], b"data: a\r\n"),  # one line ending is not a blank line
        ([b"data: a\n\ndata: b\n"], [b"data: a\n\n"], b"data: b\n"),
        ([b"data: a\n\ndata: b\n\n\n\n"], [b"data: a\n\ndata: b\n\n\n\n"], b""),
        ([b"data: a\n", b"\n"], [b"", b"data: a\n\n"], b""),
        ([b"data: a\r", b"\r"], [b"", b"data: a\r\r"], b""),
        ([b"data: a\r", b"\n"], [b"", b""], b"data: a\r\n"),  # `\r` | `\n` is one line ending
        ([b"data: a\r", b"\n\r\n"], [b"", b"data: a\r\n\r\n"], b""),
        ([b"data: a\r\n\r", b"\n"], [b"data: a\r\n\r", b"\n"], b""),  # the `\n` completes `\r\n`
        ([b"data: a\r\n\r", b"\ndata"], [b"data: a\r\n\r", b"\n"], b"data"),
        ([b"data: a\n\n", b"\n"], [b"data: a\n\n", b"\n"], b""),  # a blank line at a boundary
        ([b"\n"], [b"\n"], b""),
        ([b"data: a", b"bc", b"\n\nda"], [b"", b"", b"data: abc\n\n"], b"da"),
        ([b": comment\n"], [b""], b": comment\n"),
        ([b""], [b""], b""),
    ],
)
def test_framer_forwards_whole_events_only(pieces: list[bytes], outputs: list[bytes], pending: bytes) -> None:
    framer = SseEventFramer()
    assert [framer.feed(piece) for piece in pieces] == outputs
    assert framer.pending == pending


def test_framer_returns_an_aligned_chunk_without_copying() -> None:
    framer = SseEventFramer()
    chunk = b'data: {"a":1}\n\n'
    assert framer.feed(chunk) is chunk
    framer.feed(b"data: b")
    joined = framer.feed(b"\n\n")
    assert joined == b"data: b\n\n"
    chunk = b"data: c\r\n\r\n"
    assert framer.feed(chunk) is chunk


def test_framer_bounds_what_it_holds_back() -> None:
    framer = SseEventFramer(max_event_bytes=16)
    assert framer.feed(b"data: 0123456789") == b""
    with pytest.raises(SseError, match="event larger than 16"):
        framer.feed(b"x")
    assert framer.pending == b""  # released, not kept


def test_framer_costs_linear_time() -> None:
    _cpu_bounded(SseEventFramer(max_event_bytes=32 << 20).feed, 16 << 20, 4096, budget_s=2.0)
