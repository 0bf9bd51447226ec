"""Which lane an accepted client connection takes: the server proper, the overflow lane, or none yet.

The main lane is hypercorn serving the gateway, bounded by
`server.limits.connection_bound`.  When it is full, a small overflow lane
(a few dozen descriptors, inside the bound's reserve) still accepts, so a
load balancer's `/healthz` gets its 200 and every other request a quick 503
instead of waiting in the kernel's backlog (`server.overflow`).  When the
overflow lane is full too, the listener stops calling `accept` until a
connection closes; the kernel backlog holds the rest.

`LaneCounts` is the whole decision, pure.  `ConnectionGate` adds the one
thing that needs trio: waiting for room.  Each listening socket has one gate
and one accept task, so nothing can take the room between `wait_for_room`
and `admit`.  The cost per connection is one increment and one decrement.
"""

from __future__ import annotations

import enum

import trio

OVERFLOW_CONNECTIONS = 32
"""Overflow-lane connections per listener: enough for health checks and quick refusals to keep flowing."""


class Lane(enum.Enum):
    MAIN = "main"
    OVERFLOW = "overflow"


class LaneCounts:
    """Open connections per lane against their limits."""

    __slots__ = ("main_limit", "main_open", "overflow_limit", "overflow_open")

    def __init__(self, main_limit: int, overflow_limit: int = OVERFLOW_CONNECTIONS) -> None:
        if main_limit < 1 or overflow_limit < 0:
            raise ValueError(f"lane limits must be main >= 1, overflow >= 0: {main_limit}, {overflow_limit}")
        self.main_limit = main_limit
        self.overflow_limit = overflow_limit
        self.main_open = 0
        self.overflow_open = 0

    @property
    def has_room(self) -> bool:
        return self.main_open < self.main_limit or self.overflow_open < self.overflow_limit

    def admit(self) -> Lane | None:
        """Count one more connection in the first lane with room; None if both are full."""
        if self.main_open < self.main_limit:
            self.main_open += 1
            return Lane.MAIN
        if self.overflow_open < self.overflow_limit:
            self.overflow_open += 1
            return Lane.OVERFLOW
        return None

    def release(self, lane: Lane) -> None:
        """A connection of `lane` has closed."""
        if lane is Lane.MAIN:
            if self.main_open <= 0:
                raise ValueError("released a main-lane connection that was never admitted")
            self.main_open -= 1
        else:
            if self.overflow_open <= 0:
                raise ValueError("released an overflow-lane connection that was never admitted")
            self.overflow_open -= 1


class ConnectionGate:
    """`LaneCounts` plus a way for the accept loop to sleep until a connection closes."""

    __slots__ = ("_room", "counts")

    def __init__(self, counts: LaneCounts) -> None:
        self.counts = counts
        self._room: trio.Event | None = None

    async def wait_for_room(self) -> None:
        """Return once some lane can take a connection (at once, unless both are full)."""
        while not self.counts.has_room:
            self._room = trio.Event()
            await self._room.wait()

    def admit(self) -> Lane:
        """Count a connection just accepted; only call after `wait_for_room` in the same task."""
        lane = self.counts.admit()
        if lane is None:
            raise RuntimeError("admit() without room: call wait_for_room() first")
        return lane

    def release(self, lane: Lane) -> None:
        self.counts.release(lane)
        if self._room is not None:
            self._room.set()
            self._room = None
