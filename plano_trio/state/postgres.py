"""The postgres backend: write-behind batches, one-query history, read-your-writes.

- Writes go through `WriteBehind` (see writer.py) to `_PgSink`, which owns
  one connection and writes each batch as one statement (`sql.INSERT_TURNS`,
  one round trip, one commit) sent from the event loop itself (pgloop.py).
  Nothing on the request path awaits them.
- `history(X)` walks X's parent chain: first through this process's pending
  (queued, uncommitted) turns, stopping early at a cached conversation, and
  only for what is left asks the database -- one recursive CTE, root first.
  A miss is retried for `consistency_window_s` because another instance (or
  a replica) may not have the row yet.
- Reads and the TTL cleanup use a small pool of their own connections, each
  call in a worker thread under `op_timeout_s` (pgconn.py says why a stuck
  call is cut rather than waited for), so a slow batch never delays a
  request's history lookup.

Why the writer runs on the event loop, not in a thread.  The promise is that
persistence never slows a token; with a COPY per batch in a worker thread,
TTFT with postgres state was 1.50x that with memory state at c=1 (+0.58 ms).
Profiled, the thread's own Python (psycopg's COPY machinery) is ~100 µs a
batch; what hurts is that it waits three times inside libpq, and each time
libpq returns it must take the GIL back from the loop, then wake the loop to
report: hand-offs that land on whichever request the loop is serving, and
that cost up to the 5 ms switch interval when the loop is busy.  Measured
with a synthetic c=1 loop: a "request" is 20 x 50 µs of CPU with a
checkpoint between slices, one turn is stored after each, 0.3 ms pass
before the next; the variants alternate every 20 requests in one process
pinned to one core (50 blocks each), PostgreSQL's backend on the other
core; p50 / p90 of the request's duration, and process CPU per request
(the writer process's included):

    write path                                      p50 ms   p90 ms   CPU µs
    none (memory-like baseline)                      1.16     1.29    1550
    COPY in a worker thread (psycopg write_row)      1.54     7.01    2140
    rows encoded on the loop, a thread only COPYs    1.54     7.34    2120
      the bytes
    a writer process fed COPY rows through a pipe    1.47     6.35    2140
    psycopg's AsyncConnection under trio-asyncio     1.90     8.03    2330
    COPY from the loop (nonblocking libpq)           1.34     2.94    1770
    INSERT … jsonb_to_recordset from the loop        1.27     1.72    1690
      (one round trip)
    the same, lingering 20 ms to batch lone turns    1.19     1.57    1600
      <- kept

A thread, or a process on the gateway's core, costs as much CPU and
preempts the loop at arbitrary points; the loop-driven statement is a send,
and later a receive, between other tasks' steps.  The linger spreads that
over the several turns that arrive within 20 ms at low load.  The same
comparison through real gateways is the `state` bench scenario.

What a turn costs the loop, counted (`python -m bench.state_cost measure`:
callgrind instructions of the process per turn, the real store driven as
the request path drives it, new conversations 32 to a batch, the server
not counted): postgres 160k against memory's 149k (the driver itself is
80k); it was 212k against 174k.  The turn is encoded once, in `put()`, as
its row (`model.encode_turn`: one msgspec call walks the items; the
separate encodes, their decoding to text and a re-encode per batch cost
~50k), the batch is its rows joined, the queue is a deque, and the cache
extends a conversation in O(1) and flattens it only every
`cache.FLATTEN_DEPTH` turns.  What is left over memory is the batch's own
trio work (its linger, its deadline, its readable wait: ~380k instructions
a batch) and the kernel's loopback send and receive (~90 µs of CPU a batch
of 32).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import psycopg
import trio

from plano_trio.config.state_settings import StateSettings
from plano_trio.logs import IncidentLog

from . import pgloop, sql
from .cache import CachedHistory, HistoryCache
from .errors import StateStartupError, StateUnavailableError
from .ids import is_storable_id, is_storable_turn, log_unstorable
from .migrations import apply_migrations
from .model import DrainReport, EncodedTurn, StoreStats, Turn, encode_turn
from .pgconn import Conn, PgConnection, PgPool, connect, describe_target, scrub, with_defaults
from .writer import Rejection, WriteBehind

log = logging.getLogger("plano_trio.state")

T = TypeVar("T")

_DB_ERRORS = (psycopg.Error, trio.TooSlowError, OSError)
WRITE_LINGER_S = 0.02
"""How long the writer waits after the first turn of a batch for more to join it (see the docstring)."""
_RETRY_READ_EVERY_S = 0.05


def _cause(exc: BaseException, raw_conninfo: str) -> str:
    """`Type: message` of a database error, for the log; the password scrubbed out."""
    return scrub(f"{type(exc).__name__}: {exc}".strip(), raw_conninfo)


class _PgSink:
    """The writer's connection: (re)connects lazily and writes one batch per call, on the event loop."""

    def __init__(self, conninfo: str, raw_conninfo: str, op_timeout_s: float) -> None:
        self._conninfo = conninfo
        self._raw_conninfo = raw_conninfo
        self._op_timeout_s = op_timeout_s
        self._conn: PgConnection | None = None

    def adopt(self, conn: PgConnection) -> None:
        self._conn = conn

    async def write(self, batch: Sequence[EncodedTurn], *, retry: bool) -> list[Rejection]:
        """One statement for the batch; if the server refuses it as data, one per turn.

        `retry` needs no other path: the statement skips rows that exist already.
        """
        try:
            if self._conn is None or not self._conn.usable:
                self._conn = await connect(self._conninfo, timeout_s=self._op_timeout_s)
            try:
                await self._insert(self._conn, batch)
                return []
            except sql.PERMANENT:  # some turn is bad data; the connection is idle and still good
                pass
            rejections: list[Rejection] = []
            for record in batch:
                try:
                    await self._insert(self._conn, [record])
                except sql.PERMANENT as exc:
                    rejections.append(Rejection(record.turn.response_id, f"{type(exc).__name__}: {exc}"))
            return rejections
        except _DB_ERRORS as exc:  # the writer logs the detail: make sure no password is in it
            raise StateUnavailableError(_cause(exc, self._raw_conninfo)) from None

    async def _insert(self, conn: PgConnection, batch: Sequence[EncodedTurn]) -> None:
        rows = sql.turns_json(batch)
        await conn.on_loop(
            partial(pgloop.execute, statement=sql.INSERT_TURNS, params=(rows,)), self._op_timeout_s
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class PostgresStore:
    backend = "postgres"

    def __init__(self, settings: StateSettings) -> None:
        assert settings.connection_string is not None  # checked by StateSettings
        self._settings = settings
        self._raw_conninfo = settings.connection_string
        self._target = describe_target(settings.connection_string)
        try:
            self._conninfo = with_defaults(settings.connection_string, settings.op_timeout_s)
        except psycopg.ProgrammingError as exc:
            raise StateStartupError(
                f"invalid state_storage.connection_string: {scrub(str(exc), self._raw_conninfo)}"
            ) from None
        self._sink = _PgSink(self._conninfo, settings.connection_string, settings.op_timeout_s)
        self._writer = WriteBehind(
            self._sink, queue_size=settings.queue_size, max_batch=settings.max_batch, linger_s=WRITE_LINGER_S
        )
        self._pool = PgPool(self._conninfo, size=settings.read_pool_size, op_timeout_s=settings.op_timeout_s)
        self._cache = HistoryCache(settings.cache_max_bytes)
        self._writer_scope = trio.CancelScope()
        self._cleanup_scope = trio.CancelScope()
        self._report: DrainReport | None = None
        self._reads = 0
        self._cache_hits = 0
        self._cache_misses = 0
        self._expired = 0
        self._unstorable = 0
        self._read_incidents = IncidentLog(
            log,
            "state database read failed",
            "state database reachable again",
            context={"target": self._target},
        )

    # --- startup -----------------------------------------------------------------------------------

    async def start(self, nursery: trio.Nursery) -> None:
        """Connect (retrying up to `startup_timeout_s`), migrate, then start the writer and cleanup tasks."""
        deadline = trio.current_time() + self._settings.startup_timeout_s
        conn = await self._connect_until(deadline)
        try:
            await conn.call(
                apply_migrations, max(self._settings.op_timeout_s, deadline - trio.current_time())
            )
        except _DB_ERRORS as exc:
            conn.close()
            raise StateStartupError(
                f"state schema migration failed on PostgreSQL ({self._target}): "
                f"{scrub(f'{type(exc).__name__}: {exc}', self._raw_conninfo)}"
            ) from None
        self._sink.adopt(conn)
        await nursery.start(self._run_writer)
        if self._settings.ttl_s is not None:
            nursery.start_soon(self._cleanup_loop)
        log.info("state store started", extra={"fields": {"backend": "postgres", "target": self._target}})

    async def _connect_until(self, deadline: float) -> PgConnection:
        delay = 0.1
        attempts = 0
        last_error = "timed out"
        while (remaining := deadline - trio.current_time()) > 0:
            attempts += 1
            try:
                return await connect(self._conninfo, timeout_s=remaining)
            except _DB_ERRORS as exc:
                last_error = scrub(f"{type(exc).__name__}: {exc}".strip(), self._raw_conninfo)
                if attempts == 1:
                    log.warning(
                        "state database not reachable yet; retrying",
                        extra={"fields": {"target": self._target, "error": last_error}},
                    )
            await trio.sleep(max(0.0, min(delay, deadline - trio.current_time())))
            delay = min(delay * 2, 1.0)
        raise StateStartupError(
            f"cannot connect to PostgreSQL ({self._target}) within "
            f"{self._settings.startup_timeout_s:g}s ({attempts} attempts): {last_error}"
        )

    async def _run_writer(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self._writer_scope:
            await self._writer.run(task_status=task_status)

    # --- request path ------------------------------------------------------------------------------

    def admit(self) -> None:
        self._writer.admit()

    def release(self) -> None:
        self._writer.release()

    def put(self, turn: Turn) -> None:
        if not is_storable_turn(turn):  # it would fail as data, or block the queue (an over-long key)
            self._writer.release()
            self._unstorable += 1
            log_unstorable(turn, self.backend)
            return
        try:
            record = encode_turn(turn)
        except Exception:
            self._writer.release()
            raise
        self._writer.put(record)
        self._remember(record)

    def _remember(self, record: EncodedTurn) -> None:
        """Extend the parent's cached conversation by this turn (the next request usually continues it)."""
        turn = record.turn
        tail = [*turn.input_items, *turn.output_items]
        if turn.previous_response_id is None:
            entry = CachedHistory(tail, record.history_nbytes, turn.created_at)
        else:
            parent = self._cache.take(turn.previous_response_id)  # entries are conversation tips
            if parent is None:
                return
            entry = parent.extended(tail, record.history_nbytes, turn.created_at)
        self._cache.put(turn.response_id, entry)

    async def history(self, response_id: str) -> list[Any] | None:
        await trio.lowlevel.checkpoint()
        if not is_storable_id(response_id):
            return None
        cutoff = self._cutoff()
        newer: list[EncodedTurn] = []  # pending turns on the chain, newest first
        base: CachedHistory | None = None  # what lies before them (None if they reach the root)
        current: str | None = response_id
        while current is not None:
            hit = self._cache.get(current)
            if hit is not None and hit.oldest_created_at >= cutoff:
                self._cache_hits += 1
                if not newer and hit.flat_enough:  # the usual request: its parent is the cached tip
                    return hit.items()
                base = hit
                break
            record = self._writer.pending(current)
            if record is None:
                self._cache_misses += 1
                base = await self._db_history(current)
                if base is None:
                    return None
                break
            newer.append(record)
            current = record.turn.previous_response_id
            if len(newer) > sql.MAX_CHAIN_DEPTH:
                return None
        if base is None:
            items: list[Any] = []
            nbytes = 0
            oldest = math.inf
        else:
            items = base.items()
            nbytes = base.nbytes
            oldest = base.oldest_created_at
        for record in reversed(newer):
            items.extend(record.turn.input_items)
            items.extend(record.turn.output_items)
            nbytes += record.history_nbytes
            oldest = min(oldest, record.turn.created_at)
        if oldest < cutoff:
            return None
        self._cache.put(response_id, CachedHistory(items, nbytes, oldest))  # flat from now on
        return list(items)

    async def _db_history(self, response_id: str) -> CachedHistory | None:
        deadline = trio.current_time() + self._settings.consistency_window_s
        while True:
            chain = await self._read(partial(sql.fetch_chain, response_id=response_id))
            if chain and chain[0].previous_response_id is None:
                break
            if trio.current_time() >= deadline:
                if chain:
                    log.info(
                        "state conversation is incomplete (an ancestor was deleted or expired)",
                        extra={
                            "fields": {"response_id": response_id, "missing": chain[0].previous_response_id}
                        },
                    )
                return None
            await trio.sleep(min(_RETRY_READ_EVERY_S, max(0.0, deadline - trio.current_time())))
        items: list[Any] = []
        for turn in chain:
            items.extend(turn.items)
        return CachedHistory(
            items, sum(turn.nbytes for turn in chain), min(turn.created_at for turn in chain)
        )

    async def get(self, response_id: str) -> Turn | None:
        if not is_storable_id(response_id):
            await trio.lowlevel.checkpoint()
            return None
        record = self._writer.pending(response_id)
        if record is not None:
            await trio.lowlevel.checkpoint()
            turn: Turn | None = record.turn
        else:
            deadline = trio.current_time() + self._settings.consistency_window_s
            while (turn := await self._read(partial(sql.fetch_turn, response_id=response_id))) is None:
                if trio.current_time() >= deadline:
                    break
                await trio.sleep(min(_RETRY_READ_EVERY_S, max(0.0, deadline - trio.current_time())))
        if turn is None or turn.created_at < self._cutoff():
            return None
        return turn

    async def delete(self, response_id: str) -> bool:
        """Delete one turn.  A pending turn is deleted after it is committed, never raced."""
        if not is_storable_id(response_id):
            await trio.lowlevel.checkpoint()
            return False
        with trio.move_on_after(self._settings.op_timeout_s) as scope:
            await self._writer.wait_flushed(response_id)
        if scope.cancelled_caught:
            raise self._unavailable("its write is still pending")
        deleted = await self._read(partial(sql.delete_turn, response_id=response_id))
        self._cache.clear()  # any cached conversation may run through this turn
        return deleted

    async def _read(self, fn: Callable[[Conn], T]) -> T:
        self._reads += 1
        try:
            result = await self._pool.run(fn)
        except _DB_ERRORS as exc:
            raise self._unavailable(_cause(exc, self._raw_conninfo)) from None
        self._read_incidents.success()
        return result

    def _unavailable(self, cause: str) -> StateUnavailableError:
        """The error for the caller (no target in its text) after logging the detail, once per incident."""
        self._read_incidents.failure({"error": cause})
        return StateUnavailableError(f"{self._target}: {cause}")

    # --- retention ---------------------------------------------------------------------------------

    def _cutoff(self) -> float:
        ttl = self._settings.ttl_s
        return time.time() - ttl if ttl is not None else -math.inf

    async def expire(self) -> int:
        """Delete turns older than `ttl_s`, `sql.CLEANUP_CHUNK` rows a statement (short locks, small WAL)."""
        ttl = self._settings.ttl_s
        if ttl is None:
            return 0
        removed = 0
        while True:
            count = await self._read(partial(sql.delete_expired_chunk, ttl_s=ttl))
            removed += count
            if count < sql.CLEANUP_CHUNK:
                break
        self._expired += removed
        return removed

    async def _cleanup_loop(self) -> None:
        with self._cleanup_scope:
            while True:
                await trio.sleep(self._settings.cleanup_interval_s)
                try:
                    removed = await self.expire()
                except StateUnavailableError as exc:
                    log.warning(
                        "state TTL cleanup failed; next try later", extra={"fields": {"error": exc.detail}}
                    )
                    continue
                if removed:
                    log.info(
                        "state turns expired", extra={"fields": {"backend": "postgres", "removed": removed}}
                    )

    # --- shutdown ----------------------------------------------------------------------------------

    async def aclose(self, deadline_s: float) -> DrainReport:
        """Stop intake, flush the queue within `deadline_s`, stop background tasks, close connections."""
        if self._report is not None:
            return self._report
        report = await self._writer.drain(deadline_s)
        self._writer_scope.cancel()
        self._cleanup_scope.cancel()
        self._sink.close()
        self._pool.close()
        fields = {
            "backend": "postgres",
            "flushed": report.flushed,
            "lost": report.lost,
            "rejected": report.rejected,
            "timed_out": report.timed_out,
            "elapsed_s": report.elapsed_s,
        }
        if report.lost:
            log.warning("state store drained with unflushed turns", extra={"fields": fields})
        else:
            log.info("state store drained", extra={"fields": fields})
        self._report = report
        return report

    @property
    def stats(self) -> StoreStats:
        writer = self._writer
        return StoreStats(
            backend=self.backend,
            queue_depth=writer.queue_depth,
            reserved=writer.reserved,
            batches=writer.batches,
            last_batch_size=writer.last_batch_size,
            flush_latency_last_s=writer.flush_latency_last_s,
            flush_latency_avg_s=writer.flush_latency_avg_s,
            write_failures=writer.write_failures,
            refused=writer.refused,
            flushed_total=writer.flushed_total,
            rejected_total=writer.rejected_total + self._unstorable,
            reads=self._reads,
            cache_hits=self._cache_hits,
            cache_misses=self._cache_misses,
            bytes=self._cache.nbytes,
            entries=len(self._cache),
            expired=self._expired,
        )
