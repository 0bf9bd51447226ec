"""Postgres backend behaviour: read-your-writes, group commit, two instances, linear growth, retention."""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio

from plano_trio.state import PostgresStore, open_state_store
from tests.state_support import (
    Relay,
    admin,
    assistant,
    conversation,
    dsn,
    fresh_schema,
    make_turn,
    pg_port,
    pg_settings,
    tool_conversation,
    user,
    wait_until,
)


async def count_rows(schema: str) -> int:
    rows = await admin("SELECT count(*) FROM plano_trio_turns", schema=schema)
    return int(rows[0][0])


async def test_read_your_writes_while_the_database_stalls(nursery: trio.Nursery) -> None:
    relay = Relay(pg_port())
    port = await nursery.start(relay.run)
    turns, expected = tool_conversation("ryw")
    async with fresh_schema() as schema, open_state_store(pg_settings(dsn(schema, port=port))) as store:
        relay.pause()
        for turn in turns:
            store.admit()
            store.put(turn)
        with trio.fail_after(0.5):  # answered from the pending map: no database round trip
            assert await store.history("ryw_c") == expected
            got = await store.get("ryw_b")
        assert got is turns[1]
        assert store.stats.queue_depth == 3
        assert await count_rows(schema) == 0
        relay.resume()
        await wait_until(lambda: store.stats.queue_depth == 0, what="flush after resume")
        assert await count_rows(schema) == 3


async def test_group_commit_coalesces_a_burst_and_flushes_a_lone_turn_fast() -> None:
    async with fresh_schema() as schema, open_state_store(pg_settings(dsn(schema))) as store:
        for turn in conversation(2000, "burst", text_bytes=100):
            store.admit()
            store.put(turn)
        await wait_until(lambda: store.stats.queue_depth == 0, 10.0, what="burst flushed")
        stats = store.stats
        assert stats.flushed_total == 2000
        assert 4 <= stats.batches <= 8, stats  # 500-turn batches, not 2000 commits
        assert await count_rows(schema) == 2000

        latencies: list[float] = []
        for i in range(3):
            target = store.stats.flushed_total + 1
            store.put(make_turn(f"lone_{i}", None, [user("hi")], [assistant("hello")]))
            latencies.append(
                await wait_until(lambda: store.stats.flushed_total >= target, what="lone flush")  # noqa: B023
            )
        assert store.stats.last_batch_size == 1
        assert min(latencies) < 0.05, latencies


async def test_second_instance_finds_a_fresh_write_within_the_consistency_window() -> None:
    async with fresh_schema() as schema:
        settings = pg_settings(dsn(schema), consistency_window_s=0.5)
        async with open_state_store(settings) as a, open_state_store(settings) as b:
            turns, expected = tool_conversation("ab")
            for turn in turns:
                a.admit()
                a.put(turn)
            started = trio.current_time()
            assert await b.history("ab_c") == expected
            assert trio.current_time() - started < 0.5
            got = await b.get("ab_a")
            assert got is not None and got.output_items == turns[0].output_items


async def test_hundred_turns_grow_linearly_and_rebuild_in_one_query() -> None:
    turns = conversation(100, "lin")
    size_sql = "SELECT sum(pg_column_size(t.*)) FROM plano_trio_turns t"
    async with fresh_schema() as schema:
        settings = pg_settings(dsn(schema))
        async with open_state_store(settings) as store:
            for turn in turns[:50]:
                store.put(turn)
            await wait_until(lambda: store.stats.queue_depth == 0, what="first 50 flushed")
            bytes_50 = int((await admin(size_sql, schema=schema))[0][0])
            for turn in turns[50:]:
                store.put(turn)
        bytes_100 = int((await admin(size_sql, schema=schema))[0][0])
        assert 1.8 < bytes_100 / bytes_50 < 2.2, (bytes_50, bytes_100)  # quadratic would be ~4x

        expected: list[Any] = []
        for turn in turns:
            expected += turn.input_items + turn.output_items
        async with open_state_store(settings) as reader:
            history = await reader.history("lin_0099")
            assert reader.stats.reads == 1  # one recursive query, not one per turn
            assert history == expected and len(history) == 200
            # the rebuilt conversation is cached: continuing it needs no query at all
            reader.put(make_turn("lin_0100", "lin_0099", [user("more")], [assistant("ok")]))
            assert len(await reader.history("lin_0100") or []) == 202
            assert reader.stats.reads == 1


async def test_retried_or_duplicate_ids_do_not_block_the_batch() -> None:
    """COPY fails on an existing id; the batch falls back to INSERT … ON CONFLICT DO NOTHING."""
    async with fresh_schema() as schema, open_state_store(pg_settings(dsn(schema))) as store:
        store.put(make_turn("dup_1", None, [user("first")], [assistant("first")]))
        await wait_until(lambda: store.stats.queue_depth == 0)
        store.put(make_turn("dup_0", None, [user("x")], [assistant("x")]))
        store.put(make_turn("dup_1", None, [user("second")], [assistant("second")]))
        store.put(make_turn("dup_2", None, [user("y")], [assistant("y")]))
        await wait_until(lambda: store.stats.queue_depth == 0)
        assert store.stats.write_failures == 0
        rows = await admin("SELECT response_id, input_items FROM plano_trio_turns ORDER BY 1", schema=schema)
        assert [row[0] for row in rows] == ["dup_0", "dup_1", "dup_2"]
        assert rows[1][1] == [user("first")]  # first write wins


async def test_bad_data_is_rejected_alone() -> None:
    """jsonb cannot hold U+0000: that turn is rejected and logged, its batch-mates are stored."""
    async with fresh_schema() as schema, open_state_store(pg_settings(dsn(schema))) as store:
        store.put(make_turn("ok_1", None, [user("fine")], [assistant("fine")]))
        store.put(make_turn("bad", None, [user("nul \x00 here")], [assistant("x")]))
        store.put(make_turn("ok_2", None, [user("fine")], [assistant("fine")]))
        await wait_until(lambda: store.stats.queue_depth == 0)
        assert store.stats.rejected_total == 1
        assert store.stats.flushed_total == 2
        rows = await admin("SELECT response_id FROM plano_trio_turns ORDER BY 1", schema=schema)
        assert [row[0] for row in rows] == ["ok_1", "ok_2"]


async def test_url_connection_string_with_libpq_parameters() -> None:
    async with fresh_schema() as schema:
        url = (
            f"postgresql://postgres@127.0.0.1:{pg_port()}/test"
            f"?sslmode=disable&application_name=state-test&options=-csearch_path%3D{schema}"
        )
        async with open_state_store(pg_settings(url)) as store:
            store.put(make_turn("url_1", None, [user("hi")], [assistant("ho")]))
            await wait_until(lambda: store.stats.queue_depth == 0)
        assert await count_rows(schema) == 1


async def test_ttl_cleanup_deletes_old_rows_in_chunks() -> None:
    async with fresh_schema() as schema:
        settings = pg_settings(dsn(schema), ttl_s=3600, cleanup_interval_s=0.05)
        async with open_state_store(settings) as store:
            assert isinstance(store, PostgresStore)
            for turn in conversation(1200, "ttl", text_bytes=10):
                store.put(turn)
            store.put(make_turn("keep", None, [user("new")], [assistant("new")]))
            await wait_until(lambda: store.stats.queue_depth == 0)
            await admin(
                "UPDATE plano_trio_turns SET created_at = now() - interval '2 hours'"
                " WHERE response_id LIKE 'ttl%'",
                schema=schema,
            )
            await wait_until(lambda: store.stats.expired == 1200, what="cleanup")
            assert await count_rows(schema) == 1
            assert await store.get("ttl_0005") is None
            assert await store.get("keep") is not None


async def test_created_at_is_stored_as_timestamptz() -> None:
    created = time.time() - 100.25
    async with fresh_schema() as schema:
        async with open_state_store(pg_settings(dsn(schema))) as store:
            store.put(make_turn("ts", None, [user("t")], [assistant("t")], created_at=created))
        rows = await admin(
            "SELECT extract(epoch FROM created_at)::float8 FROM plano_trio_turns", schema=schema
        )
        assert rows[0][0] == pytest.approx(created, abs=1e-5)
