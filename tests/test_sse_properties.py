"""Properties of the SSE parser and framer over arbitrary bytes split arbitrarily (hypothesis).

The oracles here are deliberately naive (a regex split of the whole input),
so they check the incremental code against the WHATWG rules rather than
against itself.
"""

from __future__ import annotations

import re
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from plano_trio.translate.sse import SseError, SseEvent, SseEventFramer, SseParser

# Fragments that make SSE-shaped input likely (half of them line endings, where the edge cases are),
# plus raw bytes so nothing is assumed about the shape.
_FRAGMENTS = st.one_of(
    st.sampled_from([b"data:", b"data: ", b"event: e", b"id: 7", b": note", b"retry: 1", b"x", b"{}", b":"]),
    st.sampled_from([b"\n", b"\r", b"\r\n"]),
)
STREAMS = st.one_of(st.lists(_FRAGMENTS, max_size=24).map(b"".join), st.binary(max_size=200))
_LINE_END = re.compile(rb"\r\n|\r|\n")


@st.composite
def split_streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A stream and the same bytes cut at arbitrary offsets (empty pieces included).

    Cuts favour the offsets right after a `\r` or `\n`, where a line ending
    can be split in two, because uniform offsets would seldom land there.
    """
    data = draw(STREAMS)
    after_line_ends = [i + 1 for i, byte in enumerate(data) if byte in b"\r\n"]
    offsets = st.integers(0, len(data))
    if after_line_ends:
        offsets = st.one_of(offsets, st.sampled_from(after_line_ends))
    cuts = sorted(draw(st.lists(offsets, max_size=12)))
    return data, [data[start:end] for start, end in pairwise([0, *cuts, len(data)])]


def reference_events(data: bytes) -> list[SseEvent]:
    """The WHATWG algorithm over the whole input, written for clarity rather than speed."""
    lines = _LINE_END.split(data)[:-1]  # the last piece has no line ending yet
    events: list[SseEvent] = []
    fields: list[bytes] = []
    kind: str | None = None
    last_id: str | None = None
    for line in lines:
        if not line:
            if fields or kind is not None:
                events.append(SseEvent(b"\n".join(fields), kind, last_id))
            fields, kind = [], None
            continue
        name, sep, value = line.partition(b":")
        value = value.removeprefix(b" ") if sep else value
        if name == b"data":
            fields.append(value)
        elif name == b"event":
            kind = value.decode("utf-8", "replace")
        elif name == b"id":
            last_id = value.decode("utf-8", "replace")
    return events


def is_boundary(prefix: bytes) -> bool:
    """Does `prefix` end right after a blank line (or is it empty)?"""
    if not prefix:
        return True
    lines = _LINE_END.split(prefix)
    return lines[-1] == b"" and lines[-2] == b""


def feed_all(parser: SseParser, pieces: list[bytes]) -> list[SseEvent]:
    return [event for piece in pieces for event in parser.feed(piece)]


@given(split_streams())
def test_parser_matches_the_reference_under_any_split(case: tuple[bytes, list[bytes]]) -> None:
    data, pieces = case
    assert feed_all(SseParser(), pieces) == reference_events(data)


@given(split_streams(), st.integers(1, 24), st.integers(1, 48))
def test_bounds_raise_only_sse_error_and_do_not_depend_on_the_split(
    case: tuple[bytes, list[bytes]], max_line: int, max_event: int
) -> None:
    data, pieces = case

    def outcome(chunks: list[bytes]) -> list[SseEvent] | None:
        try:
            return feed_all(SseParser(max_line_bytes=max_line, max_event_bytes=max_event), chunks)
        except SseError:
            return None

    assert outcome(pieces) == outcome([data])


@given(split_streams())
def test_framer_forwards_a_prefix_that_always_ends_on_the_last_boundary(
    case: tuple[bytes, list[bytes]],
) -> None:
    data, pieces = case
    framer = SseEventFramer()
    forwarded = b""
    fed = 0
    for piece in pieces:
        out = framer.feed(piece)
        fed += len(piece)
        forwarded += out
        assert forwarded + framer.pending == data[:fed]
        assert len(forwarded) == max(end for end in range(fed + 1) if is_boundary(data[:end]))


@given(split_streams(), st.integers(1, 32))
def test_framer_bound_raises_only_sse_error(case: tuple[bytes, list[bytes]], max_event: int) -> None:
    _, pieces = case
    framer = SseEventFramer(max_event_bytes=max_event)
    try:
        for piece in pieces:
            framer.feed(piece)
    except SseError:
        return
    assert len(framer.pending) <= max_event


_FIELD_TEXT = st.binary(max_size=12).filter(lambda b: b"\r" not in b and b"\n" not in b)


@st.composite
def event_per_chunk(draw: st.DrawFn) -> list[bytes]:
    """Events one per chunk, mostly in the two shapes providers send tokens in (`data: …` alone, or after
    `event: …`) and some not quite (no space after the colon, an `id`, two data lines, a comment), so
    the parser's shortcut for the usual shapes is checked against the reference on its edges too."""
    shapes = st.sampled_from(
        [
            b"data: %b\n\n",
            b"event: %b\ndata: %b\n\n",
            b"data:%b\n\n",
            b"event: %b\n\n",
            b"id: %b\ndata: %b\n\n",
            b"data: %b\ndata: %b\n\n",
            b": %b\ndata: %b\n\n",
            b"event: %b\ndata: %b\nevent: x\n\n",
        ]
    )
    chunks = []
    for shape in draw(st.lists(shapes, max_size=8)):
        fields = tuple(draw(_FIELD_TEXT) for _ in range(shape.count(b"%b")))
        chunks.append(shape % fields)
    return chunks


@given(event_per_chunk(), st.integers(1, 48))
def test_parser_one_event_per_chunk_matches_the_reference(chunks: list[bytes], bound: int) -> None:
    assert feed_all(SseParser(), chunks) == reference_events(b"".join(chunks))

    def outcome(pieces: list[bytes]) -> list[SseEvent] | None:
        try:
            return feed_all(SseParser(max_line_bytes=bound, max_event_bytes=bound), pieces)
        except SseError:
            return None

    byte_by_byte = [bytes([byte]) for chunk in chunks for byte in chunk]
    assert outcome(chunks) == outcome(byte_by_byte)
