"""Session bindings written behind the request: the store's writes leave the request path.

A routed request used to wait for two writes to the session cache: the
decided binding before dispatch (on the way to the first token) and the
refreshed one after the answer.  Against Redis each is a network round trip
that wakes two processes, for data that is an optimisation (a lost binding
means the next turn routes as a new session).  So the request only hands
its binding here and goes on; one task writes them in the background.

Writes are coalesced per key: a key written again before its first write
went out is written once, with the newer value, in the older one's place in
the line; so a key's writes never reorder.  What waits is bounded
(`max_pending` keys): past it a write is dropped and counted, never
blocking a request.  On shutdown what is still pending gets a bounded time
to reach the store.
"""

from __future__ import annotations

import math

import trio

from .store import SessionStore

DEFAULT_MAX_PENDING = 10_000
"""Keys waiting to be written; a store far slower than the request rate drops writes past this."""

DRAIN_TIMEOUT_S = 1.0
"""How long shutdown waits for pending writes (each is also bounded by the store's own timeout)."""


class BindingWriter:
    """`submit` from any request task; `run` in one background task for as long as the store is open."""

    def __init__(self, store: SessionStore, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._store = store
        self._max_pending = max(1, max_pending)
        self._pending: dict[str, tuple[bytes, int]] = {}
        self._wake = trio.Event()
        self.written = 0
        """Writes handed to the store."""
        self.coalesced = 0
        """Writes replaced by a newer value for the same key before they went out."""
        self.dropped = 0
        """Writes refused because `max_pending` keys were already waiting."""

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, key: str, value: bytes, ttl_s: int) -> bool:
        """Queue `value` for `key` (never blocks); False if it was dropped for lack of room."""
        if key in self._pending:
            self.coalesced += 1
        elif len(self._pending) >= self._max_pending:
            self.dropped += 1
            return False
        self._pending[key] = (value, ttl_s)
        self._wake.set()
        return True

    async def run(self) -> None:
        """Write pending bindings one at a time, oldest key first, until cancelled."""
        while True:
            await self._wake.wait()
            await self._write_pending()
            self._wake = trio.Event()
            if self._pending:  # submitted between the last write and the new event
                self._wake.set()

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Write what is pending, for at most `timeout_s` (shutdown; the rest is dropped and counted)."""
        with trio.move_on_after(timeout_s if math.isfinite(timeout_s) else DRAIN_TIMEOUT_S):
            await self._write_pending()
        self.dropped += len(self._pending)
        self._pending.clear()

    async def _write_pending(self) -> None:
        while self._pending:
            key = next(iter(self._pending))
            value, ttl_s = self._pending.pop(key)
            self.written += 1
            await self._store.put(key, value, ttl_s)  # bounded and fail-open: never raises for trouble
