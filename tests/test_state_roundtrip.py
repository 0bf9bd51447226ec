"""The StateStore contract, run against both backends (memory and real Postgres)."""

from __future__ import annotations

import time

import pytest

from plano_trio.state import StoreClosedError, open_state_store
from tests.state_support import (
    BACKENDS,
    assistant,
    dsn,
    fresh_schema,
    make_turn,
    open_backend,
    pg_settings,
    tool_conversation,
    user,
)


@pytest.mark.parametrize("kind", BACKENDS)
async def test_chain_with_tool_items_is_rebuilt_exactly(kind: str) -> None:
    turns, expected = tool_conversation()
    async with open_backend(kind) as store:
        for turn in turns:
            store.admit()
            store.put(turn)
        assert await store.history("resp_c") == expected
        assert await store.history("resp_a") == turns[0].input_items + turns[0].output_items
        first_two = (
            turns[0].input_items + turns[0].output_items + turns[1].input_items + turns[1].output_items
        )
        assert await store.history("resp_b") == first_two


@pytest.mark.parametrize("kind", BACKENDS)
async def test_history_after_flush_from_a_fresh_reader(kind: str) -> None:
    """Postgres: a second store (empty cache, nothing pending) rebuilds the same list from the table."""
    turns, expected = tool_conversation("fresh")
    if kind == "memory":
        async with open_backend(kind) as store:
            for turn in turns:
                store.put(turn)
            assert await store.history("fresh_c") == expected
        return
    async with fresh_schema() as schema:
        settings = pg_settings(dsn(schema))
        async with open_state_store(settings) as writer:
            for turn in turns:
                writer.put(turn)
        async with open_state_store(settings) as reader:
            assert await reader.history("fresh_c") == expected
            assert reader.stats.reads == 1
            got = await reader.get("fresh_b")
            assert got is not None
            assert got.response == turns[1].response
            assert got.input_items == turns[1].input_items
            assert got.created_at == pytest.approx(turns[1].created_at, abs=1e-5)
            assert got.response is not None and got.response["instructions"] == "Be brief."


@pytest.mark.parametrize("kind", BACKENDS)
async def test_unknown_get_delete(kind: str) -> None:
    async with open_backend(kind) as store:
        assert await store.history("resp_nope") is None
        assert await store.get("resp_nope") is None
        assert await store.delete("resp_nope") is False
        turn = make_turn("resp_1", None, [user("hi")], [assistant("hello")])
        store.admit()
        store.put(turn)
        got = await store.get("resp_1")
        assert got is not None and got.response_id == "resp_1" and got.response == turn.response
        assert await store.delete("resp_1") is True
        assert await store.get("resp_1") is None
        assert await store.history("resp_1") is None
        assert await store.delete("resp_1") is False


@pytest.mark.parametrize("kind", BACKENDS)
async def test_deleted_ancestor_means_no_history(kind: str) -> None:
    """Lossless or nothing: a chain with a missing ancestor is not returned truncated."""
    turns, _ = tool_conversation("del")
    async with open_backend(kind) as store:
        for turn in turns:
            store.put(turn)
        assert await store.history("del_c") is not None
        assert await store.delete("del_b") is True
        assert await store.history("del_c") is None
        assert await store.history("del_a") is not None


@pytest.mark.parametrize("kind", BACKENDS)
async def test_expired_conversation_is_gone(kind: str) -> None:
    old = make_turn("old_1", None, [user("old")], [assistant("old")], created_at=time.time() - 7200)
    new = make_turn("old_2", "old_1", [user("new")], [assistant("new")])
    async with open_backend(kind, ttl_s=3600) as store:
        store.put(old)
        store.put(new)
        assert await store.history("old_2") is None  # its first turn is past the TTL
        assert await store.get("old_1") is None
        assert await store.get("old_2") is not None


@pytest.mark.parametrize("kind", BACKENDS)
async def test_admission_slots_and_close(kind: str) -> None:
    async with open_backend(kind) as store:
        store.admit()
        assert store.stats.reserved == 1
        store.release()
        assert store.stats.reserved == 0
        store.admit()
        store.put(make_turn("resp_x", None, [user("x")], [assistant("y")]))
        assert store.stats.reserved == 0
        report = await store.aclose(2.0)
        assert report.lost == 0
        with pytest.raises(StoreClosedError):
            store.admit()
        assert await store.aclose(2.0) is report
