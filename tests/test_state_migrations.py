"""Schema migrations: versioned, idempotent, safe when many instances start at once."""

from __future__ import annotations

import psycopg
import trio

from plano_trio.state import open_state_store
from plano_trio.state.migrations import MIGRATIONS, apply_migrations
from tests.state_support import admin, assistant, dsn, fresh_schema, make_turn, pg_settings, user


async def tables(schema: str) -> list[str]:
    rows = await admin(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", schema, schema=schema
    )
    return [row[0] for row in rows]


async def test_migrations_are_idempotent() -> None:
    async with fresh_schema() as schema:
        settings = pg_settings(dsn(schema))
        async with open_state_store(settings) as store:
            store.put(make_turn("m1", None, [user("a")], [assistant("b")]))
        async with open_state_store(settings) as store:  # second start: nothing to do, data intact
            assert await store.history("m1") == [user("a"), assistant("b")]

        def again() -> list[int]:
            with psycopg.connect(dsn(schema), autocommit=True) as conn:
                return apply_migrations(conn)

        assert await trio.to_thread.run_sync(again) == []
        assert await tables(schema) == ["plano_trio_schema_migrations", "plano_trio_turns"]
        versions = await admin("SELECT version FROM plano_trio_schema_migrations ORDER BY 1", schema=schema)
        assert [row[0] for row in versions] == [m.version for m in MIGRATIONS]


async def test_concurrent_starts_on_a_fresh_schema_make_one_set_of_tables() -> None:
    async with fresh_schema() as schema:
        settings = pg_settings(dsn(schema))
        started = 0

        async def instance(n: int, all_up: trio.Event, done: trio.Event) -> None:
            nonlocal started
            async with open_state_store(settings) as store:
                started += 1
                if started == 6:
                    all_up.set()
                store.put(make_turn(f"c{n}", None, [user(str(n))], [assistant(str(n))]))
                await done.wait()

        all_up, done = trio.Event(), trio.Event()
        async with trio.open_nursery() as nursery:
            for n in range(6):
                nursery.start_soon(instance, n, all_up, done)
            with trio.fail_after(10):
                await all_up.wait()
            done.set()
        assert await tables(schema) == ["plano_trio_schema_migrations", "plano_trio_turns"]
        versions = await admin("SELECT version FROM plano_trio_schema_migrations", schema=schema)
        assert [row[0] for row in versions] == [m.version for m in MIGRATIONS]
        count = await admin("SELECT count(*) FROM plano_trio_turns", schema=schema)
        assert count[0][0] == 6
