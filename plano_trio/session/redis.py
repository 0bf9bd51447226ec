"""The Redis session store's redis-py client: its asyncio client, driven from trio through trio-asyncio.

Not the default any more (`plano_trio.session_cache_client: redis-py` picks
it): the measurement below is why `redis_native` is.  Kept because it is the
reference client, handy when a Redis deployment needs something of redis-py's
URL handling the native client refuses.

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
rest: about 20 trips through trio-asyncio's loop per command.  At ~1,500
commands/s per process (three per routed request with a session), this
client starts failing open by timeouts around 500 routed requests/s on this
machine.  The raw row showed that a minimal RESP client on trio would be
3-5x cheaper per call, with ~5x the throughput: that client is
`redis_native`, the default since; its docstring has the measurements side
by side (CPU per GET 55-90 µs against this client's 330-385, and a routed
request on Redis ~1.10x the CPU of one on the memory store against
1.5-1.7x with this client).

The store around this client (fail open, skip window, bounds, counters)
is `failopen.RedisSessionStore`, shared with the native client.  redis-py's
own retries are off (they would outlast the timeout) and its pool
reconnects on the next call after a connection broke.  At most
`MAX_CONNECTIONS` connections (a blocking pool: more concurrent calls wait,
within their timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aredis
import trio
import trio_asyncio  # type: ignore[import-untyped]  # no py.typed; its loop is Any here
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from .failopen import RedisSessionStore, ReplyError, describe_url, raise_lone, serve_store

MAX_CONNECTIONS = 32
"""Redis connections per process; a GET takes well under a millisecond, so 32 carry thousands a second."""

CLIENT_NAME = "plano-trio/redis-py"
"""`CLIENT SETNAME` of every connection: an operator (and the routing bench) can tell the clients apart."""


class LoopClosed(Exception):
    """The asyncio loop stopped under a command (the store is closing)."""


class RedisPyCommands:
    """`RedisCommands` on redis-py's asyncio client, run on `loop` from any trio task."""

    def __init__(self, loop: trio_asyncio.TrioEventLoop, client: aredis.Redis) -> None:
        self._loop = loop
        self._client = client

    async def getrange(self, key: bytes, end: int) -> object:
        return await self._run(self._client.getrange(key, 0, end))

    async def set_ex(self, key: bytes, value: bytes, ttl_s: int) -> None:
        await self._run(self._client.set(key, value, ex=ttl_s))

    async def ping(self) -> None:
        await self._run(self._client.execute_command("PING"))  # type: ignore[no-untyped-call]

    async def _run(self, command: Coroutine[Any, Any, Any] | Any) -> Any:
        """The command's reply; cancelling the trio side cancels the asyncio task that runs it."""
        try:
            return await self._loop.run_aio_coroutine(command)
        except ResponseError as exc:
            raise ReplyError(str(exc)) from exc
        except asyncio.CancelledError as exc:
            # Without a trio cancel: the loop is closing under us.
            raise LoopClosed("asyncio loop closed") from exc


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
        client_name=CLIENT_NAME,
    )
    return aredis.Redis(connection_pool=pool)


@asynccontextmanager
async def open_redis_store(url: str, *, timeout_s: float) -> AsyncIterator[RedisSessionStore]:
    """Open the asyncio loop and the client, yield the store at once, close both on exit.

    Raises `ValueError` before yielding for a URL redis-py cannot use.
    """
    target = describe_url(url)
    try:
        client = make_client(url, timeout_s)
    except ValueError as exc:
        raise ValueError(f"session_cache.url ({target}): {exc}") from None
    try:
        async with trio_asyncio.open_loop() as loop:
            commands = RedisPyCommands(loop, client)
            store = RedisSessionStore(commands, client="redis-py", timeout_s=timeout_s, target=target)
            try:
                async with serve_store(store):
                    yield store
            finally:
                with trio.move_on_after(1.0, shield=True):
                    await loop.run_aio_coroutine(_close(client))
    except BaseExceptionGroup as group:
        # trio-asyncio's loop runs in a nursery, which wraps even the body's own exception.
        raise_lone(group)


async def _close(client: aredis.Redis) -> None:
    await client.aclose()
    await client.connection_pool.aclose()
