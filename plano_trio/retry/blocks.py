"""Timed blocks on models and providers: Retry-After and high latency.

A provider that answers `Retry-After: 30`, or is slow too often, is blocked:
while the block lasts, the planner skips it at initial selection and when it
picks a retry target.  A block covers one model (`("model", name)`) or every
model of a provider prefix (`("provider", "openai")`), and lives either in
the process-wide `BlockState` (`apply_to: global`) or in one request's plan
(`apply_to: request`); both use the same small maps below.

Time is a number passed in (`now`, monotonic seconds), never read here, so
the maps are pure and tests drive them with plain floats.  They stay small by
construction: keys are model names and provider prefixes from the config,
at most one entry each, and expired entries are dropped whenever one is
written.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from plano_trio.config.retry import BlockScope
from plano_trio.config.schema import ModelProvider

if TYPE_CHECKING:
    from plano_trio.retry.candidates import Candidates

BlockKey = tuple[BlockScope, str]
"""("model", "openai/gpt-4o") or ("provider", "openai"): the scope is part of the key, so a model
whose name has no slash can never be mistaken for a provider prefix."""


def block_key(target: ModelProvider, scope: BlockScope) -> BlockKey:
    """What a block on `target` covers under `scope`."""
    return ("model", target.name) if scope == "model" else ("provider", target.prefix)


class ExpiryMap:
    """Key → time the block ends; a later block extends, an earlier one never shortens."""

    __slots__ = ("_until",)

    def __init__(self) -> None:
        self._until: dict[BlockKey, float] = {}

    def extend(self, key: BlockKey, until: float, now: float) -> None:
        """Block `key` until `until` (kept if an existing block ends later)."""
        if self._until:
            for stale in [k for k, end in self._until.items() if end <= now]:
                del self._until[stale]
        if until > self._until.get(key, now):
            self._until[key] = until

    def remaining(self, key: BlockKey, now: float) -> float | None:
        """Seconds left on `key`'s block, or None when it is not blocked."""
        end = self._until.get(key)
        if end is None or end <= now:
            return None
        return end - now

    def __len__(self) -> int:
        return len(self._until)


class TriggerWindow:
    """Counts high-latency events per key in a sliding window; says when `min_triggers` is reached.

    Only the newest `min_triggers` events matter, so no more are kept; when the
    threshold is met the key is cleared, so the same events never trigger a
    second block.
    """

    __slots__ = ("_events", "_longest_window_s")

    def __init__(self) -> None:
        self._events: dict[BlockKey, deque[float]] = {}
        self._longest_window_s = 0.0

    def hit(self, key: BlockKey, now: float, min_triggers: int, window_s: float) -> bool:
        """Record an event at `now`; True when this makes `min_triggers` within `window_s`."""
        # Keys whose newest event is older than any window in use can never count again.
        self._longest_window_s = longest = max(self._longest_window_s, window_s)
        for stale in [k for k, seen in self._events.items() if now - seen[-1] > longest]:
            del self._events[stale]
        events = self._events.get(key)
        if events is None or events.maxlen != max(min_triggers, 1):
            events = deque(events or (), maxlen=max(min_triggers, 1))
            self._events[key] = events
        events.append(now)
        while events and now - events[0] > window_s:
            events.popleft()
        if len(events) >= min_triggers:
            del self._events[key]
            return True
        return False

    def __len__(self) -> int:
        return len(self._events)


class Blocks:
    """One place's blocks: Retry-After blocks, latency blocks and the latency trigger counts."""

    __slots__ = ("latency", "retry_after", "triggers")

    def __init__(self) -> None:
        self.retry_after = ExpiryMap()
        self.latency = ExpiryMap()
        self.triggers = TriggerWindow()


_MAX_CACHED_PLANS = 4096
"""Precomputed candidate lists kept; one per primary provider, so only a reloaded config adds more."""


class BlockState(Blocks):
    """The process-wide blocks (`apply_to: global`), shared by every request of the process.

    It also caches, per primary provider, what the planner precomputes from
    the config (candidate order, listed statuses), so that building a plan on
    each request costs a dict lookup.  Everything here is touched from one
    trio thread only, so there is no lock.
    """

    __slots__ = ("_candidates",)

    def __init__(self) -> None:
        super().__init__()
        self._candidates: dict[tuple[int, int], Candidates] = {}

    def cached_candidates(self, key: tuple[int, int]) -> Candidates | None:
        """The entry stored under (id(primary), id(policy)); the caller checks it is still theirs."""
        return self._candidates.get(key)

    def cache_candidates(self, key: tuple[int, int], value: Candidates) -> None:
        if len(self._candidates) >= _MAX_CACHED_PLANS:
            self._candidates.clear()
        self._candidates[key] = value
