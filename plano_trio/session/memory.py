"""The in-process session store: a bounded LRU of bytes with a TTL per entry.

An `OrderedDict` gives every operation O(1): a read moves its key to the
end, a write appends, and when `max_entries` is passed the oldest-used key
at the front is evicted.  The TTL is checked on each read (an expired entry
is dropped then), and `sweep_forever` drops expired entries nobody reads
again -- the TTL is a memory bound, as Plano's: warmth is the router's
judgement from the binding's `last_used`, not the store's.

The clock is injected (trio's by default) so tests expire entries without
sleeping.  Nothing here awaits: trio runs one task at a time, so the
dictionary needs no lock, and a read or write never yields to another task.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

import trio

from .store import MAX_VALUE_BYTES, SessionCacheCounters, StoreKind, storage_key

log = logging.getLogger("plano_trio.session")


class MemorySessionStore:
    backend: StoreKind = "memory"

    def __init__(self, max_entries: int, *, clock: Callable[[], float] = trio.current_time) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self.counters = SessionCacheCounters()
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        """key -> (value, expiry on `clock`), least recently used first."""

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        key = storage_key(key)
        entry = self._entries.get(key)
        if entry is None:
            self.counters.misses += 1
            return None
        value, expires_at = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            self.counters.expired += 1
            self.counters.misses += 1
            return None
        self._entries.move_to_end(key)
        self.counters.hits += 1
        return value

    async def put(self, key: str, value: bytes, ttl_s: int) -> None:
        if not value or len(value) > MAX_VALUE_BYTES:
            self.counters.rejected += 1
            return
        key = storage_key(key)
        self._entries[key] = (bytes(value), self._clock() + max(1, ttl_s))
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.counters.evictions += 1

    def sweep(self) -> int:
        """Drop every expired entry; returns how many.  O(n), run every few minutes, n <= 10,000."""
        now = self._clock()
        expired = [key for key, (_, expires_at) in self._entries.items() if now >= expires_at]
        for key in expired:
            del self._entries[key]
        self.counters.expired += len(expired)
        return len(expired)

    async def sweep_forever(self, interval_s: float) -> None:
        """`sweep` every `interval_s` until cancelled (by `open_session_store`'s exit)."""
        while True:
            await trio.sleep(interval_s)
            removed = self.sweep()
            if removed:
                log.debug(
                    "expired session bindings dropped",
                    extra={"fields": {"removed": removed, "remaining": len(self._entries)}},
                )
