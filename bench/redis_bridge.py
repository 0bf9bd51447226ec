"""What one Redis GET/SET costs through each way a trio task can reach Redis.

    python -m bench.redis_bridge [--url redis://127.0.0.1:6379] [--n 3000] [--concurrency 100] [--json]
                                 [--rounds 1] [--only native,bridge,memory]

The routing session cache does one GET and one SET per routed request, from
trio tasks that hypercorn started outside any `trio_asyncio.open_loop()`
block.  This measures, against a real Redis, the latency and this
process's CPU time (user + system, `time.process_time`) of a sequential
GET and SET, and the throughput and latency (p99, max) of `--concurrency`
tasks issuing GETs back to back:

- `asyncio-native`: redis-py's asyncio client under plain `asyncio.run` --
  the floor for redis-py itself, no bridge;
- `trio-asyncio run_aio_coroutine`: the loop object's `run_aio_coroutine`,
  called from trio tasks outside the loop's block (what the store does);
- `trio-asyncio worker`: trio tasks hand the command through a trio memory
  channel to worker tasks inside the loop's block, which call `aio_as_trio`;
- `session store, redis-py`: `open_session_store("redis", client="redis-py")`
  -- the bridge above plus the store's timeout scope, key prefix and size
  bounds;
- `session store, native`: `open_session_store("redis", client="native")`,
  the default: the same store on the trio RESP client (`redis_native`);
- `session store, memory`: `open_session_store("memory")`, what the store
  costs with no Redis at all;
- `sync redis-py in to_thread`: the blocking client, one worker thread per call;
- `raw trio RESP on SocketStream`: a hand-written GET/SET over one
  `trio.SocketStream` per task, no pool, no parser bounds -- the first
  estimate of a trio-native client (the native store beats it: it skips
  `SocketStream`'s scheduler passes, see `redis_native._SocketTransport`).

Every GET reads a 1 KiB value (a session binding is a few hundred bytes).
Keys live under a random `bench:bridge:<hex>:` prefix, deleted at the end.
With `--rounds N` every row runs N times, the rows interleaved (A B C, B C
A, ...), and each figure is the median over rounds: on a shared machine,
rows measured minutes apart are not comparable.  `--only` picks rows by
their short names (`asyncio`, `aio`, `worker`, `bridge`, `native`,
`memory`, `thread`, `raw`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import urlparse

import redis
import redis.asyncio as aredis
import trio
import trio_asyncio  # type: ignore[import-untyped]

from plano_trio.session import KEY_PREFIX, open_session_store
from plano_trio.session.store import ClientKind, StoreKind

VALUE = b"x" * 1024


class Result:
    def __init__(
        self,
        name: str,
        get: tuple[float, float],
        put: tuple[float, float],
        conc_ops_s: float,
        latencies: list[float],
    ) -> None:
        self.name = name
        self.get_us, self.get_cpu_us = get
        self.set_us, self.set_cpu_us = put
        self.conc_ops_s = conc_ops_s
        ordered = sorted(latencies)
        self.conc_p99_ms = ordered[int(len(ordered) * 0.99)] * 1e3 if ordered else 0.0
        self.conc_max_ms = ordered[-1] * 1e3 if ordered else 0.0

    def row(self) -> str:
        return (
            f"| {self.name} | {self.get_us:.0f} | {self.get_cpu_us:.0f} | {self.set_us:.0f}"
            f" | {self.set_cpu_us:.0f} | {self.conc_ops_s:,.0f} | {self.conc_p99_ms:.0f}"
            f" | {self.conc_max_ms:.0f} |"
        )


def median_result(results: list[Result]) -> Result:
    """Each figure's median over rounds (p99 and max too)."""
    first = results[0]
    med = Result(first.name, (0, 0), (0, 0), 0, [])
    for attr in ("get_us", "get_cpu_us", "set_us", "set_cpu_us", "conc_ops_s", "conc_p99_ms", "conc_max_ms"):
        setattr(med, attr, statistics.median(getattr(r, attr) for r in results))
    return med


Op = Callable[[str], Awaitable[Any]]


class _Clock:
    """Wall and process CPU time of a stretch of calls, per call, in µs."""

    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def per_call(self, n: int) -> tuple[float, float]:
        return self.wall / n * 1e6, self.cpu / n * 1e6


async def _trio_measure(name: str, get: Op, put: Op, n: int, concurrency: int, prefix: str) -> Result:
    """Sequential GET and SET latency and CPU, then `concurrency` trio tasks sharing `n` GETs."""
    key = prefix + "k"
    await put(key)
    for _ in range(100):  # warm up connections and code paths
        await get(key)
    with _Clock() as gets:
        for _ in range(n):
            await get(key)
    with _Clock() as puts:
        for i in range(n):
            await put(f"{prefix}s{i % 100}")
    per_task = max(1, n // concurrency)
    latencies: list[float] = []

    async def worker() -> None:
        for _ in range(per_task):
            began = time.perf_counter()
            await get(key)
            latencies.append(time.perf_counter() - began)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    ops_s = per_task * concurrency / (time.perf_counter() - start)
    return Result(name, gets.per_call(n), puts.per_call(n), ops_s, latencies)


def bench_asyncio_native(url: str, n: int, concurrency: int, prefix: str) -> Result:
    async def main() -> Result:
        client = aredis.Redis.from_url(url)
        key = prefix + "k"
        await client.set(key, VALUE, ex=60)
        for _ in range(100):
            await client.get(key)
        with _Clock() as gets:
            for _ in range(n):
                await client.get(key)
        with _Clock() as puts:
            for i in range(n):
                await client.set(f"{prefix}s{i % 100}", VALUE, ex=60)
        per_task = max(1, n // concurrency)
        latencies: list[float] = []

        async def worker() -> None:
            for _ in range(per_task):
                began = time.perf_counter()
                await client.get(key)
                latencies.append(time.perf_counter() - began)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        ops_s = per_task * concurrency / (time.perf_counter() - start)
        await client.aclose()
        return Result("asyncio-native (no bridge)", gets.per_call(n), puts.per_call(n), ops_s, latencies)

    return asyncio.run(main())


async def _with_loop(body: Callable[[trio_asyncio.TrioEventLoop], Awaitable[Result]]) -> Result:
    """Run `body(loop)` in a trio task that is *outside* the loop's block, as hypercorn's tasks are."""
    loop_ready = trio.Event()
    done = trio.Event()
    holder: dict[str, Any] = {}

    async def own_loop() -> None:
        async with trio_asyncio.open_loop() as loop:
            holder["loop"] = loop
            loop_ready.set()
            await done.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(own_loop)
        await loop_ready.wait()
        try:
            return await body(holder["loop"])
        finally:
            done.set()


async def bench_run_aio_coroutine(url: str, n: int, concurrency: int, prefix: str) -> Result:
    async def body(loop: trio_asyncio.TrioEventLoop) -> Result:
        client = await loop.run_aio_coroutine(_make_client(url))

        async def get(key: str) -> Any:
            return await loop.run_aio_coroutine(client.get(key))

        async def put(key: str) -> Any:
            return await loop.run_aio_coroutine(client.set(key, VALUE, ex=60))

        try:
            return await _trio_measure("trio-asyncio run_aio_coroutine", get, put, n, concurrency, prefix)
        finally:
            await loop.run_aio_coroutine(client.aclose())

    return await _with_loop(body)


async def _make_client(url: str) -> aredis.Redis:
    return aredis.Redis.from_url(url)


async def bench_worker(url: str, n: int, concurrency: int, prefix: str) -> Result:
    Job = tuple[Callable[[], Awaitable[Any]], trio.MemorySendChannel[Any]]
    send, receive = trio.open_memory_channel[Job](0)
    result: Result | None = None

    async def measure(client: aredis.Redis) -> None:
        nonlocal result

        async def call(make: Callable[[], Awaitable[Any]]) -> Any:
            reply_send, reply_receive = trio.open_memory_channel[Any](1)
            await send.send((make, reply_send))
            return await reply_receive.receive()

        async def get(key: str) -> Any:
            return await call(lambda: client.get(key))

        async def put(key: str) -> Any:
            return await call(lambda: client.set(key, VALUE, ex=60))

        result = await _trio_measure("trio-asyncio worker + channel", get, put, n, concurrency, prefix)

    async def worker() -> None:
        async for make, reply in receive.clone():
            reply.send_nowait(await trio_asyncio.aio_as_trio(make)())

    async with trio_asyncio.open_loop():
        client = await trio_asyncio.aio_as_trio(_make_client)(url)
        async with trio.open_nursery() as workers:
            for _ in range(concurrency):
                workers.start_soon(worker)
            # The measuring tasks run outside the loop's context, as request tasks would.
            await trio.to_thread.run_sync(lambda: None)
            async with trio.open_nursery() as outside:
                outside.start_soon(measure, client)
            workers.cancel_scope.cancel()
        await trio_asyncio.aio_as_trio(client.aclose)()
    assert result is not None
    return result


async def bench_store(
    url: str, n: int, concurrency: int, prefix: str, *, kind: StoreKind, client: ClientKind
) -> Result:
    # A timeout long enough never to fire: this measures cost, not the fail-open path.
    async with open_session_store(kind, url=url, max_entries=10_000, timeout_s=30.0, client=client) as store:
        store_prefix = prefix.removeprefix(KEY_PREFIX)

        async def get(key: str) -> Any:
            return await store.get(key)

        async def put(key: str) -> Any:
            return await store.put(key, VALUE, 60)

        name = "session store, memory" if kind == "memory" else f"session store, {client}"
        if client == "native" and kind == "redis":
            name += " (default)"
        return await _trio_measure(name, get, put, n, concurrency, store_prefix)


async def bench_sync_thread(url: str, n: int, concurrency: int, prefix: str) -> Result:
    client = redis.Redis.from_url(url, max_connections=concurrency)
    limiter = trio.CapacityLimiter(concurrency)

    async def get(key: str) -> Any:
        return await trio.to_thread.run_sync(client.get, key, limiter=limiter)

    async def put(key: str) -> Any:
        return await trio.to_thread.run_sync(lambda: client.set(key, VALUE, ex=60), limiter=limiter)

    try:
        return await _trio_measure("sync redis-py in to_thread", get, put, n, concurrency, prefix)
    finally:
        client.close()


class _RawPool:
    """One trio socket per concurrent task; just enough RESP for GET and SET EX replies."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.free: list[tuple[trio.SocketStream, bytearray]] = []

    async def call(self, *args: bytes) -> bytes | None:
        conn = (
            self.free.pop() if self.free else (await trio.open_tcp_stream(self.host, self.port), bytearray())
        )
        stream, buf = conn
        out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        await stream.send_all(out)
        while b"\r\n" not in buf:
            buf += await stream.receive_some(65536)
        head, _, rest = bytes(buf).partition(b"\r\n")
        value: bytes | None
        if head[:1] == b"$":
            size = int(head[1:])
            if size < 0:
                value, rest_after = None, rest
            else:
                while len(rest) < size + 2:
                    rest += await stream.receive_some(65536)
                value, rest_after = rest[:size], rest[size + 2 :]
        else:
            value, rest_after = head[1:], rest
        buf[:] = rest_after
        self.free.append(conn)
        return value


async def bench_raw(url: str, n: int, concurrency: int, prefix: str) -> Result:
    parsed = urlparse(url)
    pool = _RawPool(parsed.hostname or "127.0.0.1", parsed.port or 6379)

    async def get(key: str) -> Any:
        return await pool.call(b"GET", key.encode())

    async def put(key: str) -> Any:
        return await pool.call(b"SET", key.encode(), VALUE, b"EX", b"60")

    try:
        return await _trio_measure("raw trio RESP on SocketStream", get, put, n, concurrency, prefix)
    finally:
        for stream, _ in pool.free:
            await stream.aclose()


ROWS: dict[str, Callable[..., Any]] = {
    "asyncio": bench_asyncio_native,
    "aio": bench_run_aio_coroutine,
    "worker": bench_worker,
    "bridge": partial(bench_store, kind="redis", client="redis-py"),
    "native": partial(bench_store, kind="redis", client="native"),
    "memory": partial(bench_store, kind="memory", client="native"),
    "thread": bench_sync_thread,
    "raw": bench_raw,
}
"""Short name -> measurement, in report order.  `asyncio` runs its own asyncio loop, the rest trio."""


def measure(url: str, n: int, concurrency: int, rounds: int, only: list[str]) -> list[Result]:
    """Every chosen row `rounds` times, interleaved; the median of each row."""
    base = f"bench:bridge:{secrets.token_hex(4)}:"
    per_row: dict[str, list[Result]] = {name: [] for name in only}
    try:
        for r in range(rounds):
            order = only[r % len(only) :] + only[: r % len(only)]
            for name in order:
                prefix = base + f"{name}:"
                if name in ("bridge", "native", "memory"):
                    prefix = KEY_PREFIX + prefix
                bench = ROWS[name]
                if name == "asyncio":
                    result = bench(url, n, concurrency, prefix)
                else:
                    result = trio.run(bench, url, n, concurrency, prefix)
                assert isinstance(result, Result)
                per_row[name].append(result)
    finally:
        cleanup = redis.Redis.from_url(url)
        for pattern in (base + "*", KEY_PREFIX + base + "*"):
            keys = list(cleanup.scan_iter(match=pattern, count=1000))
            if keys:
                cleanup.delete(*keys)
        cleanup.close()
    return [median_result(per_row[name]) for name in only]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="redis://127.0.0.1:6379")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", default=",".join(ROWS), help="comma-separated rows: " + ",".join(ROWS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    only = [name for name in args.only.split(",") if name]
    unknown = [name for name in only if name not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    results = measure(args.url, args.n, args.concurrency, max(1, args.rounds), only)
    if args.json:
        print(json.dumps([vars(r) for r in results], indent=2))
        return
    print(
        f"n={args.n} sequential ops per figure, {args.concurrency} concurrent tasks for the last columns,"
        f" median of {max(1, args.rounds)} interleaved round(s); CPU = this process's user + system time\n"
    )
    print("| path | GET µs | GET CPU µs | SET µs | SET CPU µs | concurrent GET ops/s | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(r.row())


if __name__ == "__main__":
    main()
