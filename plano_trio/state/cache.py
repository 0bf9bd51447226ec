"""A byte-bounded LRU of rebuilt conversations: response_id -> full item list.

The common request continues the conversation's latest turn.  When that turn
was written (or its history rebuilt) by this process, the item list is here
and the request needs no database round trip at all.  Entries are keyed by
conversation *tip*: caching a child drops its parent's entry, so a 100-turn
conversation occupies one entry, not 100 overlapping ones.

Sizes are JSON byte counts (of the turns' stored rows less their responses:
the items, ids and names), a measure of the conversation rather than of its
Python objects, which take more and are shared with the write path while
it holds them.
The cache is per process: a `delete()` on another instance is not seen here
until the entry ages out; TTL expiry is honoured through `oldest_created_at`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import msgspec

FLATTEN_DEPTH = 8
"""A conversation cached as more parts than this is flattened when it is next read (`flat_enough`)."""


class CachedHistory(msgspec.Struct, frozen=True, gc=False):
    """A conversation as `prefix` (the parent's cached history, shared) + this turn's `tail` items.

    Sharing the prefix makes extending a conversation on `put()` O(1), and a
    read builds the flat list it must return anyway; a read flattens the
    entry only once it has more than `FLATTEN_DEPTH` parts, so the walk stays
    short and the copy is rare.  A msgspec struct: built in C, and not
    tracked by the cycle collector (a chain only points back in time).
    """

    tail: list[Any]
    nbytes: int
    """JSON bytes of the whole conversation (prefix included)."""
    oldest_created_at: float
    """created_at of the conversation's first turn: the entry is stale once it is past the TTL."""
    prefix: CachedHistory | None = None
    depth: int = 1
    """Parts in the chain: 1 + the prefix's."""

    def items(self) -> list[Any]:
        """The conversation's items, root first, as a new list."""
        if self.prefix is None:
            return list(self.tail)
        parts: list[list[Any]] = []
        node: CachedHistory | None = self
        while node is not None:
            parts.append(node.tail)
            node = node.prefix
        flat: list[Any] = []
        for part in reversed(parts):
            flat.extend(part)
        return flat

    def extended(self, tail: list[Any], nbytes: int, created_at: float) -> CachedHistory:
        """This conversation followed by one more turn's items."""
        return CachedHistory(
            tail, self.nbytes + nbytes, min(self.oldest_created_at, created_at), self, self.depth + 1
        )

    @property
    def flat_enough(self) -> bool:
        return self.depth <= FLATTEN_DEPTH


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
        entries = self._entries
        old = entries.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
        if entry.nbytes > self._max_bytes:
            return
        entries[key] = entry
        self._bytes += entry.nbytes
        while self._bytes > self._max_bytes:
            _, evicted = entries.popitem(last=False)
            self._bytes -= evicted.nbytes

    def take(self, key: str) -> CachedHistory | None:
        """Remove and return the entry for `key` (None if there is none)."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.nbytes
        return entry

    def pop(self, key: str) -> None:
        self.take(key)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
