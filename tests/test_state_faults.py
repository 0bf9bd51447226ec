"""Fault injection: the database goes away, stalls, or never comes; shutdown drains."""

from __future__ import annotations

import logging

import pytest
import trio

from plano_trio.state import (
    StateStartupError,
    StateUnavailableError,
    StoreClosedError,
    StoreFullError,
    open_state_store,
)
from plano_trio.state.pgconn import describe_target, scrub
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
    user,
    wait_until,
)


async def test_outage_mid_load_never_loses_an_acknowledged_turn(nursery: trio.Nursery) -> None:
    relay = Relay(pg_port())
    port = await nursery.start(relay.run)
    settings_kw = {"queue_size": 200, "max_batch": 50}
    async with fresh_schema() as schema:
        async with open_state_store(pg_settings(dsn(schema, port=port), **settings_kw)) as store:
            acknowledged: list[str] = []
            turns = iter(conversation(5000, "load", text_bytes=50))

            async def offer(n: int) -> None:
                for _ in range(n):
                    store.admit()
                    turn = next(turns)
                    store.put(turn)  # sync: never awaits the database
                    acknowledged.append(turn.response_id)
                    await trio.sleep(0)

            await offer(150)
            relay.cut()  # mid-load: in-flight batch and idle connection die
            with pytest.raises(StoreFullError) as refused:
                with trio.fail_after(2):  # puts and admits stay instant; only the queue bound stops them
                    await offer(5000)
            assert refused.value.retry_after_s >= 1
            assert store.stats.refused == 1
            assert store.stats.queue_depth == 200  # the queue is full, the batch held for retry included
            await trio.sleep(0.3)
            assert store.stats.write_failures >= 1

            relay.restore()
            await wait_until(lambda: store.stats.queue_depth == 0, 10.0, what="recovery flush")
            store.admit()  # room again
            store.release()
        rows = await admin("SELECT response_id FROM plano_trio_turns", schema=schema)
        assert {row[0] for row in rows} == set(acknowledged)
        assert len(acknowledged) >= 200  # at least a full queue was accepted during the outage


async def test_drain_flushes_everything_queued(nursery: trio.Nursery) -> None:
    relay = Relay(pg_port())
    port = await nursery.start(relay.run)
    async with fresh_schema() as schema:
        async with open_state_store(pg_settings(dsn(schema, port=port))) as store:
            relay.pause()
            for turn in conversation(1000, "drain", text_bytes=20):
                store.admit()
                store.put(turn)
            relay.resume()
            report = await store.aclose(5.0)
            assert report.flushed == 1000 and report.lost == 0 and not report.timed_out
        rows = await admin("SELECT count(*) FROM plano_trio_turns", schema=schema)
        assert rows[0][0] == 1000


async def test_drain_reports_unflushed_turns_when_the_database_is_gone(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    relay = Relay(pg_port())
    port = await nursery.start(relay.run)
    async with fresh_schema() as schema:
        store_cm = open_state_store(pg_settings(dsn(schema, port=port)))
        async with store_cm as store:
            relay.cut()
            for turn in conversation(100, "lost", text_bytes=20):
                store.admit()
                store.put(turn)
            started = trio.current_time()
            with caplog.at_level(logging.WARNING, logger="plano_trio.state"):
                report = await store.aclose(0.3)
            assert 0.3 <= trio.current_time() - started < 1.0
            assert report.timed_out and report.lost == 100 and report.flushed == 0
            assert any("unflushed" in rec.getMessage() for rec in caplog.records)


async def test_stalled_database_read_times_out_instead_of_hanging(nursery: trio.Nursery) -> None:
    relay = Relay(pg_port())
    port = await nursery.start(relay.run)
    async with fresh_schema() as schema:
        settings = pg_settings(dsn(schema, port=port), op_timeout_s=0.3)
        async with open_state_store(settings) as store:
            relay.pause()
            with trio.fail_after(2), pytest.raises(StateUnavailableError):
                await store.history("resp_unknown")
            store.put(make_turn("stall", None, [user("a")], [assistant("b")]))
            await trio.sleep(0.5)  # the batch write times out; its connection is cut and replaced
            assert store.stats.write_failures >= 1
            relay.resume()
            await wait_until(lambda: store.stats.queue_depth == 0, what="write after stall")
            assert await store.history("stall") == [user("a"), assistant("b")]


async def test_startup_waits_for_a_database_that_comes_up(nursery: trio.Nursery) -> None:
    relay = Relay(pg_port())
    port = await nursery.start(relay.run)
    relay.cut()
    async with fresh_schema() as schema:

        async def bring_up() -> None:
            await trio.sleep(0.3)
            relay.restore()

        nursery.start_soon(bring_up)
        async with open_state_store(pg_settings(dsn(schema, port=port), startup_timeout_s=5)) as store:
            assert relay.accepted >= 2
            store.put(make_turn("up", None, [user("a")], [assistant("b")]))


async def test_unreachable_database_fails_startup_without_leaking_the_password() -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    conninfo = f"postgresql://plano:s3cr3t-pw@127.0.0.1:{closed_port}/conversations_db"
    started = trio.current_time()
    with pytest.raises(StateStartupError) as failure:
        async with open_state_store(pg_settings(conninfo, startup_timeout_s=0.5)):
            pass
    assert trio.current_time() - started < 2
    message = str(failure.value)
    assert "127.0.0.1" in message and "conversations_db" in message and str(closed_port) in message
    assert "s3cr3t-pw" not in message


def test_target_description_and_error_scrubbing_hide_the_password() -> None:
    url = "postgresql://plano:s3cr3t-pw@db.internal:6543/conv?sslmode=require"
    assert describe_target(url) == "host=db.internal port=6543 database=conv user=plano"
    assert scrub('FATAL: password "s3cr3t-pw" rejected', url) == 'FATAL: password "***" rejected'
    kv = "host=h dbname=d user=u password=hunter2"
    assert "hunter2" not in describe_target(kv)
    assert "hunter2" not in scrub("oops hunter2", kv)


async def test_drain_waits_for_admitted_requests_to_put() -> None:
    """A request admitted before shutdown may still put its turn while the store drains."""
    async with fresh_schema() as schema:
        async with open_state_store(pg_settings(dsn(schema))) as store:
            store.admit()

            async def finish_request() -> None:
                await trio.sleep(0.1)
                store.put(make_turn("late", None, [user("a")], [assistant("b")]))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(finish_request)
                report = await store.aclose(5.0)
            with pytest.raises(StoreClosedError):
                store.admit()  # closed to new requests
            assert report.flushed == 1 and report.lost == 0
        rows = await admin("SELECT response_id FROM plano_trio_turns", schema=schema)
        assert rows == [("late",)]


async def test_read_errors_tell_the_client_nothing_and_the_log_once(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: the 503 body named the database host, port, name and user."""
    relay = Relay(pg_port())
    port = await nursery.start(relay.run)
    async with (
        fresh_schema() as schema,
        open_state_store(pg_settings(dsn(schema, port=port), op_timeout_s=1.0)) as store,
    ):
        relay.cut()
        errors: list[StateUnavailableError] = []
        with caplog.at_level(logging.INFO, logger="plano_trio.state"):
            for read in (store.get, store.history, store.get, store.delete):
                with pytest.raises(StateUnavailableError) as caught:
                    await read("resp_any")
                errors.append(caught.value)
            relay.restore()
            assert await store.get("resp_any") is None
        for error in errors:
            text = str(error)
            assert text == "conversation state database unavailable"
            for secret in ("127.0.0.1", str(port), schema, "postgres", "test"):
                assert secret not in text
            assert f"port={port}" in error.detail
        failures = [r for r in caplog.records if r.getMessage() == "state database read failed"]
        assert len(failures) == 1  # one incident, one line: not one per request
        assert f"port={port}" in failures[0].fields["target"]  # type: ignore[attr-defined]
        assert any(r.getMessage() == "state database reachable again" for r in caplog.records)
