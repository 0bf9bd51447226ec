"""Scenario 16: the soak (issue 15).  Half an hour of mixed traffic on one gateway: does anything grow?

A leak that costs a few hundred bytes per request, an fd not closed when a client hangs up mid-stream, a
cache without a bound, a per-request cost that creeps up as some structure fills: none of these shows in
a one-minute benchmark, all of them take a production gateway down after a week.  So one plano-trio
gateway (conversation state on PostgreSQL, in a schema of its own, dropped afterwards) serves a steady
mix at moderate concurrency (``MIX``: eight connections in all) for ``PLANO_TRIO_BENCH_SOAK_MINUTES``
(full: 30, quick: 2):

* OpenAI Chat JSON, Chat streams, Anthropic Messages streams (the gateway translating to the Anthropic
  mock);
* Responses conversations chained with ``previous_response_id`` on an Anthropic model, so the gateway's
  own state store reads each history and writes every turn to PostgreSQL;
* Chat streams the client abandons mid-way (it resets the connection after a few events: the gateway
  must cancel the upstream request and free everything the stream held).

Every request asks the mock for ``TTFT_MS`` before its first byte: a steady load that leaves the gateway
idle part of the time (a saturated core measures the machine's other tenants as much as the gateway).

Every ``SAMPLE_S`` seconds the gateway's RSS, open descriptors (``/proc/<pid>/fd``), CPU seconds and
the requests completed so far are sampled.  Pass (the issue's criteria): after a warm-up (the first
``WARMUP_SHARE`` of the run) RSS grows less than 1 MiB per 10 minutes (least-squares slope), CPU per
request in the last third is at most ``DRIFT_LIMIT`` times the second third's, descriptors stay flat, and
no request fails except those abandoned on purpose.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import loadgen, procstat
from bench.model import TIMES, Chart, Check, Column, ScenarioResult
from bench.scenarios import SCENARIOS, Context, scenario
from bench.targets import HOST, Proc, Target, free_port, gateway_config, python, spawn

__all__ = ["drift", "rss_slope_mib_per_10min", "soak"]

REPO = Path(__file__).resolve().parent.parent
MINUTES_ENV = "PLANO_TRIO_BENCH_SOAK_MINUTES"
DEFAULT_MINUTES = {"quick": 2.0, "full": 30.0}
SAMPLE_S = 10.0
SEGMENT_S = 60.0  # one timing-client run per traffic kind; requests in flight at its end are cut
WARMUP_SHARE = 0.2
RSS_LIMIT_MIB_PER_10MIN = 1.0
DRIFT_LIMIT = 1.10
FD_SLACK = 4  # descriptors the last third may peak above the second third (connections in flight)
TTFT_MS = 40
ABANDON_AFTER_BYTES = 2_000  # the paced stream's preamble and a handful of ~180-byte deltas
CHAIN_TURNS = 4
# The state store's cache of rebuilt conversations is bounded (64 MiB by default).  At the mix's ~25 turns
# a second of ~15 KB histories that bound takes ~11 minutes to reach, and RSS rises by design until then:
# the soak sets a small bound, reached within the warm-up, so that what it measures after is any growth
# that has *no* bound.  (The bound itself is checked: the store's cache bytes are reported at the end.)
CACHE_MAX_BYTES = 8 * 1024 * 1024
ANTHROPIC_MODEL = "claude-sonnet-4-6"  # served by the stream20 mock as an Anthropic model


# -- pure core: the verdicts from the samples ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Point:
    """One sample of the gateway: seconds since the load started, and cumulative counters."""

    t_s: float
    rss_mib: float
    fds: int
    cpu_s: float
    requests: int  # completed (ok or abandoned) so far
    errors: int  # failed (not abandoned) so far


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys on xs (NaN with fewer than two distinct xs).

    Distinct is checked as such: with equal xs the float mean can round off them (seven 0.7s), which
    leaves a tiny non-zero spread and a slope made of rounding errors."""
    n = len(xs)
    if n < 2 or min(xs) == max(xs):
        return math.nan
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return math.nan
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def after_warmup(points: Sequence[Point], share: float = WARMUP_SHARE) -> list[Point]:
    """The points after the first ``share`` of the run (caches, pools and allocator arenas fill there)."""
    if not points:
        return []
    start = points[-1].t_s * share
    return [p for p in points if p.t_s >= start]


def rss_slope_mib_per_10min(points: Sequence[Point]) -> float:
    """RSS growth after warm-up, MiB per 10 minutes: a line fitted through every sample, so one GC pause
    or arena release at either end does not decide the verdict as first-vs-last would."""
    tail = after_warmup(points)
    return _slope([p.t_s / 600 for p in tail], [p.rss_mib for p in tail])


def _cpu_per_request_us(a: Point, b: Point) -> float:
    done = b.requests - a.requests
    return (b.cpu_s - a.cpu_s) / done * 1e6 if done > 0 else math.nan


def thirds(points: Sequence[Point]) -> tuple[Point, Point, Point, Point]:
    """The samples nearest the run's 0, 1/3, 2/3 and end."""
    end = points[-1].t_s

    def near(t: float) -> Point:
        return min(points, key=lambda p: abs(p.t_s - t))

    return points[0], near(end / 3), near(2 * end / 3), points[-1]


def drift(points: Sequence[Point]) -> tuple[float, float, float]:
    """(CPU µs/request over the second third, over the last third, last ÷ second).  The first third is
    left out: it holds the warm-up, whose cost per request is higher for reasons that do not recur."""
    if len(points) < 4:
        return math.nan, math.nan, math.nan
    _, one, two, end = thirds(points)
    second, last = _cpu_per_request_us(one, two), _cpu_per_request_us(two, end)
    return second, last, last / second if second and not math.isnan(second) else math.nan


def fd_growth(points: Sequence[Point]) -> int:
    """Peak descriptors in the last third minus the peak in the second third (connections in flight
    make single samples jitter; a leak raises the peak and keeps raising it)."""
    if len(points) < 4:
        return 0
    _, one, two, _ = thirds(points)
    second = [p.fds for p in points if one.t_s <= p.t_s < two.t_s] or [one.fds]
    last = [p.fds for p in points if p.t_s >= two.t_s]
    return max(last) - max(second)


def per_interval(points: Sequence[Point]) -> list[dict[str, float]]:
    """One table/chart row per sample: time, RSS, fds, and the interval's requests, rate and CPU cost."""
    rows = []
    for a, b in itertools.pairwise(points):
        span = b.t_s - a.t_s
        rows.append(
            {
                "minute": b.t_s / 60,
                "rss_mib": b.rss_mib,
                "fds": float(b.fds),
                "requests": float(b.requests - a.requests),
                "rps": (b.requests - a.requests) / span if span > 0 else math.nan,
                "cpu_us": _cpu_per_request_us(a, b),
                "cpu_util": (b.cpu_s - a.cpu_s) / span if span > 0 else math.nan,
            }
        )
    return rows


# -- the traffic ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Tally:
    """Requests of one run, counted as they complete (from several client threads: locked)."""

    ok: int = 0
    abandoned: int = 0
    errors: int = 0
    cut: int = 0  # in flight when a segment's time was up (the client hung up: not the gateway's fault)
    error_kinds: list[str] = dataclasses.field(default_factory=list)
    response_ids: int = 0  # Responses turns the client saw complete (each should be a stored turn)
    by_kind: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # name: [ok, abandoned, failed]
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def requests(self) -> int:
        return self.ok + self.abandoned

    def count(self, sample: loadgen.Sample, kind: str) -> None:
        with self.lock:
            counts = self.by_kind.setdefault(kind, [0, 0, 0])
            if sample.ok:
                self.ok += 1
                counts[0] += 1
                self.response_ids += sample.response_id is not None
            elif sample.abandoned:
                self.abandoned += 1
                counts[1] += 1
            else:
                self.errors += 1
                counts[2] += 1
                error = f"{kind}: {sample.error}"[:200]
                if len(self.error_kinds) < 5 and error not in self.error_kinds:
                    self.error_kinds.append(error)


class _Counted:
    """``loadgen.BodyFor`` that counts each connection's previous sample the moment it completed (so the
    10 s samples see live counts) and delegates the body to ``inner`` (a Responses chain) or repeats the
    request's own body.  The last sample of each connection is counted from the run's result."""

    def __init__(self, tally: Tally, kind: str, body: bytes, inner: loadgen.BodyFor | None) -> None:
        self.tally = tally
        self.kind = kind
        self.body = body
        self.inner = inner
        self.counted: set[int] = set()

    def __call__(self, worker: int, previous: loadgen.Sample | None) -> tuple[bytes, str]:
        if previous is not None:
            self.tally.count(previous, self.kind)
            self.counted.add(id(previous))
        return self.inner(worker, previous) if self.inner is not None else (self.body, "")

    def finish(self, result: loadgen.RunResult) -> None:
        for sample in result.samples:
            if id(sample) not in self.counted:
                self.tally.count(sample, self.kind)
        with self.tally.lock:
            self.tally.cut += result.timed_out
        self.counted.clear()


@dataclasses.dataclass(frozen=True, slots=True)
class Traffic:
    """One kind of request in the mix, on ``connections`` keep-alive connections."""

    name: str
    request: loadgen.Request
    connections: int
    chain: Callable[[], loadgen.BodyFor] | None = None  # a fresh Responses chain per segment


def _mix(ctx: Context, gateway: Target) -> list[Traffic]:
    from bench.state_scenario import _Chains, _turn_body

    delay = (("x-mock-ttft-ms", str(TTFT_MS)),)
    profiles = ctx.profiles
    stream20 = profiles["stream20"]

    def request(profile: str, **kwargs: Any) -> loadgen.Request:
        base = gateway.request(profiles[profile], **kwargs)
        return dataclasses.replace(base, headers=(*base.headers, *delay))

    messages = (
        f'{{"model":"{ANTHROPIC_MODEL}","max_tokens":1024,"stream":true,'
        '"messages":[{"role":"user","content":"Say hello."}]}'
    ).encode()
    if stream20.anthropic_model != ANTHROPIC_MODEL or "paced" not in profiles:
        return []
    abandoned = dataclasses.replace(request("paced"), abandon_after=ABANDON_AFTER_BYTES)
    return [
        Traffic("chat JSON", request("json"), 2),
        Traffic("chat stream", request("stream20"), 1),
        Traffic("messages stream (→ Anthropic)", request("stream20", path="/v1/messages", body=messages), 1),
        Traffic(
            "responses chain (postgres)",
            request("stream20", path="/v1/responses", body=_turn_body(None)),
            2,
            chain=lambda: _Chains(CHAIN_TURNS),
        ),
        Traffic("chat stream, abandoned", abandoned, 2),
    ]


def _drive(traffic: Traffic, tally: Tally, until: float) -> None:
    """Segments of ``SEGMENT_S`` until the monotonic deadline (bounded: each segment is capped)."""
    while (left := until - time.monotonic()) > 0.5:
        counted = _Counted(
            tally, traffic.name, traffic.request.body, traffic.chain() if traffic.chain else None
        )
        result = loadgen.run(
            traffic.request,
            10**9,
            traffic.connections,
            cap_s=min(SEGMENT_S, left),
            timeout_s=30,
            body_for=counted,
        )
        counted.finish(result)


# -- the gateway and the sampler -------------------------------------------------------------------------


@contextlib.contextmanager
def _postgres_gateway(ctx: Context) -> Iterator[tuple[Target | None, str, str | None]]:
    """(gateway, schema dsn, None) or (None, "", why not); stopped and its schema dropped after."""
    from bench.state_scenario import _dsn, _postgres_problem, _state_yaml

    dsn = _dsn()
    problem = _postgres_problem(dsn)
    if problem is not None:
        yield None, "", problem
        return
    from bench.state_bench import _sql, _with_schema

    schema = f"bench_soak_{secrets.token_hex(5)}"
    _sql(dsn, f"CREATE SCHEMA {schema}")
    proc: Proc | None = None
    try:
        schema_dsn = _with_schema(dsn, schema)
        port = free_port()
        config = ctx.work_dir / "plano-trio-soak.yaml"
        storage = {"type": "postgres", "connection_string": schema_dsn, "cache_max_bytes": CACHE_MAX_BYTES}
        extra = ctx.gateway_extra + _state_yaml(storage)
        config.write_text(gateway_config(port, ctx.mocks, ctx.profiles, extra))
        proc = spawn(
            "plano-trio-soak",
            [python(), "-m", "plano_trio", "up", str(config), "--log-level", "warning"],
            ctx.work_dir / "logs",
            cpu=ctx.server_cpu,
            url=f"http://{HOST}:{port}",
            cwd=REPO,
            timeout=60,
        )
        target = Target("plano-trio (soak, postgres)", {"*": proc})
        with ctx.extra_targets([target]):
            yield target, schema_dsn, None
    finally:
        if proc is not None:
            proc.stop()
        _sql(dsn, f"DROP SCHEMA {schema} CASCADE")


def _fds(pid: int) -> int:
    total = 0
    for p in [pid, *procstat.descendants(pid)]:
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{p}/fd"))
    return total


def _sample(pid: int, t0: float, tally: Tally) -> Point:
    with tally.lock:
        requests, errors = tally.requests, tally.errors
    return Point(
        time.monotonic() - t0,
        procstat.memory(pid).rss_mib,
        _fds(pid),
        procstat.cpu_seconds(pid),
        requests,
        errors,
    )


def _minutes(mode: str) -> float:
    raw = os.environ.get(MINUTES_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_MINUTES.get(mode, 2.0)
    except ValueError:
        value = DEFAULT_MINUTES.get(mode, 2.0)
    return min(max(value, 0.5), 24 * 60.0)


def _soak(ctx: Context, gateway: Target, mix: Sequence[Traffic], seconds: float) -> tuple[list[Point], Tally]:
    """Run the mix for ``seconds`` while sampling every ``SAMPLE_S``; the points and the tally."""
    pid = gateway.main.pid
    tally = Tally()
    t0 = time.monotonic()
    until = t0 + seconds
    points = [_sample(pid, t0, tally)]
    with ThreadPoolExecutor(max_workers=len(mix), thread_name_prefix="soak") as pool:
        futures = [pool.submit(_drive, traffic, tally, until) for traffic in mix]
        next_at = t0 + SAMPLE_S
        while not all(f.done() for f in futures):
            time.sleep(max(0.0, min(next_at, until + 60) - time.monotonic()))
            if time.monotonic() >= next_at:
                points.append(_sample(pid, t0, tally))
                next_at += SAMPLE_S
                last = points[-1]
                if len(points) % 6 == 1:  # a progress line a minute
                    ctx.log(
                        f"soak {last.t_s / 60:.1f}/{seconds / 60:g} min: RSS {last.rss_mib:.1f} MiB, "
                        f"{last.fds} fds, {last.requests:,} requests, {last.errors} errors"
                    )
            if time.monotonic() > until + 90:  # every segment is capped; a thread this late is stuck
                break
        for future in futures:
            future.result(timeout=60)
    if points[-1].t_s < seconds - 1:
        points.append(_sample(pid, t0, tally))
    return points, tally


def _stored_turns(schema_dsn: str) -> int:
    from bench.state_bench import _sql

    return int(_sql(schema_dsn, "SELECT count(*) FROM plano_trio_turns")[0][0])


def _flushed_stats(gateway: Target) -> dict[str, Any]:
    """Wait until every turn is committed; then the store's counters (``GET /debug/state``)."""
    from bench.state_scenario import _Gateway

    store = _Gateway(gateway, "postgres", baseline=gateway.name, current=True, settle_s=0.0)
    store.wait_flushed()
    return store.stats()


# -- the scenario ----------------------------------------------------------------------------------------


@scenario(
    "soak",
    "16. Soak: mixed traffic for 30 minutes, RSS, descriptors and CPU per request over time",
    order=16,
    modes=("quick", "full"),
)
def soak(ctx: Context) -> ScenarioResult:
    """Issue 15's soak (see the module docstring)."""
    result = ScenarioResult("soak", SCENARIOS["soak"].title)
    if ctx.budget.mode not in DEFAULT_MINUTES and not os.environ.get(MINUTES_ENV):
        result.skipped = f"not in {ctx.budget.mode} mode (set {MINUTES_ENV} to run it anyway)"
        return result
    seconds = _minutes(ctx.budget.mode) * 60
    result.title = f"16. Soak: mixed traffic for {seconds / 60:g} minutes, RSS, fds and CPU per request"
    with _postgres_gateway(ctx) as (gateway, schema_dsn, problem):
        if gateway is None:
            result.skipped = problem
            return result
        mix = _mix(ctx, gateway)
        if not mix:
            result.skipped = f"needs the paced profile and the stream20 profile serving {ANTHROPIC_MODEL}"
            return result
        result.params = {
            "minutes": seconds / 60,
            "sample_s": SAMPLE_S,
            "mix": {t.name: t.connections for t in mix},
            "ttft_ms": TTFT_MS,
            "abandon_after_bytes": ABANDON_AFTER_BYTES,
            "chain_turns": CHAIN_TURNS,
            "cache_max_bytes": CACHE_MAX_BYTES,
        }
        for traffic in mix:  # a few of each first: a broken path fails here, not after half an hour
            loadgen.run(traffic.request, 3, 1, cap_s=20, timeout_s=15)
        ctx.log(f"soak: {seconds / 60:g} minutes of mixed traffic on {sum(t.connections for t in mix)} conns")
        points, tally = _soak(ctx, gateway, mix, seconds)
        time.sleep(2.0)  # let abandoned streams and written-behind turns settle
        store = _flushed_stats(gateway)
        idle = _sample(gateway.main.pid, 0.0, tally)
        stored = _stored_turns(schema_dsn)
    _report(result, points, tally, idle, stored)
    result.notes.append(
        f"State store at the end (`/debug/state`): cache {store.get('entries', '?')} conversations, "
        f"{store.get('bytes', 0) / 2**20:.1f} MiB of its {CACHE_MAX_BYTES / 2**20:g} MiB bound (set small "
        "for the soak, default 64 MiB: reached within the warm-up); "
        f"{store.get('flushed_total', '?')} turns flushed, {store.get('write_failures', '?')} write failures."
    )
    return result


def _report(result: ScenarioResult, points: list[Point], tally: Tally, idle: Point, stored: int) -> None:
    rows = per_interval(points)
    result.records = [dict(r) for r in rows]
    result.rows = [r for r in rows if round(r["minute"] * 60 / SAMPLE_S) % 6 == 0] or rows
    result.columns = [
        Column("minute", "minute", ".1f"),
        Column("rss_mib", "RSS MiB", ".1f"),
        Column("fds", "fds", ".0f"),
        Column("rps", "req/s", ".0f"),
        Column("cpu_us", "CPU µs/request", ".0f"),
        Column("cpu_util", "CPU util", ".2f"),
    ]
    slope = rss_slope_mib_per_10min(points)
    second, last, ratio = drift(points)
    growth = fd_growth(points)
    tail = after_warmup(points)
    result.checks += [
        Check.at_most(
            "Soak: RSS growth after warm-up (fitted slope)",
            slope,
            RSS_LIMIT_MIB_PER_10MIN,
            "MiB/10 min",
            note=(
                f"{tail[0].rss_mib:.1f} → {tail[-1].rss_mib:.1f} MiB from minute {tail[0].t_s / 60:.1f}"
                if tail
                else ""
            ),
        ),
        Check.at_most(
            "Soak: CPU per request, last third ÷ second third",
            ratio,
            DRIFT_LIMIT,
            TIMES,
            note=f"{second:.0f} → {last:.0f} µs",
        ),
        Check.at_most(
            "Soak: open descriptors, peak of the last third minus peak of the second",
            float(growth),
            FD_SLACK,
            "fds",
            note=f"{points[0].fds} at start, {idle.fds} idle after the run",
        ),
        Check.at_most(
            "Soak: failed requests (abandoned on purpose not counted)",
            float(tally.errors),
            0,
            "requests",
            note="; ".join(tally.error_kinds),
        ),
        Check.at_least(
            "Soak: Responses turns stored in PostgreSQL ÷ completed",
            stored / tally.response_ids * 100 if tally.response_ids else math.nan,
            100.0,
            "%",
            note=f"{stored:,} rows, {tally.response_ids:,} completed turns",
        ),
    ]
    minutes = [p.t_s / 60 for p in points]
    warmup_end = points[-1].t_s * WARMUP_SHARE / 60
    result.charts += [
        Chart(
            "lines",
            "soak_rss.png",
            "Soak: gateway RSS over time",
            "minutes",
            "RSS (MiB)",
            series={"RSS": [p.rss_mib for p in points]},
            x=minutes,
        ),
        Chart(
            "lines",
            "soak_fds.png",
            "Soak: gateway open file descriptors over time",
            "minutes",
            "open fds",
            series={"fds": [float(p.fds) for p in points]},
            x=minutes,
        ),
        Chart(
            "lines",
            "soak_cpu_per_request.png",
            "Soak: gateway CPU per request (each 10 s interval)",
            "minutes",
            "CPU µs per request",
            series={"CPU/request": [r["cpu_us"] for r in rows]},
            x=[r["minute"] for r in rows],
        ),
    ]
    total = tally.requests + tally.errors
    result.notes += [
        f"{total:,} requests in {points[-1].t_s / 60:.1f} min ({tally.ok:,} ok, "
        f"{tally.abandoned:,} abandoned by the client on purpose, {tally.errors} failed, {tally.cut} cut "
        f"when a {SEGMENT_S:g} s client segment ended); mix per connection: "
        + ", ".join(f"{name} {TIMES}{c}" for name, c in result.params["mix"].items())
        + "; per kind (ok/abandoned/failed): "
        + ", ".join(f"{name} {'/'.join(f'{n:,}' for n in c)}" for name, c in tally.by_kind.items())
        + f"; the mock waits {TTFT_MS} ms before each answer.",
        f"Warm-up = the first {WARMUP_SHARE:.0%} of the run (until minute {warmup_end:.1f}); the RSS slope "
        "is a least-squares line through every sample after it.  CPU per request = the gateway's CPU "
        "seconds over the requests completed in the same span (abandoned ones included).  The table shows "
        "one row a minute; `results.json` has every 10 s sample.",
        f"After the run, idle: RSS {idle.rss_mib:.1f} MiB, {idle.fds} fds (at the start: "
        f"{points[0].rss_mib:.1f} MiB, {points[0].fds} fds).",
    ]
