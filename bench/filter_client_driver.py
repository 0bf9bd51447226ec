"""Drive plano-trio's `FilterClient` directly: MCP session reuse against a session per call, in one process.

    python -m bench.filter_client_driver --http URL --mcp URL [--n 200] [--rounds 4] [--warmup 20]

Why in-process: the gateway always reuses an MCP session (the point of issue 12's "better than Plano"),
and adding a product setting only to turn that off for a benchmark is not worth it.  Plano's way, a new
session for every request pipeline, is what a *new* `FilterClient` does on its first call to an MCP
filter: ``initialize`` → ``notifications/initialized`` → ``tools/call``, three POSTs instead of one.  So
this process calls the same filter servers three ways, on one shared upstream pool (as the gateway's
runtime has one; Plano's HTTP client keeps its connections alive too), in interleaved rounds:

* ``http``: one long-lived client, ``apply`` on the HTTP filter (the reference point: one POST);
* ``mcp reuse``: one long-lived client, ``apply`` on the MCP filter (the session is made once, in the
  warm-up, then every call is one ``tools/call``);
* ``mcp per-request initialize``: a new `FilterClient` for every call, then ``apply`` (Plano's flow).

What it measures per call: wall time of the ``apply`` (latency, as the gateway would wait for it) and
this process's CPU time (``time.process_time``, ns resolution, every thread) over the whole measured run
divided by the calls: the client side of a filter call, i.e. what the gateway spends on it, without the
rest of a proxied request.  Run it pinned where the gateway runs.  Prints one JSON object per mode and
round on stdout (``mode``, ``round``, ``calls``, ``errors``, ``cpu_s``, ``latencies_ms``,
``initializations``, ``connections``: TCP connections the pool opened) and nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from plano_trio.apis.http import Header
from plano_trio.config.schema import AgentEndpoint
from plano_trio.filters.client import FilterClient
from plano_trio.filters.errors import FilterError
from plano_trio.upstream import UpstreamPool

__all__ = ["MODES", "main"]

CHAT = "/v1/chat/completions"
BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}]}'
HEADERS: list[Header] = [(b"content-type", b"application/json"), (b"x-request-id", b"bench-filters")]
TIMEOUT_S = 10.0
HTTP_ID, MCP_ID = "bench_http", "bench_mcp"
MODES = ("http", "mcp reuse", "mcp per-request initialize")


def endpoints(http_url: str, mcp_url: str) -> list[AgentEndpoint]:
    return [
        AgentEndpoint(id=HTTP_ID, url=http_url, type="http"),
        AgentEndpoint(id=MCP_ID, url=mcp_url, type="mcp", tool="echo"),
    ]


Call = Callable[[], Awaitable[int]]
"""One filter call; returns the MCP handshakes it made."""


def calls(pool: UpstreamPool, eps: list[AgentEndpoint]) -> dict[str, Call]:
    shared = FilterClient(pool, eps, TIMEOUT_S)

    async def http() -> int:
        await shared.apply(HTTP_ID, CHAT, BODY, HEADERS)
        return 0

    async def reuse() -> int:
        before = shared.counts["mcp_initializations"]
        await shared.apply(MCP_ID, CHAT, BODY, HEADERS)
        return shared.counts["mcp_initializations"] - before

    async def fresh() -> int:
        client = FilterClient(pool, eps, TIMEOUT_S)  # no session yet: Plano's per-request handshake
        await client.apply(MCP_ID, CHAT, BODY, HEADERS)
        return client.counts["mcp_initializations"]

    return dict(zip(MODES, (http, reuse, fresh), strict=True))


def opened(pool: UpstreamPool) -> int:
    """Connections the pool has opened so far, to every origin."""
    return sum(stats.opened for stats in pool.origin_stats())


async def measure(pool: UpstreamPool, call: Call, n: int) -> dict[str, Any]:
    """``n`` calls one after the other (c=1): latencies, errors, CPU, handshakes, connections opened."""
    latencies: list[float] = []
    errors = initializations = 0
    opened0 = opened(pool)
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            initializations += await call()
        except FilterError:
            errors += 1
            continue
        latencies.append((time.perf_counter() - t0) * 1e3)
    cpu_s = time.process_time() - cpu0
    return {
        "connections": opened(pool) - opened0,
        "calls": len(latencies),
        "errors": errors,
        "cpu_s": cpu_s,
        "latencies_ms": latencies,
        "initializations": initializations,
    }


async def run(http_url: str, mcp_url: str, n: int, rounds: int, warmup: int) -> None:
    pool = UpstreamPool(connect_timeout=5.0, read_timeout=TIMEOUT_S)
    try:
        by_mode = calls(pool, endpoints(http_url, mcp_url))
        for call in by_mode.values():  # connections opened, the shared session made, code paths warm
            await measure(pool, call, warmup)
        for r in range(rounds):
            shift = r % len(MODES)
            for mode in [*MODES[shift:], *MODES[:shift]]:
                record = {"mode": mode, "round": r, **await measure(pool, by_mode[mode], n)}
                print(json.dumps(record), flush=True)
    finally:
        await pool.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    summary = __doc__.splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m bench.filter_client_driver", description=summary)
    parser.add_argument("--http", required=True, help="the HTTP filter's URL")
    parser.add_argument("--mcp", required=True, help="the MCP filter's URL (tool `echo`)")
    parser.add_argument("--n", type=int, default=200, help="calls per mode and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured calls per mode first")
    args = parser.parse_args(argv)
    for url in (args.http, args.mcp):
        if not url.startswith("http://127.0.0.1:"):
            parser.error(f"loopback URLs only: {url}")
    trio.run(run, args.http, args.mcp, args.n, args.rounds, args.warmup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
