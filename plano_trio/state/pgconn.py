"""Sync psycopg connections driven from trio worker threads, with timeouts that really stop them.

Why sync psycopg in `trio.to_thread.run_sync` rather than `AsyncConnection`
through trio-asyncio (measured on this project's machine, psycopg 3.3.9, PostgreSQL 15):
psycopg has no trio support (its async wait hard-codes asyncio); both bridges
work, and COPY throughput was 286k rows/s through `to_thread` vs 265k through
trio-asyncio (229k plain sync): within noise, so the bridge does not matter,
commit frequency does.  The thread path needs no asyncio loop inside trio and
its cancellation is plain: a call either finishes or is abandoned.  That
holds for reads and the TTL cleanup, which are rare next to writes.  The
batch writer, which runs after every turn, drives its connection from the
loop instead (`on_loop`, pgloop.py): a thread there cost every request a
share of GIL hand-offs.

A thread blocked inside libpq cannot be cancelled, and a half-dead network
(packets silently dropped) can block it for a very long time.  So every call
runs with `abandon_on_cancel=True` under a timeout, and when the trio side
gives up, the connection's socket is shut down through a duplicate of its file
descriptor (safe from any thread: the duplicate keeps the same socket alive).
The blocked libpq call then fails at once, the worker thread closes the
connection itself, and the connection is never used again.
"""

from __future__ import annotations

import math
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, TypeVar

import psycopg
import trio
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]

APPLICATION_NAME = "plano-trio"


def with_defaults(conninfo: str, op_timeout_s: float) -> str:
    """Add `connect_timeout` and `application_name` unless the connection string (or env) sets them;
    always `client_encoding=UTF8`."""
    params = conninfo_to_dict(conninfo)
    if "connect_timeout" not in params and "PGCONNECT_TIMEOUT" not in os.environ:
        params["connect_timeout"] = max(2, math.ceil(op_timeout_s))
    if "application_name" not in params and "PGAPPNAME" not in os.environ:
        params["application_name"] = APPLICATION_NAME
    params["client_encoding"] = "UTF8"  # the batch writer sends msgspec's UTF-8 bytes as is (sql.turns_json)
    return make_conninfo("", **params)


def describe_target(conninfo: str) -> str:
    """`host=… port=… database=… user=…` for messages; never includes the password."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<unparsable connection_string>"
    host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    user = params.get("user") or os.environ.get("PGUSER") or "<default>"
    database = params.get("dbname") or os.environ.get("PGDATABASE") or user
    return f"host={host} port={port} database={database} user={user}"


def scrub(text: str, conninfo: str) -> str:
    """Remove the password (from the connection string or PGPASSWORD) from an error text."""
    secrets: list[str] = []
    with suppress(psycopg.ProgrammingError):
        password = conninfo_to_dict(conninfo).get("password")
        if password:
            secrets.append(str(password))
    if os.environ.get("PGPASSWORD"):
        secrets.append(os.environ["PGPASSWORD"])
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


class PgConnection:
    """One autocommit psycopg connection, used by one worker thread at a time."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self._fd = conn.fileno()
        self._sock = socket.socket(fileno=os.dup(self._fd))
        self._lock = threading.Lock()
        self._running = False
        self._abandoned = False
        self._closed = False  # after which `_fd` may already name someone else's socket

    @property
    def usable(self) -> bool:
        return not (self._abandoned or self.conn.closed or self.conn.broken)

    async def call(self, fn: Callable[[Conn], T], timeout_s: float) -> T:
        """Run `fn(conn)` in a worker thread; on error, timeout or cancellation, discard the connection."""
        if not self.usable:
            raise psycopg.OperationalError("connection is no longer usable")

        def work() -> T:
            try:
                return fn(self.conn)
            finally:
                with self._lock:
                    self._running = False
                    if self._abandoned:
                        self._close_locked()

        self._running = True
        try:
            with trio.fail_after(timeout_s):
                return await trio.to_thread.run_sync(work, abandon_on_cancel=True)
        except BaseException:
            self.discard()
            raise

    async def on_loop(self, fn: Callable[[pq.abc.PGconn], Awaitable[T]], timeout_s: float) -> T:
        """Run `await fn(pgconn)` on the event loop itself (see pgloop.py), within `timeout_s`.

        The connection is discarded as by `call`, except after an error the
        server reported while leaving the connection idle (bad data, a
        duplicate key): then it is as good as before.
        """
        if not self.usable:
            raise psycopg.OperationalError("connection is no longer usable")
        pgconn = self.conn.pgconn
        try:
            with trio.fail_after(timeout_s):
                return await fn(pgconn)
        except psycopg.Error:
            if pgconn.transaction_status != pq.TransactionStatus.IDLE:
                self.discard()
            raise
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Never use this connection again; interrupt its thread if one is still inside libpq."""
        with self._lock:
            self._abandoned = True
            if self._closed:
                return
            if self._running:
                with suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
                return  # the worker thread closes it when libpq returns
            with suppress(RuntimeError):  # outside trio nothing can be waiting on it
                trio.lowlevel.notify_closing(self._fd)  # `on_loop` may have waited on it
            self._close_locked()

    def close(self) -> None:
        self.discard()

    def _close_locked(self) -> None:
        self._closed = True
        with suppress(Exception):
            self.conn.close()
        with suppress(OSError):
            self._sock.close()


async def connect(conninfo: str, *, timeout_s: float) -> PgConnection:
    """Open an autocommit connection in a worker thread, giving up after `timeout_s`."""
    lock = threading.Lock()
    abandoned = False

    def attempt() -> PgConnection:
        conn: Conn = psycopg.connect(conninfo, autocommit=True)
        with lock:
            if abandoned:
                conn.close()
                raise psycopg.OperationalError("connection attempt abandoned")
        return PgConnection(conn)

    try:
        with trio.fail_after(timeout_s):
            return await trio.to_thread.run_sync(attempt, abandon_on_cancel=True)
    except BaseException:
        with lock:
            abandoned = True
        raise


class PgPool:
    """A few autocommit connections for reads and cleanup (psycopg_pool is asyncio-only or thread-based).

    Bounded by a `CapacityLimiter`; connections are opened lazily and reused
    newest-first.  A failure on a *reused* connection (it may have died while
    idle) is retried once on a fresh one.
    """

    def __init__(self, conninfo: str, *, size: int, op_timeout_s: float) -> None:
        self._conninfo = conninfo
        self._limiter = trio.CapacityLimiter(size)
        self._op_timeout_s = op_timeout_s
        self._idle: list[PgConnection] = []
        self._closed = False

    async def run(self, fn: Callable[[Conn], T]) -> T:
        async with self._limiter:
            while self._idle:
                conn = self._idle.pop()
                if not conn.usable:
                    conn.close()
                    continue
                try:
                    result = await conn.call(fn, self._op_timeout_s)
                except psycopg.OperationalError:
                    break  # maybe died while idle: one more try on a fresh connection
                self._checkin(conn)
                return result
            conn = await connect(self._conninfo, timeout_s=self._op_timeout_s)
            result = await conn.call(fn, self._op_timeout_s)
            self._checkin(conn)
            return result

    def _checkin(self, conn: PgConnection) -> None:
        if self._closed or not conn.usable:
            conn.close()
        else:
            self._idle.append(conn)

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()
