"""Properties of the AWS event-stream decoder over arbitrary input (hypothesis), and its cost bounds."""

from __future__ import annotations

import time
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.translate.eventstream import (
    MAX_MESSAGE_LENGTH,
    EventMessage,
    EventStreamDecoder,
    EventStreamError,
    HeaderType,
    HeaderValue,
    TypedValue,
    encode_message,
)
from tests.test_eventstream import raw_frame

_NAMES = st.text(min_size=1, max_size=8).filter(lambda name: len(name.encode()) < 256)
_TYPED = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.binary(max_size=16),
    st.text(max_size=16),
    st.builds(TypedValue, st.just(HeaderType.BYTE), st.integers(-128, 127)),
    st.builds(TypedValue, st.just(HeaderType.SHORT), st.integers(-(2**15), 2**15 - 1)),
    st.builds(TypedValue, st.just(HeaderType.TIMESTAMP), st.integers(-(2**63), 2**63 - 1)),
    st.builds(TypedValue, st.just(HeaderType.UUID), st.binary(min_size=16, max_size=16)),
)
MESSAGES = st.tuples(st.dictionaries(_NAMES, _TYPED, max_size=4), st.binary(max_size=64))


def plain(value: HeaderValue | TypedValue) -> HeaderValue:
    return value.value if isinstance(value, TypedValue) else value


def feed_pieces(decoder: EventStreamDecoder, data: bytes, cuts: list[int]) -> list[EventMessage]:
    bounds = [0, *sorted(cuts), len(data)]
    return [message for start, end in pairwise(bounds) for message in decoder.feed(data[start:end])]


@given(st.lists(MESSAGES, max_size=5), st.data())
def test_valid_frames_round_trip_under_any_split(
    messages: list[tuple[dict[str, HeaderValue | TypedValue], bytes]], data: st.DataObject
) -> None:
    wire = b"".join(encode_message(headers, payload) for headers, payload in messages)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=10))
    decoder = EventStreamDecoder()
    decoded = feed_pieces(decoder, wire, cuts)
    decoder.finish()
    expected = [
        EventMessage({k: plain(v) for k, v in headers.items()}, payload) for headers, payload in messages
    ]
    assert decoded == expected


def _decode_fails_cleanly(data: bytes, cuts: list[int]) -> None:
    decoder = EventStreamDecoder()
    try:
        feed_pieces(decoder, data, cuts)
        decoder.finish()
    except EventStreamError:
        pass


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_arbitrary_bytes_raise_only_event_stream_error(data: bytes, cuts: list[int]) -> None:
    _decode_fails_cleanly(data, [min(cut, len(data)) for cut in cuts])


@given(st.binary(max_size=64), st.binary(max_size=16), st.lists(st.integers(0, 100), max_size=4))
def test_arbitrary_headers_inside_valid_crcs_raise_only_event_stream_error(
    raw_headers: bytes, payload: bytes, cuts: list[int]
) -> None:
    """Random bytes rarely pass the CRCs; these do, so the header decoder itself is exercised."""
    frame = raw_frame(raw_headers, payload)
    _decode_fails_cleanly(frame, [min(cut, len(frame)) for cut in cuts])


@given(st.binary(min_size=1, max_size=64), st.data())
def test_a_corrupted_frame_raises_only_event_stream_error(payload: bytes, data: st.DataObject) -> None:
    frame = bytearray(encode_message({":event-type": "x", "n": 1}, payload))
    position = data.draw(st.integers(0, len(frame) - 1))
    frame[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(EventStreamError):
        _strict_decode(bytes(frame))


def _strict_decode(data: bytes) -> None:
    decoder = EventStreamDecoder()
    decoder.feed(data)
    decoder.finish()


def test_a_large_frame_in_small_chunks_costs_linear_time() -> None:
    """A frame near the AWS limit fed 4 KiB at a time: each call costs a prelude check, not a rescan."""
    frame = encode_message({":event-type": "x"}, b"\x00" * (MAX_MESSAGE_LENGTH - 64))
    decoder = EventStreamDecoder()
    start = time.process_time()
    messages: list[EventMessage] = []
    for offset in range(0, len(frame), 4096):
        messages.extend(decoder.feed(frame[offset : offset + 4096]))
        assert time.process_time() - start < 2.0, "quadratic: rescanning what was already seen"
    assert len(messages) == 1


@pytest.mark.parametrize(("limit", "size", "fits"), [(1024, 1024, True), (1024, 1025, False)])
def test_max_message_bytes_is_enforced_on_the_prelude(limit: int, size: int, fits: bool) -> None:
    frame = encode_message({}, b"\x00" * (size - 16))
    decoder = EventStreamDecoder(max_message_bytes=limit)
    if fits:
        assert len(decoder.feed(frame)) == 1
    else:
        with pytest.raises(EventStreamError, match="exceeds 1024"):
            decoder.feed(frame[:12])  # refused before the body is waited for or buffered


def test_max_message_bytes_never_exceeds_the_aws_limit() -> None:
    decoder = EventStreamDecoder(max_message_bytes=MAX_MESSAGE_LENGTH * 4)
    with pytest.raises(EventStreamError, match="exceeds"):
        decoder.feed(raw_frame(b"", b"", total=MAX_MESSAGE_LENGTH + 1)[:12])
