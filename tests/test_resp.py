"""The RESP codec without a server: tables of replies and garbage, then properties.

Properties: any valid stream, split anywhere, parses to the same replies as
when fed whole; garbage (random or a mutated valid stream) raises
`RespProtocolError` and nothing else; every bound holds before the bytes it
guards are buffered; the work stays linear in what is fed.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.session.resp import (
    MAX_BULK_BYTES,
    NEED_DATA,
    ErrorReply,
    NeedData,
    Push,
    Reply,
    RespMap,
    RespParser,
    RespProtocolError,
    SimpleString,
    encode_command,
)
from plano_trio.session.store import MAX_VALUE_BYTES


def parse_all(data: bytes, parser: RespParser | None = None) -> list[Reply]:
    parser = parser or RespParser()
    parser.feed(data)
    replies = []
    while not isinstance(reply := parser.next_reply(), NeedData):
        replies.append(reply)
    return replies


def tag(value: Reply) -> Any:
    """`value` with every node's type attached, so that True is not 1 and b"OK" is not SimpleString."""
    if isinstance(value, list):
        return ("list", [tag(v) for v in value])
    if isinstance(value, Push):
        return ("push", [tag(v) for v in value.items])
    if isinstance(value, RespMap):
        return ("map", [(tag(k), tag(v)) for k, v in value.pairs])
    return (type(value).__name__, value)


# --- tables ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b"+OK\r\n", SimpleString(b"OK")),
        (b"+\r\n", SimpleString(b"")),
        (b"-ERR unknown command\r\n", ErrorReply("ERR unknown command")),
        (b"-WRONGTYPE Operation against a key\r\n", ErrorReply("WRONGTYPE Operation against a key")),
        (b":0\r\n", 0),
        (b":-42\r\n", -42),
        (b":9223372036854775807\r\n", 2**63 - 1),
        (b":-9223372036854775808\r\n", -(2**63)),
        (b"$5\r\nhello\r\n", b"hello"),
        (b"$0\r\n\r\n", b""),
        (b"$-1\r\n", None),
        (b"$4\r\n\r\n\r\n\r\n", b"\r\n\r\n"),  # CRLF inside a bulk string is data
        (b"*-1\r\n", None),
        (b"*0\r\n", []),
        (b"*3\r\n:1\r\n$1\r\na\r\n*1\r\n$-1\r\n", [1, b"a", [None]]),
        (b"*2\r\n-ERR a\r\n+b\r\n", [ErrorReply("ERR a"), SimpleString(b"b")]),
        (b"_\r\n", None),
        (b"#t\r\n", True),
        (b"#f\r\n", False),
        (b",1.5\r\n", 1.5),
        (b",-2\r\n", -2.0),
        (b",1e+20\r\n", 1e20),
        (b",inf\r\n", math.inf),
        (b",-inf\r\n", -math.inf),
        (b"(123456789012345678901234567890\r\n", 123456789012345678901234567890),
        (b"=8\r\ntxt:abcd\r\n", b"abcd"),
        (b"!10\r\nERR x\r\ny z\r\n", ErrorReply("ERR x\r\ny z")),
        (b"%1\r\n+k\r\n:1\r\n", RespMap(((SimpleString(b"k"), 1),))),
        (b"%0\r\n", RespMap(())),
        (b"~2\r\n:1\r\n:2\r\n", [1, 2]),
        (b">2\r\n$7\r\nmessage\r\n$2\r\nhi\r\n", Push([b"message", b"hi"])),
        (b"|1\r\n+ttl\r\n:5\r\n+OK\r\n", SimpleString(b"OK")),  # an attribute, dropped
        (b"|0\r\n:7\r\n", 7),
        (b"*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n", [1, 2]),  # an attribute inside an array
    ],
)
def test_replies(wire: bytes, expected: Reply) -> None:
    assert tag(parse_all(wire)[0]) == tag(expected)
    one_by_one = RespParser()
    for i in range(len(wire) - 1):
        one_by_one.feed(wire[i : i + 1])
        assert one_by_one.next_reply() is NEED_DATA
    assert tag(parse_all(wire[-1:], one_by_one)[0]) == tag(expected)
    assert one_by_one.buffered == 0


def test_nan_and_error_kinds() -> None:
    [nan] = parse_all(b",nan\r\n")
    assert isinstance(nan, float) and math.isnan(nan)
    assert ErrorReply("WRONGTYPE Operation against a key").kind == "WRONGTYPE"
    assert ErrorReply("ERR").kind == "ERR"
    assert ErrorReply("").kind == ""


def test_several_replies_in_one_read_and_leftovers() -> None:
    parser = RespParser()
    assert parse_all(b"+OK\r\n:1\r\n$3\r\nab", parser) == [SimpleString(b"OK"), 1]
    assert parser.buffered == len(b"$3\r\nab")
    assert parse_all(b"c\r\n", parser) == [b"abc"]
    assert parser.buffered == 0


@pytest.mark.parametrize(
    "garbage",
    [
        b"?\r\n",
        b"\r\n",
        b"OK\r\n",
        b":1.5\r\n",
        b": 1\r\n",
        b":+1\r\n",
        b":1_000\r\n",
        b":\r\n",
        b":-\r\n",
        ":\uff11\r\n".encode(),  # a fullwidth digit, which int() would accept
        b":99999999999999999999\r\n",
        b":9223372036854775808\r\n",
        b"$-2\r\n",
        b"$?\r\n",
        b"$3\r\nabcd\r\n",
        b"$3\r\nab\r\n\r\n",
        b"*-2\r\n",
        b"*?\r\n",
        b"~-1\r\n",
        b">-1\r\n",
        b"%-1\r\n",
        b"=-1\r\n",
        b"!-1\r\n",
        b"#x\r\n",
        b"#\r\n",
        b",1.2.3\r\n",
        b",0x10\r\n",
        b",\r\n",
        b"(1.5\r\n",
        b"_x\r\n",
        b"=3\r\nabc\r\n",  # a verbatim string without its format prefix
        b"=5\r\ntxt;a\r\n",
    ],
)
def test_garbage(garbage: bytes) -> None:
    parser = RespParser()
    with pytest.raises(RespProtocolError):
        parse_all(garbage, parser)
    # Broken for good: where the next reply starts is unknown.
    parser.feed(b"+OK\r\n")
    with pytest.raises(RespProtocolError):
        parser.next_reply()


# --- bounds ---------------------------------------------------------------------------------------------


def test_a_bulk_over_the_bound_is_refused_at_its_header() -> None:
    assert MAX_BULK_BYTES > MAX_VALUE_BYTES + 1  # GETRANGE 0 MAX_VALUE_BYTES answers up to this + 1
    assert parse_all(b"$%d\r\n" % (MAX_VALUE_BYTES + 1) + b"x" * (MAX_VALUE_BYTES + 1) + b"\r\n")
    with pytest.raises(RespProtocolError, match="bulk length"):
        parse_all(b"$%d\r\n" % (MAX_BULK_BYTES + 1))  # before a byte of the body arrived
    with pytest.raises(RespProtocolError, match="bulk length"):
        parse_all(b"$11\r\n", RespParser(max_bulk=10))


def test_a_line_over_the_bound_is_refused_before_its_end() -> None:
    parser = RespParser(max_line=10)
    assert parse_all(b"+" + b"x" * 9 + b"\r\n", parser) == [SimpleString(b"x" * 9)]
    parser.feed(b"+" + b"x" * 10)
    assert parser.next_reply() is NEED_DATA  # 11 bytes: the CR may still come
    parser.feed(b"x")
    with pytest.raises(RespProtocolError, match="line longer"):
        parser.next_reply()
    with pytest.raises(RespProtocolError, match="line longer"):
        parse_all(b"+" + b"x" * 10 + b"\r\n", RespParser(max_line=10))


def test_aggregates_are_bounded_in_length_and_depth() -> None:
    assert parse_all(b"*3\r\n:1\r\n:2\r\n:3\r\n", RespParser(max_elements=3)) == [[1, 2, 3]]
    with pytest.raises(RespProtocolError, match="aggregate"):
        parse_all(b"*4\r\n", RespParser(max_elements=3))
    with pytest.raises(RespProtocolError, match="aggregate"):
        parse_all(b"%2\r\n", RespParser(max_elements=3))  # a map's pairs count twice
    with pytest.raises(RespProtocolError, match="aggregate"):
        parse_all(b"*9223372036854775807\r\n")
    assert parse_all(b"*1\r\n" * 3 + b":1\r\n", RespParser(max_depth=3)) == [[[[1]]]]
    with pytest.raises(RespProtocolError, match="nested"):
        parse_all(b"*1\r\n" * 4, RespParser(max_depth=3))
    with pytest.raises(RespProtocolError, match="nested"):
        parse_all(b"|1\r\n" * 4, RespParser(max_depth=3))


def test_a_reply_is_bounded_in_total() -> None:
    parser = RespParser(max_reply=40)
    assert parse_all(b"*2\r\n$5\r\nhello\r\n$5\r\nworld\r\n", parser) == [[b"hello", b"world"]]
    with pytest.raises(RespProtocolError, match="reply longer"):
        parse_all(b"*3\r\n$5\r\nhello\r\n$5\r\nworld\r\n$9\r\n", RespParser(max_reply=40))
    with pytest.raises(RespProtocolError, match="reply longer"):
        parse_all(b"*9\r\n" + b":1\r\n" * 9, RespParser(max_reply=30))


def test_linear_in_what_is_fed() -> None:
    """A long line fed in small pieces, and many replies in one read: quadratic work would take minutes
    here, linear takes milliseconds."""
    size = 4 * 1024 * 1024
    parser = RespParser(max_line=size + 1, max_reply=2 * size)
    piece = b"x" * 256
    started = time.perf_counter()
    parser.feed(b"+")
    for _ in range(size // len(piece)):
        parser.feed(piece)
        assert parser.next_reply() is NEED_DATA
    parser.feed(b"\r\n")
    assert parser.next_reply() == SimpleString(b"x" * size)
    replies = parse_all(b"+OK\r\n" * 200_000)
    assert len(replies) == 200_000 and replies[-1] == SimpleString(b"OK")
    assert time.perf_counter() - started < 5.0


# --- the encoder ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "wire"),
    [
        ((b"PING",), b"*1\r\n$4\r\nPING\r\n"),
        (("GET", "k"), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
        ((b"SET", b"k", b"", b"EX", 60), b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n$2\r\nEX\r\n$2\r\n60\r\n"),
        ((b"SET", b"k\r\n$1", b"\r\n"), b"*3\r\n$3\r\nSET\r\n$5\r\nk\r\n$1\r\n$2\r\n\r\n\r\n"),
        (("μ",), b"*1\r\n$2\r\n\xce\xbc\r\n"),
        ((-1,), b"*1\r\n$2\r\n-1\r\n"),
    ],
)
def test_encode_command(args: tuple[bytes | str | int, ...], wire: bytes) -> None:
    assert encode_command(*args) == wire


@pytest.mark.parametrize("bad", [True, 1.5, None, bytearray(b"x")])
def test_encode_command_refuses_other_types(bad: Any) -> None:
    with pytest.raises(TypeError):
        encode_command(b"SET", bad)


@given(st.lists(st.binary(max_size=100), min_size=1, max_size=8))
def test_encoded_commands_parse_back(args: list[bytes]) -> None:
    assert parse_all(encode_command(*args)) == [args]


# --- properties -----------------------------------------------------------------------------------------

Pair = tuple[bytes, Reply]
_line_bytes = st.binary(max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b)
_line_text = st.text(st.characters(codec="ascii", exclude_characters="\r\n"), max_size=30)


def _bulk(kind: bytes, body: bytes) -> bytes:
    return kind + b"%d\r\n" % len(body) + body + b"\r\n"


_leaves: st.SearchStrategy[Pair] = st.one_of(
    _line_bytes.map(lambda b: (b"+" + b + b"\r\n", SimpleString(b))),
    _line_text.map(lambda t: (b"-" + t.encode() + b"\r\n", ErrorReply(t))),
    st.text(max_size=30).map(lambda t: (_bulk(b"!", t.encode()), ErrorReply(t))),
    st.integers(-(2**63), 2**63 - 1).map(lambda n: (b":%d\r\n" % n, n)),
    st.integers(-(10**60), 10**60).map(lambda n: (b"(%d\r\n" % n, n)),
    st.binary(max_size=100).map(lambda b: (_bulk(b"$", b), b)),
    st.binary(max_size=100).map(lambda b: (_bulk(b"=", b"txt:" + b), b)),
    st.sampled_from([(b"$-1\r\n", None), (b"*-1\r\n", None), (b"_\r\n", None)]),
    st.booleans().map(lambda v: (b"#t\r\n" if v else b"#f\r\n", v)),
    st.floats(allow_nan=False).map(lambda f: (b",%s\r\n" % repr(f).encode(), f)),
)


def _aggregates(children: st.SearchStrategy[Pair]) -> st.SearchStrategy[Pair]:
    def array(kind: bytes, wrap: Any) -> st.SearchStrategy[Pair]:
        return st.lists(children, max_size=4).map(
            lambda items: (
                kind + b"%d\r\n" % len(items) + b"".join(w for w, _ in items),
                wrap([v for _, v in items]),
            )
        )

    maps = st.lists(st.tuples(children, children), max_size=3).map(
        lambda kvs: (
            b"%%%d\r\n" % len(kvs) + b"".join(k + v for (k, _), (v, _) in kvs),
            RespMap(tuple((k, v) for (_, k), (_, v) in kvs)),
        )
    )
    attributed = st.tuples(st.lists(st.tuples(children, children), max_size=2), children).map(
        lambda av: (
            b"|%d\r\n" % len(av[0]) + b"".join(k + v for (k, _), (v, _) in av[0]) + av[1][0],
            av[1][1],
        )
    )
    return st.one_of(array(b"*", list), array(b"~", list), array(b">", Push), maps, attributed)


_replies = st.recursive(_leaves, _aggregates, max_leaves=12)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(st.lists(_replies, min_size=1, max_size=6), st.lists(st.integers(0, 10_000), max_size=20))
def test_any_split_of_a_valid_stream_gives_the_same_replies(pairs: list[Pair], cuts: list[int]) -> None:
    stream = b"".join(wire for wire, _ in pairs)
    expected = [tag(value) for _, value in pairs]
    parser = RespParser(max_depth=64)
    got = []
    for piece in _split(stream, cuts):
        parser.feed(piece)
        while not isinstance(reply := parser.next_reply(), NeedData):
            got.append(tag(reply))
    assert got == expected
    assert parser.buffered == 0


def _drain(parser: RespParser, pieces: list[bytes]) -> None:
    """Feed and parse; only `RespProtocolError` may escape (and ends the stream)."""
    for piece in pieces:
        parser.feed(piece)
        while not isinstance(parser.next_reply(), NeedData):
            pass


@given(st.binary(max_size=300), st.lists(st.integers(0, 1000), max_size=10))
def test_random_bytes_raise_only_protocol_errors(data: bytes, cuts: list[int]) -> None:
    with contextlib.suppress(RespProtocolError):
        _drain(RespParser(max_line=64, max_bulk=64, max_elements=8, max_depth=3), _split(data, cuts))


@given(
    st.lists(_replies, min_size=1, max_size=4),
    st.integers(0, 10_000),
    st.binary(min_size=1, max_size=3),
    st.lists(st.integers(0, 10_000), max_size=5),
)
def test_mutated_streams_raise_only_protocol_errors(
    pairs: list[Pair], at: int, junk: bytes, cuts: list[int]
) -> None:
    stream = b"".join(wire for wire, _ in pairs)
    at %= len(stream)
    mutated = stream[:at] + junk + stream[at + len(junk) :]
    with contextlib.suppress(RespProtocolError):
        _drain(RespParser(), _split(mutated, cuts))


@given(st.integers(0, 2**70), st.sampled_from([b"$", b"*", b"%", b"~", b">", b"=", b"!"]))
def test_declared_lengths_never_allocate_past_the_bounds(size: int, kind: bytes) -> None:
    """A header alone decides: a length past its bound is refused before any body is awaited."""
    parser = RespParser(max_bulk=1000, max_elements=100)
    parser.feed(kind + b"%d\r\n" % size)
    limit = 100 if kind in (b"*", b"~", b">") else 50 if kind == b"%" else 1000
    if size > limit:
        with pytest.raises(RespProtocolError):
            parser.next_reply()
    else:
        result = parser.next_reply()
        assert result is NEED_DATA or size == 0
