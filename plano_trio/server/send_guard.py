"""Bound every write to a client: a connection whose writes make no progress is closed.

A client that stops reading pins whatever the gateway is sending it (a whole
JSON body, the rest of a stream) for as long as the write waits.  The app
cannot bound that itself: hypercorn shields its socket writes from
cancellation, so a timeout around an ASGI `send` never fires.  The bound
therefore lives where the bytes are written, in the stream hypercorn is given.

Cost matters, because this runs for every chunk of every stream: a cancel
scope per write measured ~6 µs here.  Instead each `GuardedStream` notes the
guard's current tick (a plain integer) before each partial `send` and clears
it when the write completes; one `SendGuard` task per listener advances the
tick and, once per tick, closes the sockets whose pending write has not moved
for `timeout_s`.  Closing wakes the blocked write with `ClosedResourceError`,
which hypercorn treats as the client having gone: the request is cancelled
and its memory freed.  A slow client that keeps reading is never cut, since
each partial send that gets through re-arms its clock.
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
from collections.abc import Callable

import trio

from plano_trio import sockio

RECEIVE_BYTES = 65536
"""Bytes asked for per read when the caller names no size (hypercorn always does)."""

_IDLE = -1
"""`GuardedStream.since` when no write is pending."""

_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER on, 0 seconds: close() sends RST and drops unsent data."""


class SendGuard:
    """Owns the tick and the set of live streams of one listener."""

    __slots__ = ("allowed_ticks", "period", "streams", "tick")

    def __init__(self, timeout_s: float) -> None:
        self.period = min(1.0, timeout_s / 4)
        """Seconds per tick: a stalled write is closed between `timeout_s` and `timeout_s + period`."""
        self.allowed_ticks = math.ceil(timeout_s / self.period)
        self.tick = 0
        self.streams: set[GuardedStream] = set()

    def guard(self, stream: trio.SocketStream) -> GuardedStream:
        guarded = GuardedStream(stream, self)
        self.streams.add(guarded)
        return guarded

    def stalled(self) -> list[GuardedStream]:
        """Streams whose pending write started `allowed_ticks` or more ticks ago (pure: no I/O)."""
        oldest = self.tick - self.allowed_ticks
        return [s for s in self.streams if s.since != _IDLE and s.since <= oldest]

    async def run(self) -> None:
        """Advance the tick and close stalled streams, until cancelled."""
        while True:
            await trio.sleep(self.period)
            self.tick += 1
            for stream in self.stalled():
                stream.abort()


class GuardedStream:
    """A `trio.SocketStream` with the methods hypercorn's TCPServer uses, writes watched by a guard.

    It deliberately has no `do_handshake`: hypercorn tells a plain stream
    from a TLS one by that attribute's absence.
    """

    __slots__ = ("_guard", "_inner", "on_end", "since", "socket")

    def __init__(self, inner: trio.SocketStream, guard: SendGuard) -> None:
        self._inner = inner
        self._guard = guard
        self.socket = inner.socket
        self.since = _IDLE
        self.on_end: Callable[[], object] | None = None
        """Called once when a read finds the connection ended (the client closed or reset it, or it
        was closed here): how the requests on it learn their client is gone (`gateway.request_scope`)."""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of `data`, re-arming the guard's clock before each wait for room.

        Never cancelled (hypercorn shields every write: half a message would
        corrupt the connection's framing) and, when the kernel takes it all at
        once (the common case), one system call and two integer stores.
        """
        if not data:  # hypercorn writes b"" at the end of a chunked body: nothing to do
            return
        self.since = self._guard.tick
        try:
            await sockio.send_all_uninterrupted(self.socket, data, self._rearm)
        finally:
            self.since = _IDLE

    def _rearm(self) -> None:
        self.since = self._guard.tick

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            data = await sockio.receive_some(self.socket, max_bytes or RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._ended()
            raise
        if not data:
            self._ended()
        return data

    def _ended(self) -> None:
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end()

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        self._guard.streams.discard(self)
        await self._inner.aclose()

    def abort(self) -> None:
        """Reset the connection now; a write blocked on it raises `ClosedResourceError`.

        A reset (SO_LINGER 0), not a close: a close would leave the unsent bytes
        in the kernel's send buffer, still trickling to a client that reads
        slowly, and the point is to free that memory now.
        """
        self._guard.streams.discard(self)
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self.socket.close()
