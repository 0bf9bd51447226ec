"""Cutting relayed SSE blocks into single events for output filters, and keeping a filter's reply framed."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.filters.sse_events import carries_content, split_events, terminated
from plano_trio.translate.sse import SseEventFramer, SseParser


@pytest.mark.parametrize(
    ("block", "pieces"),
    [
        (b"", []),
        (b"data: a\n\n", [b"data: a\n\n"]),
        (b"data: a\n\ndata: b\n\n", [b"data: a\n\n", b"data: b\n\n"]),
        (b"event: x\ndata: a\n\n\n\ndata: b\n\n", [b"event: x\ndata: a\n\n\n\n", b"data: b\n\n"]),
        (b"data: a\r\n\r\ndata: b\r\n\r\n", [b"data: a\r\n\r\n", b"data: b\r\n\r\n"]),
        (b"data: a\r\rdata: b\n\r", [b"data: a\r\r", b"data: b\n\r"]),
        (b"\ndata: b\n\n", [b"\ndata: b\n\n"]),  # the `\n` of a `\r\n` the previous block ended in
        (b"data: a\n\ndata: unfinished", [b"data: a\n\n", b"data: unfinished"]),
    ],
)
def test_split_events(block: bytes, pieces: list[bytes]) -> None:
    assert split_events(block) == pieces


_sse_bytes = st.lists(
    st.sampled_from([b"data: x", b"event: e", b": c", b"\n", b"\r", b"\r\n", b"id: 1", b"SECRET"]),
    max_size=40,
).map(b"".join)


@given(_sse_bytes, st.lists(st.integers(min_value=1, max_value=12), max_size=20))
def test_split_keeps_bytes_and_gives_one_event_each(stream: bytes, cuts: list[int]) -> None:
    """Whatever the framer forwards, split and re-joined, parses to the same events, one per piece."""
    framer = SseEventFramer()
    forwarded: list[bytes] = []
    rest = stream
    for cut in cuts:
        forwarded.append(framer.feed(rest[:cut]))
        rest = rest[cut:]
    forwarded.append(framer.feed(rest))
    whole = SseParser().feed(b"".join(forwarded))
    rejoined: list[bytes] = []
    for block in forwarded:
        pieces = split_events(block)
        assert b"".join(pieces) == block
        rejoined += pieces
    per_piece = [SseParser().feed(piece) for piece in rejoined]
    assert all(len(events) <= 1 for events in per_piece)
    assert [(e.data, e.event) for events in per_piece for e in events] == [(e.data, e.event) for e in whole]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (b"data: {}\n\n", True),
        (b"event: message_start\ndata: {}\n\n", True),
        (b"\n", False),
        (b"\r\n\r\n", False),
        (b": keep-alive\n\n", False),
        (b": comment\ndata: {}\n\n", True),
        (b"data: [DONE]\n\n", False),
        (b"data:[DONE]\r\n\r\n", False),
    ],
)
def test_carries_content(event: bytes, expected: bool) -> None:
    assert carries_content(event) is expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (b"data: a\n\n", b"data: a\n\n"),
        (b"data: a\r\n\r\n", b"data: a\r\n\r\n"),
        (b"data: a\r\r", b"data: a\r\r"),
        (b"data: a", b"data: a\n\n"),
        (b"data: a\n", b"data: a\n\n\n"),
        (b"data: a\r\n", b"data: a\r\n\n\n"),
        (b"", b""),
        (b"\n", b"\n"),
    ],
)
def test_terminated(reply: bytes, expected: bytes) -> None:
    assert terminated(reply) == expected


@given(_sse_bytes)
def test_a_terminated_reply_never_joins_the_next_event(reply: bytes) -> None:
    events = SseParser().feed(terminated(reply) + b"data: next\n\n")
    assert events[-1].data == b"next"


def test_hostile_blocks_are_linear() -> None:
    for block in (b"\r" * 2_000_000, b"\n" * 2_000_000, b"data: x\n" * 250_000, b"a\r\n" * 600_000):
        started = time.perf_counter()
        split_events(block)
        terminated(block)
        carries_content(block)
        assert time.perf_counter() - started < 1.0
