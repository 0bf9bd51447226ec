"""Per-origin pool state: the idle connections and the cap on open ones.

Shared by the pool (checkout) and responses (check-in), which is why it lives
apart from both.

The semaphore counts connections *in use* (checked out by a request or still
owned by an unfinished response).  A new connection is only opened when no
idle one exists, so open = in use + idle never exceeds `max_per_host`; waiters
queue FIFO on the semaphore and, when woken, find the connection that was just
checked in on the idle list.
"""

from __future__ import annotations

import trio

from .connection import Connection
from .origin import Origin, authority, host_header, server_hostname


class OriginSlots:
    """Idle LIFO list + in-use permits for one `Origin`, with its derived strings computed once."""

    __slots__ = ("closed", "host_header", "idle", "label", "opened", "origin", "permits", "server_hostname")

    def __init__(self, origin: Origin, max_conns: int) -> None:
        if origin.scheme not in ("http", "https"):
            raise ValueError(f"unsupported upstream scheme {origin.scheme!r} for {authority(origin)}")
        self.origin = origin
        self.label = authority(origin)
        self.host_header = host_header(origin)
        self.server_hostname = server_hostname(origin)
        self.idle: list[Connection] = []
        """Most recently used last: reuse the warmest socket, let the oldest age out."""
        self.permits = trio.Semaphore(max_conns)
        self.closed = False
        self.opened = 0
        """Connections opened since start (for the metrics endpoint)."""

    def check_in(self, conn: Connection) -> bool:
        """Put a finished connection back on the idle list if keep-alive allows; False → caller closes it.

        Does not release the permit: the owner does that exactly once.
        """
        if self.closed or not conn.reusable:
            return False
        conn.start_next_cycle()
        conn.idle_since = trio.current_time()
        self.idle.append(conn)
        return True

    def take_idle(self, idle_timeout: float) -> tuple[Connection | None, list[Connection]]:
        """The freshest idle connection (or None), plus the expired ones the caller must close.

        LIFO order means if the newest is too old, every older one is too.
        """
        idle = self.idle
        if not idle:
            return None, []
        conn = idle.pop()
        if trio.current_time() - conn.idle_since <= idle_timeout:
            return conn, []
        expired = [conn, *idle]
        idle.clear()
        return None, expired
