"""AWS binary event-stream framing (`application/vnd.amazon.eventstream`), without I/O.

Bedrock's ConverseStream answers in this framing instead of SSE.  Like
`sse.SseParser` (and h11), the decoder is a buffer plus a little state:
bytes go in with `feed()` in whatever pieces the network delivers, complete
messages come out, and a partial frame waits for the next call.

A frame (all integers big-endian)::

    total length u32 | headers length u32 | prelude CRC32 u32   <- the 12-byte prelude
    headers ...      | payload ...        | message CRC32 u32

The prelude CRC covers the first 8 bytes and is checked *before* the lengths
are trusted, so a corrupted length is reported instead of making us wait for
(or allocate) gigabytes.  The message CRC covers everything before it.  Both
are the plain CRC-32 of `zlib.crc32`.

A header is `name length u8 | name | value type u8 | value`, value types:
0/1 bool true/false (no bytes), 2 byte i8, 3 short i16, 4 int i32, 5 long i64,
6 bytes (u16 length + data), 7 string (u16 length + UTF-8), 8 timestamp
(i64 milliseconds since the epoch), 9 UUID (16 bytes).  Bedrock only sends
strings (`:message-type`, `:event-type`/`:exception-type`, `:content-type`),
but the decoder reads them all so an unexpected header never desynchronises
the stream.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

HeaderValue = str | int | bool | bytes
"""A decoded header value: timestamps become int milliseconds, UUIDs their 16 bytes."""

PRELUDE_LENGTH = 12
"""Total length, headers length and the prelude CRC."""
MESSAGE_OVERHEAD = PRELUDE_LENGTH + 4
"""Prelude plus the trailing message CRC: the size of an empty message."""
MAX_MESSAGE_LENGTH = 16 * 1024 * 1024
"""The limit AWS's own event-stream libraries enforce (aws-c-event-stream)."""
MAX_HEADERS_LENGTH = 128 * 1024

_PRELUDE = struct.Struct(">III")
_LENGTHS = struct.Struct(">II")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")


class EventStreamError(Exception):
    """The byte stream is not valid event-stream framing (bad CRC, absurd length, bad header)."""


class HeaderType(IntEnum):
    """Wire code of a header value."""

    BOOL_TRUE = 0
    BOOL_FALSE = 1
    BYTE = 2
    SHORT = 3
    INTEGER = 4
    LONG = 5
    BYTES = 6
    STRING = 7
    TIMESTAMP = 8
    UUID = 9


class TypedValue(NamedTuple):
    """A header value with an explicit wire type, for encoding what a Python type can't say.

    e.g. `TypedValue(HeaderType.TIMESTAMP, 1700000000000)` or
    `TypedValue(HeaderType.UUID, uuid.bytes)`.
    """

    type: HeaderType
    value: HeaderValue


# Fixed-width integer header types and their big-endian layouts.
_INTEGERS: dict[HeaderType, struct.Struct] = {
    HeaderType.BYTE: struct.Struct(">b"),
    HeaderType.SHORT: struct.Struct(">h"),
    HeaderType.INTEGER: struct.Struct(">i"),
    HeaderType.LONG: struct.Struct(">q"),
    HeaderType.TIMESTAMP: struct.Struct(">q"),
}
_UUID_LENGTH = 16


@dataclass(frozen=True, slots=True)
class EventMessage:
    """One decoded frame: its headers and raw payload (JSON for Bedrock)."""

    headers: dict[str, HeaderValue]
    payload: bytes

    def _text(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value if isinstance(value, str) else None

    @property
    def message_type(self) -> str | None:
        """`:message-type`: `event`, `exception` (modelled error) or `error` (unmodelled)."""
        return self._text(":message-type")

    @property
    def event_type(self) -> str | None:
        """`:event-type` of an `event` message, e.g. `contentBlockDelta`."""
        return self._text(":event-type")

    @property
    def exception_type(self) -> str | None:
        """`:exception-type` of an `exception` message, e.g. `throttlingException`."""
        return self._text(":exception-type")

    @property
    def error_code(self) -> str | None:
        """`:error-code` of an `error` message (its text is in `:error-message`)."""
        return self._text(":error-code")

    @property
    def error_message(self) -> str | None:
        return self._text(":error-message")


class EventStreamDecoder:
    """Feed bytes, get complete messages; a partial trailing frame is kept.

    The buffer is a bytearray read from an offset and compacted only once the
    consumed prefix is at least as large as what remains, so any chunking of
    the input costs linear time overall: a partial frame costs one prelude
    check per call, and each complete frame is checksummed and decoded once.
    Memory is bounded by `max_message_bytes` (never above the AWS limit)
    plus the chunk being fed, because a frame's length is checked as soon
    as its prelude arrives.  After an error the decoder stays failed:
    framing cannot be resynchronised once a length is in doubt.
    """

    __slots__ = ("_buffer", "_error", "_max_message", "_offset")

    def __init__(self, *, max_message_bytes: int = MAX_MESSAGE_LENGTH) -> None:
        self._max_message = min(max_message_bytes, MAX_MESSAGE_LENGTH)
        self._buffer = bytearray()
        self._offset = 0
        self._error: EventStreamError | None = None

    @property
    def has_partial(self) -> bool:
        """Bytes of an incomplete frame are buffered (the stream must not end here)."""
        return len(self._buffer) > self._offset

    def feed(self, data: bytes) -> list[EventMessage]:
        """Consume `data` and return the messages it completed, in order."""
        if self._error is not None:
            raise self._error
        self._buffer += data
        messages: list[EventMessage] = []
        try:
            while (message := self._next_message()) is not None:
                messages.append(message)
        except EventStreamError as exc:
            self._error = exc
            raise
        self._compact()
        return messages

    def finish(self) -> None:
        """The byte stream ended: raise if it stopped in the middle of a frame."""
        if self._error is not None:
            raise self._error
        if self.has_partial:
            pending = len(self._buffer) - self._offset
            self._error = EventStreamError(f"stream ended inside a frame ({pending} bytes buffered)")
            raise self._error

    def _next_message(self) -> EventMessage | None:
        buffer, start = self._buffer, self._offset
        if len(buffer) - start < PRELUDE_LENGTH:
            return None
        total, headers_length, prelude_crc = _PRELUDE.unpack_from(buffer, start)
        if zlib.crc32(buffer[start : start + 8]) != prelude_crc:
            raise EventStreamError("prelude CRC mismatch")
        _check_lengths(total, headers_length, self._max_message)
        if len(buffer) - start < total:
            return None
        crc_at = start + total - 4
        with memoryview(buffer) as view:
            actual_crc = zlib.crc32(view[start:crc_at])
        if actual_crc != _U32.unpack_from(buffer, crc_at)[0]:
            raise EventStreamError("message CRC mismatch")
        headers_start = start + PRELUDE_LENGTH
        payload_start = headers_start + headers_length
        headers = _decode_headers(bytes(buffer[headers_start:payload_start]))
        payload = bytes(buffer[payload_start:crc_at])
        self._offset = start + total
        return EventMessage(headers, payload)

    def _compact(self) -> None:
        if self._offset == len(self._buffer):
            self._buffer.clear()
            self._offset = 0
        elif self._offset and self._offset >= len(self._buffer) - self._offset:
            del self._buffer[: self._offset]
            self._offset = 0


def _check_lengths(total: int, headers_length: int, max_message: int) -> None:
    if total < MESSAGE_OVERHEAD:
        raise EventStreamError(f"frame length {total} is shorter than the {MESSAGE_OVERHEAD}-byte minimum")
    if total > max_message:
        raise EventStreamError(f"frame length {total} exceeds {max_message}")
    if headers_length > MAX_HEADERS_LENGTH:
        raise EventStreamError(f"headers length {headers_length} exceeds {MAX_HEADERS_LENGTH}")
    if headers_length > total - MESSAGE_OVERHEAD:
        raise EventStreamError(f"headers length {headers_length} does not fit in a {total}-byte frame")


def _decode_headers(data: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    position = 0
    while position < len(data):
        name_length = data[position]
        raw_name, position = _take(data, position + 1, name_length)
        kind, position = _take(data, position, 1)
        value, position = _decode_value(kind[0], data, position)
        headers[_utf8(raw_name)] = value
    return headers


def _take(data: bytes, position: int, length: int) -> tuple[bytes, int]:
    """`length` bytes at `position` and the position after them, or an error if they are missing."""
    end = position + length
    if end > len(data):
        raise EventStreamError("a header runs past the end of the headers section")
    return data[position:end], end


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise EventStreamError(f"header text is not UTF-8: {exc}") from exc


def _decode_value(kind: int, data: bytes, position: int) -> tuple[HeaderValue, int]:
    """The value of type `kind` at `position`, and the position after it."""
    if kind == HeaderType.BOOL_TRUE:
        return True, position
    if kind == HeaderType.BOOL_FALSE:
        return False, position
    if kind in _INTEGERS:
        codec = _INTEGERS[HeaderType(kind)]
        raw, position = _take(data, position, codec.size)
        return codec.unpack(raw)[0], position
    if kind in (HeaderType.BYTES, HeaderType.STRING):
        raw_length, position = _take(data, position, 2)
        raw, position = _take(data, position, _U16.unpack(raw_length)[0])
        return (_utf8(raw) if kind == HeaderType.STRING else raw), position
    if kind == HeaderType.UUID:
        return _take(data, position, _UUID_LENGTH)
    raise EventStreamError(f"unknown header value type {kind}")


def encode_message(headers: Mapping[str, HeaderValue | TypedValue], payload: bytes) -> bytes:
    """One complete frame, as AWS would send it (used by tests and the mock provider).

    Plain values pick their natural wire type: `str` → string, `bool` →
    bool, `int` → int32 (int64 if it does not fit), `bytes` → bytes; use a
    `TypedValue` for byte/short/timestamp/UUID.
    """
    encoded_headers = b"".join(_encode_header(name, value) for name, value in headers.items())
    total = MESSAGE_OVERHEAD + len(encoded_headers) + len(payload)
    if total > MAX_MESSAGE_LENGTH or len(encoded_headers) > MAX_HEADERS_LENGTH:
        raise EventStreamError(f"message of {total} bytes exceeds the event-stream limits")
    lengths = _LENGTHS.pack(total, len(encoded_headers))
    prelude = lengths + _U32.pack(zlib.crc32(lengths))
    body = prelude + encoded_headers + payload
    return body + _U32.pack(zlib.crc32(body))


def _encode_header(name: str, value: HeaderValue | TypedValue) -> bytes:
    raw_name = name.encode()
    if not 0 < len(raw_name) < 256:
        raise EventStreamError(f"header name {name!r} must be 1-255 bytes")
    return bytes([len(raw_name)]) + raw_name + _encode_value(_typed(value))


def _typed(value: HeaderValue | TypedValue) -> TypedValue:
    if isinstance(value, TypedValue):
        return value
    if isinstance(value, bool):  # before int: bool is an int subclass
        return TypedValue(HeaderType.BOOL_TRUE if value else HeaderType.BOOL_FALSE, value)
    if isinstance(value, int):
        fits_int32 = -(2**31) <= value < 2**31
        return TypedValue(HeaderType.INTEGER if fits_int32 else HeaderType.LONG, value)
    if isinstance(value, str):
        return TypedValue(HeaderType.STRING, value)
    return TypedValue(HeaderType.BYTES, value)


def _encode_value(typed: TypedValue) -> bytes:
    kind, value = typed
    code = bytes([kind])
    if kind in (HeaderType.BOOL_TRUE, HeaderType.BOOL_FALSE):
        return code
    try:
        if kind in _INTEGERS:
            return code + _INTEGERS[kind].pack(value)
        if kind == HeaderType.UUID and isinstance(value, bytes) and len(value) == _UUID_LENGTH:
            return code + value
        if kind == HeaderType.STRING and isinstance(value, str):
            return code + _length_prefixed(value.encode())
        if kind == HeaderType.BYTES and isinstance(value, bytes):
            return code + _length_prefixed(value)
    except struct.error as exc:
        raise EventStreamError(f"header value {value!r} does not fit type {kind.name}") from exc
    raise EventStreamError(f"header value {value!r} cannot be encoded as {kind.name}")


def _length_prefixed(raw: bytes) -> bytes:
    if len(raw) > 0xFFFF:
        raise EventStreamError(f"header value of {len(raw)} bytes exceeds 65535")
    return _U16.pack(len(raw)) + raw
