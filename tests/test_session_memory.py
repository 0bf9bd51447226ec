"""The in-process session store: LRU bound, TTL on read, the sweep, value and key bounds, its owner."""

from __future__ import annotations

from typing import cast

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.session import MAX_ENTRIES, MAX_VALUE_BYTES, SWEEP_INTERVAL_S, open_session_store
from plano_trio.session.memory import MemorySessionStore
from plano_trio.session.store import MAX_KEY_BYTES, clamp_entries, storage_key


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(max_entries: int = 3) -> tuple[MemorySessionStore, FakeClock]:
    clock = FakeClock()
    return MemorySessionStore(max_entries, clock=clock), clock


async def test_put_then_get_returns_the_bytes_and_counts() -> None:
    store, _ = make()
    assert await store.get("a") is None
    await store.put("a", b"\x00value\r\n", 60)
    assert await store.get("a") == b"\x00value\r\n"
    assert (store.counters.hits, store.counters.misses) == (1, 1)


async def test_put_replaces_the_value_and_its_ttl() -> None:
    store, clock = make()
    await store.put("a", b"old", 10)
    clock.now += 9
    await store.put("a", b"new", 10)
    clock.now += 9
    assert await store.get("a") == b"new"
    assert len(store) == 1


async def test_the_least_recently_used_entry_is_evicted() -> None:
    store, _ = make(max_entries=3)
    for key in "abc":
        await store.put(key, key.encode(), 60)
    assert await store.get("a") == b"a"  # a is now the most recent; b the least
    await store.put("d", b"d", 60)
    assert len(store) == 3
    assert await store.get("b") is None
    assert [await store.get(k) for k in "acd"] == [b"a", b"c", b"d"]
    assert store.counters.evictions == 1


async def test_rewriting_a_key_makes_it_recent() -> None:
    store, _ = make(max_entries=2)
    await store.put("a", b"1", 60)
    await store.put("b", b"1", 60)
    await store.put("a", b"2", 60)
    await store.put("c", b"1", 60)
    assert await store.get("b") is None
    assert await store.get("a") == b"2"


@pytest.mark.parametrize(
    ("ttl_s", "elapsed", "alive"),
    [
        (10, 0.0, True),
        (10, 9.999, True),
        (10, 10.0, False),
        (10, 11.0, False),
        (0, 0.999, True),  # a TTL under 1 s is stored as 1 s, as Plano does
        (0, 1.0, False),
        (-5, 0.5, True),
    ],
)
async def test_ttl_is_checked_on_read(ttl_s: int, elapsed: float, alive: bool) -> None:
    store, clock = make()
    await store.put("a", b"v", ttl_s)
    clock.now += elapsed
    assert (await store.get("a") == b"v") is alive
    assert len(store) == (1 if alive else 0)
    assert store.counters.expired == (0 if alive else 1)


async def test_sweep_drops_only_expired_entries() -> None:
    store, clock = make(max_entries=10)
    await store.put("short", b"v", 5)
    await store.put("long", b"v", 50)
    await store.put("mid", b"v", 10)
    clock.now += 10
    assert store.sweep() == 2
    assert len(store) == 1
    assert await store.get("long") == b"v"
    assert store.counters.expired == 2
    assert store.sweep() == 0


async def test_the_owner_sweeps_every_interval(autojump_clock: trio.testing.MockClock) -> None:
    async with open_session_store("memory", max_entries=10) as store:
        memory = cast(MemorySessionStore, store)
        await store.put("a", b"v", 10)
        await store.put("b", b"v", int(SWEEP_INTERVAL_S) * 2)
        await trio.sleep(SWEEP_INTERVAL_S - 1)
        assert len(memory) == 2  # expired, but nobody read it and the sweep has not run yet
        await trio.sleep(2)
        assert len(memory) == 1
        assert memory.counters.expired == 1
        assert memory.counters.misses == 0


async def test_the_owner_stops_the_sweep_on_exit() -> None:
    with trio.fail_after(5):
        async with open_session_store("memory", max_entries=10) as store:
            assert store.backend == "memory"
    # Reaching here means the nursery closed: the sweep task was cancelled, not awaited forever.


async def test_an_error_in_the_body_arrives_as_itself() -> None:
    with pytest.raises(KeyError):
        async with open_session_store("memory", max_entries=10):
            raise KeyError("boom")


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (b"x", True),
        (b"x" * MAX_VALUE_BYTES, True),
        (b"x" * (MAX_VALUE_BYTES + 1), False),
        (b"", False),  # the Redis store cannot tell an empty value from an absent key; neither keeps one
    ],
)
async def test_value_bounds(value: bytes, stored: bool) -> None:
    store, _ = make()
    await store.put("a", value, 60)
    assert (await store.get("a") == value) is stored
    assert store.counters.rejected == (0 if stored else 1)


async def test_a_rejected_value_leaves_the_previous_one() -> None:
    store, _ = make()
    await store.put("a", b"old", 60)
    await store.put("a", b"x" * (MAX_VALUE_BYTES + 1), 60)
    assert await store.get("a") == b"old"


async def test_a_mutable_buffer_is_copied() -> None:
    store, _ = make()
    buffer = bytearray(b"abc")
    await store.put("a", buffer, 60)  # type: ignore[arg-type]  # a caller passing a bytearray by mistake
    buffer[0] = ord("z")
    assert await store.get("a") == b"abc"


@pytest.mark.parametrize(
    ("asked", "used"),
    [(1, 1), (500, 500), (MAX_ENTRIES, MAX_ENTRIES), (MAX_ENTRIES + 1, MAX_ENTRIES), (0, 1), (-3, 1)],
)
def test_max_entries_is_clamped(asked: int, used: int) -> None:
    assert clamp_entries(asked) == used


async def test_open_session_store_clamps_max_entries() -> None:
    async with open_session_store("memory", max_entries=10**9) as store:
        assert cast(MemorySessionStore, store).max_entries == MAX_ENTRIES


def test_a_store_needs_room_for_one_entry() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemorySessionStore(0)


@pytest.mark.parametrize(
    ("key", "hashed"),
    [
        ("implicit:0123456789abcdef", False),
        ("tenant:" + "x" * (MAX_KEY_BYTES - 7), False),
        ("x" * (MAX_KEY_BYTES + 1), True),
        ("é" * (MAX_KEY_BYTES // 2 + 1), True),  # counted in UTF-8 bytes, not characters
        ("\udcff lone surrogate", False),
    ],
)
def test_storage_key_bounds_long_keys(key: str, hashed: bool) -> None:
    bounded = storage_key(key)
    assert (bounded != key) is hashed
    assert len(bounded.encode("utf-8", "surrogatepass")) <= MAX_KEY_BYTES
    if hashed:
        assert bounded.startswith("sha256:")


async def test_long_and_odd_keys_still_find_their_value() -> None:
    store, _ = make(max_entries=10)
    long_a, long_b = "a" * 5000, "a" * 4999 + "b"
    await store.put(long_a, b"A", 60)
    await store.put(long_b, b"B", 60)
    await store.put("\udcff", b"S", 60)
    assert [await store.get(k) for k in (long_a, long_b, "\udcff")] == [b"A", b"B", b"S"]


@pytest.mark.parametrize(
    ("kind", "url", "timeout_s", "message"),
    [
        ("postgres", None, 0.25, "unknown session cache type"),
        ("redis", None, 0.25, "url is required"),
        ("redis", "", 0.25, "url is required"),
        ("redis", "redis://127.0.0.1:6379", 0.0, "timeout_s"),
    ],
)
async def test_open_session_store_refuses_bad_arguments(
    kind: str, url: str | None, timeout_s: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        async with open_session_store(kind, url=url, timeout_s=timeout_s):  # type: ignore[arg-type]
            pass


Op = tuple[str, int, int]
"""("put", key, ttl) | ("get", key, 0) | ("tick", 0, seconds)"""

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 6), st.integers(1, 20)),
        st.tuples(st.just("get"), st.integers(0, 6), st.just(0)),
        st.tuples(st.just("tick"), st.just(0), st.integers(0, 15)),
    ),
    max_size=60,
)


@given(ops=OPS, capacity=st.integers(1, 5))
def test_behaves_like_a_list_model(ops: list[Op], capacity: int) -> None:
    """Against a deliberately naive model: a list of [key, value, expiry], most recent last."""

    async def run() -> None:
        store, clock = make(max_entries=capacity)
        model: list[tuple[str, bytes, float]] = []
        for n, (op, k, arg) in enumerate(ops):
            key = f"k{k}"
            if op == "tick":
                clock.now += arg
            elif op == "put":
                value = f"v{n}".encode()
                await store.put(key, value, arg)
                model = [e for e in model if e[0] != key] + [(key, value, clock.now + arg)]
                model = model[-capacity:]
            else:
                found = [e for e in model if e[0] == key]
                live = found and clock.now < found[0][2]
                model = [e for e in model if e[0] != key] + (found if live else [])
                assert await store.get(key) == (found[0][1] if live else None)
            assert len(store) == len(model)

    trio.run(run)
