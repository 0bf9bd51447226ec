"""Incremental Server-Sent Events parsing, framing and encoding, without I/O.

Modelled on h11: bytes go in with `feed()`, complete events come out, and
whatever is left of a partial event waits for the next call.  Upstream chunk
boundaries fall anywhere (mid-line, mid-`\\r\\n`), so nothing here assumes a
chunk holds whole events.  The WHATWG event-stream rules apply: `\\n`,
`\\r\\n` or `\\r` end a line, a blank line ends an event, `:` starts a
comment, one leading space after the colon is dropped, and several `data:`
lines join with `\\n`.

The input is untrusted (a provider, or anything answering in its place), so
both classes are linear and bounded: each byte is scanned a constant number
of times however the stream is split, only the unfinished line or event is
kept, and a line or event beyond its bound is an `SseError` rather than
unbounded memory.  An earlier parser re-joined and rescanned its whole buffer
on every chunk; a stream without line breaks then cost quadratic CPU and
starved every other request on the loop.
"""

from __future__ import annotations

from typing import NamedTuple, NoReturn

from plano_trio.translate.base import StreamError

MAX_LINE_BYTES = 1024 * 1024
"""Default bound on one line: far above any real event's JSON line, small enough to hold per stream."""
MAX_EVENT_BYTES = 16 * 1024 * 1024
"""Default bound on one event (its data, or its raw bytes in the framer); the gateway passes its body cap."""

_CR = 0x0D
_LF = 0x0A


class SseError(StreamError):
    """The stream broke a bound (a line or an event too large); it cannot be parsed on.

    A `StreamError`, so the edge reports it like any other upstream stream
    failure: an in-stream error event in the client's shape.
    """


class SseEvent(NamedTuple):
    data: bytes
    event: str | None = None
    id: str | None = None


_DATA_ALONE = len(b"data: ")
"""Where the data begins in a chunk that is one `data: …` line and a blank line."""

_new_tuple = tuple.__new__
"""Builds an `SseEvent` without the Python-level `__new__` a NamedTuple's constructor runs (0.16 µs
instead of 0.30 µs an event: the parser makes one per streamed token)."""


class SseParser:
    """Feed bytes, get complete events; a partial trailing line or event is kept.

    Only the unfinished last line is carried between calls (in a bytearray,
    which grows in amortised constant time per byte), and only the new chunk
    is split, so any chunking costs linear time.  After an error the parser
    stays failed: the rest of the stream cannot be framed with confidence.
    """

    __slots__ = (
        "_at_boundary",
        "_data",
        "_data_size",
        "_error",
        "_event",
        "_id",
        "_line",
        "_lone_max",
        "_max_event",
        "_max_line",
        "_pending_cr",
    )

    def __init__(
        self, *, max_line_bytes: int = MAX_LINE_BYTES, max_event_bytes: int = MAX_EVENT_BYTES
    ) -> None:
        self._max_line = max_line_bytes
        self._max_event = max_event_bytes
        self._line = bytearray()
        self._data: list[bytes] = []
        self._data_size = 0
        self._event: str | None = None
        self._id: str | None = None
        self._pending_cr = False
        self._error: SseError | None = None
        self._lone_max = min(max_line_bytes, max_event_bytes)
        """Chunks up to this size cannot break either bound, so `_lone_start` need not count."""
        self._at_boundary = True
        """`at_event_boundary`, kept up to date by `_read_lines` and `_fail` (the only code that changes
        what it depends on) rather than worked out on every token."""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Consume `chunk` and return the events it completed, in order."""
        start = self._lone_start(chunk)
        if start >= 0:
            name = chunk[7 : start - 7].decode("utf-8", "replace") if start > _DATA_ALONE else None
            return [_new_tuple(SseEvent, (chunk[start:-2], name, self._id))]
        return self._feed_lines(chunk)

    def feed_data(self, chunk: bytes) -> list[bytes]:
        """The data of each event `chunk` completed: ``[event.data for event in self.feed(chunk)]``, for
        a reader that needs neither the event's name nor its id (a translator reads the type from the
        JSON), so the usual token's name is not decoded and no `SseEvent` is built for it."""
        start = self._lone_start(chunk)
        if start >= 0:
            return [chunk[start:-2]]
        return [event.data for event in self._feed_lines(chunk)]

    def _feed_lines(self, chunk: bytes) -> list[SseEvent]:
        """`feed` for a chunk the one-event shortcut does not take: the general parser, then the
        boundary state it leaves."""
        if self._error is not None:
            raise self._error
        events = self._read_lines(chunk)
        self._at_boundary = not (self._line or self._data or self._event is not None or self._pending_cr)
        return events

    def _read_lines(self, chunk: bytes) -> list[SseEvent]:
        """The general parser: any chunk, from any state (the caller has checked for an error)."""
        if self._pending_cr and chunk:
            self._pending_cr = False
            if chunk[0] == _LF:
                chunk = chunk[1:]  # the `\n` of a `\r\n` split across two chunks
        if _CR in chunk:  # an int needle: a memchr, ~6x faster than the bytes `b"\r"` on short chunks
            self._pending_cr = chunk[-1] == _CR
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        line = self._line
        if len(lines) == 1:  # no line ended: only the unfinished line grows
            line += chunk
            if len(line) > self._max_line:
                self._fail(f"SSE line longer than {self._max_line} bytes")
            return []
        if line:
            line += lines[0]
            lines[0] = bytes(line)
            line.clear()
        if len(lines[0]) + len(chunk) > self._max_line and max(map(len, lines)) > self._max_line:
            self._fail(f"SSE line longer than {self._max_line} bytes")
        line += lines.pop()
        events: list[SseEvent] = []
        data = self._data
        for text in lines:
            if text[:5] == b"data:":  # most lines: read here rather than in `_field`
                value = text[6:] if text[5:6] == b" " else text[5:]
                self._data_size += len(value) + 1
                if self._data_size > self._max_event:
                    self._fail(f"SSE event larger than {self._max_event} bytes")
                data.append(value)
            elif text[:6] == b"event:":  # the other line most events have (Anthropic's): read here too
                self._event = (text[7:] if text[6:7] == b" " else text[6:]).decode("utf-8", "replace")
            elif text:
                self._field(text)
            elif data or self._event is not None:
                joined = data[0] if len(data) == 1 else b"\n".join(data)
                events.append(_new_tuple(SseEvent, (joined, self._event, self._id)))
                data = self._data = []
                self._data_size = 0
                self._event = None
        return events

    def _lone_start(self, chunk: bytes) -> int:
        """Where the data begins in a chunk that is exactly one event, `data: …` or `event: …` +
        `data: …`, then a blank line, read at an event boundary; -1 for anything else (the general loop
        reads those).

        A provider sends one token per chunk in one of these two shapes (OpenAI's and Anthropic's), and
        the general loop's split and per-line dispatch cost most of a translated token's parsing.  What
        makes the answer the general loop's is checked first: something held from earlier chunks (or an
        error), a `\\r`, a chunk long enough to break a bound, no blank line at its end."""
        if not (
            self._at_boundary
            and chunk.endswith(b"\n\n")
            and len(chunk) <= self._lone_max
            and _CR not in chunk
        ):
            return -1
        end = len(chunk) - 2
        if chunk.startswith(b"data: "):
            return _DATA_ALONE if chunk.find(b"\n", _DATA_ALONE) == end else -1
        if chunk.startswith(b"event: "):
            start = chunk.find(b"\n", 7) + 7  # past the `event:` line's end and `data: `
            if chunk.startswith(b"data: ", start - 6) and chunk.find(b"\n", start) == end:
                return start
        return -1

    def _field(self, line: bytes) -> None:
        name, sep, value = line.partition(b":")
        if not name:
            return  # a comment line
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data_size += len(value) + 1
            if self._data_size > self._max_event:
                self._fail(f"SSE event larger than {self._max_event} bytes")
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            self._id = value.decode("utf-8", "replace")
        # `retry` and unknown fields are ignored, as the spec says.

    def _fail(self, message: str) -> NoReturn:
        self._error = SseError(message)
        self._at_boundary = False
        self._line.clear()  # release what was held: the parser is done
        self._data = []
        raise self._error

    @property
    def has_partial(self) -> bool:
        """True when bytes of an unfinished event are still buffered."""
        return bool(self._line or self._data or self._event is not None)

    @property
    def at_event_boundary(self) -> bool:
        """True when the next byte starts a fresh event: nothing buffered, no `\\r` awaiting its `\\n`,
        no error (bytes that end on a blank line may then be skipped without changing anything)."""
        return self._at_boundary


class _Line:
    """Where the framer stands after the bytes seen so far (a four-state automaton over CR/LF)."""

    BOUNDARY = 0  # an event just ended (or nothing came yet): the next byte starts a fresh event
    AFTER_LF = 1  # a non-empty line ended with `\n`: one more line ending makes a blank line
    AFTER_CR = 2  # a non-empty line ended with `\r`: `\r` makes a blank line, `\n` completes `\r\n`
    INSIDE = 3  # in the middle of a line


_BLANK_LINE_MARKS = (b"\n\n", b"\n\r", b"\r\r")
"""Every blank line contains one of these, and each of them ends one.

A line ending is `\\n`, `\\r\\n` or `\\r`; two in a row make a blank line.
The first ends in `\\n` or `\\r` and the second starts with either; the only
pair missing here, `\\r\\n`, is a single line ending by the longest-match rule.
"""


class SseEventFramer:
    """Pass upstream SSE bytes through in whole events only, holding back an unfinished tail.

    The passthrough relay forwards what `feed` returns: when the provider
    breaks off mid-event, the gateway's error event must start on a fresh
    line and the client must never receive half an event.  The held tail is
    `pending`.  Bytes are not parsed, only scanned for blank lines, so the
    relayed stream is byte-identical to what the provider sent.

    Each chunk is searched once from its end for the last blank line; held
    bytes are never rescanned, so any chunking costs linear time.  A chunk
    that ends exactly on an event boundary with nothing held is returned
    as the same object, which is the common case for well-behaved providers.
    """

    __slots__ = ("_held", "_max_event", "_state")

    def __init__(self, *, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._max_event = max_event_bytes
        self._held = bytearray()
        self._state = _Line.BOUNDARY

    @property
    def pending(self) -> bytes:
        """The bytes of the unfinished event held back so far."""
        return bytes(self._held)

    def feed(self, chunk: bytes) -> bytes:
        """Consume `chunk`; return everything up to and including its last event boundary."""
        held = self._held
        # The usual chunk ends with an event and nothing is held: all of it goes, without searching it.
        if chunk.endswith(_BLANK_LINE_MARKS) and not held:
            self._state = _Line.BOUNDARY
            return chunk
        if not chunk:
            return b""
        end = len(chunk) if chunk.endswith(_BLANK_LINE_MARKS) else self._complete_length(chunk)
        if end == len(chunk):
            self._state = _Line.BOUNDARY
            if not held:
                return chunk
            out = b"".join((held, chunk))
            held.clear()
            return out
        self._state = _line_state_after(chunk[-1])
        if end:
            out = b"".join((held, chunk[:end])) if held else chunk[:end]
            held[:] = chunk[end:]
        else:
            out = b""
            held += chunk
        if len(held) > self._max_event:
            held.clear()
            raise SseError(f"SSE event larger than {self._max_event} bytes")
        return out

    def _complete_length(self, chunk: bytes) -> int:
        """How many leading bytes of `chunk` end on the last event boundary in it (0 if none), for a
        non-empty chunk that does not end with one of `_BLANK_LINE_MARKS` (`feed` checks that first)."""
        mark = chunk.rfind(b"\n\n")
        if _CR in chunk:  # the other marks need a `\r`, which most providers never send
            mark = max(mark, chunk.rfind(b"\n\r"), chunk.rfind(b"\r\r"))
        if mark >= 0:
            end = mark + 2
        elif self._starts_blank_line(chunk[0]):
            end = 1
        else:
            return 0
        # After a blank line, further line endings are further blank lines: the boundary moves on.
        size = len(chunk)
        while end < size and chunk[end] in (_CR, _LF):
            end += 1
        return end

    def _starts_blank_line(self, first: int) -> bool:
        """Does the chunk's first byte end a blank line, given where the previous chunk left off?"""
        if first == _CR:
            return self._state != _Line.INSIDE
        if first == _LF:
            return self._state in (_Line.BOUNDARY, _Line.AFTER_LF)
        return False


def _line_state_after(last: int) -> int:
    """The framer's state after a chunk whose last byte `last` did not end an event."""
    if last == _LF:
        return _Line.AFTER_LF
    if last == _CR:
        return _Line.AFTER_CR
    return _Line.INSIDE


def encode_event(data: bytes, event: str | None = None) -> bytes:
    """One SSE event: optional `event:` line, the data, and the blank line."""
    if _LF in data:
        data = data.replace(b"\n", b"\ndata: ")
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


DONE = b"[DONE]"
"""OpenAI's end-of-stream sentinel (`data: [DONE]`)."""
