"""The read timeout between body chunks, kept by one timer task per pool.

A provider that stops sending in the middle of a body must not hold its
socket and pool slot until the caller's overall deadline.  The obvious bound,
a `trio.move_on_after` around each socket read, costs ~6.5 µs to enter and
leave on this machine: as much as the rest of relaying a streamed chunk.  So a
waiting read only records its deadline in a dict (~0.3 µs), and one system
task wakes every quarter of the shortest timeout in use, finds the reads whose
deadline passed and expires them: the connection marks itself timed out and
closes its socket, which wakes the blocked read at once with an error that
the connection reports as a timeout.

A wait therefore ends between `timeout` and 1.25 times `timeout` after it began.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import trio

TICKS_PER_TIMEOUT = 4
"""How many times per (shortest) timeout the task looks: the bound's precision is timeout / 4."""


class Expirable(Protocol):
    """What the watch can stop: a connection whose blocked read must end now."""

    def expire(self) -> None:
        """Mark the wait as timed out and wake it (by closing the socket); never raises."""


class IdleWatch:
    """Deadlines of the reads that are waiting right now, and the task that enforces them.

    The task is started on the first `arm` and lives until `aclose` or the
    end of the trio run (system tasks are cancelled then), so a pool that never
    reads a body never starts it.
    """

    __slots__ = ("_deadlines", "_now", "_scope", "_sleep", "_tick")

    def __init__(self) -> None:
        self._deadlines: dict[Expirable, float] = {}
        self._tick = math.inf
        self._scope: trio.CancelScope | None = None
        """The task's scope while it runs (None: no task)."""
        self._sleep: trio.CancelScope | None = None
        self._now: Callable[[], float] = trio.current_time
        """The run's clock, bound when the task starts: `trio.current_time` finds it afresh on every
        call, and `arm` runs on every token of every stream."""

    def arm(self, waiter: Expirable, timeout: float) -> None:
        """`waiter` is about to wait for data; expire it unless `disarm` comes within `timeout` s."""
        if self._scope is None:
            self._scope = trio.CancelScope()
            self._now = trio.lowlevel.current_clock().current_time
            trio.lowlevel.spawn_system_task(self._run, self._scope, name="plano_trio.upstream.IdleWatch")
        if timeout < self._tick * TICKS_PER_TIMEOUT:
            self._shorten(timeout)
        self._deadlines[waiter] = self._now() + timeout

    def disarm(self, waiter: Expirable) -> None:
        """The wait ended (data, error or cancellation)."""
        self._deadlines.pop(waiter, None)

    def aclose(self) -> None:
        """Stop the task (the pool is closing); a later `arm` (a response still being read) restarts it."""
        if self._scope is not None:
            self._scope.cancel()
        self._scope = self._sleep = None

    def expire_due(self, now: float) -> int:
        """Expire every wait whose deadline is `now` or earlier; how many (the task's one step)."""
        due = [waiter for waiter, deadline in self._deadlines.items() if deadline <= now]
        for waiter in due:
            del self._deadlines[waiter]
            waiter.expire()
        return len(due)

    def _shorten(self, timeout: float) -> None:
        """A shorter timeout than any before: tick faster, starting with the current sleep."""
        self._tick = timeout / TICKS_PER_TIMEOUT
        if self._sleep is not None:
            self._sleep.deadline = min(self._sleep.deadline, trio.current_time() + self._tick)

    async def _run(self, scope: trio.CancelScope) -> None:
        """Expire due waits every tick, until `scope` is cancelled or the trio run ends."""
        try:
            with scope:
                while True:
                    sleep = trio.CancelScope(deadline=trio.current_time() + self._tick)
                    if self._scope is scope:  # `_shorten` may wake this sleep early
                        self._sleep = sleep
                    with sleep:
                        await trio.sleep_forever()
                    self.expire_due(trio.current_time())
        finally:
            if self._scope is scope:  # the run ended (`aclose` already forgot this task)
                self._scope = self._sleep = None
