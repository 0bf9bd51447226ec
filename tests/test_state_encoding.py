"""The per-turn write path's pure parts, without a database: a turn's row, a batch's parameter, the
history cache's chains and bounds, the writer's batches, and the postgres store's cache walk.

The row is what `INSERT_TURNS` unpacks (`jsonb_to_recordset`), so these tests read it back as JSON and
check it against the turn field by field; test_state_pgloop stores the same rows in a real PostgreSQL.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.state import PostgresStore, Turn, sql, writer
from plano_trio.state.cache import FLATTEN_DEPTH, CachedHistory, HistoryCache
from plano_trio.state.model import EncodedTurn, encode_turn, restore_response
from plano_trio.state.writer import Rejection, WriteBehind
from tests.state_support import assistant, conversation, make_turn, pg_settings, stored_turns, user

_TEXT = st.text(st.characters(codec="utf-8"), max_size=20)


def _row(record: EncodedTurn) -> dict[str, Any]:
    row: dict[str, Any] = msgspec.json.decode(record.row)
    return row


def _turn(response: dict[str, Any] | None, outputs: list[Any]) -> Turn:
    return Turn("resp_1", "resp_0", [user("q")], outputs, "m", "p", 1767000000.25, response)


_OUT = [assistant("a")]


@pytest.mark.parametrize(
    ("response", "stored", "elided"),
    [
        (None, None, False),
        ({"id": "resp_1", "status": "completed"}, {"id": "resp_1", "status": "completed"}, False),
        ({"id": "resp_1", "output": _OUT, "usage": None}, {"id": "resp_1", "usage": None}, True),
        ({"id": "resp_1", "output": [assistant("a")]}, {"id": "resp_1"}, True),  # equal, not the same list
        ({"id": "resp_1", "output": [assistant("b")]}, {"id": "resp_1", "output": [assistant("b")]}, False),
        ({"output": []}, {"output": []}, False),
    ],
)
def test_a_turn_is_one_row_and_its_output_is_stored_once(
    response: dict[str, Any] | None, stored: dict[str, Any] | None, elided: bool
) -> None:
    before = msgspec.json.decode(msgspec.json.encode(response))
    record = encode_turn(_turn(response, _OUT))
    assert response == before  # the caller's response is never changed
    assert _row(record) == {
        "r": "resp_1",
        "p": "resp_0",
        "i": [user("q")],
        "o": _OUT,
        "m": "m",
        "pr": "p",
        "c": 1767000000.25,
        "re": stored,
        "e": elided,
    }
    response_bytes = len(msgspec.json.encode(stored)) if stored is not None else 0
    assert record.nbytes == len(record.row)
    assert record.history_nbytes == len(record.row) - response_bytes


def test_an_unserializable_turn_raises_type_error() -> None:
    with pytest.raises(TypeError):
        encode_turn(_turn({"id": object()}, _OUT))


@st.composite
def _turns(draw: st.DrawFn) -> Turn:
    return draw(stored_turns(_TEXT, draw(_TEXT), draw(st.none() | _TEXT)))


@given(turn=_turns())
def test_the_row_reads_back_as_the_turn(turn: Turn) -> None:
    record = encode_turn(turn)
    row = _row(record)
    restored = Turn(
        row["r"],
        row["p"],
        row["i"],
        row["o"],
        row["m"],
        row["pr"],
        row["c"],
        restore_response(row["re"], row["o"], row["e"]),
    )
    assert restored == turn
    assert 0 < record.history_nbytes <= record.nbytes == len(record.row)


@pytest.mark.parametrize("count", [0, 1, 2, 5])
def test_a_batch_is_a_json_array_of_its_rows(count: int) -> None:
    batch = [encode_turn(make_turn(f"resp_{n}", None, [user("q")], [assistant("a")])) for n in range(count)]
    assert msgspec.json.decode(sql.turns_json(batch)) == [_row(record) for record in batch]


@given(turns=st.lists(_turns(), max_size=5))
def test_any_batch_decodes_to_its_rows(turns: list[Turn]) -> None:
    batch = [encode_turn(turn) for turn in turns]
    assert msgspec.json.decode(sql.turns_json(batch)) == [_row(record) for record in batch]


# --- the history cache ---------------------------------------------------------------------------------


@given(tails=st.lists(st.lists(st.integers(), max_size=3), min_size=1, max_size=12))
def test_a_chain_reads_as_its_tails_root_first(tails: list[list[int]]) -> None:
    entry = CachedHistory(tails[0], 1, 100.0)
    for n, tail in enumerate(tails[1:], 1):
        entry = entry.extended(tail, 1, 100.0 - n)
    assert entry.items() == [item for tail in tails for item in tail]
    assert entry.items() is not entry.items()  # a new list every time: the caller may keep it
    assert entry.depth == len(tails) and entry.nbytes == len(tails)
    assert entry.oldest_created_at == 100.0 - (len(tails) - 1)
    assert entry.flat_enough == (len(tails) <= FLATTEN_DEPTH)


def test_a_flat_entry_hands_out_a_copy() -> None:
    tail = [1, 2]
    entry = CachedHistory(tail, 2, 0.0)
    items = entry.items()
    items.append(3)
    assert entry.items() == [1, 2] and tail == [1, 2]


@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["put", "take"]), st.integers(0, 5), st.integers(0, 40)), max_size=40
    )
)
def test_the_cache_counts_exactly_what_it_holds_within_its_bound(ops: list[tuple[str, int, int]]) -> None:
    cache = HistoryCache(100)
    for op, key, size in ops:
        if op == "put":
            cache.put(f"k{key}", CachedHistory([], size, 0.0))
            assert cache.get(f"k{key}") is not None or size > 100
        else:
            taken = cache.take(f"k{key}")
            assert cache.get(f"k{key}") is None
            assert taken is None or taken.nbytes >= 0
        held = [cache.get(f"k{k}") for k in range(6)]
        assert cache.nbytes == sum(entry.nbytes for entry in held if entry is not None) <= 100
        assert len(cache) == sum(entry is not None for entry in held)


# --- the writer's batches ------------------------------------------------------------------------------


class RecordingSink:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def write(self, batch: Sequence[EncodedTurn], *, retry: bool) -> list[Rejection]:
        await trio.lowlevel.checkpoint()
        self.batches.append([record.turn.response_id for record in batch])
        return []


@given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=40), max_batch=st.integers(1, 8))
def test_batches_keep_the_order_and_the_bounds(sizes: list[int], max_batch: int) -> None:
    """FIFO; at most `max_batch` turns; a batch grows past `MAX_BATCH_BYTES` only by its last turn."""
    records = [
        encode_turn(Turn(f"resp_{n}", None, [], ["x" * size], "m", "p", 0.0)) for n, size in enumerate(sizes)
    ]
    limit = 700

    async def main() -> list[list[str]]:
        sink = RecordingSink()
        queue = WriteBehind(sink, queue_size=len(records), max_batch=max_batch)
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            for record in records:
                queue.admit()
                queue.put(record)
            await trio.testing.wait_all_tasks_blocked()
            assert queue.queue_depth == 0 and queue.flushed_total == queue.accepted_total == len(records)
            nursery.cancel_scope.cancel()
        return sink.batches

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(writer, "MAX_BATCH_BYTES", limit)
        batches = trio.run(main)
    by_id = {record.turn.response_id: record.nbytes for record in records}
    assert [rid for batch in batches for rid in batch] == [record.turn.response_id for record in records]
    for batch in batches:
        assert 1 <= len(batch) <= max_batch
        assert sum(by_id[rid] for rid in batch[:-1]) < limit


# --- the postgres store's cache walk (no database: every read below is a hit or a pending turn) ---------


def _store() -> PostgresStore:
    return PostgresStore(pg_settings("host=127.0.0.1 port=1 dbname=none"))


async def test_a_long_conversation_is_read_from_the_cache_and_flattened_now_and_then() -> None:
    store = _store()
    expected: list[Any] = []
    nbytes = 0
    previous: str | None = None
    for turn in conversation(3 * FLATTEN_DEPTH, "long"):
        if previous is not None:
            assert await store.history(previous) == expected
        store.admit()
        store.put(turn)
        expected += turn.input_items + turn.output_items
        nbytes += encode_turn(turn).history_nbytes
        previous = turn.response_id
        entry = store._cache.get(previous)
        assert entry is not None and entry.depth <= FLATTEN_DEPTH + 1
    assert await store.history(previous or "") == expected
    stats = store.stats
    assert stats.reads == 0 and stats.cache_misses == 0 and stats.entries == 1
    assert stats.bytes == nbytes


async def test_pending_turns_alone_rebuild_the_conversation() -> None:
    """Cache emptied (evicted, say) while every turn is still queued: the walk reaches the root."""
    store = _store()
    turns = conversation(5, "pend")
    for turn in turns:
        store.admit()
        store.put(turn)
    store._cache.clear()
    expected = [item for turn in turns for item in turn.input_items + turn.output_items]
    assert await store.history(turns[-1].response_id) == expected
    assert store.stats.reads == 0 and store.stats.entries == 1  # cached flat for the next turn
    assert await store.history(turns[-1].response_id) == expected


async def test_a_cached_conversation_past_the_ttl_is_not_handed_out() -> None:
    store = PostgresStore(pg_settings("host=127.0.0.1 port=1 dbname=none", ttl_s=60))
    old = make_turn("old", None, [user("q")], [assistant("a")], created_at=time.time() - 3600)
    store.admit()
    store.put(old)
    store._cache.clear()
    assert await store.history("old") is None  # pending, but expired
    assert not math.isinf(store._cutoff())
