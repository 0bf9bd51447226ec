"""Memory backend bounds and TTL, and `StateSettings.from_mapping`."""

from __future__ import annotations

import time

import pytest
import trio

from plano_trio.state import MemoryStore, StateConfigError, StateSettings, StoreClosedError, open_state_store
from plano_trio.state.model import encode_turn
from tests.state_support import assistant, conversation, make_turn, user


async def test_lru_bounds_entries() -> None:
    settings = StateSettings(type="memory", memory_max_entries=10)
    async with open_state_store(settings) as store:
        for i in range(20):
            store.put(make_turn(f"t{i}", None, [user(str(i))], [assistant(str(i))]))
        stats = store.stats
        assert stats.entries == 10 and stats.evicted == 10
        assert await store.get("t9") is None
        assert await store.get("t10") is not None


async def test_lru_bounds_bytes_and_keeps_active_conversations() -> None:
    turns = conversation(40, "conv", text_bytes=100)
    size = encode_turn(turns[0]).nbytes
    settings = StateSettings(type="memory", memory_max_bytes=size * 12)
    async with open_state_store(settings) as store:
        for turn in turns[:5]:  # one conversation, touched by history() below
            store.put(turn)
        for i in range(20):
            store.put(make_turn(f"other{i}", None, [user("x" * 50)], [assistant("y" * 50)]))
            assert await store.history("conv_0004") is not None  # keeps its 5 turns recent
        assert store.stats.bytes <= size * 12
        assert store.stats.evicted > 0
        assert await store.get("other0") is None
        assert len(await store.history("conv_0004") or []) == 10


async def test_evicted_ancestor_drops_the_whole_conversation() -> None:
    settings = StateSettings(type="memory", memory_max_entries=3)
    async with open_state_store(settings) as store:
        for turn in conversation(4, "ev"):
            store.put(turn)
        assert await store.get("ev_0000") is None
        assert await store.history("ev_0003") is None  # never a truncated conversation


async def test_ttl_cleanup_task_expires_old_turns() -> None:
    settings = StateSettings(type="memory", ttl_s=60, cleanup_interval_s=0.02)
    async with open_state_store(settings) as store:
        assert isinstance(store, MemoryStore)
        store.put(make_turn("old", None, [user("a")], [assistant("b")], created_at=time.time() - 120))
        store.put(make_turn("new", None, [user("a")], [assistant("b")]))
        with trio.fail_after(2):
            while store.stats.expired < 1:
                await trio.sleep(0.01)
        assert store.stats.entries == 1
        assert await store.get("new") is not None


async def test_put_of_an_unserializable_turn_releases_its_slot() -> None:
    async with open_state_store(StateSettings(type="memory")) as store:
        store.admit()
        with pytest.raises(TypeError):
            store.put(make_turn("bad", None, [object()], []))
        assert store.stats.reserved == 0


def test_settings_defaults_and_extra_keys() -> None:
    settings = StateSettings.from_mapping({"type": "postgres", "connection_string": "postgresql://h/db"})
    assert settings.queue_size == 10_000 and settings.max_batch == 500
    assert settings.consistency_window_s == 0.5 and settings.ttl_s is None
    assert settings.memory_max_bytes == 256 * 1024 * 1024
    tuned = StateSettings.from_mapping({"type": "memory", "ttl_s": 3600, "queue_size": 50})
    assert tuned.ttl_s == 3600.0 and tuned.queue_size == 50


@pytest.mark.parametrize(
    ("mapping", "needle"),
    [
        ({"type": "postgres"}, "connection_string"),
        ({"type": "memory", "queue_sise": 1}, "queue_sise"),
        ({"type": "memory", "queue_size": "big"}, "queue_size"),
        ({"type": "memory", "max_batch": 0}, "max_batch"),
        ({"type": "memory", "ttl_s": -1}, "ttl_s"),
        ({"type": "redis"}, "type"),
        (
            {"type": "postgres", "connection_string": "postgresql://u@h:notaport/db"},
            "port must be an integer",
        ),
        ({"type": "postgres", "connection_string": "foo=bar=baz"}, 'invalid connection option "foo"'),
    ],
)
def test_settings_errors_name_the_key(mapping: dict[str, object], needle: str) -> None:
    with pytest.raises(StateConfigError, match=needle):
        StateSettings.from_mapping(mapping)


async def test_an_error_in_the_block_propagates_unwrapped_after_closing() -> None:
    with pytest.raises(KeyError):
        async with open_state_store(StateSettings(type="memory")) as store:
            raise KeyError("boom")
    with pytest.raises(StoreClosedError):
        store.admit()
