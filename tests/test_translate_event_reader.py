"""`EventReader` converts each stream event to its own union member: the same answers as converting to the
whole union (which costs ~50 times as much per event), for every known tag, unknown tags and wrong shapes.
From an event's JSON bytes, `EventReader` and `EventValue` answer exactly as from the decoded object."""

from __future__ import annotations

from typing import Any, get_args

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.apis import provider_bedrock, provider_chat, provider_messages
from plano_trio.translate.base import EventReader, EventValue, ProviderShapeError, StreamError, decode_event

UNIONS = [
    pytest.param(provider_messages.StreamEvent, id="anthropic"),
    pytest.param(provider_bedrock.StreamEvent, id="bedrock"),
]

ANTHROPIC = EventReader(provider_messages.StreamEvent, "Anthropic stream event")


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
            provider_messages.ContentBlockDelta(
                index=0, delta=provider_messages.BlockDelta(type="text_delta", text="hi")
            ),
        ),
        ({"type": "message_stop"}, provider_messages.MessageStop()),
        ({"type": "ping"}, None),
        ({"type": "content_block_stop", "index": 0}, None),
        ({"type": 7}, None),
        ({}, None),
    ],
)
def test_known_tags_convert_and_others_read_as_none(event: dict[str, Any], expected: object) -> None:
    assert ANTHROPIC(event) == expected


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([1, 2], "not a JSON object"),
        ("message_stop", "not a JSON object"),
        ({"type": "content_block_delta", "index": "0"}, "`content_block_delta`"),
        ({"type": "message_start", "message": "x"}, "`message_start`: Expected `object | null`"),
    ],
)
def test_wrong_shapes_are_provider_shape_errors(event: object, message: str) -> None:
    with pytest.raises(ProviderShapeError, match=message.replace("|", r"\|")):
        ANTHROPIC(event)


def _union_convert(value: dict[str, Any], union: Any) -> object:
    try:
        return msgspec.convert(value, union)
    except msgspec.ValidationError:
        return ProviderShapeError


def _reader_convert(reader: EventReader, value: dict[str, Any]) -> object:
    try:
        return reader(value)
    except ProviderShapeError:
        return ProviderShapeError


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@pytest.mark.parametrize("union", UNIONS)
@given(data=st.data())
def test_member_conversion_matches_union_conversion(union: Any, data: st.DataObject) -> None:
    """For any object carrying a known tag, reading it gives what converting to the whole union gives."""
    members = get_args(union)
    field = members[0].__struct_config__.tag_field
    member = data.draw(st.sampled_from(members))
    names = st.sampled_from([*member.__struct_fields__, "unread"])
    fields = data.draw(st.dictionaries(names, _json, max_size=4))
    value = {**fields, field: member.__struct_config__.tag}
    reader = EventReader(union, "event")
    assert _reader_convert(reader, value) == _union_convert(value, union)


def _outcome(read: Any, value: object) -> object:
    """What `read(value)` gives: the value, or the kind and text of the StreamError it raised."""
    try:
        return read(value)
    except StreamError as error:
        return (type(error), str(error))


CHAT_CHUNK = EventValue(provider_chat.Completion, "chat.completion.chunk")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}',
            provider_messages.ContentBlockDelta(
                index=0, delta=provider_messages.BlockDelta(type="text_delta", text="hi")
            ),
        ),
        # A repeated key: the last one counts, as when the object is decoded first.
        (
            b'{"type":"content_block_delta","index":0,"index":2,"delta":{"type":"text_delta","text":"a"}}',
            provider_messages.ContentBlockDelta(
                index=2, delta=provider_messages.BlockDelta(type="text_delta", text="a")
            ),
        ),
        (b'{"type":"ping"}', None),
        (b'{"type":"message_stop","extra":[1,{"x":null}]}', provider_messages.MessageStop()),
        (b"{}", None),
        (b"[1]", (StreamError, "provider sent a stream event that is not a JSON object")),
        (b"{nope", (StreamError, "provider sent a stream event that is not valid JSON")),
        (
            b'{"type":"content_block_delta","index":"0"}',
            (
                ProviderShapeError,
                "provider sent a malformed Anthropic stream event `content_block_delta`: "
                "Expected `int`, got `str` - at `$.index`",
            ),
        ),
    ],
)
def test_reading_json_bytes(data: bytes, expected: object) -> None:
    assert _outcome(ANTHROPIC, data) == expected


@pytest.mark.parametrize("union", UNIONS)
@given(data=st.data())
def test_bytes_read_as_the_decoded_object_does(union: Any, data: st.DataObject) -> None:
    """Straight from JSON bytes (one decoder for the whole union) or from the decoded object: same answer."""
    members = get_args(union)
    field = members[0].__struct_config__.tag_field
    member = data.draw(st.sampled_from(members))
    names = st.sampled_from([*member.__struct_fields__, "unread"])
    fields = data.draw(st.dictionaries(names, _json, max_size=4))
    tag = data.draw(st.sampled_from([member.__struct_config__.tag, "unknown", 3]))
    value = {**fields, field: tag}
    reader = EventReader(union, "event")
    assert _outcome(reader, msgspec.json.encode(value)) == _outcome(reader, value)


@given(
    value=st.dictionaries(
        st.sampled_from(["id", "model", "choices", "usage", "error", "x"]), _json, max_size=4
    )
)
def test_chat_chunk_bytes_read_as_the_decoded_object_does(value: dict[str, Any]) -> None:
    assert _outcome(CHAT_CHUNK, msgspec.json.encode(value)) == _outcome(CHAT_CHUNK, value)


@pytest.mark.parametrize("data", [b"[]", b"1", b'"s"', b"", b"{", b'{"a":1}x'])
def test_chat_chunk_that_is_no_object_fails_as_decode_event_does(data: bytes) -> None:
    assert _outcome(CHAT_CHUNK, data) == _outcome(decode_event, data)
