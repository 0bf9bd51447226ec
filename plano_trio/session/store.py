"""The `SessionStore` protocol, its counters and bounds, and `open_session_store`, the one way to get one."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

import trio

StoreKind = Literal["memory", "redis"]
ClientKind = Literal["native", "redis-py"]
"""Which client carries a Redis store's commands (`plano_trio.session_cache_client`)."""

KEY_PREFIX = "plano:affinity:"
"""Prefix of every Redis key, as Plano's, so an operator finds (and can flush) the bindings by pattern."""

MAX_ENTRIES = 10_000
"""Upper bound of the memory store's size, whatever `session_max_entries` says (as Plano caps it)."""

MAX_VALUE_BYTES = 64 * 1024
"""Largest value stored or read back.  A binding is a few hundred bytes of JSON; anything near this
bound is a bug or someone else's data under our prefix, and must not cost memory per request."""

MAX_KEY_BYTES = 256
"""Longer keys are stored under their SHA-256 instead (`storage_key`).  Keys carry client-chosen header
values (`X-Model-Affinity`, the tenant header), and 10,000 of them must not pin megabytes."""

SWEEP_INTERVAL_S = 300.0
"""How often the memory store drops expired entries that nobody reads again (Plano's period)."""


@dataclass(slots=True)
class SessionCacheCounters:
    """What the store did, as plain ints for the metrics endpoint to read."""

    hits: int = 0
    """Reads that found a live value."""
    misses: int = 0
    """Reads the backend answered with nothing (absent or expired)."""
    errors: int = 0
    """Reads and writes that failed (connection refused or lost, protocol error), or were skipped
    while the backend was recently failing."""
    timeouts: int = 0
    """Reads and writes the backend did not finish within `timeout_s`."""
    evictions: int = 0
    """Live entries dropped to stay within `max_entries` (memory)."""
    expired: int = 0
    """Entries dropped because their TTL passed, on read or by the sweep (memory)."""
    rejected: int = 0
    """Values not stored (empty, or over `MAX_VALUE_BYTES`) or not returned (over the bound)."""


class SessionStore(Protocol):
    """Opaque bytes under a string key, with a per-entry TTL; every failure is a miss or a dropped write."""

    backend: StoreKind
    counters: SessionCacheCounters

    async def get(self, key: str) -> bytes | None:
        """The value stored under `key`, or None when absent, expired, or the backend failed or was slow."""
        ...

    async def put(self, key: str, value: bytes, ttl_s: int) -> None:
        """Store `value` under `key` for `ttl_s` seconds (at least 1); never raises for backend trouble."""
        ...


def storage_key(key: str) -> str:
    """`key` itself, or `sha256:<hex>` of it when its UTF-8 form is over `MAX_KEY_BYTES`.

    Hashing instead of refusing keeps affinity working for long header values;
    a collision of SHA-256 is not a practical concern.  Lone surrogates (from
    a lenient header decode) are encoded as-is rather than raising.
    """
    raw = key.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_KEY_BYTES:
        return key
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def clamp_entries(max_entries: int) -> int:
    """`max_entries` within 1..`MAX_ENTRIES`: the config checks the range; the store stays safe anyway."""
    return min(max(1, max_entries), MAX_ENTRIES)


@asynccontextmanager
async def open_session_store(
    kind: StoreKind,
    *,
    url: str | None = None,
    max_entries: int = MAX_ENTRIES,
    timeout_s: float = 0.25,
    client: ClientKind = "native",
) -> AsyncIterator[SessionStore]:
    """Start a store, yield it, stop everything it started on exit.

    memory: the sweep task runs every `SWEEP_INTERVAL_S` in a nursery owned
    here; `url`, `timeout_s` and `client` are unused (memory cannot be slow
    or down).

    redis: `url` (`redis://` or `rediss://`, TLS options in its query
    string) is required.  A Redis that is down at start is logged, not
    fatal: the store fails open and connects when Redis comes back.  Both
    clients sit behind the same fail-open store (`failopen`); `client`
    picks which one carries the commands:

    - `native` (the default): RESP on trio sockets (`redis_native`).  It
      is the default because it is measurably cheaper: a GET costs 55-90
      µs of CPU against 330-385 µs through redis-py and trio-asyncio, and
      a routed request with a session on Redis costs ~1.10x the CPU of one
      on the memory store, against 1.5-1.7x through the bridge (`python -m
      bench.redis_bridge` and the routing bench scenario measure both;
      `redis_native` has the figures).
    - `redis-py`: redis-py's asyncio client on a trio-asyncio loop that
      lives exactly as long as this block (`redis`).  redis-py and
      trio-asyncio are imported only then: ~0.3 s of start-up others
      should not pay, and importing trio-asyncio replaces asyncio's loop
      lookup functions process-wide.

    Raises `ValueError` before yielding for an unknown `kind` or `client`,
    a missing or unusable `url`, or `timeout_s <= 0`.
    """
    if kind == "memory":
        from .memory import MemorySessionStore

        store = MemorySessionStore(clamp_entries(max_entries))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store.sweep_forever, SWEEP_INTERVAL_S)
                try:
                    yield store
                finally:
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The nursery wraps even the body's own exception; a lone one arrives as itself.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        return
    if kind != "redis":
        raise ValueError(f"unknown session cache type {kind!r}")
    if not url:
        raise ValueError("session_cache.url is required when type is redis")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
    if client == "native":
        from .redis_native import open_native_store as open_store
    elif client == "redis-py":
        from .redis import open_redis_store as open_store
    else:
        raise ValueError(f"unknown session cache client {client!r}")
    async with open_store(url, timeout_s=timeout_s) as redis_store:
        yield redis_store
