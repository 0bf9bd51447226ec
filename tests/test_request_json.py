"""The request JSON readers: a bad body is a `RequestJsonError` (or the client's 400), nothing else."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.apis.request_json import (
    MAX_DEPTH,
    RequestJsonError,
    decode_members,
    decode_request_object,
    deeper_than,
    duplicate_key,
)
from plano_trio.gateway.clients import CHAT, MESSAGES, RESPONSES, ClientApi
from plano_trio.gateway.errors import ApiError


def nested(depth: int, opener: bytes = b'{"a":', closer: bytes = b"}") -> bytes:
    """An object `depth` levels deep (the top level counts as 1)."""
    return opener * depth + b"1" + closer * depth


@pytest.mark.parametrize(
    ("body", "needle", "param"),
    [
        (b"{oops", "not valid JSON", None),
        (b"[1,2]", "must be a JSON object, not an array", None),
        (b'"x"', "must be a JSON object, not a string", None),
        (b"7", "must be a JSON object, not a number", None),
        (b"null", "must be a JSON object, not null", None),
        (b"true", "must be a JSON object, not a boolean", None),
        (b'{"a":"\xff"}', "not UTF-8 (invalid byte at offset 6)", None),
        (b'{"\xc3\x28":1}', "not UTF-8", None),
        (b'{"a":' * 100_000, f"deeper than {MAX_DEPTH}", None),
        (b"[" * 100_000, "must be a JSON object, not an array", None),
        (b'{"model":"a","model":"b"}', "'model' is given more than once", "model"),
        (b'{"model":"a" , "stream":true, "model" :"a"}', "'model' is given more than once", "model"),
        (b'{"model":"a","mod\\u0065l":"b"}', "'model' is given more than once", "model"),
        (b'{"x":1,"x":1,"y":2}', "'x' is given more than once", "x"),
        (b'{ "a": {"a": 1, "a": 2}, "b": 1 }', None, None),  # nested duplicates are not the top level's
    ],
)
def test_decode_members_table(body: bytes, needle: str | None, param: str | None) -> None:
    if needle is None:
        assert set(decode_members(body)) == {"a", "b"}
        return
    with pytest.raises(RequestJsonError) as caught:
        decode_members(body)
    assert needle in caught.value.message
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"a":1' + b"0" * 100_000 + b"}", "cannot be represented (Integer value out of range)"),
        (b'{"a":1e999999}', "cannot be represented (Number out of range)"),
        (b'{"a":[-1e400]}', "cannot be represented"),
        (b'{"a":"\xed\xa0\x80"}', "not UTF-8"),  # an encoded surrogate is not UTF-8
        (b'{"a":"\\ud800"}', "invalid utf-16 surrogate pair (byte 6: \\ud800 is not followed"),
        (b'{"a":"\\uDBFFx"}', "(byte 6: \\uDBFF is not followed by its pair)"),  # nor a lone escaped one
        (b'{"a":"\\\\\\ud800"}', "(byte 8: \\ud800"),  # an escaped backslash, then the escape
        (b'{"a":"\\\\ud800"}', None),  # a backslash, then the text "ud800": no escape at all
        (b'{"a":"\\udc00"}', "invalid utf-16 surrogate pair"),  # msgspec's own words
        (b'{"a":"\\ud83d\\ude00"}', None),  # a whole pair
        (b'{"a":"x', "not valid JSON: Input data was truncated"),  # truncation is still truncation
        (nested(MAX_DEPTH + 1), f"deeper than {MAX_DEPTH}"),
        (nested(MAX_DEPTH + 1, b"[", b"]"), "must be a JSON object"),
        (b'{"a":' + nested(MAX_DEPTH, b"[", b"]") + b"}", f"deeper than {MAX_DEPTH}"),
        (b'{"a":"' + b"[" * 500 + b'"}', None),  # brackets in a string are not nesting
        (nested(MAX_DEPTH), None),
    ],
)
def test_decode_request_object_table(body: bytes, needle: str | None) -> None:
    if needle is None:
        assert isinstance(decode_request_object(body), dict)
        return
    with pytest.raises(RequestJsonError) as caught:
        decode_request_object(body)
    assert needle in caught.value.message


@pytest.mark.parametrize(
    ("value", "limit", "deeper"),
    [
        (1, 0, False),
        ({}, 0, True),
        ({}, 1, False),
        ([[], {"a": [1]}], 2, True),
        ([[], {"a": [1]}], 3, False),
        ({"a": "[[[[", "b": [{}]}, 2, True),
    ],
)
def test_deeper_than_table(value: Any, limit: int, deeper: bool) -> None:
    assert deeper_than(value, limit) is deeper


# -- ClientApi.parse: the 400s each client API answers -------------------------------------------------


@pytest.mark.parametrize(
    ("client", "body", "needle", "param"),
    [
        (CHAT, b'{"model":"m","messages":[],"model":"m"}', "'model' is given more than once", "model"),
        (CHAT, b'{"model":"m","messages":[],"stream":false,"stream":true}', "'stream'", "stream"),
        (MESSAGES, b'{"model":"m","messages":[],"messages":[]}', "'messages'", "messages"),
        (RESPONSES, b'{"model":"m","input":"a","input":"b"}', "'input'", "input"),
        (CHAT, b'{"model":"\xff","messages":[]}', "not UTF-8", None),
        (CHAT, b'{"model":"m","messages":' + b"[" * 100_000, f"deeper than {MAX_DEPTH}", None),
        (CHAT, b'{"model":7,"messages":[]}', "$.model", "model"),
        (CHAT, b'{"model":"m","messages":{}}', "$.messages", "messages"),
        (CHAT, b'{"model":"m","messages":null}', "$.messages", "messages"),
        (RESPONSES, b'{"model":"m","input":"x","store":"yes"}', "$.store", "store"),
        (CHAT, b'{"model":1e999999,"messages":[]}', "$.model", "model"),
        (CHAT, b'{"model":"m","input":[]}', "'messages'", "messages"),
        (RESPONSES, b'{"input":[]}', "'model'", "model"),
        (CHAT, b'{"model":"m","messages":[{"role":"user","content":"\\ud83d"}]}', "surrogate pair", None),
        (
            MESSAGES,
            b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"\\ud83d!"}]}',
            "\\ud83d",
            None,
        ),
    ],
)
def test_parse_table(client: ClientApi, body: bytes, needle: str, param: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        client.parse(body)
    assert caught.value.status == 400
    assert needle in caught.value.message
    assert caught.value.param == param


def test_parse_keeps_the_top_level_undecoded() -> None:
    body = b'{ "model" : "fast", "stream": true, "messages": [{"role":"user","content":"x"}], "n": 1 }'
    view = CHAT.parse(body)
    assert (view.model, view.stream) == ("fast", True)
    assert bytes(view.members["messages"]) == b'[{"role":"user","content":"x"}]'
    assert list(view.members) == ["model", "stream", "messages", "n"]


def test_decode_request_maps_to_the_clients_400() -> None:
    with pytest.raises(ApiError) as caught:
        MESSAGES.decode_request(b'{"model":"m","max_tokens":1e999999,"messages":[]}')
    assert caught.value.status == 400 and "cannot be represented" in caught.value.message


# -- properties -------------------------------------------------------------------------------------

_finite = st.floats(allow_nan=False, allow_infinity=False)
_json_scalars = st.none() | st.booleans() | st.integers() | _finite | st.text(max_size=8)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_only_typed_errors(body: bytes) -> None:
    for read in (decode_members, decode_request_object):
        with contextlib.suppress(RequestJsonError):
            read(body)
    for client in (CHAT, MESSAGES, RESPONSES):
        try:
            client.parse(body)
        except ApiError as error:
            assert error.status == 400


@given(_json_values, st.sampled_from([None, 0, 2]))
def test_arbitrary_json_values_decode_or_give_typed_errors(value: Any, indent: int | None) -> None:
    body = json.dumps(value, indent=indent).encode()
    if isinstance(value, dict):
        assert decode_request_object(body) == msgspec.json.decode(body)
        assert set(decode_members(body)) == set(value)
    else:
        with pytest.raises(RequestJsonError):
            decode_request_object(body)
        with pytest.raises(RequestJsonError):
            decode_members(body)


_keys = st.sampled_from(["model", "stream", "messages", "a", "\u00e9", 'q"'])


@given(
    st.lists(st.tuples(_keys, _json_values), max_size=6),
    st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]),
    st.booleans(),
)
def test_duplicate_key_is_found_however_the_body_is_spelled(
    pairs: list[tuple[str, Any]], separators: tuple[str, str], ascii_only: bool
) -> None:
    comma, colon = separators
    members = [json.dumps(key, ensure_ascii=ascii_only) + colon + json.dumps(value) for key, value in pairs]
    body = ("{" + comma.join(members) + "}").encode()
    keys = [key for key, _ in pairs]
    first_repeat = next((key for i, key in enumerate(keys) if key in keys[:i]), None)
    found = duplicate_key(body, msgspec.json.decode(body, type=dict[str, msgspec.Raw]))
    if first_repeat is None:
        assert found is None
    else:
        assert found in {key for key in keys if keys.count(key) > 1}


@given(st.integers(min_value=1, max_value=3 * MAX_DEPTH), st.sampled_from([b" ", b""]))
def test_depth_bound_is_exact(depth: int, space: bytes) -> None:
    body = (b'{"a":' + space) * depth + b'"]]"' + b"}" * depth
    if depth <= MAX_DEPTH:
        assert isinstance(decode_request_object(body), dict)
    else:
        with pytest.raises(RequestJsonError, match="deeper than"):
            decode_request_object(body)
