"""http1: `ClientConnection.feed` (receive_data + next_event in one call) and `awaiting_chunk`.

`Connection.receive_body` reads the body this way: it asks `next_event` only
when `awaiting_chunk` is false, and hands every read to `feed`, which answers
a read holding exactly one whole chunk in place.  Driven like that, the state
machine must give the same events and the same errors as when it is driven
with `receive_data` and `next_event` alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.upstream.http1 import (
    END_OF_MESSAGE,
    NEED_DATA,
    ClientConnection,
    Event,
    Http1Error,
    IncompleteResponse,
    LocalProtocolError,
    RemoteProtocolError,
    Response,
    encode_request,
)
from tests.test_http1 import CHUNKED_HEAD, MALFORMED_CHUNK_READS


def _sent() -> ClientConnection:
    conn = ClientConnection()
    conn.send(encode_request(b"GET", b"/", [], b""))
    return conn


def via_next_event(conn: ClientConnection, reads: list[bytes]) -> list[Event]:
    """The reference: `receive_data` per read, then every event it completed."""
    events: list[Event] = []
    for data in reads:
        conn.receive_data(data)
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)
            if event is END_OF_MESSAGE:
                return events
    return events


def via_feed(conn: ClientConnection, reads: list[bytes]) -> list[Event]:
    """The way `Connection.receive_body` reads: `next_event` unless `awaiting_chunk`, then `feed`."""
    pending = list(reads)
    events: list[Event] = []
    while True:
        event = NEED_DATA if conn.awaiting_chunk else conn.next_event()
        while event is NEED_DATA:
            if not pending:
                return events
            event = conn.feed(pending.pop(0))
        events.append(event)
        if event is END_OF_MESSAGE:
            return events


def _outcome(
    drive: Callable[[ClientConnection, list[bytes]], list[Event]], reads: list[bytes]
) -> tuple[list[Event], str | None, bool]:
    """Events, the error's type name (None if none), and `reusable`, for one way of driving."""
    conn = _sent()
    events: list[Event] = []
    try:
        events = drive(conn, reads)
    except Http1Error as error:
        with pytest.raises(RemoteProtocolError):  # every error is final, whichever path raised it
            conn.next_event()
        return events, type(error).__name__, conn.reusable
    return events, None, conn.reusable


@pytest.mark.parametrize(
    ("reads", "body", "awaiting_after"),
    [
        # One whole chunk per read, as a token stream sends them: `feed` answers in place.
        ([b"2\r\nhi\r\n", b"3\r\nabc\r\n"], [b"hi", b"abc"], True),
        ([b"1A\r\n" + b"z" * 26 + b"\r\n"] * 2, [b"z" * 26] * 2, True),
        ([b"1a\r\n" + b"z" * 26 + b"\r\n"] * 2, [b"z" * 26] * 2, True),
        ([b"2\r\nhi\r\n", b"00002\r\nho\r\n"], [b"hi", b"ho"], True),
        # Not exactly one chunk: the long way, same answers.
        ([b"2\r\nhi\r\n", b"2\r\nhi\r\n2\r\nho\r\n"], [b"hi", b"hiho"], True),
        ([b"2\r\nhi\r\n", b"2;x=y\r\nhi\r\n"], [b"hi", b"hi"], True),
        ([b"2\r\nhi\r\n", b"4\r\nhi\r\n", b"\r\n"], [b"hi", b"hi\r\n"], True),
        ([b"2\r\nhi\r\n", b"2\r\nhi\r", b"\n"], [b"hi", b"hi"], True),
        ([b"2\r\nhi\r\n", b"2\r", b"\nhi\r\n"], [b"hi", b"hi"], True),
        ([b"2\r\nhi\r\n", b"2\r\nh"], [b"hi", b"h"], False),
        ([b"2\r\nhi\r\n", b"2\r\nhi"], [b"hi", b"hi"], False),
        ([b"2\r\nhi\r\n", b"2\r\nhi\r\n2"], [b"hi", b"hi"], False),
        ([b"2\r\nhi\r\n", b"0\r\n\r\n"], [b"hi", END_OF_MESSAGE], False),
        ([b"2\r\nhi\r\n", b"2\r\nhi\r\n0\r\n\r\n"], [b"hi", b"hi", END_OF_MESSAGE], False),
    ],
)
def test_feed_per_read(reads: list[bytes], body: list[Event], awaiting_after: bool) -> None:
    conn = _sent()
    [head] = via_feed(conn, [CHUNKED_HEAD])
    assert isinstance(head, Response)
    assert via_feed(conn, reads) == body
    assert conn.awaiting_chunk is awaiting_after
    assert via_next_event(_sent(), [CHUNKED_HEAD, *reads]) == [head, *body]


@pytest.mark.parametrize(
    "read",
    [
        *MALFORMED_CHUNK_READS,
        b"\r\nhi\r\n",  # an empty size line
        b"0x2\r\nhi\r\n",  # what `int(_, 16)` alone would take
        b"00000000000000002\r\nhi\r\n",  # 17 digits: past the shortcut's window, and the cap
    ],
)
def test_feed_malformed_chunk_is_a_final_error(read: bytes) -> None:
    reads = [CHUNKED_HEAD, b"2\r\nok\r\n", read, b"0\r\n\r\n"]
    assert _outcome(via_feed, reads) == _outcome(via_next_event, reads)
    assert _outcome(via_feed, reads)[1:] == ("RemoteProtocolError", False)


@pytest.mark.parametrize(
    ("reads", "awaiting"),
    [
        ([], False),
        ([CHUNKED_HEAD], False),  # set by the body parser only, once it consumed a read
        ([CHUNKED_HEAD, b"2\r\nhi\r\n"], True),
        ([CHUNKED_HEAD + b"2\r\nhi\r\n"], True),
        ([CHUNKED_HEAD, b"2\r\nhi\r\n2\r\n"], False),  # a size line read, its data not yet
        ([CHUNKED_HEAD, b"2\r\nhi\r\n2"], False),  # part of a size line held
        ([CHUNKED_HEAD, b"2\r\nhi\r\n0\r\n\r\n"], False),  # the body ended
        ([b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n", b"hi"], False),  # not chunked
    ],
)
def test_awaiting_chunk(reads: list[bytes], awaiting: bool) -> None:
    conn = _sent()
    via_next_event(conn, reads)
    assert conn.awaiting_chunk is awaiting


def test_receive_data_clears_awaiting_chunk() -> None:
    conn = _sent()
    via_next_event(conn, [CHUNKED_HEAD, b"2\r\nhi\r\n"])
    assert conn.awaiting_chunk
    conn.receive_data(b"2\r\n")
    assert not conn.awaiting_chunk
    assert conn.next_event() is NEED_DATA


def test_eof_while_awaiting_a_chunk() -> None:
    conn = _sent()
    via_feed(conn, [CHUNKED_HEAD, b"2\r\nhi\r\n"])
    assert conn.awaiting_chunk
    with pytest.raises(IncompleteResponse):
        conn.feed(b"")
    assert not conn.awaiting_chunk
    with pytest.raises(LocalProtocolError):  # nothing is read after EOF, not even a whole chunk
        conn.feed(b"2\r\nhi\r\n")


def test_feed_answers_a_lone_chunk_without_buffering_it() -> None:
    conn = _sent()
    via_feed(conn, [CHUNKED_HEAD, b"2\r\nhi\r\n"])
    read = b"5\r\nhello\r\n"
    assert conn.feed(read) == b"hello"
    assert conn.awaiting_chunk
    assert conn.next_event() is NEED_DATA
    assert conn.feed(b"0\r\n\r\n") is END_OF_MESSAGE
    assert conn.reusable


def test_feed_takes_a_bytearray_the_long_way() -> None:
    conn = _sent()
    via_feed(conn, [CHUNKED_HEAD, b"2\r\nhi\r\n"])
    assert conn.feed(bytearray(b"2\r\nho\r\n")) == b"ho"
    assert conn.awaiting_chunk


# --- properties: feeding equals receive_data + next_event, however the bytes are split ----------------

_CHUNKS = [b"2\r\nhi\r\n", b"1a\r\n" + b"z" * 26 + b"\r\n", b"2;e=v\r\nhi\r\n"]
_LAST = [b"0\r\n\r\n", b"0\r\nx-t: 1\r\n\r\n"]
_NOISE = [b"\r\n", b"\r", b"\n", b"2", b"x", b";", b"hi", b"0", b" ", b"\x00"]


@st.composite
def _reads(draw: st.DrawFn) -> list[bytes]:
    """A chunked body cut into reads: half the time whole chunks, mostly one per read (the shortcut's
    case), else with noise in it and cut anywhere (the long way, and the shortcut's near misses)."""
    clean = draw(st.booleans())
    piece = st.sampled_from(_CHUNKS if clean else _CHUNKS + _LAST + _NOISE)
    pieces = draw(st.lists(piece, max_size=12)) + draw(st.lists(st.sampled_from(_LAST), max_size=1))
    data = CHUNKED_HEAD + b"".join(pieces)
    boundaries = list(itertools.accumulate(len(piece) for piece in [CHUNKED_HEAD, *pieces]))
    if clean:  # most boundaries cut
        kept = draw(st.lists(st.integers(0, 3), min_size=len(boundaries), max_size=len(boundaries)))
        cuts = [offset for offset, keep in zip(boundaries, kept, strict=True) if keep]
    else:
        offsets = st.one_of(st.integers(0, len(data)), st.sampled_from(boundaries))
        cuts = sorted(set(draw(st.lists(offsets, max_size=14))))
    reads = [data[a:b] for a, b in itertools.pairwise([0, *cuts, len(data)]) if b > a]
    if draw(st.booleans()):
        reads.append(b"")  # EOF
    return reads


@given(reads=_reads())
def test_feed_matches_receive_data_and_next_event(reads: list[bytes]) -> None:
    fed, error, reusable = _outcome(via_feed, reads)
    expected, expected_error, expected_reusable = _outcome(via_next_event, reads)
    assert (fed, error, reusable) == (expected, expected_error, expected_reusable)
