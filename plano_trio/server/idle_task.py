"""hypercorn's keep-alive timer, run by one task per connection instead of one task per request.

hypercorn's TCPServer closes a connection that stays idle (no request in
progress) for `keep_alive_timeout`, or at once when the server is shutting
down, by running its `_idle_timeout` action in a task.  Its `TrioSingleTask`
starts that task afresh every time the connection goes idle, i.e. after every
response: a lock, a cancellation, and a `nursery.start` (a task spawn plus
the handshake that waits for it) per request, about a tenth of the trio work
a proxied request costs (`bench.profile`, task counts).

`IdleTask` keeps the same contract (`restart(task_group, action)`: run
`action` from the start, cancelling a run in progress; `stop()`: cancel it)
with one long-lived task per connection that waits for the next `restart`:
a request then costs that task two wake-ups and nothing else.  The task ends
when the action runs to its end (it closed the connection) or when the
connection's reads found its end (`ended`, from the server edge): hypercorn
waits for every task of a connection before it lets the connection go, and
unlike hypercorn's timer, which only exists while the connection is idle,
this one would otherwise wait for a `restart` that never comes.  (A client
that closes an idle connection is let go at once, where hypercorn's timer
held it until `keep_alive_timeout`.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio


class IdleTask:
    """hypercorn's `SingleTask` protocol for one connection's idle timer (see the module docstring)."""

    __slots__ = ("_action", "_armed", "_ended", "_running", "_scope", "_wake")

    def __init__(self) -> None:
        self._action: Callable[[], Awaitable[object]] | None = None
        self._armed = False
        """True from `restart` until `stop`: the action should be running."""
        self._ended = False
        self._wake = trio.Event()
        self._scope: trio.CancelScope | None = None
        """The run of the action in progress."""
        self._running = False

    async def restart(self, task_group: Any, action: Callable[[], Awaitable[object]]) -> None:
        self._action = action
        self._armed = True
        if self._scope is not None:
            self._scope.cancel()  # the run in progress ends; the task starts the next one
        self._wake.set()
        if not self._running and not self._ended:
            self._running = True
            task_group.spawn(self._run)

    async def stop(self) -> None:
        self._armed = False
        if self._scope is not None:
            self._scope.cancel()

    def ended(self) -> None:
        """The connection's reads found its end: stop for good."""
        self._ended = True
        if self._scope is not None:
            self._scope.cancel()
        self._wake.set()

    async def _run(self) -> None:
        while not self._ended:
            if not self._armed:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            action = self._action
            assert action is not None  # set before `_armed` ever is
            with trio.CancelScope() as scope:
                self._scope = scope
                await action()
                return  # it ran to its end: the connection is closed
            self._scope = None
