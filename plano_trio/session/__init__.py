"""Where routing session bindings live between requests: in this process (LRU) or in Redis.

    async with open_session_store("redis", url=url, timeout_s=0.25, client="native") as store:
        value = await store.get(cache_key)          # bytes or None (absent, expired, or cache trouble)
        await store.put(cache_key, value, ttl_s)    # dropped quietly on cache trouble

The store keeps opaque bytes: the session binding's encoding belongs to the
router package, so the store never parses what it holds.  Affinity is an
optimisation, so every failure of the cache is *fail open*: a read that
cannot be answered within `timeout_s` is a miss and a write is dropped; the
request goes on and routes as if the session were new.  What happened is
counted in `store.counters` (`SessionCacheCounters`) for the metrics.

Redis is reached by one of two clients behind the same fail-open store
(`failopen`): `native` (the default, `redis_native`: RESP on trio sockets,
with `resp` as its pure codec) or `redis-py` (`redis`: redis-py's asyncio
client through trio-asyncio).  Native is the default because it costs
4-7x less CPU per command and carries several times the throughput;
`redis_native` has the measurements.
"""

from .store import (
    KEY_PREFIX,
    MAX_ENTRIES,
    MAX_VALUE_BYTES,
    SWEEP_INTERVAL_S,
    SessionCacheCounters,
    SessionStore,
    StoreKind,
    open_session_store,
)

__all__ = [
    "KEY_PREFIX",
    "MAX_ENTRIES",
    "MAX_VALUE_BYTES",
    "SWEEP_INTERVAL_S",
    "SessionCacheCounters",
    "SessionStore",
    "StoreKind",
    "open_session_store",
]
