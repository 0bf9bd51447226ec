"""RESP, Redis's wire protocol, without I/O: commands to bytes, bytes to typed replies.

The native Redis client (`redis_native`) owns the sockets; this module only
turns a command into the bytes to send (`encode_command`) and the bytes
received into replies (`RespParser`, fed whatever each read returned, in
any split).  Keeping it pure is what lets the tests throw every split and
every kind of garbage at it without a server.

What it parses: RESP2 fully (simple string, error, integer, bulk string
with nil, array with nil), and, so that a server or proxy answering in
RESP3 is not mistaken for garbage, RESP3's null, boolean, double, big
number, verbatim string, blob error, map, set and push types; attributes
are read and dropped.  The client speaks RESP2 (it never sends HELLO), so
RESP3 is only tolerated, never relied on.

Everything that arrives is hostile until parsed:

- every length is bounded before anything is buffered for it: a line (a
  simple string, an error, a number) by `MAX_LINE_BYTES`, a bulk string by
  `MAX_BULK_BYTES` (the largest value a session read asks for, plus
  slack), an aggregate by `MAX_ELEMENTS` and `MAX_DEPTH`, a whole reply by
  `MAX_REPLY_BYTES`;
- numbers are checked with a strict pattern before `int()`/`float()` see
  them (Python's own parsers accept ``_``, spaces and non-ASCII digits);
- the work is linear in the bytes fed: a line's terminator is searched for
  from where the last search stopped, consumed input is dropped by moving
  an offset and compacting once per reply, never by re-slicing per read;
- anything malformed raises `RespProtocolError` (and only that), after
  which the parser stays broken: the connection it reads must be closed,
  because where the next reply starts is no longer known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from .store import MAX_VALUE_BYTES

MAX_LINE_BYTES: Final = 8 * 1024
"""Longest line (simple string, error, number) before its CRLF.  Redis's own errors quote at most 128
bytes of a command; 8 KiB is generous for anything a well-behaved server says on one line."""

MAX_BULK_BYTES: Final = MAX_VALUE_BYTES + 1024
"""Longest bulk string.  Reads ask for at most `MAX_VALUE_BYTES` + 1 bytes (`GETRANGE 0 MAX_VALUE_BYTES`
is inclusive); the slack keeps the bound from being an off-by-one trap."""

MAX_ELEMENTS: Final = 1024
"""Most elements of one array, set, push or map (pairs count twice).  The session store reads no
aggregates at all; this only keeps a hostile one small."""

MAX_DEPTH: Final = 8
"""Most aggregates nested inside each other (attributes included)."""

MAX_REPLY_BYTES: Final = 4 * MAX_BULK_BYTES
"""Most bytes one top-level reply may span, whatever its shape."""

_CRLF: Final = b"\r\n"
_INTEGER = re.compile(rb"-?[0-9]{1,19}")
_BIG_NUMBER = re.compile(rb"-?[0-9]{1,64}")
_DOUBLE = re.compile(rb"[-+]?(?:inf|nan|[0-9]{1,64}(?:\.[0-9]{1,64})?(?:[eE][-+]?[0-9]{1,4})?)")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class RespProtocolError(Exception):
    """The bytes are not RESP, or exceed a bound: the stream they came from cannot be trusted further."""


@dataclass(frozen=True, slots=True)
class SimpleString:
    """A `+` reply (`OK`, `PONG`), kept apart from bulk strings, which are plain `bytes`."""

    value: bytes


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A `-` (or RESP3 `!`) reply: Redis refused the command; the connection itself is fine."""

    message: str

    @property
    def kind(self) -> str:
        """The error's first word (`ERR`, `WRONGTYPE`, `NOAUTH`, ...), which is how Redis types errors."""
        return self.message.split(" ", 1)[0]


@dataclass(frozen=True, slots=True)
class RespMap:
    """A RESP3 `%` map as its pairs in order (keys may be aggregates, so not a dict)."""

    pairs: tuple[tuple[Reply, Reply], ...]


@dataclass(frozen=True, slots=True)
class Push:
    """A RESP3 `>` out-of-band message (pub/sub, invalidation); never a command's reply."""

    items: list[Reply]


Reply = SimpleString | ErrorReply | int | bytes | None | list["Reply"] | bool | float | RespMap | Push
"""A parsed reply: bulk strings are `bytes`, nil (`$-1`, `*-1`, `_`) is None, arrays are lists."""


class NeedData:
    """The type of `NEED_DATA`, `RespParser.next_reply`'s answer while no complete reply is buffered
    (test with `isinstance`, which narrows the type)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


class _Opened:
    __slots__ = ()


_OPENED: Final = _Opened()
"""`_start`'s answer when nothing is complete yet: a bulk body or an aggregate's elements follow (or an
empty attribute was read, which annotates the value that follows)."""


def encode_command(*args: bytes | str | int) -> bytes:
    """One command as RESP: an array of bulk strings (str as UTF-8, int in decimal).

    Bulk strings are length-prefixed, so an argument may hold any bytes, CRLF
    and RESP framing included, without ending the command early.
    """
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bool) or not isinstance(arg, bytes | str | int):
            raise TypeError(f"a RESP argument is bytes, str or int, not {type(arg).__name__}")
        raw = arg if isinstance(arg, bytes) else str(arg).encode("utf-8", "surrogatepass")
        parts += (b"$%d\r\n" % len(raw), raw, _CRLF)
    return b"".join(parts)


@dataclass(slots=True)
class _Frame:
    """An aggregate whose header has been read and whose elements are still arriving."""

    kind: bytes  # b"*", b"~", b">", b"%" or b"|"
    expected: int
    items: list[Reply] = field(default_factory=list)

    def build(self) -> Reply:
        if self.kind == b"%":
            it = iter(self.items)
            return RespMap(tuple(zip(it, it, strict=True)))
        if self.kind == b">":
            return Push(self.items)
        return self.items


class RespParser:
    """Replies out of a byte stream fed in pieces of any size.

        parser.feed(await stream.receive_some(...))
        while not isinstance(reply := parser.next_reply(), NeedData):
            ...

    The bounds are parameters (defaults above) so tests can make them small.
    """

    def __init__(
        self,
        *,
        max_line: int = MAX_LINE_BYTES,
        max_bulk: int = MAX_BULK_BYTES,
        max_elements: int = MAX_ELEMENTS,
        max_depth: int = MAX_DEPTH,
        max_reply: int = MAX_REPLY_BYTES,
    ) -> None:
        self._max_line = max_line
        self._max_bulk = max_bulk
        self._max_elements = max_elements
        self._max_depth = max_depth
        self._max_reply = max_reply
        self._buf = bytearray()
        self._pos = 0  # start of what is not parsed yet
        self._scan = 0  # where the search for the next CRLF resumes
        self._stack: list[_Frame] = []
        self._bulk: tuple[bytes, int] | None = None  # (type byte, length) of a bulk body awaited
        self._broken: RespProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of a returned reply (0 between replies: in step)."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray) -> None:
        """Add received bytes (any amount, split anywhere)."""
        self._buf += data

    def next_reply(self) -> Reply | NeedData:
        """The next complete reply, or `NEED_DATA`.  Raises `RespProtocolError`, then again on every call."""
        if self._broken is not None:
            raise self._broken
        try:
            return self._next()
        except RespProtocolError as exc:
            self._broken = exc
            raise

    def _next(self) -> Reply | NeedData:
        buf = self._buf
        while True:
            value: Reply
            if self._bulk is not None:
                kind, size = self._bulk
                end = self._pos + size
                if len(buf) < end + 2:
                    return NEED_DATA
                if buf[end : end + 2] != _CRLF:
                    raise RespProtocolError("bulk string not followed by CRLF")
                body = bytes(buf[self._pos : end])
                self._pos = self._scan = end + 2
                self._bulk = None
                value = self._bulk_value(kind, body)
            else:
                line = self._line()
                if line is None:
                    return NEED_DATA
                started = self._start(line)
                if isinstance(started, _Opened):
                    continue
                value = started
            if self._pos > self._max_reply:
                raise RespProtocolError(f"reply longer than {self._max_reply} bytes")
            # A complete value completes the innermost open aggregate, which may complete the next one ...
            while self._stack:
                frame = self._stack[-1]
                frame.items.append(value)
                if len(frame.items) < frame.expected:
                    break
                self._stack.pop()
                if frame.kind == b"|":
                    break  # an attribute, dropped: the value it annotates comes next
                value = frame.build()
            else:
                return self._finish(value)

    def _finish(self, value: Reply) -> Reply:
        """Drop the reply's bytes and return it.  Once per top-level reply, and `del` at the front of a
        bytearray only moves its start (CPython), so many small replies in one read stay linear."""
        del self._buf[: self._pos]
        self._scan -= self._pos
        self._pos = 0
        return value

    def _line(self) -> bytes | None:
        """The next CRLF-terminated line (without it), or None until one is complete."""
        buf = self._buf
        end = buf.find(_CRLF, self._scan)
        if end < 0:
            if len(buf) - self._pos > self._max_line + 1:
                raise RespProtocolError(f"line longer than {self._max_line} bytes")
            self._scan = max(self._pos, len(buf) - 1)  # a CR at the end may be followed by LF later
            return None
        if end - self._pos > self._max_line:
            raise RespProtocolError(f"line longer than {self._max_line} bytes")
        line = bytes(buf[self._pos : end])
        self._pos = self._scan = end + 2
        return line

    def _start(self, line: bytes) -> Reply | _Opened:
        """Act on a type line: a complete simple value, or `_OPENED` (a bulk body or aggregate follows)."""
        if not line:
            raise RespProtocolError("empty line where a type byte was expected")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return SimpleString(rest)
        if kind == b"-":
            return ErrorReply(rest.decode("utf-8", "replace"))
        if kind == b":":
            return _integer(rest)
        if kind in (b"$", b"=", b"!"):
            size = _integer(rest)
            if size == -1 and kind == b"$":
                return None
            if not 0 <= size <= self._max_bulk:
                raise RespProtocolError(f"bulk length {size} outside 0..{self._max_bulk}")
            if self._pos + size + 2 > self._max_reply:
                raise RespProtocolError(f"reply longer than {self._max_reply} bytes")
            self._bulk = (kind, size)
            return _OPENED
        if kind in (b"*", b"~", b">", b"%", b"|"):
            count = _integer(rest)
            if count == -1 and kind == b"*":
                return None
            expected = count * 2 if kind in (b"%", b"|") else count
            if not 0 <= expected <= self._max_elements:
                raise RespProtocolError(f"aggregate of {count} outside 0..{self._max_elements}")
            if expected == 0:
                return _OPENED if kind == b"|" else _Frame(kind, 0).build()
            if len(self._stack) >= self._max_depth:
                raise RespProtocolError(f"aggregates nested deeper than {self._max_depth}")
            self._stack.append(_Frame(kind, expected))
            return _OPENED
        if kind == b"_":
            if rest:
                raise RespProtocolError("null with a payload")
            return None
        if kind == b"#":
            if rest not in (b"t", b"f"):
                raise RespProtocolError("boolean other than t or f")
            return rest == b"t"
        if kind == b",":
            if _DOUBLE.fullmatch(rest) is None:
                raise RespProtocolError("malformed double")
            return float(rest)
        if kind == b"(":
            if _BIG_NUMBER.fullmatch(rest) is None:
                raise RespProtocolError("malformed big number")
            return int(rest)
        raise RespProtocolError(f"unknown type byte {kind!r}")

    @staticmethod
    def _bulk_value(kind: bytes, body: bytes) -> Reply:
        if kind == b"$":
            return body
        if kind == b"!":
            return ErrorReply(body.decode("utf-8", "replace"))
        # Verbatim string: a three-letter format (`txt`, `mkd`) and a colon, then the text.
        if len(body) < 4 or body[3:4] != b":":
            raise RespProtocolError("verbatim string without its format prefix")
        return body[4:]


def _integer(raw: bytes) -> int:
    """A signed 64-bit decimal, strictly: no sign but `-`, no spaces, underscores or other digits."""
    if _INTEGER.fullmatch(raw) is None:
        raise RespProtocolError(f"malformed integer {raw[:32]!r}")
    value = int(raw)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise RespProtocolError("integer outside 64 bits")
    return value
