"""The Redis session store: redis-py's asyncio client, driven from trio through trio-asyncio.

Bridge.  redis-py has no trio support, so `open_redis_store` opens a
trio-asyncio loop and the client lives on it.  The gateway's request tasks
are trio tasks that hypercorn started outside that loop's block, so they
cannot use `trio_asyncio.aio_as_trio` (it finds its loop in a context
variable those tasks never saw); they call the loop object's
`run_aio_coroutine`, which wraps the command in an `asyncio.Task` on the
loop and parks the trio task until it is done.  Cancelling the trio side
cancels that asyncio task, which is how the timeout below stops a command.

Cost, measured with `python -m bench.redis_bridge` (Redis 7.0 on localhost,
1 KiB values, a shared 2-core machine under load, so +-30% between runs;
per call sequentially, then 100 tasks issuing GETs back to back):

    | path                             | GET µs | SET µs | 100 tasks GET/s | p99 ms |
    |----------------------------------|-------:|-------:|----------------:|-------:|
    | asyncio-native (no bridge)       |    345 |    548 |           2,057 |    223 |
    | trio-asyncio run_aio_coroutine   |    642 |    580 |           1,695 |    231 |
    | trio-asyncio worker + channel    |    649 |    693 |           1,353 |    274 |
    | this store (timeout, prefix, ..) |    675 |    716 |           1,541 |    229 |
    | sync redis-py in to_thread       |    438 |    415 |           1,951 |    143 |
    | raw trio RESP (floor)            |    155 |    145 |           7,517 |     60 |

`run_aio_coroutine` is the cheapest trio-asyncio path (a worker task fed by
a channel adds a hop and a task switch); the bridge costs roughly 100-300 µs
a call over redis-py on plain asyncio, and redis-py itself is most of the
rest: about 20 trips through trio-asyncio's loop per command.  A minimal
RESP client on trio streams (GET, SET EX, PING; AUTH/SELECT/TLS from the
URL) would be 3-5x cheaper per call and carry ~5x the throughput, without
the bridge; the raw row is such a client, minus pooling and its parser's
bounds.  At ~1,500 commands/s per process (two per routed request), the
Redis store starts failing open by timeouts around 500-700 routed
requests/s on this machine; the memory store costs microseconds.

Fail open.  Affinity is an optimisation, so a slow or absent Redis must
never hold a request up or fail it: every call is bounded by `timeout_s`;
a timeout or error makes `get` return None and `put` drop its write, both
counted.  After a failure, calls skip Redis for `retry_after_s` (counted as
errors) so that while Redis hangs only one wave of requests a second pays
the timeout, not every request.  redis-py's own retries are off (they would
outlast the timeout) and its pool reconnects on the next call after a
connection broke, which is how the store recovers when Redis comes back.
Failures are logged once when they start, then at most once per
`LOG_INTERVAL_S` with a count, and once when Redis answers again.

Bounds.  At most `MAX_CONNECTIONS` connections (a blocking pool: more
concurrent calls wait, within their timeout).  Values over `MAX_VALUE_BYTES`
are not written, and reads use `GETRANGE 0 MAX_VALUE_BYTES`, so a huge value
someone else put under our prefix costs at most 64 KiB to read and is then
ignored.  `GETRANGE` answers an absent key with an empty string, which is
why neither store keeps empty values.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aredis
import trio
import trio_asyncio  # type: ignore[import-untyped]  # no py.typed; its loop is Any here
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from .store import KEY_PREFIX, MAX_VALUE_BYTES, SessionCacheCounters, StoreKind, storage_key

log = logging.getLogger("plano_trio.session")

MAX_CONNECTIONS = 32
"""Redis connections per process; a GET takes well under a millisecond, so 32 carry thousands a second."""

RETRY_AFTER_S = 1.0
"""How long calls skip Redis after a failure."""

LOG_INTERVAL_S = 30.0
"""At most one failure line per this many seconds while Redis stays unavailable."""

STARTUP_PING_S = 2.0
"""How long `open_redis_store` waits for the first PING before starting without Redis."""


def describe_url(url: str) -> str:
    """`scheme://host:port/db` for log lines: never the username or password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 6379
    except ValueError:
        return "<unparsable url>"
    return f"{parts.scheme}://{host}:{port}{parts.path}"


class FailureLog:
    """One log line when Redis starts failing, then at most one per interval, and one on recovery."""

    def __init__(
        self, target: str, *, interval_s: float = LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.target = target
        self._interval_s = interval_s
        self._clock = clock
        self._active = False
        self._last_logged = 0.0
        self._failures = 0
        self._unlogged = 0

    def failure(self, op: str, reason: str) -> bool:
        """Record a failure; returns whether a line was logged."""
        now = self._clock()
        self._failures += 1
        if self._active and now - self._last_logged < self._interval_s:
            self._unlogged += 1
            return False
        log.warning(
            "session cache unavailable; routing without session affinity",
            extra={
                "fields": {
                    "target": self.target,
                    "op": op,
                    "reason": reason,
                    "failures": self._failures,
                    "not_logged": self._unlogged,
                }
            },
        )
        self._active = True
        self._last_logged = now
        self._unlogged = 0
        return True

    def success(self) -> bool:
        """Record a success; returns whether it ended an incident (and logged that)."""
        if not self._active:
            return False
        log.info(
            "session cache reachable again",
            extra={"fields": {"target": self.target, "failures": self._failures}},
        )
        self._active = False
        self._failures = 0
        self._unlogged = 0
        return True


_FAILED: Any = object()
"""`_call`'s answer when Redis did not answer; distinct from every reply."""


class RedisSessionStore:
    backend: StoreKind = "redis"

    def __init__(
        self,
        loop: trio_asyncio.TrioEventLoop,
        client: aredis.Redis,
        *,
        timeout_s: float,
        target: str,
        retry_after_s: float = RETRY_AFTER_S,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.counters = SessionCacheCounters()
        self._loop = loop
        self._client = client
        self._timeout_s = timeout_s
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._skip_until = -float("inf")
        self._failures = FailureLog(target)

    @staticmethod
    def redis_key(key: str) -> bytes:
        """The Redis key for a cache key: `plano:affinity:` + the (bounded) key, UTF-8."""
        return (KEY_PREFIX + storage_key(key)).encode("utf-8", "surrogatepass")

    async def get(self, key: str) -> bytes | None:
        name = self.redis_key(key)
        value = await self._call("get", lambda: self._client.getrange(name, 0, MAX_VALUE_BYTES))
        if value is _FAILED:
            return None
        if not isinstance(value, bytes) or not value:
            self.counters.misses += 1
            return None
        if len(value) > MAX_VALUE_BYTES:
            self.counters.rejected += 1
            return None
        self.counters.hits += 1
        return value

    async def put(self, key: str, value: bytes, ttl_s: int) -> None:
        if not value or len(value) > MAX_VALUE_BYTES:
            self.counters.rejected += 1
            return
        name = self.redis_key(key)
        data = bytes(value)
        await self._call("put", lambda: self._client.set(name, data, ex=max(1, ttl_s)))

    async def probe(self, timeout_s: float) -> bool:
        """PING within `timeout_s` and log the outcome (the start-up check; a failure counts as usual)."""
        ping = lambda: self._client.execute_command("PING")  # type: ignore[no-untyped-call]  # noqa: E731
        answered = await self._call("ping", ping, timeout_s) is not _FAILED
        if answered:
            log.info("session cache connected", extra={"fields": {"target": self._failures.target}})
        return answered

    async def _call(
        self, op: str, command: Callable[[], Awaitable[Any]], timeout_s: float | None = None
    ) -> Any:
        """Run `command()` on the loop within the timeout; its reply, or `_FAILED` (counted, logged)."""
        if self._clock() < self._skip_until:
            self.counters.errors += 1
            return _FAILED
        reason = "timeout"
        with trio.move_on_after(self._timeout_s if timeout_s is None else timeout_s) as scope:
            try:
                reply = await self._loop.run_aio_coroutine(command())
            except ResponseError as exc:
                # Redis answered, with an error about this one key (WRONGTYPE, ...): not an outage.
                self.counters.errors += 1
                self._failures.failure(op, f"{type(exc).__name__}: {exc}")
                return _FAILED
            except (Exception, asyncio.CancelledError) as exc:
                # asyncio.CancelledError without a trio cancel: the loop is closing under us.
                self.counters.errors += 1
                reason = f"{type(exc).__name__}: {exc}"
            else:
                self._failures.success()
                return reply
        if scope.cancelled_caught:
            self.counters.timeouts += 1
        self._skip_until = self._clock() + self._retry_after_s
        self._failures.failure(op, reason)
        return _FAILED


def make_client(url: str, timeout_s: float) -> aredis.Redis:
    """A redis-py asyncio client for `url` (`rediss://` for TLS; redis-py parses the URL's options).

    Raises `ValueError` for a URL redis-py cannot use.  Nothing connects yet:
    the pool opens connections on first use.
    """
    pool = aredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        # No read timeout: the trio scope around each call bounds it already, and redis-py would
        # arm an asyncio timer per read, which trio-asyncio pays for on every command.
        socket_timeout=None,
        retry=Retry(NoBackoff(), 0),
        client_name="plano-trio",
    )
    return aredis.Redis(connection_pool=pool)


@asynccontextmanager
async def open_redis_store(url: str, *, timeout_s: float) -> AsyncIterator[RedisSessionStore]:
    """Open the asyncio loop and the client, yield the store at once, close both on exit.

    A first PING runs in the background (so a slow Redis delays nothing) and
    logs whether Redis answered; the store is usable before it finishes.
    """
    target = describe_url(url)
    try:
        client = make_client(url, timeout_s)
    except ValueError as exc:
        raise ValueError(f"session_cache.url ({target}): {exc}") from None
    try:
        async with trio_asyncio.open_loop() as loop, trio.open_nursery() as nursery:
            store = RedisSessionStore(loop, client, timeout_s=timeout_s, target=target)
            nursery.start_soon(store.probe, max(timeout_s, STARTUP_PING_S))
            try:
                yield store
            finally:
                nursery.cancel_scope.cancel()
                with trio.move_on_after(1.0, shield=True):
                    await loop.run_aio_coroutine(_close(client))
    except BaseExceptionGroup as group:
        # trio-asyncio's loop runs in a nursery, and so does the probe: each wraps even the
        # body's own exception; a lone one arrives as itself.
        while isinstance(group, BaseExceptionGroup) and len(group.exceptions) == 1:
            inner = group.exceptions[0]
            if not isinstance(inner, BaseExceptionGroup):
                raise inner from None
            group = inner
        raise


async def _close(client: aredis.Redis) -> None:
    await client.aclose()
    await client.connection_pool.aclose()
