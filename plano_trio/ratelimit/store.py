"""Where buckets live: this process's memory (the default), bounded and least-recently-used first.

`Buckets` is what the gateway's rate-limit stage talks to; the Redis store
(`redis_store`) shares buckets between instances behind the same
interface.  Both answer with a `gcra.Decision`.

Bounded: at most `max_buckets` TATs are kept; the least recently used goes
first.  A bucket whose TAT has passed is the same as no bucket, so dropping
it loses nothing; dropping a live one (more distinct selector values in use
than the bound) forgets that client's recent use, which is counted
(`evicted_live`) so an operator can raise the bound.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import trio

from .gcra import Decision, decide
from .rules import Charge


@dataclass(slots=True)
class RateLimitCounters:
    """What the rate limits did since start (exported on `/debug/ratelimit`)."""

    checked: int = 0
    """Requests that charged at least one bucket."""
    limited: int = 0
    """Requests refused with 429."""
    failed_open: int = 0
    """Requests let through unchecked because the shared store did not answer in time (or failed)."""
    store_errors: int = 0
    store_timeouts: int = 0
    evicted_live: int = 0
    """Buckets dropped for room while still holding recent use."""


class Buckets(Protocol):
    counters: RateLimitCounters

    async def take(self, charges: Sequence[Charge], cost: int) -> Decision:
        """Charge `cost` tokens to every bucket of `charges`, or to none (refused)."""
        ...


def micros(clock: Callable[[], float]) -> int:
    return int(clock() * 1_000_000)


class MemoryBuckets:
    """Buckets in this process (each `--workers` process has its own)."""

    def __init__(
        self, max_buckets: int, counters: RateLimitCounters, clock: Callable[[], float] = trio.current_time
    ) -> None:
        self.counters = counters
        self._max = max_buckets
        self._clock = clock
        self._tats: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tats)

    async def take(self, charges: Sequence[Charge], cost: int) -> Decision:
        return self.take_now(charges, cost)

    def take_now(self, charges: Sequence[Charge], cost: int) -> Decision:
        now = micros(self._clock)
        tats = self._tats
        decision = decide(now, cost, [c.quota for c in charges], [tats.get(c.bucket) for c in charges])
        if decision.allowed:
            for charge, tat in zip(charges, decision.tats, strict=True):
                tats[charge.bucket] = tat
                tats.move_to_end(charge.bucket)
            while len(tats) > self._max:
                _, tat = tats.popitem(last=False)
                if tat > now:
                    self.counters.evicted_live += 1
        return decision
