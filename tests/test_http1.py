"""http1: the sans-I/O HTTP/1.1 client state machine (pure, no sockets).

Responses are fed as byte pieces split in every way that matters; whatever
the split, the same head, body and keep-alive decision must come out.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pytest

from plano_trio.upstream.http1 import (
    END_OF_MESSAGE,
    MAX_CHUNK_LINE,
    MAX_HEAD_SIZE,
    NEED_DATA,
    ClientConnection,
    Event,
    IncompleteResponse,
    LocalProtocolError,
    RemoteProtocolError,
    Response,
    encode_request,
)

# --- helpers -----------------------------------------------------------------------------------------


def connection(method: bytes = b"GET", headers: list[tuple[bytes, bytes]] | None = None) -> ClientConnection:
    """A state machine that has just sent a request."""
    conn = ClientConnection()
    conn.send(encode_request(method, b"/", headers or [], b""))
    return conn


def drain(conn: ClientConnection) -> list[Event]:
    """Every event available without more input (the final NEED_DATA is not included)."""
    events: list[Event] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
        if event is END_OF_MESSAGE:
            return events


def feed(conn: ClientConnection, pieces: Sequence[bytes | bytearray], *, eof: bool = False) -> list[Event]:
    """Feed `pieces` one read at a time (then EOF if asked), draining events after each."""
    events: list[Event] = []
    for piece in pieces:
        conn.receive_data(piece)
        events += drain(conn)
    if eof:
        conn.receive_data(b"")
        events += drain(conn)
    return events


def exchange(
    raw: bytes | list[bytes], *, method: bytes = b"GET", eof: bool = False
) -> tuple[Response, bytes]:
    """The head and whole body of a complete response; asserts the body ended."""
    conn = connection(method)
    events = feed(conn, [raw] if isinstance(raw, bytes) else raw, eof=eof)
    assert events[-1] is END_OF_MESSAGE, events
    head = events[0]
    assert isinstance(head, Response)
    body = events[1:-1]
    assert all(type(piece) is bytes and piece for piece in body)
    return head, b"".join(piece for piece in body if isinstance(piece, bytes))


def split_at(raw: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def fails(
    raw: bytes | list[bytes], error: type[Exception], *, method: bytes = b"GET", eof: bool = False
) -> str:
    conn = connection(method)
    with pytest.raises(error) as info:
        feed(conn, [raw] if isinstance(raw, bytes) else raw, eof=eof)
    with pytest.raises(RemoteProtocolError):  # every error is final
        conn.next_event()
    return str(info.value)


def ok(extra_headers: bytes = b"", body: bytes = b"hi", version: bytes = b"1.1") -> bytes:
    return b"HTTP/%s 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (version, len(body), extra_headers, body)


def chunked(*chunks: bytes, trailers: bytes = b"") -> bytes:
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + framed + b"0\r\n" + trailers + b"\r\n"


# --- request encoding --------------------------------------------------------------------------------


def test_encode_request_is_one_buffer() -> None:
    request = encode_request(b"POST", b"/v1/chat?a=1", [(b"host", b"api"), (b"content-length", b"2")], b"{}")
    assert request.data == b"POST /v1/chat?a=1 HTTP/1.1\r\nhost: api\r\ncontent-length: 2\r\n\r\n{}"
    assert request.method == b"POST"
    assert request.keep_alive
    assert encode_request(b"GET", b"/", [], b"").data == b"GET / HTTP/1.1\r\n\r\n"


def test_body_may_contain_anything() -> None:
    body = b"line\r\n\r\nHTTP/1.1 200 OK\r\n\0"
    assert encode_request(b"POST", b"/", [], body).data.endswith(b"\r\n\r\n" + body)


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        (b"GET", b"/", [(b"x", b"a\r\nb")]),
        (b"GET", b"/", [(b"x", b"a\nb")]),
        (b"GET", b"/", [(b"x", b"a\rb")]),
        (b"GET", b"/", [(b"x", b"a\0b")]),
        (b"GET", b"/", [(b"x\r\ny", b"a")]),
        (b"GET", b"/", [(b"x\0", b"a")]),
        (b"GET", b"/\r\nx: y", []),
        (b"GET", b"/a b", []),
        (b"GET", b"", []),
        (b"G ET", b"/", []),
        (b"", b"/", []),
        (b"CONNECT", b"host:443", []),
    ],
)
def test_unsendable_requests(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(LocalProtocolError):
        encode_request(method, target, headers, b"")


def test_bad_header_is_named() -> None:
    with pytest.raises(LocalProtocolError, match="b'x-evil'"):
        encode_request(b"GET", b"/", [(b"ok", b"1"), (b"x-evil", b"a\r\nb")], b"")


@pytest.mark.parametrize(
    ("value", "keep_alive"),
    [(b"close", False), (b"Keep-Alive, CLOSE", False), (b"keep-alive", True), (b"closed", True)],
)
def test_request_connection_close(value: bytes, keep_alive: bool) -> None:
    assert encode_request(b"GET", b"/", [(b"connection", value)], b"").keep_alive is keep_alive
    conn = connection(headers=[(b"connection", value)])
    feed(conn, [ok()])
    assert conn.reusable is keep_alive


# --- status line -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "status", "version", "reason"),
    [
        (b"HTTP/1.1 200 OK", 200, b"1.1", b"OK"),
        (b"HTTP/1.0 404 Not Found", 404, b"1.0", b"Not Found"),
        (b"HTTP/1.1 200", 200, b"1.1", b""),
        (b"HTTP/1.1 200 ", 200, b"1.1", b""),
        (b"HTTP/1.1 599 Odd  Reason\twith tab", 599, b"1.1", b"Odd  Reason\twith tab"),
        (b"HTTP/1.1 201 Cr\xc3\xa9\xc3\xa9", 201, b"1.1", b"Cr\xc3\xa9\xc3\xa9"),
    ],
)
def test_status_line(line: bytes, status: int, version: bytes, reason: bytes) -> None:
    head, _ = exchange(line + b"\r\ncontent-length: 0\r\n\r\n")
    assert (head.status, head.http_version, head.reason) == (status, version, reason)


@pytest.mark.parametrize(
    "line",
    [
        b"HTTP/2 200 OK",
        b"HTTP/1.2 200 OK",
        b"HTTP/2.0 200 OK",
        b"http/1.1 200 OK",
        b"HTTP/1.1 20 OK",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 099 OK",
        b"HTTP/1.1  200 OK",
        b"HTTP/1.1 200\tOK",
        b" HTTP/1.1 200 OK",
        b"SSH-2.0-OpenSSH_9.2",
        b"",
    ],
)
def test_invalid_status_line(line: bytes) -> None:
    fails(line + b"\r\ncontent-length: 0\r\n\r\n", RemoteProtocolError)


# --- headers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "header"),
    [
        (b"Content-Type: text/plain", (b"content-type", b"text/plain")),
        (b"x-ows: \t padded \t ", (b"x-ows", b"padded")),
        (b"x-nospace:value", (b"x-nospace", b"value")),
        (b"x-empty:", (b"x-empty", b"")),
        (b"x-blank:   ", (b"x-blank", b"")),
        (b"location: http://h:1/p?q=a:b", (b"location", b"http://h:1/p?q=a:b")),
        (b"x-inner: a  b\tc", (b"x-inner", b"a  b\tc")),
        (b"x-obs-text: caf\xc3\xa9 \xff", (b"x-obs-text", b"caf\xc3\xa9 \xff")),
        (b"X-Weird!#$%&'*+.^_`|~: 1", (b"x-weird!#$%&'*+.^_`|~", b"1")),
    ],
)
def test_header_parsing(line: bytes, header: tuple[bytes, bytes]) -> None:
    head, _ = exchange(b"HTTP/1.1 204 No Content\r\n" + line + b"\r\n\r\n")
    assert head.headers == [header]


def test_headers_keep_order_and_duplicates() -> None:
    raw = b"HTTP/1.1 204 No Content\r\nSet-Cookie: a=1\r\nx: 1\r\nset-cookie: b=2\r\n\r\n"
    head, _ = exchange(raw)
    assert head.headers == [(b"set-cookie", b"a=1"), (b"x", b"1"), (b"set-cookie", b"b=2")]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (b"x: a\r\n  folded", "obsolete line folding"),
        (b"x: a\r\n\tfolded", "obsolete line folding"),
        (b" x: a", "obsolete line folding"),
        (b"x : a", "invalid response header line"),
        (b"garbage", "invalid response header line"),
        (b": no-name", "invalid response header line"),
        (b"x@y: a", "invalid response header line"),
        (b"x y: a", "invalid response header line"),
        (b"x: a\0b", "control character"),
        (b"x: a\x01b", "control character"),
        (b"x: a\x7fb", "control character"),
        (b"x: a\nb", "bare LF"),
        (b"x: a\rb", "bare CR"),
        (b"x: a\r\n\nb: c", "bare LF"),
    ],
)
def test_invalid_header_lines(lines: bytes, message: str) -> None:
    error = fails(b"HTTP/1.1 204 No Content\r\n" + lines + b"\r\n\r\n", RemoteProtocolError)
    assert message in error


@pytest.mark.parametrize(
    "raw", [b"HTTP/1.1 200 OK\ncontent-length: 0\n\n", b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\n"]
)
def test_bare_lf_head_is_rejected_at_once(raw: bytes) -> None:
    assert "bare LF line endings" in fails([raw[i : i + 1] for i in range(len(raw))], RemoteProtocolError)


# --- head size cap -----------------------------------------------------------------------------------


def padded_head(size: int) -> bytes:
    """A 204 head of exactly `size` bytes, blank line included."""
    base = b"HTTP/1.1 204 No Content\r\nx-pad: \r\n\r\n"
    return base.replace(b"x-pad: ", b"x-pad: " + b"p" * (size - len(base)))


def test_head_at_the_cap_is_accepted() -> None:
    head, _ = exchange(padded_head(MAX_HEAD_SIZE))
    assert len(head.headers[0][1]) > 65000


def test_head_over_the_cap_is_rejected() -> None:
    assert "larger than" in fails(padded_head(MAX_HEAD_SIZE + 1), RemoteProtocolError)


def test_unterminated_head_is_rejected_at_the_cap_without_waiting() -> None:
    raw = b"HTTP/1.1 200 OK\r\nx: " + b"p" * MAX_HEAD_SIZE
    conn = connection()
    conn.receive_data(raw[: MAX_HEAD_SIZE - 1])
    assert conn.next_event() is NEED_DATA
    conn.receive_data(raw[MAX_HEAD_SIZE - 1 :])
    with pytest.raises(RemoteProtocolError, match="larger than"):
        conn.next_event()


def test_head_fed_byte_by_byte() -> None:
    raw = ok(b"".join(b"x-h%d: %s\r\n" % (i, b"v" * i) for i in range(60)), b"body")
    head, body = exchange([raw[i : i + 1] for i in range(len(raw))])
    assert len(head.headers) == 61
    assert body == b"body"


# --- interim responses -------------------------------------------------------------------------------


def test_1xx_responses_are_skipped() -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n" + ok(b"x-final: 1\r\n")
    )
    for pieces in ([raw], [raw[i : i + 1] for i in range(len(raw))], split_at(raw, [20, 27, 60])):
        head, body = exchange(pieces)
        assert head.status == 200
        assert head.headers == [(b"content-length", b"2"), (b"x-final", b"1")]
        assert body == b"hi"


def test_101_is_rejected() -> None:
    fails(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n", RemoteProtocolError)


# --- bodiless responses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "raw"),
    [
        (b"HEAD", b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n"),
        (b"HEAD", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
        (b"HEAD", b"HTTP/1.1 200 OK\r\n\r\n"),
        (b"GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        (b"GET", b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n"),
        (b"GET", b"HTTP/1.1 304 Not Modified\r\ncontent-length: 99\r\n\r\n"),
        (b"GET", b"HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n"),
        (b"GET", b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
        (b"POST", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
    ],
)
def test_no_body(method: bytes, raw: bytes) -> None:
    conn = connection(method)
    events = feed(conn, [raw])
    assert [type(e) for e in events] == [Response, type(END_OF_MESSAGE)]
    assert conn.next_event() is END_OF_MESSAGE  # stays at the end until the next cycle
    assert conn.reusable


# --- content-length ----------------------------------------------------------------------------------


def test_content_length_every_split() -> None:
    body = b'{"id":"x","choices":[{"text":"hello world"}]}'
    raw = ok(b"content-type: application/json\r\n", body)
    for cut in range(1, len(raw)):
        head, got = exchange(split_at(raw, [cut]))
        assert (head.status, got) == (200, body), cut
    for cut1 in range(0, len(raw), 7):
        for cut2 in range(cut1, len(raw), 5):
            assert exchange(split_at(raw, [cut1, cut2]))[1] == body


def test_content_length_body_read_alone_is_not_copied() -> None:
    conn = connection()
    feed(conn, [b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"])
    piece = b"0123456789"
    conn.receive_data(piece)
    assert conn.next_event() is piece
    assert conn.next_event() is END_OF_MESSAGE


def test_body_from_bytearray_is_bytes() -> None:
    conn = connection()
    events = feed(conn, [b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab", bytearray(b"cd")])
    assert events[1:] == [b"ab", b"cd", END_OF_MESSAGE]
    assert all(type(e) is bytes for e in events[1:3])


@pytest.mark.parametrize(
    ("value", "length"),
    [(b"0", 0), (b"2", 2), (b"2, 2", 2), (b"002", 2), (b" 2 ", 2)],
)
def test_content_length_values(value: bytes, length: int) -> None:
    raw = b"HTTP/1.1 200 OK\r\ncontent-length: %s\r\n\r\n%s" % (value, b"x" * length)
    assert exchange(raw)[1] == b"x" * length


def test_repeated_identical_content_length_headers() -> None:
    raw = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nContent-Length: 2\r\n\r\nhi"
    assert exchange(raw)[1] == b"hi"


@pytest.mark.parametrize(
    "headers",
    [
        b"content-length: -1\r\n",
        b"content-length: +2\r\n",
        b"content-length: 0x2\r\n",
        b"content-length: 1_0\r\n",
        b"content-length: 2.0\r\n",
        b"content-length: abc\r\n",
        b"content-length: \r\n",
        b"content-length: \xd9\xa2\r\n",  # ARABIC-INDIC DIGIT TWO in UTF-8: not a digit here
        b"content-length: 1000000000000000000000000000000\r\n",
        b"content-length: 2, 3\r\n",
        b"content-length: 2,\r\n",
        b"content-length: 2\r\ncontent-length: 3\r\n",
    ],
)
def test_invalid_content_length(headers: bytes) -> None:
    fails(b"HTTP/1.1 200 OK\r\n" + headers + b"\r\nhi", RemoteProtocolError)


def test_bytes_after_the_body_poison_the_next_cycle() -> None:
    conn = connection()
    events = feed(conn, [ok(body=b"hi") + b"HTTP/1.1 200 OK\r\n"])
    assert events[1:] == [b"hi", END_OF_MESSAGE]
    assert not conn.reusable
    with pytest.raises(RemoteProtocolError, match="after the end of the response"):
        conn.start_next_cycle()


def test_bytes_after_a_chunked_body_poison_the_next_cycle() -> None:
    conn = connection()
    feed(conn, [chunked(b"hi") + b"\r\n"])
    assert not conn.reusable


# --- chunked -----------------------------------------------------------------------------------------

STREAM_CHUNKS = [b"data: one\n\n", b"d", b"data: three, a longer event with \r\n inside\n\n", b"x" * 300]
STREAM_BODY = b"".join(STREAM_CHUNKS)
STREAM = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n"
    b"b\r\ndata: one\n\n\r\n"
    b"1;ext=val\r\nd\r\n"
    b'2C ; a=1;b="q"\r\ndata: three, a longer event with \r\n inside\n\n\r\n'
    b"12c\r\n" + b"x" * 300 + b"\r\n"
    b"0;last\r\nx-trailer: 1\r\nx-other: 2\r\n\r\n"
)


def test_chunked_in_one_read_is_one_piece() -> None:
    conn = connection()
    events = feed(conn, [STREAM])
    assert events[1:] == [STREAM_BODY, END_OF_MESSAGE]
    assert conn.reusable


def test_chunked_every_single_split() -> None:
    for cut in range(1, len(STREAM)):
        head, body = exchange(split_at(STREAM, [cut]))
        assert (head.status, body) == (200, STREAM_BODY), cut


def test_chunked_every_double_split() -> None:
    for cut1 in range(1, len(STREAM), 3):
        for cut2 in range(cut1 + 1, len(STREAM), 11):
            assert exchange(split_at(STREAM, [cut1, cut2]))[1] == STREAM_BODY, (cut1, cut2)


def test_chunked_byte_by_byte() -> None:
    conn = connection()
    events = feed(conn, [STREAM[i : i + 1] for i in range(len(STREAM))])
    assert events[-1] is END_OF_MESSAGE
    assert b"".join(e for e in events if type(e) is bytes) == STREAM_BODY
    assert conn.reusable


def test_chunked_random_pieces() -> None:
    rng = random.Random(1234)
    for _ in range(300):
        cuts = rng.sample(range(1, len(STREAM)), rng.randint(1, 30))
        assert exchange(split_at(STREAM, cuts))[1] == STREAM_BODY, cuts


def test_one_body_piece_per_read() -> None:
    """Chunk payload available after a read comes out as one piece, partial chunks included."""
    conn = connection()
    feed(conn, [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"])
    assert feed(conn, [b"3\r\nabc\r\n3\r\nde"]) == [b"abcde"]
    assert feed(conn, [b"f\r\n2\r"]) == [b"f"]
    assert feed(conn, [b"\nxy\r\n0\r\n\r\n"]) == [b"xy", END_OF_MESSAGE]


@pytest.mark.parametrize("value", [b"chunked", b"Chunked", b"CHUNKED", b" chunked "])
def test_transfer_encoding_chunked_spellings(value: bytes) -> None:
    raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: %s\r\n\r\n2\r\nhi\r\n0\r\n\r\n" % value
    assert exchange(raw)[1] == b"hi"


@pytest.mark.parametrize(
    "headers",
    [
        b"transfer-encoding: gzip\r\n",
        b"transfer-encoding: gzip, chunked\r\n",
        b"transfer-encoding: chunked, chunked\r\n",
        b"transfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n",
        b"transfer-encoding: identity\r\n",
    ],
)
def test_unsupported_transfer_encoding(headers: bytes) -> None:
    assert "transfer-encoding" in fails(b"HTTP/1.1 200 OK\r\n" + headers + b"\r\n", RemoteProtocolError)


def test_transfer_encoding_beats_content_length_but_no_reuse() -> None:
    conn = connection()
    raw = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    events = feed(conn, [raw])
    assert events[1:] == [b"hi", END_OF_MESSAGE]
    assert not conn.reusable


@pytest.mark.parametrize(
    "framed",
    [
        b"zz\r\nhi\r\n",
        b"0x2\r\nhi\r\n",
        b"-2\r\nhi\r\n",
        b"+2\r\nhi\r\n",
        b"1_0\r\n",
        b"\r\nhi\r\n",
        b";ext\r\nhi\r\n",
        b" 2\r\nhi\r\n",
        b"2\r\nhiXX0\r\n\r\n",
        b"2\r\nhi\n0\r\n\r\n",
        b"2\nhi\r\n0\r\n\r\n",
        b"1" * 17 + b"\r\n",
    ],
)
def test_malformed_chunks(framed: bytes) -> None:
    fails(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + framed, RemoteProtocolError)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("reads", "events"),
    [
        # One whole chunk per read, as a token stream sends them: the shortcut in `_read_chunked`.
        ([b"2\r\nhi\r\n", b"3\r\nabc\r\n", b"0\r\n\r\n"], [b"hi", b"abc", END_OF_MESSAGE]),
        ([b"1A\r\n" + b"z" * 26 + b"\r\n"], [b"z" * 26]),
        ([b"1a\r\n" + b"z" * 26 + b"\r\n"], [b"z" * 26]),
        ([b"00002\r\nhi\r\n"], [b"hi"]),
        # Not exactly one chunk: the general loop, same answers.
        ([b"2\r\nhi\r\n2\r\nho\r\n"], [b"hiho"]),
        ([b"2\r\nhi\r\n0\r\n\r\n"], [b"hi", END_OF_MESSAGE]),
        ([b"2;x=y\r\nhi\r\n"], [b"hi"]),
        ([b"4\r\nhi\r\n", b"\r\n"], [b"hi\r\n"]),
        ([b"2\r\nhi\r", b"\n"], [b"hi"]),
        ([b"2\r", b"\nhi\r\n"], [b"hi"]),
    ],
)
def test_chunk_per_read(reads: list[bytes], events: list[Event]) -> None:
    conn = connection()
    feed(conn, [CHUNKED_HEAD])
    assert feed(conn, reads) == events


MALFORMED_CHUNK_READS = [
    b"3\r\nhi\r\n",  # the size counts the CR: the data is not followed by CRLF
    b"1\r\nhi\r\n",
    b"2\r\nhiXX",
    b"2\r\nhi\n\n",
    b"x2\r\nhi\r\n",
]
"""One read holding one faulty chunk (also fed through `ClientConnection.feed`'s shortcut)."""


@pytest.mark.parametrize("read", MALFORMED_CHUNK_READS)
def test_chunk_per_read_malformed(read: bytes) -> None:
    fails([CHUNKED_HEAD, read, b"0\r\n\r\n"], RemoteProtocolError)


@pytest.mark.parametrize(
    "size_line",
    [
        b"2;a",
        b"2;a=b",
        b"2 ;a",  # BWS before ";"
        b"2\t; a = b",  # BWS around ";" and "="
        b"2;a=b;c;d=e",
        b'2;a="q"',
        b'2;a="with \\"escaped\\" quote, ; = and tab\t"',
        b'2;a=""',
        b'2;a="\x80obs-text"',  # obs-text: only inside a quoted string
    ],
)
def test_chunk_extensions(size_line: bytes) -> None:
    assert exchange(CHUNKED_HEAD + size_line + b"\r\nhi\r\n0\r\n\r\n")[1] == b"hi"


@pytest.mark.parametrize(
    "size_line",
    [
        b"2 ",  # trailing whitespace without an extension
        b"2\t",
        b"2 ;",  # ";" without a name
        b"2;",
        b"2;a=",  # "=" without a value
        b"2;a b",  # whitespace inside the extension, not around ";" or "="
        b"2;=b",
        b"2;a=b c",
        b'2;a="unterminated',
        b'2;a="q"x',
        b"2;a=\x80",  # obs-text outside quotes
        b"2;a@b",  # "@" is not a token char
        b"2;a;",
        b'2;a="\x01"',  # control byte in a quoted string
        b"2 2",
    ],
)
def test_invalid_chunk_extensions(size_line: bytes) -> None:
    assert "invalid chunk-size line" in fails(CHUNKED_HEAD + size_line + b"\r\nhi\r\n", RemoteProtocolError)


@pytest.mark.parametrize(
    "trailers",
    [b"x-t: 1\r\n", b"x-t:\r\n", b"x-t: 1\r\nX-Other:two words\r\n", b"x-t: \x80\t1\r\n"],
)
def test_trailers_are_validated_then_dropped(trailers: bytes) -> None:
    conn = connection()
    events = feed(conn, [chunked(b"hi", trailers=trailers)])
    assert events[1:] == [b"hi", END_OF_MESSAGE]
    assert conn.reusable


@pytest.mark.parametrize(
    ("trailers", "message"),
    [
        (b"no colon\r\n", "invalid trailer field line"),
        (b"x t: 1\r\n", "invalid trailer field line"),
        (b"x-t : 1\r\n", "invalid trailer field line"),
        (b": 1\r\n", "invalid trailer field line"),
        (b"x-t: 1\r\n folded\r\n", "obsolete line folding"),
        (b"x-t: a\x00b\r\n", "control character"),
        (b"x-t: a\rb\r\n", "control character"),
    ],
)
def test_invalid_trailers(trailers: bytes, message: str) -> None:
    assert message in fails(chunked(b"hi", trailers=trailers), RemoteProtocolError)


@pytest.mark.parametrize(
    "headers",
    [
        b"transfer-encoding: chunked\r\n",
        b"transfer-encoding: chunked\r\ncontent-length: 2\r\n",
        b"Transfer-Encoding: gzip\r\n",
    ],
)
def test_transfer_encoding_in_http_1_0_is_faulty(headers: bytes) -> None:
    raw = b"HTTP/1.0 200 OK\r\n" + headers + b"\r\n2\r\nhi\r\n0\r\n\r\n"
    assert "HTTP/1.0" in fails(raw, RemoteProtocolError)


@pytest.mark.parametrize(
    ("pieces", "remaining"),
    [
        ([ok(body=b"hello")[:-5]], 5),
        ([ok(body=b"hello")[:-3]], 3),
        ([ok(body=b"hello")], 0),
        ([b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"], 0),
        ([CHUNKED_HEAD + b"2\r\nhi"], None),
        ([b"HTTP/1.1 200 OK\r\n\r\nuntil close"], None),
        ([b"HTTP/1.1 200 OK\r\ncontent-le"], None),  # no head yet
    ],
)
def test_body_remaining(pieces: list[bytes], remaining: int | None) -> None:
    conn = connection()
    feed(conn, pieces)
    assert conn.body_remaining == remaining


def test_biggest_chunk_size_is_accepted() -> None:
    conn = connection()
    events = feed(conn, [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\nab"])
    assert events[1:] == [b"ab"]


def test_chunk_size_line_cap() -> None:
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    at_cap = b"2;" + b"e" * (MAX_CHUNK_LINE - 2) + b"\r\nhi\r\n0\r\n\r\n"
    assert exchange(head + at_cap)[1] == b"hi"
    over = b"2;" + b"e" * (MAX_CHUNK_LINE - 1) + b"\r\nhi\r\n0\r\n\r\n"
    assert "chunk-size line longer" in fails(head + over, RemoteProtocolError)
    unterminated = b"2;" + b"e" * MAX_CHUNK_LINE  # rejected before any CRLF arrives
    assert "chunk-size line longer" in fails(head + unterminated, RemoteProtocolError)


def test_trailer_section_cap() -> None:
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n"
    error = fails(head + b"x-t: " + b"t" * MAX_HEAD_SIZE + b"\r\n\r\n", RemoteProtocolError)
    assert "trailer section larger than" in error


# --- read until close --------------------------------------------------------------------------------


def test_close_delimited_body() -> None:
    conn = connection()
    events = feed(conn, [b"HTTP/1.1 200 OK\r\n\r\nabc", b"def"], eof=True)
    assert events[1:] == [b"abc", b"def", END_OF_MESSAGE]
    assert not conn.reusable
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()


def test_close_delimited_empty_body() -> None:
    assert exchange([b"HTTP/1.0 200 OK\r\n\r\n"], eof=True)[1] == b""


# --- premature EOF -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "before sending a response"),
        (b"HTTP/1.1 200 OK\r\ncontent-le", "in the middle of the response head"),
        (b"HTTP/1.1 100 Continue\r\n\r\n", "before sending a response"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n", "with 10 bytes of the response body missing"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123", "with 6 bytes of the response body missing"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", "chunked"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab", "chunked"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nabcde", "chunked"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nabcde\r", "chunked"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5", "chunked"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n", "chunked"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx: 1\r\n", "chunked"),
    ],
)
def test_eof_before_the_end(raw: bytes, message: str) -> None:
    assert message in fails([raw] if raw else [], IncompleteResponse, eof=True)


def test_body_received_before_eof_is_still_delivered() -> None:
    conn = connection()
    events = feed(conn, [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nabc"])
    assert events[1:] == [b"abc"]
    conn.receive_data(b"")
    with pytest.raises(IncompleteResponse):
        conn.next_event()


# --- keep-alive --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reusable"),
    [
        (ok(), True),
        (chunked(b"hi"), True),
        (ok(b"connection: keep-alive\r\n"), True),
        (ok(b"connection: closed\r\n"), True),
        (ok(b"connection: close\r\n"), False),
        (ok(b"Connection: Keep-Alive, CLOSE\r\n"), False),
        (ok(b"connection: keep-alive\r\nconnection: close\r\n"), False),
        (ok(version=b"1.0"), False),
        (ok(b"connection: keep-alive\r\n", version=b"1.0"), False),
        (b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n", False),
    ],
)
def test_keep_alive(raw: bytes, reusable: bool) -> None:
    conn = connection()
    assert feed(conn, [raw])[-1] is END_OF_MESSAGE
    assert conn.reusable is reusable


def test_not_reusable_before_the_end_or_after_eof() -> None:
    conn = connection()
    feed(conn, [b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab"])
    assert not conn.reusable
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()
    feed(conn, [b"cd"])
    assert conn.reusable
    conn.receive_data(b"")
    assert not conn.reusable


def test_cycles_on_one_connection() -> None:
    conn = ClientConnection()
    for i, (method, raw, body) in enumerate(
        [
            (b"GET", ok(body=b"first"), b"first"),
            (b"HEAD", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", b""),
            (b"POST", chunked(b"th", b"ird"), b"third"),
            (b"GET", b"HTTP/1.1 100 Continue\r\n\r\n" + ok(body=b"4th"), b"4th"),
        ]
    ):
        assert conn.send(encode_request(method, b"/%d" % i, [], b"")).startswith(method)
        events = feed(conn, [raw])
        assert b"".join(e for e in events if type(e) is bytes) == body
        assert events[-1] is END_OF_MESSAGE
        conn.start_next_cycle()


# --- misuse ------------------------------------------------------------------------------------------


def test_out_of_order_calls() -> None:
    conn = ClientConnection()
    with pytest.raises(LocalProtocolError):
        conn.next_event()  # nothing sent yet
    request = encode_request(b"GET", b"/", [], b"")
    conn.send(request)
    with pytest.raises(LocalProtocolError):
        conn.send(request)  # no pipelining
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"late")
