"""The OpenAI SDK's own transport as a load generator: `httpx.AsyncClient`, HTTP/1.1 or h2c.

Why, next to `loadgen` and `h2load`: the question of scenario 18 is what an *SDK* client costs the
gateway with one setting or another, and the SDK talks through httpx, which frames requests its own
way (its default headers; over HTTP/2 the body and END_STREAM in separate frames, each its own write).
Both protocols go through the same library here, so the client's own differences cancel in the
h2 ÷ h1 ratio.  httpx costs far more client CPU per request than `loadgen`/`h2load`; the figure that
matters is the *gateway's* CPU per request, valid as long as the gateway is not starved waiting for
the client (the scenario shows the client's CPU per request next to it).

`run(request, n, concurrency, http2=..., connections=...)` gives `loadgen.RunResult`s analysed by
`loadgen.analyse`: each response's body bytes are recorded as they arrive (`aiter_raw`, after httpx
removed the chunked framing), with `perf_counter()` stamps.  `http2=True` means prior knowledge
(`http1=False`: over plain http:// httpx would otherwise stay on HTTP/1.1).  `connections` caps the
pool (`httpx.Limits.max_connections`): with HTTP/2 and 1, every request is a stream of one
connection.
"""

from __future__ import annotations

import asyncio
import os
import time

import httpx

from bench.loadgen import Request, RunResult, Sample, _new_loop, analyse

__all__ = ["run"]


async def _one(client: httpx.AsyncClient, request: Request, url: str, headers: dict[str, str]) -> Sample:
    sample = Sample(t_send=time.perf_counter())
    try:
        async with client.stream(request.method, url, content=request.body, headers=headers) as response:
            sample.t_headers = time.perf_counter()
            sample.status = response.status_code
            async for piece in response.aiter_raw():
                sample.pieces.append((time.perf_counter(), piece))
                sample.body_bytes += len(piece)
    except httpx.HTTPError as error:
        sample.error = f"{type(error).__name__}: {error}"
    sample.t_end = time.perf_counter()
    return sample


async def _drive(
    request: Request,
    total: int,
    concurrency: int,
    http2: bool,
    connections: int,
    cap_s: float,
    timeout_s: float,
) -> RunResult:
    if request.host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the bench only targets the loopback interface")
    url = f"http://{request.host}:{request.port}{request.path}"
    headers = {"content-type": "application/json", **dict(request.headers)}
    samples: list[Sample] = []
    remaining = total
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cap_s
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    cpu0 = sum(os.times()[:2])
    t0 = time.perf_counter()
    async with httpx.AsyncClient(
        http1=not http2, http2=http2, limits=limits, timeout=timeout_s, trust_env=False
    ) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0 and loop.time() < deadline:
                remaining -= 1
                samples.append(await _one(client, request, url, headers))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    ends = [s.t_end for s in samples if s.t_end]
    sends = [s.t_send for s in samples if s.t_send]
    wall = (max(ends) - min(sends)) if ends and sends else time.perf_counter() - t0
    return RunResult(samples, wall, sum(os.times()[:2]) - cpu0)


def run(
    request: Request,
    n: int,
    concurrency: int = 1,
    *,
    http2: bool,
    connections: int | None = None,
    cap_s: float = 30.0,
    timeout_s: float = 30.0,
) -> RunResult:
    """Send `request` `n` times, `concurrency` at a time, through one `httpx.AsyncClient` whose pool
    holds at most `connections` (default: `concurrency`); stops at `cap_s` whatever `n` says."""
    size = connections if connections is not None else concurrency
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        result = runner.run(_drive(request, n, concurrency, http2, size, cap_s, timeout_s))
    for sample in result.samples:
        analyse(sample, request)
    return result
