"""AWS event-stream framing: known answers, header types, any chunking, corruption, real captures."""

from __future__ import annotations

import random
import struct
import uuid
import zlib
from itertools import pairwise

import pytest

from plano_trio.translate.eventstream import (
    MAX_HEADERS_LENGTH,
    MAX_MESSAGE_LENGTH,
    EventMessage,
    EventStreamDecoder,
    EventStreamError,
    HeaderType,
    HeaderValue,
    TypedValue,
    encode_message,
)
from tests.fixtures.bedrock.captures import TEXT_CAPTURE, TOOLS_CAPTURE, load_capture

FOO_BAR = b'{"foo": "bar"}'
JSON_EVENT = {":event-type": "messageStart", ":content-type": "application/json", ":message-type": "event"}


def raw_frame(
    raw_headers: bytes, payload: bytes, *, total: int | None = None, headers_length: int | None = None
) -> bytes:
    """A frame built independently of `encode_message`, with valid CRCs around whatever lengths we choose."""
    total = 16 + len(raw_headers) + len(payload) if total is None else total
    headers_length = len(raw_headers) if headers_length is None else headers_length
    prelude = struct.pack(">II", total, headers_length)
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def decode_all(data: bytes) -> list[EventMessage]:
    decoder = EventStreamDecoder()
    messages = decoder.feed(data)
    assert not decoder.has_partial
    return messages


def decode_in_chunks(data: bytes, cuts: list[int]) -> list[EventMessage]:
    decoder = EventStreamDecoder()
    messages: list[EventMessage] = []
    bounds = [0, *cuts, len(data)]
    for start, end in pairwise(bounds):
        messages.extend(decoder.feed(data[start:end]))
    decoder.finish()
    return messages


# --------------------------------------------------------------------------- encoding


# Known answers published with the Elixir `event_stream` package (an independent encoder):
# prelude (lengths + CRC) | headers | payload | message CRC.
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, bytes.fromhex("0000001e 00000000 baf2f68a") + FOO_BAR + bytes.fromhex("ae7258e4")),
        (
            {"content-type": "application/json"},
            bytes.fromhex("0000003e 00000020 405df946")
            + b"\x0ccontent-type\x07\x00\x10application/json"
            + FOO_BAR
            + bytes.fromhex("6fa2bf3b"),
        ),
    ],
)
def test_encode_matches_known_answers(headers: dict[str, HeaderValue], expected: bytes) -> None:
    assert encode_message(headers, FOO_BAR) == expected
    assert decode_all(expected) == [EventMessage(headers, FOO_BAR)]


SAMPLE_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678").bytes


@pytest.mark.parametrize(
    ("value", "wire", "decoded"),
    [
        (True, b"\x00", True),
        (False, b"\x01", False),
        (TypedValue(HeaderType.BYTE, -3), b"\x02\xfd", -3),
        (TypedValue(HeaderType.SHORT, 300), b"\x03\x01\x2c", 300),
        (7, b"\x04\x00\x00\x00\x07", 7),
        (-(2**31), b"\x04\x80\x00\x00\x00", -(2**31)),
        (2**31, b"\x05\x00\x00\x00\x00\x80\x00\x00\x00", 2**31),
        (TypedValue(HeaderType.LONG, -1), b"\x05" + b"\xff" * 8, -1),
        (b"\x00\xff", b"\x06\x00\x02\x00\xff", b"\x00\xff"),
        (b"", b"\x06\x00\x00", b""),
        ("héllo", b"\x07\x00\x06h\xc3\xa9llo", "héllo"),
        ("", b"\x07\x00\x00", ""),
        (
            TypedValue(HeaderType.TIMESTAMP, 1_700_000_000_123),
            b"\x08" + struct.pack(">q", 1_700_000_000_123),
            1_700_000_000_123,
        ),
        (TypedValue(HeaderType.UUID, SAMPLE_UUID), b"\x09" + SAMPLE_UUID, SAMPLE_UUID),
    ],
)
def test_header_value_types_round_trip(
    value: HeaderValue | TypedValue, wire: bytes, decoded: HeaderValue
) -> None:
    frame = encode_message({"h": value}, b"")
    assert frame[12:-4] == b"\x01h" + wire
    assert decode_all(frame) == [EventMessage({"h": decoded}, b"")]
    assert decode_all(raw_frame(b"\x01h" + wire, b"")) == [EventMessage({"h": decoded}, b"")]


@pytest.mark.parametrize(
    ("headers", "payload"),
    [
        ({}, b""),
        (JSON_EVENT, b""),
        (JSON_EVENT, b'{"role":"assistant"}'),
        ({"many": 1, "kinds": True, "of": b"\x01", "values": "x"}, b"\x00\x01\x02"),
        ({}, bytes(range(256)) * 4096),  # 1 MiB
    ],
)
def test_round_trip(headers: dict[str, HeaderValue], payload: bytes) -> None:
    assert decode_all(encode_message(headers, payload)) == [EventMessage(headers, payload)]


@pytest.mark.parametrize(
    ("headers", "payload", "message"),
    [
        ({"x" * 256: "v"}, b"", "1-255 bytes"),
        ({"": "v"}, b"", "1-255 bytes"),
        ({"h": "x" * 65536}, b"", "exceeds 65535"),
        ({"h": TypedValue(HeaderType.BYTE, 128)}, b"", "does not fit"),
        ({"h": TypedValue(HeaderType.UUID, b"short")}, b"", "cannot be encoded"),
        ({"h": TypedValue(HeaderType.STRING, b"bytes")}, b"", "cannot be encoded"),
        ({}, b"\x00" * MAX_MESSAGE_LENGTH, "limits"),
    ],
)
def test_encode_rejects_what_cannot_be_framed(
    headers: dict[str, HeaderValue | TypedValue], payload: bytes, message: str
) -> None:
    with pytest.raises(EventStreamError, match=message):
        encode_message(headers, payload)


# --------------------------------------------------------------------------- chunking


THREE_FRAMES = b"".join(
    [
        encode_message(JSON_EVENT, b'{"role":"assistant"}'),
        encode_message({}, b""),
        encode_message({":message-type": "event", "n": 42}, b"tail payload"),
    ]
)
THREE_MESSAGES = decode_all(THREE_FRAMES)


@pytest.mark.parametrize("cut", range(1, len(THREE_FRAMES)))
def test_split_at_every_offset(cut: int) -> None:
    assert decode_in_chunks(THREE_FRAMES, [cut]) == THREE_MESSAGES


def test_byte_at_a_time_and_empty_feeds() -> None:
    decoder = EventStreamDecoder()
    messages: list[EventMessage] = []
    for byte in THREE_FRAMES:
        assert decoder.feed(b"") == []
        messages.extend(decoder.feed(bytes([byte])))
    assert messages == THREE_MESSAGES
    assert not decoder.has_partial


@pytest.mark.parametrize("capture", [TEXT_CAPTURE, TOOLS_CAPTURE])
@pytest.mark.parametrize("seed", range(5))
def test_captures_decode_identically_under_random_chunking(capture: str, seed: int) -> None:
    data = load_capture(capture)
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), 400))
    assert decode_in_chunks(data, cuts) == decode_all(data)


def test_truncated_stream_is_partial_until_completed() -> None:
    frame = encode_message(JSON_EVENT, b"{}")
    decoder = EventStreamDecoder()
    assert not decoder.has_partial
    for partial in (frame[:5], frame[5:12], frame[12:-1]):
        assert decoder.feed(partial) == []
        assert decoder.has_partial
    decoder.feed(b"")
    assert decoder.feed(frame[-1:]) == [EventMessage(JSON_EVENT, b"{}")]
    assert not decoder.has_partial
    decoder.finish()


@pytest.mark.parametrize("keep", [1, 11, 12, 20])
def test_finish_mid_frame_is_an_error(keep: int) -> None:
    decoder = EventStreamDecoder()
    decoder.feed(encode_message(JSON_EVENT, b"{}")[:keep])
    with pytest.raises(EventStreamError, match="ended inside a frame"):
        decoder.finish()


# --------------------------------------------------------------------------- corruption


SMALL_FRAME = encode_message({":event-type": "x"}, b"payload")


@pytest.mark.parametrize("position", range(len(SMALL_FRAME)))
def test_any_corrupted_byte_is_detected(position: int) -> None:
    corrupted = bytearray(SMALL_FRAME)
    corrupted[position] ^= 0x20
    expected = "prelude CRC" if position < 12 else "message CRC"
    with pytest.raises(EventStreamError, match=expected):
        EventStreamDecoder().feed(bytes(corrupted))


def test_a_failed_decoder_stays_failed() -> None:
    decoder = EventStreamDecoder()
    with pytest.raises(EventStreamError, match="prelude CRC"):
        decoder.feed(b"\x00" * 11 + b"\x01")
    with pytest.raises(EventStreamError, match="prelude CRC"):
        decoder.feed(SMALL_FRAME)
    with pytest.raises(EventStreamError, match="prelude CRC"):
        decoder.finish()


def test_messages_before_a_corrupt_frame_are_lost_with_the_error() -> None:
    """A batch is all-or-nothing: the caller treats the whole stream as failed anyway."""
    broken = bytearray(SMALL_FRAME)
    broken[-1] ^= 1
    with pytest.raises(EventStreamError, match="message CRC"):
        EventStreamDecoder().feed(SMALL_FRAME + bytes(broken))


@pytest.mark.parametrize(
    ("total", "headers_length", "message"),
    [
        (15, 0, "shorter than"),
        (0, 0, "shorter than"),
        (MAX_MESSAGE_LENGTH + 1, 0, "exceeds"),
        (2**32 - 1, 0, "exceeds"),
        (100, MAX_HEADERS_LENGTH + 1, "headers length"),
        (100, 85, "does not fit"),
    ],
)
def test_absurd_lengths_fail_fast(total: int, headers_length: int, message: str) -> None:
    frame = raw_frame(b"", b"", total=total, headers_length=headers_length)
    with pytest.raises(EventStreamError, match=message):
        EventStreamDecoder().feed(frame[:12])  # judged on the prelude alone, before any wait


@pytest.mark.parametrize(
    ("raw_headers", "message"),
    [
        (b"\x01h\x2a", "unknown header value type 42"),
        (b"\x01h\x07\x00\x09abc", "runs past"),
        (b"\x09h\x07", "runs past"),
        (b"\x01h", "runs past"),
        (b"\x01h\x04\x00\x00", "runs past"),
        (b"\x01h\x09" + b"\x00" * 15, "runs past"),
        (b"\x01\xff\x00", "not UTF-8"),
        (b"\x01h\x07\x00\x01\xff", "not UTF-8"),
    ],
)
def test_malformed_headers_inside_valid_crcs(raw_headers: bytes, message: str) -> None:
    with pytest.raises(EventStreamError, match=message):
        EventStreamDecoder().feed(raw_frame(raw_headers, b"{}"))


# --------------------------------------------------------------------------- messages


def test_message_type_helpers() -> None:
    event = EventMessage({":message-type": "event", ":event-type": "metadata"}, b"")
    exception = EventMessage({":message-type": "exception", ":exception-type": "throttlingException"}, b"")
    error = EventMessage({":message-type": "error", ":error-code": "Boom", ":error-message": "it broke"}, b"")
    assert (event.message_type, event.event_type, event.exception_type) == ("event", "metadata", None)
    assert (exception.message_type, exception.exception_type) == ("exception", "throttlingException")
    assert (error.error_code, error.error_message) == ("Boom", "it broke")
    assert EventMessage({":message-type": 7}, b"").message_type is None  # not a string header


@pytest.mark.parametrize(
    ("capture", "count", "event_types"),
    [
        (
            TEXT_CAPTURE,
            88,
            ["messageStart"] + ["contentBlockDelta"] * 84 + ["contentBlockStop", "messageStop", "metadata"],
        ),
        (TOOLS_CAPTURE, 543, None),
    ],
)
def test_plano_captures(capture: str, count: int, event_types: list[str] | None) -> None:
    data = load_capture(capture)
    messages = decode_all(data)
    assert len(messages) == count
    for message in messages:
        assert message.message_type == "event"
        assert message.headers[":content-type"] == "application/json"
        assert message.payload.startswith(b"{") and b'"p":"' in message.payload  # AWS's padding field
    if event_types is not None:
        assert [m.event_type for m in messages] == event_types
    assert messages[0].event_type == "messageStart"
    assert [m.event_type for m in messages[-2:]] == ["messageStop", "metadata"]
    # Only string headers, in wire order: re-encoding reproduces the capture byte for byte.
    assert b"".join(encode_message(m.headers, m.payload) for m in messages) == data
