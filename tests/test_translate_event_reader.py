"""`EventReader` converts each stream event to its own union member: the same answers as converting to the
whole union (which costs ~50 times as much per event), for every known tag, unknown tags and wrong shapes."""

from __future__ import annotations

from typing import Any, get_args

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.apis import provider_bedrock, provider_messages
from plano_trio.translate.base import EventReader, ProviderShapeError

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
