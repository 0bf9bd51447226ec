"""Ids that no backend can hold are unknown ids, answered without touching the database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.state.ids import MAX_ID_BYTES, is_storable_id
from tests.state_support import BACKENDS, assistant, make_turn, open_backend, user

UNSTORABLE = [
    "\x00",
    "resp_\x00abc",
    "resp_\nx",
    "resp_\x7f",
    "resp_\x85",  # a C1 control
    "\ud800",  # a lone surrogate: not UTF-8
    "",
    "r" * (MAX_ID_BYTES + 1),
    "é" * (MAX_ID_BYTES // 2 + 1),  # short in characters, too long in bytes
]


@pytest.mark.parametrize(
    ("response_id", "storable"),
    [(rid, False) for rid in UNSTORABLE]
    + [
        ("resp_0123456789abcdef", True),
        ("resp_" + "f" * 48, True),
        ("r" * MAX_ID_BYTES, True),
        ("ünïcödé-id with spaces", True),
    ],
)
def test_storable_ids(response_id: str, storable: bool) -> None:
    assert is_storable_id(response_id) is storable


@given(st.text(max_size=600))
def test_a_storable_id_is_printable_utf8_within_the_bound(response_id: str) -> None:
    if is_storable_id(response_id):
        encoded = response_id.encode("utf-8")
        assert 0 < len(encoded) <= MAX_ID_BYTES
        assert not any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in response_id)


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("response_id", UNSTORABLE)
async def test_unstorable_ids_are_unknown_without_a_database_read(kind: str, response_id: str) -> None:
    async with open_backend(kind) as store:
        reads = store.stats.reads
        assert await store.get(response_id) is None
        assert await store.delete(response_id) is False
        assert await store.history(response_id) is None
        assert store.stats.reads == reads


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_turn_with_an_unstorable_id_is_skipped_and_its_slot_released(kind: str) -> None:
    async with open_backend(kind) as store:
        store.admit()
        store.put(make_turn("resp_\x00bad", None, [user("a")], [assistant("b")]))
        store.admit()
        store.put(make_turn("resp_child", "\ud800", [user("a")], [assistant("b")]))
        assert store.stats.reserved == 0 and store.stats.queue_depth == 0
        assert store.stats.rejected_total == 2
        store.admit()
        store.put(make_turn("resp_good", None, [user("a")], [assistant("b")]))
        assert await store.history("resp_good") == [user("a"), assistant("b")]
