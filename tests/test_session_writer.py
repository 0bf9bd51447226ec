"""The session bindings' write-behind: coalescing per key, order, the bound, the shutdown drain."""

from __future__ import annotations

import trio
import trio.testing

from plano_trio.session.store import SessionCacheCounters, StoreKind
from plano_trio.session.writer import BindingWriter


class RecordingStore:
    """A session store that records each write, and can hold writes until released."""

    backend: StoreKind = "memory"

    def __init__(self) -> None:
        self.counters = SessionCacheCounters()
        self.writes: list[tuple[str, bytes, int]] = []
        self.gate: trio.Event | None = None

    async def get(self, key: str) -> bytes | None:
        return None

    async def put(self, key: str, value: bytes, ttl_s: int) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.writes.append((key, value, ttl_s))


async def test_writes_reach_the_store_in_submission_order() -> None:
    store = RecordingStore()
    writer = BindingWriter(store)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        assert writer.submit("a", b"1", 10)
        assert writer.submit("b", b"2", 20)
        await trio.testing.wait_all_tasks_blocked()
        assert store.writes == [("a", b"1", 10), ("b", b"2", 20)]
        assert (writer.written, writer.pending) == (2, 0)
        assert writer.submit("c", b"3", 30)  # the loop wakes again for a later submit
        await trio.testing.wait_all_tasks_blocked()
        assert store.writes[-1] == ("c", b"3", 30)
        nursery.cancel_scope.cancel()


async def test_a_key_written_again_before_it_went_out_is_written_once_with_the_newer_value() -> None:
    store = RecordingStore()
    writer = BindingWriter(store)
    writer.submit("a", b"old", 10)
    writer.submit("b", b"x", 10)
    writer.submit("a", b"new", 11)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert store.writes == [("a", b"new", 11), ("b", b"x", 10)]  # "a" keeps its place in the line
    assert writer.coalesced == 1


async def test_a_key_submitted_while_its_write_is_in_flight_is_written_again_after_it() -> None:
    store = RecordingStore()
    store.gate = trio.Event()
    writer = BindingWriter(store)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        writer.submit("a", b"first", 10)
        await trio.testing.wait_all_tasks_blocked()  # the first write is waiting on the store
        writer.submit("a", b"second", 10)
        store.gate.set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert [value for _, value, _ in store.writes] == [b"first", b"second"]


async def test_past_the_bound_writes_are_dropped_and_counted_never_blocking() -> None:
    store = RecordingStore()
    writer = BindingWriter(store, max_pending=2)
    assert writer.submit("a", b"1", 1)
    assert writer.submit("b", b"1", 1)
    assert not writer.submit("c", b"1", 1)
    assert writer.submit("a", b"2", 1)  # a key already waiting is replaced, not refused
    assert (writer.pending, writer.dropped, writer.coalesced) == (2, 1, 1)


async def test_drain_writes_what_is_pending_within_its_bound() -> None:
    store = RecordingStore()
    writer = BindingWriter(store)
    writer.submit("a", b"1", 1)
    writer.submit("b", b"1", 1)
    await writer.drain()
    assert [key for key, _, _ in store.writes] == ["a", "b"]
    assert writer.dropped == 0


async def test_drain_gives_up_on_a_stuck_store_and_counts_what_it_left() -> None:
    store = RecordingStore()
    store.gate = trio.Event()  # never set: every write hangs
    writer = BindingWriter(store)
    writer.submit("a", b"1", 1)
    writer.submit("b", b"1", 1)
    with trio.fail_after(2):
        await writer.drain(timeout_s=0.05)
    assert store.writes == []
    assert (writer.pending, writer.dropped) == (0, 1)  # "a" was in flight when time ran out; "b" dropped
