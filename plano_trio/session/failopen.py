"""The Redis session store's behaviour, whichever client carries its commands: fail open, bounded, counted.

Two clients can talk to Redis (`redis_native`, the default, and `redis`,
redis-py through trio-asyncio); both plug a `RedisCommands` into the one
`RedisSessionStore` here, so what the gateway sees (misses, dropped writes,
counters, log lines, the skip window) cannot differ between them.

Fail open.  Affinity is an optimisation, so a slow or absent Redis must
never hold a request up or fail it: every call is bounded by `timeout_s`;
a timeout or error makes `get` return None and `put` drop its write, both
counted.  After a failure, calls skip Redis for `retry_after_s` (counted as
errors) so that while Redis hangs only one wave of requests a second pays
the timeout, not every request.  An error *reply* about one key (a key of
the wrong type) is counted but does not open the skip window: Redis itself
is fine.  The clients never retry (a retry would outlast the timeout) and
reconnect on the next call after a connection broke, which is how the
store recovers when Redis comes back.  Failures are logged once when they
start, then at most once per `LOG_INTERVAL_S` with a count, and once when
Redis answers again.  Closing the store (`serve_store`'s exit) cancels the
calls still waiting on Redis: they return at once as failures.

Bounds.  Values over `MAX_VALUE_BYTES` are not written, and reads ask for
`GETRANGE 0 MAX_VALUE_BYTES`, so a huge value someone else put under our
prefix costs at most 64 KiB to read and is then ignored.  `GETRANGE`
answers an absent key with an empty string, which is why neither store
keeps empty values.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn, Protocol
from urllib.parse import urlsplit

import trio

from plano_trio.logs import IncidentLog

from .store import KEY_PREFIX, MAX_VALUE_BYTES, ClientKind, SessionCacheCounters, StoreKind, storage_key

log = logging.getLogger("plano_trio.session")

RETRY_AFTER_S = 1.0
"""How long calls skip Redis after a failure."""

LOG_INTERVAL_S = 30.0
"""At most one failure line per this many seconds while Redis stays unavailable."""

STARTUP_PING_S = 2.0
"""How long the start-up PING may take before the store goes on without Redis (logged)."""


class ReplyError(Exception):
    """Redis answered a command with an error about its key (`WRONGTYPE`, ...): not an outage.

    Clients raise this only for such replies; any other exception from a
    command means Redis could not be used (refused, lost, garbled, refused
    our credentials) and opens the skip window.
    """


class RedisCommands(Protocol):
    """The three commands the store needs, carried by one client; each raises on any failure."""

    async def getrange(self, key: bytes, end: int) -> object:
        """`GETRANGE key 0 end`: the reply as the client decoded it (bytes, when all is well)."""
        ...

    async def set_ex(self, key: bytes, value: bytes, ttl_s: int) -> None:
        """`SET key value EX ttl_s`."""
        ...

    async def ping(self) -> None:
        """`PING`."""
        ...


def describe_url(url: str) -> str:
    """`scheme://host:port/db` for log lines: never the username or password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 6379
    except ValueError:
        return "<unparsable url>"
    return f"{parts.scheme}://{host}:{port}{parts.path}"


_FAILED: Any = object()
"""`_call`'s answer when Redis did not answer; distinct from every reply."""


class RedisSessionStore:
    """`SessionStore` on Redis through `commands`, failing open (see the module docstring)."""

    backend: StoreKind = "redis"

    def __init__(
        self,
        commands: RedisCommands,
        *,
        client: ClientKind,
        timeout_s: float,
        target: str,
        retry_after_s: float = RETRY_AFTER_S,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.counters = SessionCacheCounters()
        self.client = client
        """Which client carries the commands (for logs and the bench)."""
        self._commands = commands
        self.timeout_s = timeout_s
        """Longest one call may take."""
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._skip_until = -float("inf")
        self._target = target
        self._failures = IncidentLog(
            log,
            "session cache unavailable; routing without session affinity",
            "session cache reachable again",
            context={"target": target},
            interval_s=LOG_INTERVAL_S,
            clock=clock,
        )
        self._calls: set[trio.CancelScope] = set()
        self._closed = False

    @staticmethod
    def redis_key(key: str) -> bytes:
        """The Redis key for a cache key: `plano:affinity:` + the (bounded) key, UTF-8."""
        return (KEY_PREFIX + storage_key(key)).encode("utf-8", "surrogatepass")

    async def get(self, key: str) -> bytes | None:
        name = self.redis_key(key)
        value = await self._call("get", lambda: self._commands.getrange(name, MAX_VALUE_BYTES))
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
        await self._call("put", lambda: self._commands.set_ex(name, data, max(1, ttl_s)))

    async def probe(self, timeout_s: float) -> bool:
        """PING within `timeout_s` and log the outcome (the start-up check; a failure counts as usual)."""
        answered = await self._call("ping", self._commands.ping, timeout_s) is not _FAILED
        if answered:
            log.info(
                "session cache connected",
                extra={"fields": {"target": self._target, "client": self.client}},
            )
        return answered

    def close(self) -> None:
        """Cancel the calls waiting on Redis (they fail as usual) and fail every later call at once."""
        self._closed = True
        for scope in self._calls:
            scope.cancel()

    async def _call(
        self, op: str, command: Callable[[], Awaitable[Any]], timeout_s: float | None = None
    ) -> Any:
        """Run `command()` within the timeout; its reply, or `_FAILED` (counted, logged)."""
        if self._closed or self._clock() < self._skip_until:
            self.counters.errors += 1
            return _FAILED
        reason = "timeout"
        with trio.move_on_after(self.timeout_s if timeout_s is None else timeout_s) as scope:
            self._calls.add(scope)
            try:
                reply = await command()
            except ReplyError as exc:
                self.counters.errors += 1
                self._failures.failure({"op": op, "reason": f"{type(exc).__name__}: {exc}"})
                return _FAILED
            except Exception as exc:
                self.counters.errors += 1
                reason = f"{type(exc).__name__}: {exc}"
            else:
                self._failures.success()
                return reply
            finally:
                self._calls.discard(scope)
        if self._closed:
            if scope.cancelled_caught:  # cancelled by `close`, not by its timeout
                self.counters.errors += 1
            return _FAILED
        if scope.cancelled_caught:
            self.counters.timeouts += 1
        self._skip_until = self._clock() + self._retry_after_s
        self._failures.failure({"op": op, "reason": reason})
        return _FAILED


@asynccontextmanager
async def serve_store(store: RedisSessionStore) -> AsyncIterator[RedisSessionStore]:
    """Yield `store` at once with its start-up PING running in the background; on exit stop the PING
    and `close` the store, so no caller stays parked on Redis past the store's life.

    The PING only logs whether Redis answered (a slow Redis delays nothing).
    """
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.probe, max(store.timeout_s, STARTUP_PING_S))
            try:
                yield store
            finally:
                store.close()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise_lone(group)


def raise_lone(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Re-raise the one exception inside `group` (through nested groups of one) as itself; else `group`.

    A nursery wraps even its body's own exception; a caller of a context
    manager expects that exception, not a group around it.
    """
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
        inner = inner.exceptions[0]
    if isinstance(inner, BaseExceptionGroup):
        raise group
    raise inner from None
