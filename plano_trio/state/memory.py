"""The in-process backend: bounded, LRU, optional TTL; lost on restart.

Plano's memory backend is an unbounded HashMap.  This one is bounded by
`memory_max_entries` and `memory_max_bytes` (JSON size of the turn) and evicts
whole turns, least recently used first.  `history()` touches every turn of the
chain it walks, so an active conversation keeps its ancestors alive; when an
ancestor is evicted or expires anyway, the conversation is gone (`history()`
returns None, never a silently truncated list).

There is no write queue: `put()` inserts at once, so `admit()` only refuses
while the store is closing, and `aclose()` has nothing to flush.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import trio

from plano_trio.config.state_settings import StateSettings

from .errors import StoreClosedError
from .ids import is_storable_id, is_storable_turn, log_unstorable
from .model import DrainReport, StoreStats, Turn, encode_turn

log = logging.getLogger("plano_trio.state")


@dataclass(frozen=True, slots=True)
class _Entry:
    turn: Turn
    nbytes: int


class MemoryStore:
    backend = "memory"

    def __init__(self, settings: StateSettings) -> None:
        self._settings = settings
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._reserved = 0
        self._closing = False
        self._cleanup_scope = trio.CancelScope()
        self._report: DrainReport | None = None
        self._refused = 0
        self._evicted = 0
        self._expired = 0
        self._unstorable = 0

    async def start(self, nursery: trio.Nursery) -> None:
        if self._settings.ttl_s is not None:
            nursery.start_soon(self._cleanup_loop)

    # --- request path ------------------------------------------------------------------------------

    def admit(self) -> None:
        if self._closing:
            self._refused += 1
            raise StoreClosedError()
        self._reserved += 1

    def release(self) -> None:
        self._reserved = max(0, self._reserved - 1)

    def put(self, turn: Turn) -> None:
        self.release()
        if not is_storable_turn(turn):
            self._unstorable += 1
            log_unstorable(turn, self.backend)
            return
        nbytes = encode_turn(turn).nbytes  # also the check that it can be stored as JSON, as in postgres
        if turn.response_id in self._entries:
            return  # first write wins, as in postgres (ON CONFLICT DO NOTHING)
        self._entries[turn.response_id] = _Entry(turn, nbytes)
        self._bytes += nbytes
        settings = self._settings
        while len(self._entries) > settings.memory_max_entries or self._bytes > settings.memory_max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.nbytes
            self._evicted += 1

    async def history(self, response_id: str) -> list[Any] | None:
        await trio.lowlevel.checkpoint()
        if not is_storable_id(response_id):
            return None
        cutoff = self._cutoff()
        chain: list[Turn] = []
        current: str | None = response_id
        while current is not None:
            entry = self._entries.get(current)
            if entry is None or entry.turn.created_at < cutoff or len(chain) > len(self._entries):
                return None  # unknown, broken (ancestor evicted/expired/deleted) or a cycle
            self._entries.move_to_end(current)
            chain.append(entry.turn)
            current = entry.turn.previous_response_id
        items: list[Any] = []
        for turn in reversed(chain):
            items.extend(turn.input_items)
            items.extend(turn.output_items)
        return items

    async def get(self, response_id: str) -> Turn | None:
        await trio.lowlevel.checkpoint()
        if not is_storable_id(response_id):
            return None
        entry = self._entries.get(response_id)
        if entry is None or entry.turn.created_at < self._cutoff():
            return None
        return entry.turn

    async def delete(self, response_id: str) -> bool:
        await trio.lowlevel.checkpoint()
        if not is_storable_id(response_id):
            return False
        entry = self._entries.pop(response_id, None)
        if entry is None:
            return False
        self._bytes -= entry.nbytes
        return True

    # --- lifecycle ---------------------------------------------------------------------------------

    async def aclose(self, deadline_s: float) -> DrainReport:
        await trio.lowlevel.checkpoint()
        if self._report is None:
            self._closing = True
            self._cleanup_scope.cancel()
            self._report = DrainReport(flushed=0, lost=0)
            log.info(
                "state store closed", extra={"fields": {"backend": "memory", "turns": len(self._entries)}}
            )
        return self._report

    @property
    def stats(self) -> StoreStats:
        return StoreStats(
            backend=self.backend,
            reserved=self._reserved,
            refused=self._refused,
            rejected_total=self._unstorable,
            entries=len(self._entries),
            bytes=self._bytes,
            evicted=self._evicted,
            expired=self._expired,
        )

    # --- retention ---------------------------------------------------------------------------------

    def _cutoff(self) -> float:
        ttl = self._settings.ttl_s
        return time.time() - ttl if ttl is not None else float("-inf")

    async def expire(self) -> int:
        """Drop turns past the TTL; one pass (~10 ms per 100k turns), run by the cleanup task."""
        await trio.lowlevel.checkpoint()
        cutoff = self._cutoff()
        expired = [key for key, entry in self._entries.items() if entry.turn.created_at < cutoff]
        for key in expired:
            self._bytes -= self._entries.pop(key).nbytes
        self._expired += len(expired)
        return len(expired)

    async def _cleanup_loop(self) -> None:
        with self._cleanup_scope:
            while True:
                await trio.sleep(self._settings.cleanup_interval_s)
                removed = await self.expire()
                if removed:
                    log.info(
                        "state turns expired", extra={"fields": {"backend": "memory", "removed": removed}}
                    )
