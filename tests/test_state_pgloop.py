"""The write path on the event loop: pgloop's driver, the batch statement, and what the writer never does.

The batch writer sends `sql.INSERT_TURNS` through nonblocking libpq from the
trio loop (no worker thread, so no GIL hand-off lands on a request).  These
tests pin that down on a real server: results and errors as psycopg's
classes with the connection still usable, a parameter bigger than the
socket buffers, a stalled server cut at the deadline, every string a turn
can hold stored and read back exactly, no thread started by a write, and
lone turns at low load sharing one write.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import psycopg
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plano_trio.state import PostgresStore, Turn, open_state_store, pgloop, sql
from plano_trio.state.migrations import apply_migrations
from plano_trio.state.model import encode_turn
from plano_trio.state.pgconn import PgConnection, connect, with_defaults
from plano_trio.state.postgres import WRITE_LINGER_S
from tests.state_support import (
    Relay,
    _admin,
    assistant,
    dsn,
    fresh_schema,
    make_turn,
    pg_port,
    pg_settings,
    stored_turns,
    user,
    wait_until,
)


async def _migrated(schema: str) -> PgConnection:
    conn = await connect(with_defaults(dsn(schema), 5.0), timeout_s=5)
    await conn.call(apply_migrations, 5)
    return conn


def _execute(statement: bytes, *params: bytes | None) -> Any:
    return partial(pgloop.execute, statement=statement, params=params)


# --- the driver ----------------------------------------------------------------------------------------


async def test_execute_counts_rows_and_a_server_error_leaves_the_connection_usable() -> None:
    async with fresh_schema() as schema:
        conn = await _migrated(schema)
        try:
            batch = [encode_turn(make_turn(f"d_{i}", None, [user("q")], [assistant("a")])) for i in range(3)]
            rows = sql.turns_json(batch)
            assert await conn.on_loop(_execute(sql.INSERT_TURNS, rows), 5) == 3
            assert await conn.on_loop(_execute(sql.INSERT_TURNS, rows), 5) == 0  # first write wins
            with pytest.raises(psycopg.errors.UniqueViolation):
                await conn.on_loop(
                    _execute(b"INSERT INTO plano_trio_turns SELECT * FROM plano_trio_turns"), 5
                )
            with pytest.raises(psycopg.errors.UntranslatableCharacter):  # a DataError: jsonb has no NUL
                await conn.on_loop(_execute(b"SELECT $1::jsonb", b'"nul \\u0000"'), 5)
            assert conn.usable  # the server's refusals leave it idle, not broken
            assert (
                await conn.on_loop(
                    _execute(b"DELETE FROM plano_trio_turns WHERE response_id = $1", b"d_0"), 5
                )
                == 1
            )
        finally:
            conn.close()


async def test_a_parameter_larger_than_the_socket_buffers_is_sent_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """~6 MB in one statement: libpq's buffer and the kernel's fill up, the loop waits and goes on."""
    waits: list[int] = []
    real_wait = pgloop._wait_either

    async def counted(fd: int) -> None:
        waits.append(fd)
        await real_wait(fd)

    monkeypatch.setattr(pgloop, "_wait_either", counted)
    async with fresh_schema() as schema:
        conn = await _migrated(schema)
        with socket.socket(fileno=os.dup(conn.conn.pgconn.socket)) as sock:  # the same socket, small buffer
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        try:
            text = "x" * 1000
            turns = [make_turn(f"big_{i:05d}", None, [user(text)], [assistant(text)]) for i in range(2500)]
            rows = sql.turns_json([encode_turn(t) for t in turns])
            assert len(rows) > 5_000_000
            assert await conn.on_loop(_execute(sql.INSERT_TURNS, rows), 30) == 2500
            assert waits  # the send did not fit at once: the wait-for-either path ran
        finally:
            conn.close()
        count = await trio.to_thread.run_sync(
            partial(_admin, "SELECT count(*) FROM plano_trio_turns", schema=schema)
        )
        assert count[0][0] == 2500


async def test_a_stalled_server_is_cut_at_the_deadline(nursery: trio.Nursery) -> None:
    relay = Relay(pg_port())
    port = await nursery.start(relay.run)
    async with fresh_schema() as schema:
        conn = await connect(with_defaults(dsn(schema, port=port), 5.0), timeout_s=5)
        relay.pause()
        started = trio.current_time()
        with pytest.raises(trio.TooSlowError):
            await conn.on_loop(_execute(b"SELECT 1"), 0.2)
        assert trio.current_time() - started < 1.0
        assert not conn.usable  # half a statement on the wire: never used again
        relay.resume()


async def test_discarding_twice_leaves_a_socket_that_reused_the_number_alone() -> None:
    """`discard` wakes trio waiters on the connection's fd, once: by the second call the number may
    already belong to another socket (the kernel hands out the lowest free one)."""
    async with fresh_schema() as schema:
        conn = await connect(with_defaults(dsn(schema), 5.0), timeout_s=5)
        old_fd = conn.conn.pgconn.socket
        conn.discard()
        a, b = trio.socket.socketpair()
        with a, b:
            mine = a if a.fileno() == old_fd else b if b.fileno() == old_fd else a
            woken: list[BaseException] = []

            async def reader() -> None:
                try:
                    await trio.lowlevel.wait_readable(mine)
                except trio.ClosedResourceError as exc:
                    woken.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                conn.discard()
                conn.close()
                await trio.testing.wait_all_tasks_blocked()
                assert woken == []
                nursery.cancel_scope.cancel()


# --- the batch statement stores every string exactly --------------------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
_ID = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)


@st.composite
def _turns(draw: st.DrawFn) -> list[Turn]:
    ids = draw(st.lists(_ID, min_size=1, max_size=6, unique=True))
    first = draw(st.none() | _ID)
    return [
        draw(stored_turns(_TEXT, rid, ids[index - 1] if index else first, width=4))
        for index, rid in enumerate(ids)
    ]


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    name = f"st_rt_{time.time_ns()}"
    _admin(f"CREATE SCHEMA {name}")
    with psycopg.connect(dsn(name), autocommit=True) as conn:
        apply_migrations(conn)
    yield name
    _admin(f"DROP SCHEMA {name} CASCADE")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(turns=_turns())
def test_every_string_a_turn_can_hold_is_stored_exactly(schema: str, turns: list[Turn]) -> None:
    """Backslashes, quotes, tabs, newlines, non-ASCII, key order: what is read back is what was put."""

    async def write() -> None:
        conn = await connect(with_defaults(dsn(schema), 5.0), timeout_s=5)
        try:
            await conn.on_loop(_execute(sql.INSERT_TURNS, sql.turns_json([encode_turn(t) for t in turns])), 5)
        finally:
            conn.close()

    _admin("TRUNCATE plano_trio_turns", schema=schema)
    trio.run(write)
    with psycopg.connect(dsn(schema), autocommit=True) as conn:
        for turn in turns:
            stored = sql.fetch_turn(conn, turn.response_id)
            assert stored is not None
            assert stored.created_at == pytest.approx(turn.created_at, abs=1e-6)
            assert stored == Turn(
                **{**{f: getattr(turn, f) for f in turn.__struct_fields__}, "created_at": stored.created_at}
            )


# --- the writer ------------------------------------------------------------------------------------------


async def test_writing_batches_starts_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GIL is never handed to a thread for a write (only connecting, once, uses one)."""
    async with fresh_schema() as schema, open_state_store(pg_settings(dsn(schema))) as store:
        calls: list[Any] = []
        real = trio.to_thread.run_sync

        async def counting(*args: Any, **kwargs: Any) -> Any:
            calls.append(args[0])
            return await real(*args, **kwargs)

        monkeypatch.setattr(trio.to_thread, "run_sync", counting)
        for i in range(300):
            store.admit()
            store.put(make_turn(f"nt_{i}", None, [user("q")], [assistant("a")]))
            if i % 50 == 0:
                await trio.sleep(0.03)
        await wait_until(lambda: store.stats.queue_depth == 0, what="flush")
        assert store.stats.flushed_total == 300
        assert calls == []


async def test_lone_turns_share_a_write_and_are_not_kept_long() -> None:
    """At low load a turn waits `WRITE_LINGER_S` for company: five turns 2 ms apart are one statement."""
    async with fresh_schema() as schema, open_state_store(pg_settings(dsn(schema))) as store:
        assert isinstance(store, PostgresStore)
        started = trio.current_time()
        for i in range(5):
            store.admit()
            store.put(make_turn(f"lone_{i}", None, [user("q")], [assistant("a")]))
            await trio.sleep(0.002)
        await wait_until(lambda: store.stats.queue_depth == 0, what="flush")
        assert store.stats.batches == 1 and store.stats.last_batch_size == 5
        assert trio.current_time() - started < WRITE_LINGER_S + 0.5


async def test_non_ascii_is_stored_whatever_client_encoding_the_environment_asks_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batch parameter is msgspec's UTF-8 as is: the connection always says UTF8 (€ has no LATIN1)."""
    text = "ünï € 漢字 🙂"
    async with fresh_schema() as schema:
        monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
        async with open_state_store(pg_settings(dsn(schema))) as store:
            store.put(make_turn("enc", None, [user(text)], [assistant(text)]))
            await wait_until(lambda: store.stats.flushed_total == 1, what="flush")
            assert store.stats.rejected_total == 0
        monkeypatch.delenv("PGCLIENTENCODING")
        rows = await trio.to_thread.run_sync(
            partial(_admin, "SELECT input_items, output_items FROM plano_trio_turns", schema=schema)
        )
        assert rows == [([user(text)], [assistant(text)])]
