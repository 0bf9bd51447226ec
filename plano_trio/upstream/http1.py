"""A sans-I/O HTTP/1.1 client state machine, specialised for the upstream pool.

Same shape as h11 (bytes in with `receive_data`, events out of `next_event`,
no I/O), but cut down to what a keep-alive client of LLM APIs needs and tuned
for it: h11 spends ~55 µs on a small request/response cycle and several µs
per streamed chunk, and this runs on every proxied request (compare with
``python -m bench.http1_bench``).  What it does:

- `encode_request` validates and serialises a whole request (head and body)
  into one buffer, once, before any connection is chosen;
- `ClientConnection` parses the response: status line, headers (names
  lowercased, values stripped of OWS), 1xx interim responses skipped, body
  framing per RFC 9112 §6.3 (no body for HEAD/204/304; chunked; Content-Length;
  else read until close) and keep-alive (HTTP/1.1, no ``connection: close``,
  body fully read with a known length, nothing left over);
- body data comes out as few, large `bytes` as possible: a Content-Length body
  is a slice of what was received (the very same object when a read was all
  body), and all chunk payload available after a read is joined into one
  `bytes`, so one upstream read becomes one downstream write.

Framing follows RFC 9112 strictly, because a response whose end we misjudge
would be paired with the next request on the connection:

- ``Transfer-Encoding`` must be exactly ``chunked``, and is an error in an
  HTTP/1.0 response (§6.1: such a message "is to be considered faulty");
- with both ``Transfer-Encoding`` and ``Content-Length``, chunked framing
  wins (§6.3) and the connection is not reused, since such a response may be
  an attempt at response splitting; the body cannot leak further because the
  gateway re-frames it for its client;
- a chunk-size line is ``hex [ext]`` exactly: whitespace is allowed only
  around the ``;`` and ``=`` of a chunk extension (BWS), extension names are
  tokens and values tokens or quoted strings; trailer fields have the syntax
  of header fields.  Both are checked with a linear-time pattern.

What it does not do: pipelining, CONNECT, Upgrade/101, HTTP/1.0 keep-alive,
transfer codings other than ``chunked``, obs-fold (rejected rather than
unfolded), trailers (validated, then dropped).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple, TypeAlias

MAX_HEAD_SIZE = 65536
"""Bytes a response head (status line, headers, blank line) or a trailer section may take."""

MAX_CHUNK_LINE = 4096
"""Bytes a chunk-size line (hex size plus extensions) may take, CRLF excluded."""

_MAX_CHUNK_DIGITS = 16  # 2**64 - 1: nobody sends a bigger chunk
_MAX_LENGTH_DIGITS = 18  # < 2**63: a Content-Length beyond that is an attack or a bug

_CRLF = b"\r\n"
_TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEXDIGITS = b"0123456789ABCDEFabcdef"
_FIELD_BYTES = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
"""Bytes allowed in a received head besides CRLF line ends: HTAB, SP, VCHAR, obs-text."""
_NOT_CR_LF_NUL = bytes(b for b in range(256) if b not in b"\r\n\0")
_STATUS_LINE = re.compile(rb"HTTP/(1\.[01]) ([1-9][0-9][0-9])(?: (.*))?", re.DOTALL)
_TOKEN_RE = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]++"
_QUOTED_RE = rb'"(?:[\t !#-\[\]-~\x80-\xff]++|\\[\t -~\x80-\xff])*+"'
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16}+)(?:[ \t]*+;[ \t]*+%s(?:[ \t]*+=[ \t]*+(?:%s|%s))?+)*+"
    % (_TOKEN_RE, _TOKEN_RE, _QUOTED_RE)
)
"""chunk-size [chunk-ext] (RFC 9112 §7.1.1); possessive quantifiers keep the match linear."""
_NO_BODY_STATUSES = frozenset((204, 304))


# --- errors ------------------------------------------------------------------------------------------


class Http1Error(Exception):
    """Base of everything this module raises."""


class LocalProtocolError(Http1Error):
    """Our side is at fault: an unsendable request, or the state machine used out of order."""


class RemoteProtocolError(Http1Error):
    """The upstream sent something that is not valid HTTP/1.1 (or that we refuse to parse)."""


class IncompleteResponse(Http1Error):
    """The upstream closed the connection before the response was complete.

    Kept apart from `RemoteProtocolError` because callers report a hang-up
    (``closed``) differently from a broken server (``protocol``).
    """


# --- events ------------------------------------------------------------------------------------------


class Signal(enum.Enum):
    """The non-data events `next_event` returns."""

    NEED_DATA = "NEED_DATA"
    END_OF_MESSAGE = "END_OF_MESSAGE"


NEED_DATA: Final = Signal.NEED_DATA
"""Nothing more can be parsed until `receive_data` is called again."""
END_OF_MESSAGE: Final = Signal.END_OF_MESSAGE
"""The response body is complete (returned again on every later call in the cycle)."""


class Response(NamedTuple):
    """A final (non-1xx) response head."""

    status: int
    headers: list[tuple[bytes, bytes]]
    """In received order; names lowercased, values stripped of surrounding whitespace."""
    http_version: bytes
    """``b"1.1"`` or ``b"1.0"``, as h11 spells it."""
    reason: bytes


Event: TypeAlias = Response | bytes | Signal
"""What `next_event` returns: a head, a non-empty piece of body, or a `Signal`."""


class Request(NamedTuple):
    """A request serialised by `encode_request`: what `ClientConnection.send` needs to know."""

    method: bytes
    data: bytes
    """Request line, headers, blank line and body: the bytes to write, in one `send_all`."""
    keep_alive: bool
    """False if the request itself carries ``connection: close``."""


# --- request -----------------------------------------------------------------------------------------


def encode_request(
    method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes
) -> Request:
    """Serialise a request; raise `LocalProtocolError` if it cannot be sent as is.

    Header names must be lowercase (HTTP/2 style); framing (Host,
    Content-Length) is the caller's business, this only writes what it is
    given.  Header values were either parsed by our own server side or are our
    own, so the only check is the one that matters for safety: no CR, LF or NUL
    anywhere in the head (which would let a value smuggle in headers or a
    second request).  It costs one `translate` over the whole head instead of a
    regex per header.
    """
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, _CRLF)
    head = b"".join(parts)
    if head.translate(None, _NOT_CR_LF_NUL) != _CRLF * (len(headers) + 1):
        raise LocalProtocolError(_describe_unsendable(method, target, headers))
    if not method or method.translate(None, _TOKEN) or method == b"CONNECT":
        raise LocalProtocolError(f"unsupported request method {method!r}")
    if not target or b" " in target:
        raise LocalProtocolError(f"invalid request target {target[:200]!r}")
    keep_alive = b"\nconnection:" not in head or not _has_close(
        [value for name, value in headers if name == b"connection"]
    )
    return Request(method, b"".join((head, _CRLF, body)), keep_alive)


def _describe_unsendable(method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]]) -> str:
    """Name the culprit once we know there is one (the slow path)."""
    if any(c in method + target for c in b"\r\n\0"):
        return f"CR, LF or NUL in the request line {method!r} {target[:200]!r}"
    for name, value in headers:
        if any(c in name + value for c in b"\r\n\0"):
            return f"CR, LF or NUL in request header {name[:100]!r}"
    return "CR, LF or NUL in the request head"


def _has_close(values: list[bytes]) -> bool:
    """Whether Connection header values list the ``close`` option (case-insensitive)."""
    for value in values:
        lowered = value.lower()
        if b"close" in lowered and b"close" in [token.strip() for token in lowered.split(b",")]:
            return True
    return False


# --- response ----------------------------------------------------------------------------------------


class _State(enum.Enum):
    IDLE = "IDLE"  # waiting for `send`
    HEAD = "HEAD"  # request sent, parsing the response head
    BODY = "BODY"  # parsing the body with `_read_body`
    DONE = "DONE"  # response complete
    ERROR = "ERROR"  # a parse error or EOF; the connection can only be closed


_IDLE: Final = _State.IDLE
_HEAD: Final = _State.HEAD
_BODY: Final = _State.BODY
_DONE: Final = _State.DONE
_ERROR: Final = _State.ERROR

# Chunked-body positions other than "inside chunk data" (`_chunk_left` > 0):
_AT_SIZE_LINE: Final = 0
_AT_DATA_CRLF: Final = -1
_AT_TRAILERS: Final = -2


class ClientConnection:
    """The client half of one HTTP/1.1 connection: `send` a request, feed bytes, read events.

    Cycle: `send(request)` → `receive_data`/`next_event` until a `Response`,
    then body `bytes` until `END_OF_MESSAGE` (`feed` is `receive_data` and
    `next_event` in one call) → `start_next_cycle()` if `reusable`.  Every
    error is final: the state machine stays in an error state and the
    connection must be closed.

    The receive buffer is the last received `bytes` object plus an offset
    while it is being consumed (so body data can be sliced out of it, or
    returned whole), and becomes a `bytearray` only when unparsed bytes must
    wait for the next read; it is compacted once more than half is consumed,
    so partial heads and chunk lines cost linear, not quadratic, time.
    """

    __slots__ = (
        "_body_left",
        "_buf",
        "_chunk_left",
        "_eof",
        "_head_only",
        "_keep_alive",
        "_pos",
        "_read_body",
        "_scanned",
        "_state",
        "awaiting_chunk",
    )

    def __init__(self) -> None:
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._scanned = 0
        """Bytes after `_pos` already searched for the end of a head/trailer section."""
        self._eof = False
        self._state = _IDLE
        self._head_only = False
        self._keep_alive = True
        self._read_body: Callable[[], Event] = self._read_until_close
        self._body_left = 0
        self._chunk_left = _AT_SIZE_LINE
        self.awaiting_chunk = False
        """Nothing is buffered and the next byte received starts a chunk-size line (so `next_event`
        would say NEED_DATA, and `feed` may read a whole chunk in place).  Set by the chunked-body
        parser when it consumed everything, cleared by `receive_data`."""

    # --- driving ----------------------------------------------------------------------------------

    def send(self, request: Request) -> bytes:
        """Start a cycle with `request`; returns the bytes to write (`request.data`)."""
        if self._state is not _IDLE:
            raise LocalProtocolError(f"cannot send a request in state {self._state.name}")
        self._head_only = request.method == b"HEAD"
        self._keep_alive = request.keep_alive
        self._state = _HEAD
        return request.data

    def receive_data(self, data: bytes | bytearray) -> None:
        """Add received bytes; ``b""`` means the peer closed its side (EOF).

        `data` is copied only if it must be (a `bytearray`, or a partial head
        or chunk line waiting for the rest); body bytes are sliced from it.
        """
        self.awaiting_chunk = False
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("data received after EOF")
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):  # all consumed: keep the new bytes as they are
            self._buf = data if type(data) is bytes else bytes(data)
            self._pos = 0
        elif type(buf) is bytearray:
            buf += data
        else:  # leftover in an immutable buffer: from now on, append in place
            leftover = bytearray(buf[pos:])
            leftover += data
            self._buf = leftover
            self._pos = 0

    def feed(self, data: bytes | bytearray) -> Event:
        """`receive_data(data)`, then `next_event()`: a body reader's one call per socket read.

        The usual read of a token stream is exactly one whole chunk, size line to closing CRLF.
        While `awaiting_chunk`, such a read is answered from `data` itself: nothing is buffered,
        and neither the general loop of `_read_chunked` nor the dispatch of `next_event` runs
        (together they were most of a relayed token's parsing).  Anything else (several chunks,
        a partial one, extensions, the last chunk) goes the long way.  The size line is the one
        the loop would read first, so `_chunk_size` answers (or fails) exactly as it would there.
        """
        if self.awaiting_chunk and type(data) is bytes:
            line_end = data.find(_CRLF, 0, _MAX_CHUNK_DIGITS)
            if line_end >= 0:
                start = line_end + 2
                try:
                    stop = start + _chunk_size(data[:line_end])
                except Http1Error:
                    self._state = _ERROR
                    raise
                if stop + 2 == len(data) and stop > start and data.endswith(_CRLF):
                    return data[start:stop]
        self.receive_data(data)
        return self.next_event()

    def next_event(self) -> Event:
        """The next event parsed from what was received: `Response`, body `bytes`, or a `Signal`."""
        state = self._state
        try:
            if state is _BODY:
                return self._read_body()
            if state is _HEAD:
                return self._read_head()
        except Http1Error:
            self._state = _ERROR
            raise
        if state is _DONE:
            return END_OF_MESSAGE
        if state is _IDLE:
            raise LocalProtocolError("no request was sent")
        raise RemoteProtocolError("the connection already failed")

    @property
    def body_remaining(self) -> int | None:
        """Bytes of a Content-Length body not yet handed out; None when the length is not declared."""
        if self._state is _DONE:
            return 0
        if self._state is _BODY and self._read_body == self._read_content_length:
            return self._body_left
        return None

    @property
    def reusable(self) -> bool:
        """The response is complete, keep-alive was agreed, and nothing unexpected is buffered."""
        return self._state is _DONE and self._keep_alive and not self._eof and self._pos >= len(self._buf)

    def start_next_cycle(self) -> None:
        """Get ready for the next request on this connection; only valid when `reusable`.

        Bytes received after the end of the response mean the upstream sent
        more than it declared: that is reported here rather than being parsed
        as the head of the next response (which would pair responses with the
        wrong requests).
        """
        if self._state is not _DONE or not self._keep_alive or self._eof:
            raise LocalProtocolError("the connection is not reusable")
        extra = len(self._buf) - self._pos
        if extra > 0:
            self._state = _ERROR
            raise RemoteProtocolError(f"{extra} bytes received after the end of the response")
        self._buf = b""
        self._pos = 0
        self._scanned = 0
        self._state = _IDLE

    # --- buffer -----------------------------------------------------------------------------------

    def _consume_to(self, pos: int) -> None:
        """Mark everything before `pos` as parsed; drop or compact the buffer when that pays."""
        buf = self._buf
        if pos >= len(buf):
            self._buf = b""
            self._pos = 0
        elif type(buf) is bytearray and pos > len(buf) >> 1:
            del buf[:pos]
            self._pos = 0
        else:
            self._pos = pos

    def _find_blank_line(self, what: str) -> int:
        """Index just past the CRLFCRLF ending a head/trailer section, or -1 if not received yet.

        Enforces `MAX_HEAD_SIZE` and resumes the search where the last one
        stopped, so a head arriving in tiny pieces is scanned once.  Line ends
        must be CRLF: a bare-LF head (h11 tolerated them) is an error.
        """
        buf = self._buf
        pos = self._pos
        start = pos + self._scanned
        limit = pos + MAX_HEAD_SIZE
        end = buf.find(b"\r\n\r\n", start, limit)
        if end < 0:
            if buf.find(b"\n\n", start, limit) >= 0:  # a CRLFCRLF will never come: fail now
                raise RemoteProtocolError(f"bare LF line endings in the {what}")
            pending = len(buf) - pos
            if pending >= MAX_HEAD_SIZE:
                raise RemoteProtocolError(f"{what} larger than {MAX_HEAD_SIZE} bytes")
            self._scanned = max(0, pending - 3)
            return -1
        self._scanned = 0
        return end + 4

    # --- head -------------------------------------------------------------------------------------

    def _read_head(self) -> Event:
        """Parse heads until a final one; 1xx interim responses (100 Continue, 103) are dropped."""
        while True:
            end = self._find_blank_line("response head")
            if end < 0:
                if self._eof:
                    if self._pos >= len(self._buf):
                        raise IncompleteResponse("before sending a response")
                    raise IncompleteResponse("in the middle of the response head")
                return NEED_DATA
            head = self._buf[self._pos : end - 4]
            self._consume_to(end)
            status, version, reason, headers, names = _parse_head(
                head if type(head) is bytes else bytes(head)
            )
            if status >= 200:
                self._start_body(status, version, headers, names)
                return Response(status, headers, version, reason)
            if status == 101:
                raise RemoteProtocolError("101 Switching Protocols without an Upgrade request")

    def _start_body(
        self, status: int, version: bytes, headers: list[tuple[bytes, bytes]], names: list[bytes]
    ) -> None:
        """Choose the body framing (RFC 9112 §6.3) and decide keep-alive."""
        if version != b"1.1":
            if b"transfer-encoding" in names:
                raise RemoteProtocolError("transfer-encoding in an HTTP/1.0 response")
            self._keep_alive = False
        elif b"connection" in names and _has_close(_values(headers, b"connection")):
            self._keep_alive = False
        if self._head_only or status in _NO_BODY_STATUSES:
            self._state = _DONE
        elif b"transfer-encoding" in names:
            _check_chunked(_values(headers, b"transfer-encoding"))
            if b"content-length" in names:  # T-E wins, but such a message smells of smuggling
                self._keep_alive = False
            self._chunk_left = _AT_SIZE_LINE
            self._read_body = self._read_chunked
            self._state = _BODY
        elif b"content-length" in names:
            length = _content_length(_values(headers, b"content-length"))
            self._body_left = length
            self._read_body = self._read_content_length
            self._state = _BODY if length else _DONE
        else:
            self._keep_alive = False
            self._read_body = self._read_until_close
            self._state = _BODY

    # --- bodies -----------------------------------------------------------------------------------

    def _read_content_length(self) -> Event:
        """As much of the declared body as is buffered, sliced out in one piece."""
        buf = self._buf
        pos = self._pos
        available = len(buf) - pos
        if available <= 0:
            if self._eof:
                raise IncompleteResponse(f"with {self._body_left} bytes of the response body missing")
            return NEED_DATA
        left = self._body_left
        end = pos + (available if available < left else left)
        data = buf[pos:end]  # a slice spanning a whole `bytes` is that same object: no copy
        self._consume_to(end)
        left -= end - pos
        self._body_left = left
        if not left:
            self._state = _DONE
        return data if type(data) is bytes else bytes(data)

    def _read_until_close(self) -> Event:
        """A body without declared length: everything, until EOF (the connection is not reusable)."""
        buf = self._buf
        pos = self._pos
        if pos < len(buf):
            data = buf[pos:]
            self._consume_to(len(buf))
            return data if type(data) is bytes else bytes(data)
        if self._eof:
            self._state = _DONE
            return END_OF_MESSAGE
        return NEED_DATA

    def _read_chunked(self) -> Event:
        """All chunk payload that is buffered, complete or partial, joined into one `bytes`.

        `_chunk_left` says where parsing stands: inside chunk data (bytes
        left, > 0), at the CRLF after chunk data, at a chunk-size line, or in
        the trailer section after the last chunk.
        """
        buf = self._buf
        pos = self._pos
        end = len(buf)
        if pos >= end:  # the usual call right after a read was consumed: skip the machinery
            if self._eof:
                raise IncompleteResponse("in the middle of a chunked response body")
            return NEED_DATA
        left = self._chunk_left
        parts: list[bytes | bytearray] = []
        while True:
            if left > 0:
                stop = pos + left
                if stop > end:
                    if pos < end:
                        parts.append(buf[pos:end])
                        left = stop - end
                        pos = end
                    break
                parts.append(buf[pos:stop])
                pos = stop
                left = _AT_DATA_CRLF
            if left == _AT_DATA_CRLF:
                if end - pos < 2:
                    break
                if buf[pos] != 13 or buf[pos + 1] != 10:
                    raise RemoteProtocolError("chunk data not followed by CRLF")
                pos += 2
                left = _AT_SIZE_LINE
            if left != _AT_SIZE_LINE:
                break  # in the trailer section
            line_end = buf.find(_CRLF, pos, pos + MAX_CHUNK_LINE + 2)
            if line_end < 0:
                if end - pos >= MAX_CHUNK_LINE + 2:
                    raise RemoteProtocolError(f"chunk-size line longer than {MAX_CHUNK_LINE} bytes")
                break
            left = _chunk_size(buf[pos:line_end])
            pos = line_end + 2
            if not left:
                left = _AT_TRAILERS
                break
        self._chunk_left = left
        self._consume_to(pos)
        self.awaiting_chunk = left == _AT_SIZE_LINE and pos >= end and not self._eof
        done = left == _AT_TRAILERS and self._skip_trailers()
        if done:
            self._state = _DONE
        if parts:
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            return data if type(data) is bytes else bytes(data)
        if done:
            return END_OF_MESSAGE
        if self._eof:
            raise IncompleteResponse("in the middle of a chunked response body")
        return NEED_DATA

    def _skip_trailers(self) -> bool:
        """Consume the trailer section after the last chunk (dropped: nobody downstream wants it).

        True once its blank line was consumed; False if more bytes are needed.
        Fields are validated like header fields even so: a malformed trailer
        means the framing is not what we think it is.
        """
        buf = self._buf
        pos = self._pos
        if buf.startswith(_CRLF, pos):  # no trailer fields: the usual case
            self._consume_to(pos + 2)
            return True
        if len(buf) - pos < 2:
            return False
        end = self._find_blank_line("trailer section")
        if end < 0:
            return False
        section = buf[pos : end - 4]
        _check_trailers(section if type(section) is bytes else bytes(section))
        self._consume_to(end)
        return True


# --- head parsing helpers ----------------------------------------------------------------------------


def _parse_head(head: bytes) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]], list[bytes]]:
    """Status, version, reason, headers and their names, from a head without its final CRLFCRLF.

    Validation is done on the whole head with a few C-level passes rather
    than a regex per header (see `_check_field_bytes` and `_parse_field_lines`).
    """
    lines = head.split(_CRLF)
    _check_field_bytes(head, lines, "response head")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise RemoteProtocolError(f"invalid status line {lines[0][:100]!r}")
    version, status, reason = match.group(1, 2, 3)
    del lines[0]
    headers, names = _parse_field_lines(lines, "response header")
    return int(status), version, reason or b"", headers, names


def _check_trailers(section: bytes) -> None:
    """Trailer fields (without the final CRLFCRLF) have the syntax of header fields, or it is an error."""
    lines = section.split(_CRLF)
    _check_field_bytes(section, lines, "trailer section")
    _parse_field_lines(lines, "trailer field")


def _check_field_bytes(block: bytes, lines: list[bytes], what: str) -> None:
    """One `translate` proves the only control bytes are HTAB and CRLF line ends (no NUL, bare CR or LF)."""
    if block.translate(None, _FIELD_BYTES) != _CRLF * (len(lines) - 1):
        raise RemoteProtocolError(f"control character, bare CR or bare LF in the {what}")


def _parse_field_lines(lines: list[bytes], what: str) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    """``name: value`` pairs (names lowercased, values stripped of OWS) and the names, in order.

    The joined names must be token characters only (which also rejects
    obs-fold continuation lines and whitespace before the colon); none may
    be empty.
    """
    fields: list[tuple[bytes, bytes]] = []
    append = fields.append
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon:
            raise RemoteProtocolError(_describe_bad_field(lines, what))
        append((name.lower(), value.strip()))
    names = [name for name, _ in fields]
    if b"".join(names).translate(None, _TOKEN) or b"" in names:
        raise RemoteProtocolError(_describe_bad_field(lines, what))
    return fields, names


def _describe_bad_field(lines: list[bytes], what: str) -> str:
    """Name the first offending field line (the slow path, once we know there is one)."""
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            return f"obsolete line folding in {what} line {line[:100]!r}"
        name, sep, _ = line.partition(b":")
        if not sep or not name or name.translate(None, _TOKEN):
            return f"invalid {what} line {line[:100]!r}"
    return f"invalid {what}"


def _values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Every value of header `name` (callers first check `names`, so the scan runs only if present)."""
    return [value for n, value in headers if n == name]


def _check_chunked(values: list[bytes]) -> None:
    """Transfer-Encoding must be exactly ``chunked``: other codings would reach the client undecoded."""
    if len(values) == 1 and values[0].lower() == b"chunked":
        return
    codings = [token.strip() for value in values for token in value.lower().split(b",")]
    if codings != [b"chunked"]:
        shown = b", ".join(values)[:100]
        raise RemoteProtocolError(f"unsupported transfer-encoding {shown!r}")


def _content_length(values: list[bytes]) -> int:
    """The one Content-Length; repeated identical values (``5, 5``) are tolerated (RFC 9110 §8.6)."""
    if len(values) == 1 and values[0].isdigit():
        text = values[0]
    else:
        distinct = {token.strip() for value in values for token in value.split(b",")}
        if len(distinct) != 1:
            raise RemoteProtocolError(f"conflicting content-length values {b', '.join(values)[:100]!r}")
        text = distinct.pop()
    if not text.isdigit() or len(text) > _MAX_LENGTH_DIGITS:
        raise RemoteProtocolError(f"invalid content-length {text[:100]!r}")
    return int(text)


def _chunk_size(line: bytes | bytearray) -> int:
    """The size from a chunk-size line (without CRLF); extensions are validated, then ignored."""
    if 0 < len(line) <= _MAX_CHUNK_DIGITS and not line.translate(None, _HEXDIGITS):
        return int(line, 16)  # the usual line: hex digits only
    match = _CHUNK_LINE.fullmatch(line)
    if match is None:
        raise RemoteProtocolError(f"invalid chunk-size line {bytes(line[:100])!r}")
    return int(match.group(1), 16)
