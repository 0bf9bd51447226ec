"""Properties of the http1 response parser: typed errors only, split invariance, linear work.

A provider's bytes are untrusted input.  Whatever arrives, and however the
network splits it, the parser must either produce the same response or raise
one of its own `Http1Error`s, and its work must grow linearly with the input.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.upstream.http1 import (
    END_OF_MESSAGE,
    MAX_HEAD_SIZE,
    NEED_DATA,
    ClientConnection,
    Http1Error,
    RemoteProtocolError,
    Response,
    encode_request,
)


def _sent(method: bytes = b"GET") -> ClientConnection:
    conn = ClientConnection()
    conn.send(encode_request(method, b"/", [], b""))
    return conn


@dataclass
class Outcome:
    head: Response | None
    body: bytes
    done: bool
    reusable: bool


def _run(pieces: list[bytes], *, method: bytes = b"GET", eof: bool = False) -> Outcome:
    """Feed `pieces` one read at a time, draining events after each (the way `Connection` does)."""
    conn = _sent(method)
    head: Response | None = None
    body: list[bytes] = []
    done = False

    def drain() -> None:
        nonlocal head, done
        while not done:
            event = conn.next_event()
            if event is NEED_DATA:
                return
            if event is END_OF_MESSAGE:
                done = True
            elif isinstance(event, Response):
                head = event
            else:
                assert type(event) is bytes
                assert event, "body pieces are never empty"
                body.append(event)

    for piece in pieces:
        if done:
            break
        conn.receive_data(piece)
        drain()
    if eof and not done:
        conn.receive_data(b"")
        drain()
    return Outcome(head, b"".join(body), done, conn.reusable)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


# --- arbitrary bytes: only our typed errors ------------------------------------------------------------

_PREFIXES = [
    b"",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
]
"""Valid starts, so random bytes also reach the header, chunk and trailer parsers."""

_ALPHABET = st.sampled_from(
    [b"\r\n", b"\r", b"\n", b":", b";", b"=", b'"', b" ", b"\t", b"0", b"a", b"\x00", b"\x80"]
)
_NOISE = st.one_of(st.binary(max_size=300), st.lists(_ALPHABET, max_size=120).map(b"".join))


@given(
    prefix=st.sampled_from(_PREFIXES),
    noise=_NOISE,
    cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=8),
    eof=st.booleans(),
    method=st.sampled_from([b"GET", b"HEAD"]),
)
def test_arbitrary_bytes_raise_only_http1_errors(
    prefix: bytes, noise: bytes, cuts: list[int], eof: bool, method: bytes
) -> None:
    data = prefix + noise
    with contextlib.suppress(Http1Error):  # the only acceptable failure: anything else fails the test
        _run(_split(data, cuts), method=method, eof=eof)


# --- valid responses: the same result however they are split ------------------------------------------

_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
_FRAMING = {"content-length", "transfer-encoding", "connection"}
_names = st.text(_TOKEN_CHARS, min_size=1, max_size=12).filter(lambda n: n not in _FRAMING)
_values = st.binary(max_size=30).map(
    lambda v: bytes(b for b in v if b == 9 or 0x20 <= b < 0x7F or b >= 0x80).strip(b" \t")
)
_headers = st.lists(st.tuples(_names.map(str.encode), _values), max_size=6)
_ext = st.sampled_from([b"", b";a", b"; a=b", b';q="x y"', b" ;n=1;m"])


@st.composite
def _responses(draw: st.DrawFn) -> tuple[bytes, int, list[tuple[bytes, bytes]], bytes, str]:
    """(wire bytes, status, headers, body, framing) of a valid response."""
    status = draw(st.sampled_from([200, 201, 400, 404, 429, 500, 503]))
    headers = draw(_headers)
    body = draw(st.binary(max_size=400))
    framing = draw(st.sampled_from(["content-length", "chunked", "close"]))
    head = b"HTTP/1.1 %d Reason\r\n" % status + b"".join(b"%s: %s\r\n" % h for h in headers)
    if framing == "content-length":
        return head + b"content-length: %d\r\n\r\n" % len(body) + body, status, headers, body, framing
    if framing == "close":
        return head + b"\r\n" + body, status, headers, body, framing
    sizes = draw(st.lists(st.integers(min_value=1, max_value=64), max_size=20))
    chunks: list[bytes] = []
    rest = body
    for size in sizes:
        if rest:
            chunks.append(rest[:size])
            rest = rest[size:]
    if rest:
        chunks.append(rest)
    framed = b"".join(b"%x%s\r\n%s\r\n" % (len(c), draw(_ext), c) for c in chunks)
    trailers = draw(st.sampled_from([b"", b"x-t: 1\r\n", b"a: b\r\nc:\r\n"]))
    wire = head + b"transfer-encoding: chunked\r\n\r\n" + framed + b"0\r\n" + trailers + b"\r\n"
    return wire, status, headers, body, framing


@given(response=_responses(), cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12))
def test_split_invariance(
    response: tuple[bytes, int, list[tuple[bytes, bytes]], bytes, str], cuts: list[int]
) -> None:
    wire, status, headers, body, framing = response
    eof = framing == "close"
    whole = _run([wire], eof=eof)
    split = _run(_split(wire, cuts), eof=eof)
    assert whole == split
    assert whole.head is not None
    assert (whole.head.status, whole.body, whole.done) == (status, body, True)
    sent = [(n, v) for n, v in whole.head.headers if n not in (b"content-length", b"transfer-encoding")]
    assert sent == headers
    assert whole.reusable is (framing != "close")


# --- linear work ----------------------------------------------------------------------------------------


def _byte_by_byte(data: bytes) -> float:
    """Seconds to feed `data` one byte at a time (draining after each, as a socket would)."""
    conn = _sent()
    started = time.perf_counter()
    for i in range(len(data)):
        conn.receive_data(data[i : i + 1])
        while (event := conn.next_event()) is not NEED_DATA and event is not END_OF_MESSAGE:
            pass
    return time.perf_counter() - started


def test_a_full_size_head_byte_by_byte_is_linear() -> None:
    filler = b"x-pad: " + b"p" * 1000 + b"\r\n"
    head = (
        b"HTTP/1.1 200 OK\r\n"
        + filler * ((MAX_HEAD_SIZE - 100) // len(filler))
        + b"content-length: 0\r\n\r\n"
    )
    assert len(head) > 60_000
    assert _byte_by_byte(head) < 2.0  # ~0.1 s when linear; a rescan per byte would take minutes


def test_a_long_chunked_body_byte_by_byte_is_linear() -> None:
    body = b"".join(b"1;e=v\r\nx\r\n" for _ in range(6000))
    raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"
    assert _byte_by_byte(raw) < 2.0


@pytest.mark.parametrize(
    ("line", "valid"),
    [
        (b"1" + b" \t" * 2000 + b";a", True),
        (b"1;a" + b" \t" * 2000 + b"!", False),  # BWS that is followed by neither "=" nor ";"
        (b"1" + b";a" * 2000, True),
        (b"1" + b";a=" * 1300 + b"!", False),
    ],
    ids=["bws-then-ext", "bws-then-junk", "many-exts", "many-empty-values"],
)
def test_worst_case_chunk_extension_is_linear(line: bytes, valid: bool) -> None:
    """Whitespace runs and repeated extensions cannot make the pattern backtrack."""
    raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + line + b"\r\nx\r\n0\r\n\r\n"
    started = time.perf_counter()
    for _ in range(200):
        if valid:
            assert _run([raw]).body == b"x"
        else:
            with pytest.raises(RemoteProtocolError, match="invalid chunk-size line"):
                _run([raw])
    assert time.perf_counter() - started < 2.0
