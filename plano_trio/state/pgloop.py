"""One libpq connection driven from the trio loop itself: nonblocking calls and fd readiness, no thread.

The batch writer runs its statement here rather than in a worker thread.  A
worker thread had to take the GIL back every time libpq returned, and to
wake the loop when it finished; each of those hand-offs landed on whatever
request the loop was serving at that moment (postgres.py has the
measurements).  libpq's nonblocking mode needs no thread: sending only fills
libpq's buffer and the kernel's, receiving only reads what has arrived, so
each step is a few microseconds of C on the loop, and the waits are plain
`wait_readable` / `wait_writable` on the connection's socket.  psycopg has no
trio support of its own, but its `pq` layer is libpq itself, with no event
loop attached.

These functions never block and never time out on their own: the caller
bounds them (`PgConnection.on_loop`) and, when the deadline fires or the
protocol breaks, discards the connection.  An error the server reports is
raised as psycopg's own class (`UniqueViolation`, `DataError`, ...) after
the connection is idle again, so the caller may go on using it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import psycopg
import trio
from psycopg import pq
from psycopg.errors import error_from_result

_COMMAND_OK = pq.ExecStatus.COMMAND_OK


async def execute(pgconn: pq.abc.PGconn, statement: bytes, params: Sequence[bytes | None]) -> int:
    """Run `statement` with text `params` ($1, $2, …); return the number of rows it affected.

    One round trip: libpq sends Parse, Bind, Execute and Sync together and the
    server answers once.  On an autocommit connection that is one transaction.
    """
    pgconn.send_query_params(statement, params)
    await _flush(pgconn)
    result = await _result(pgconn)
    if result is None:
        raise psycopg.OperationalError(pgconn.get_error_message() or "the server sent no result")
    while await _result(pgconn) is not None:  # up to libpq's end marker: the connection is idle again
        pass
    if result.status != _COMMAND_OK:
        raise _error(pgconn, result)
    return int(result.command_tuples or 0)


async def _flush(pgconn: pq.abc.PGconn) -> None:
    """Send everything libpq has buffered (raises `OperationalError` if the connection broke)."""
    while pgconn.flush():
        await _wait_either(pgconn.socket)
        pgconn.consume_input()


async def _wait_either(fd: int) -> None:
    """Wait until `fd` is readable or writable, libpq's rule while a send is unfinished.

    The socket is normally unwritable only because the server has not read our
    earlier bytes yet; also waking on readable covers a server that must be read
    from first (TLS), so a full send buffer can never deadlock.  Only a batch
    larger than the kernel's send buffer gets here.
    """
    async with trio.open_nursery() as nursery:

        async def until(ready: Callable[[int], Awaitable[None]]) -> None:
            await ready(fd)
            nursery.cancel_scope.cancel()

        nursery.start_soon(until, trio.lowlevel.wait_writable)
        nursery.start_soon(until, trio.lowlevel.wait_readable)


async def _result(pgconn: pq.abc.PGconn) -> pq.abc.PGresult | None:
    """The running statement's next result (None: it has finished), waiting for the server."""
    while pgconn.is_busy():
        await trio.lowlevel.wait_readable(pgconn.socket)
        pgconn.consume_input()
    return pgconn.get_result()


def _error(pgconn: pq.abc.PGconn, result: pq.abc.PGresult) -> psycopg.Error:
    """The psycopg exception for a failed result (its SQLSTATE picks the class)."""
    if result.status == pq.ExecStatus.FATAL_ERROR:
        return error_from_result(result)
    return psycopg.OperationalError(
        f"unexpected result {pq.ExecStatus(result.status).name}: {pgconn.get_error_message()}"
    )
