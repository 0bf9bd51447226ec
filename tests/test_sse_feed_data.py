"""`SseParser.feed_data` and the parser's one-event shortcut (`_lone_start`), against `feed` itself.

`feed_data` is `[event.data for event in feed(chunk)]` without building the usual token's event, and
`at_event_boundary` is now kept in a slot rather than worked out from the parser's state: both must
agree with what they replace, however the stream is split and whatever the bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.translate.sse import SseError, SseEvent, SseParser
from tests.test_sse_properties import event_per_chunk, split_streams


@pytest.mark.parametrize(
    ("chunk", "start"),
    [
        (b"data: x\n\n", 6),
        (b"data: \n\n", 6),
        (b'data: {"a":1}\n\n', 6),
        (b"event: e\ndata: x\n\n", 15),
        (b"event: \ndata: x\n\n", 14),
        (b"event: e\ndata: \n\n", 15),
        (b"event: e\n\n", -1),  # no data line
        (b"event: \n\n", -1),
        (b"data:x\n\n", -1),  # no space: the general loop
        (b"event:e\ndata: x\n\n", -1),
        (b"event: e\ndata:x\n\n", -1),
        (b"data: x\ndata: y\n\n", -1),  # two data lines
        (b"event: e\ndata: x\nid: 1\n\n", -1),
        (b"event: e\nid: 1\ndata: x\n\n", -1),
        (b"id: 1\ndata: x\n\n", -1),
        (b": note\ndata: x\n\n", -1),
        (b"data: x\n\ndata: y\n\n", -1),  # two events
        (b"data: x\r\n\r\n", -1),  # a CR anywhere
        (b"data: x\r\n\n", -1),
        (b"data: x\n", -1),  # no blank line at the end
        (b"data: x", -1),
        (b"\n\n", -1),
        (b"", -1),
    ],
)
def test_lone_start(chunk: bytes, start: int) -> None:
    parser = SseParser()
    assert parser._lone_start(chunk) == start
    if start >= 0:
        (event,) = parser.feed(chunk)
        assert event.data == chunk[start:-2]


@pytest.mark.parametrize(
    ("before", "chunk"),
    [
        (b"data: held", b"data: x\n\n"),  # a line held: not at a boundary
        (b"data: a\n", b"data: x\n\n"),  # data held
        (b"event: e\n", b"data: x\n\n"),  # an event name held
        (b"data: a\n\r", b"data: x\n\n"),  # a CR awaiting its LF
    ],
)
def test_lone_start_only_at_a_boundary(before: bytes, chunk: bytes) -> None:
    parser = SseParser()
    parser.feed(before)
    assert not parser.at_event_boundary
    assert parser._lone_start(chunk) == -1


def test_lone_start_not_past_the_bounds_or_after_an_error() -> None:
    assert SseParser(max_line_bytes=8)._lone_start(b"data: x\n\n") == -1  # 9 bytes could break a bound
    assert SseParser(max_event_bytes=9)._lone_start(b"data: x\n\n") == 6
    parser = SseParser(max_line_bytes=4)
    with pytest.raises(SseError):
        parser.feed(b"data: too long")
    assert not parser.at_event_boundary
    assert parser._lone_start(b"\n\n") == -1
    with pytest.raises(SseError):  # still failed, the shortcut included
        parser.feed_data(b"data: x\n\n")


def _internal_boundary(parser: SseParser) -> bool:
    """`at_event_boundary` as it was computed before it was kept in a slot."""
    return not (
        parser._line or parser._data or parser._event is not None or parser._pending_cr or parser._error
    )


def _data_via(
    read: Callable[[SseParser, bytes], Sequence[SseEvent | bytes]], pieces: list[bytes], bound: int | None
) -> list[bytes] | None:
    """The data `read` (`feed` or `feed_data`) gives for `pieces` (None: SseError), checking the
    boundary after every piece."""
    parser = SseParser() if bound is None else SseParser(max_line_bytes=bound, max_event_bytes=bound)
    data: list[bytes] = []
    try:
        for piece in pieces:
            data += [item if isinstance(item, bytes) else item.data for item in read(parser, piece)]
            assert parser.at_event_boundary is _internal_boundary(parser)
    except SseError:
        assert parser.at_event_boundary is _internal_boundary(parser) is False
        return None
    return data


@given(split_streams(), st.one_of(st.none(), st.integers(1, 48)))
def test_feed_data_is_the_data_of_feed(case: tuple[bytes, list[bytes]], max_bytes: int | None) -> None:
    _, pieces = case
    assert _data_via(SseParser.feed_data, pieces, max_bytes) == _data_via(SseParser.feed, pieces, max_bytes)


@given(event_per_chunk(), st.one_of(st.none(), st.integers(1, 48)))
def test_feed_data_one_event_per_chunk(chunks: list[bytes], max_bytes: int | None) -> None:
    assert _data_via(SseParser.feed_data, chunks, max_bytes) == _data_via(SseParser.feed, chunks, max_bytes)
