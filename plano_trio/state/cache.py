"""A byte-bounded LRU of rebuilt conversations: response_id -> full item list.

The common request continues the conversation's latest turn.  When that turn
was written (or its history rebuilt) by this process, the item list is here
and the request needs no database round trip at all.  Entries are keyed by
conversation *tip*: caching a child drops its parent's entry, so a 100-turn
conversation occupies one entry, not 100 overlapping ones.

Sizes are the JSON byte counts of the items, which overstates the real memory
(item objects are shared with the write path), so the bound is conservative.
The cache is per process: a `delete()` on another instance is not seen here
until the entry ages out; TTL expiry is honoured through `oldest_created_at`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CachedHistory:
    """A conversation as `prefix` (the parent's cached history, shared) + this turn's `tail` items.

    Sharing the prefix makes extending a conversation on `put()` O(1); the
    flat list is built once per `history()` call, which must return a fresh
    list anyway.
    """

    tail: list[Any]
    nbytes: int
    """JSON bytes of the whole conversation (prefix included)."""
    oldest_created_at: float
    """created_at of the conversation's first turn: the entry is stale once it is past the TTL."""
    prefix: CachedHistory | None = None

    def items(self) -> list[Any]:
        parts: list[list[Any]] = []
        node: CachedHistory | None = self
        while node is not None:
            parts.append(node.tail)
            node = node.prefix
        flat: list[Any] = []
        for part in reversed(parts):
            flat.extend(part)
        return flat

    @property
    def shared(self) -> bool:
        return self.prefix is not None


class HistoryCache:
    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, CachedHistory] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> CachedHistory | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: CachedHistory) -> None:
        if entry.nbytes > self._max_bytes:
            self.pop(key)
            return
        self.pop(key)
        self._entries[key] = entry
        self._bytes += entry.nbytes
        while self._bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.nbytes

    def pop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.nbytes

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
