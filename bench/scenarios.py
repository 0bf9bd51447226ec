"""The scenario registry and the scenarios of issue 3.

Method, shared by every scenario (why: ``docs/measurements.md``, "Benchmark method", and ``bench/README.md``):

* **Interleaved rounds.**  Targets run A B C, then B C A, then C A B …, never all of A first, so a burst
  of noise from the VM's other tenants lands on every target alike; headline figures are medians over
  rounds, and "added" figures are computed *within* a round (target minus direct of the same round).
* **CPU per request from /proc** of the server process (tree), read before and after each measured run:
  the stable figure on this noisy machine.  Mock and client CPU are recorded too, to show that neither
  load generator nor mock was the bottleneck.
* **Bounded runs**: every run has a request count and a wall-clock cap, and only targets 127.0.0.1.

Adding a scenario is a few lines::

    @scenario("stateful", "9. Stateful: /v1/responses with previous_response_id", order=9)
    def stateful(ctx: Context) -> ScenarioResult:
        result = ScenarioResult("stateful", "…")
        if not ctx.has("plano-trio"):
            return result.skip("needs plano-trio")
        ...                       # ctx.client_round(...), ctx.throughput_round(...), summarise(...)
        return result

``modes`` restricts where it runs by default (``--scenarios`` selects explicitly).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import loadgen, procstat, wrk
from bench.model import TIMES, Chart, Check, Column, ScenarioResult, summarise
from bench.sampler import Sampler
from bench.stats import median, percentiles, ratio
from bench.targets import HOST, Proc, Profile, Target, free_port, gateway_config, spawn, wait_http

__all__ = [
    "COMPARED",
    "PEERS",
    "SCENARIOS",
    "Budget",
    "Context",
    "Scenario",
    "scenario",
    "stream_round",
    "stream_stats",
]

MODES = ("smoke", "quick", "full")
PEERS = ("litellm", "portkey")  # ``--peers``: other gateways measured in the same run
COMPARED = ("direct", "floor", "plano-trio", *PEERS)  # the targets of the main scenarios, when running


@dataclasses.dataclass(frozen=True, slots=True)
class Budget:
    """How much each scenario does in a mode.  ``quick`` < 2 min in total, ``smoke`` a few seconds."""

    mode: str
    rounds: int
    latency_n: int
    stream_n: int
    wrk_s: float
    throughput_c: tuple[int, ...]
    stream_c: int
    paced_ns: tuple[int, ...]
    paced_chunks: int
    paced_delay_ms: float
    memory_streams: int
    startup_runs: int
    cap_s: float  # wall-clock cap of one c=1 run
    fallback_n: int  # requests per throughput run when wrk is missing
    quiesce_s: float  # longest wait for busy servers to go idle before a measured run (0: don't check)
    # conversation state (bench/state_scenario.py); smoke skips those scenarios unless asked for
    state_chain_n: int = 20  # c=1 chained /v1/responses requests per target and round
    state_c32_n: int = 64  # c=32 new-conversation responses per target and round
    state_cold_n: int = 5  # c=1 continuations of turns another instance wrote (DB history reads)
    state_write_turns: int = 2_000  # state_bench: turns pushed through the store for the write rate
    # long streams (bench/long_stream_scenario.py): N concurrent streams of ``long_chunks`` deltas, 50/s
    long_ns: tuple[int, ...] = (10,)
    long_chunks: int = 20
    long_rounds: int = 1

    @classmethod
    def for_mode(cls, mode: str) -> Budget:
        if mode == "smoke":
            return cls(mode, 1, 20, 10, 1, (32,), 32, (10,), 10, 20.0, 20, 1, 5.0, 200, 0.0)
        if mode == "quick":
            quick = cls(mode, 2, 400, 200, 2, (32, 128), 32, (100,), 50, 20.0, 1000, 3, 10.0, 2000, 15.0)
            return dataclasses.replace(
                quick,
                state_chain_n=200,
                state_c32_n=800,
                state_cold_n=40,
                state_write_turns=10_000,
                long_ns=(100, 300, 1000),
                long_chunks=250,
            )
        full = cls(
            mode, 3, 2000, 1000, 5, (32, 128), 32, (100, 300, 1000), 50, 20.0, 1000, 5, 20.0, 5000, 60.0
        )
        return dataclasses.replace(
            full,
            state_chain_n=1000,
            state_c32_n=4000,
            state_cold_n=200,
            state_write_turns=50_000,
            long_ns=(100, 300, 1000),
            long_chunks=500,
            long_rounds=2,
        )


@dataclasses.dataclass
class Context:
    """What a scenario gets: the running targets, their mocks and profiles, the budget, pinning."""

    budget: Budget
    profiles: dict[str, Profile]
    targets: dict[str, Target]
    mocks: dict[str, Proc]
    work_dir: Path
    server_cpu: int | None
    client_cpu: int | None
    use_wrk: bool
    idle_memory: dict[str, procstat.Memory] = dataclasses.field(default_factory=dict)
    translation: str | None = None  # None: translation works; else why the hook scenario is skipped
    gateway_extra: str = ""  # YAML appended to the gateway config (e.g. plano_trio: pool size)
    shared: dict[str, Any] = dataclasses.field(default_factory=dict)  # cross-scenario results
    log: Callable[[str], None] = print

    def has(self, name: str) -> bool:
        return name in self.targets

    def pick(self, names: Sequence[str]) -> list[Target]:
        return [self.targets[n] for n in names if n in self.targets]

    @contextlib.contextmanager
    def extra_targets(self, targets: Sequence[Target]) -> Iterator[None]:
        """Targets a scenario starts for itself (e.g. gateways with another config), for its duration.

        Registered so that ``quiesce`` waits for them too; removed on exit because the runner checks
        after every scenario that each registered target is still alive, and the scenario stops them.
        """
        added = [t for t in targets if t.name not in self.targets]
        for target in added:
            self.targets[target.name] = target
        try:
            yield
        finally:
            for target in added:
                self.targets.pop(target.name, None)

    def interleave(
        self, targets: Sequence[Target], rounds: int | None = None
    ) -> Iterator[tuple[int, Target]]:
        """A B C, B C A, C A B, …: every target in every round, rotating who goes first."""
        n = len(targets)
        for r in range(self.budget.rounds if rounds is None else rounds):
            shift = r % n if n else 0
            for target in [*targets[shift:], *targets[:shift]]:
                yield r, target

    # -- measurement primitives -----------------------------------------------------------------------------

    def quiesce(self, before: str, window: float = 0.15, busy_util: float = 0.15) -> float:
        """Wait until no server under test burns CPU (> ``busy_util`` of a core over ``window``).

        Why: an overloaded peer keeps working on abandoned requests for seconds after its run ended, on
        the same CPU the next target is measured on (seen with LiteLLM after 1,000 timed-out streams).
        Bounded by ``Budget.quiesce_s``; long waits are logged and listed in the results.
        """
        if self.budget.quiesce_s <= 0:
            return 0.0
        procs = {
            p.pid: f"{t.name}" for t in self.targets.values() if t.name != "direct" for p in t.procs.values()
        }
        t0 = time.perf_counter()
        seen_busy: set[str] = set()
        while True:
            c0 = {pid: procstat.cpu_seconds(pid) for pid in procs}
            time.sleep(window)
            busy = {procs[pid] for pid in procs if (procstat.cpu_seconds(pid) - c0[pid]) / window > busy_util}
            seen_busy |= busy
            waited = time.perf_counter() - t0
            if not busy or waited > self.budget.quiesce_s:
                break
        if waited > 1.0:
            what = f"waited {waited:.1f} s for {', '.join(sorted(seen_busy))} to go idle before {before}"
            if busy:
                what += " (gave up: still busy)"
            self.log(what)
            self.shared.setdefault("quiesce", []).append(what)
        return waited

    @contextlib.contextmanager
    def cpu_window(self, target: Target, profile: str, settle: float = 0.0) -> Iterator[dict[str, float]]:
        """Server (and mock) CPU-seconds spent inside the block; ``settle`` lets cancelled work finish.
        Also ``server_wait_s``: the server's threads' time runnable but not running (starved by others)."""
        server = target.server(profile)
        mock = self.mocks.get(profile) if target.proxies else None
        other = mock if mock is not None and mock.pid != server.pid else None
        out: dict[str, float] = {}
        s0 = procstat.cpu_seconds(server.pid)
        w0 = procstat.runqueue_wait_seconds(server.pid)
        m0 = procstat.cpu_seconds(other.pid) if other else math.nan
        yield out
        if settle:
            time.sleep(settle)
        out["server_cpu_s"] = procstat.cpu_seconds(server.pid) - s0
        out["server_wait_s"] = procstat.runqueue_wait_seconds(server.pid) - w0
        out["mock_cpu_s"] = procstat.cpu_seconds(other.pid) - m0 if other else math.nan

    def client_round(
        self,
        target: Target,
        request: loadgen.Request,
        profile: str,
        n: int,
        concurrency: int = 1,
        *,
        warmup: int = 0,
        synchronized: bool = False,
        ramp_s: float = 0.0,
        timeout_s: float = 30.0,
        cap_s: float | None = None,
        on_tick: Callable[[], None] | None = None,
        tick_s: float = 0.1,
        body_for: loadgen.BodyFor | None = None,
    ) -> tuple[loadgen.RunResult, dict[str, float]]:
        """One measured run of the timing client (after an unmeasured warm-up and a quiesce)."""
        if warmup:
            loadgen.run(request, warmup, min(concurrency, warmup), cap_s=10, timeout_s=timeout_s)
        self.quiesce(f"{target.name} n={n} c={concurrency}")
        cap = cap_s if cap_s is not None else self.budget.cap_s
        with self.cpu_window(target, profile) as cpu:
            result = loadgen.run(
                request,
                n,
                concurrency,
                cap_s=cap,
                timeout_s=timeout_s,
                synchronized=synchronized,
                ramp_s=ramp_s,
                on_tick=on_tick,
                tick_s=tick_s,
                body_for=body_for,
            )
        return result, cpu

    def throughput_round(self, target: Target, profile: Profile, concurrency: int) -> dict[str, Any]:
        """One wrk run (or timing-client fallback) at ``concurrency``; returns a record."""
        request = target.request(profile)
        # Warm-up: let the proxy's upstream pool grow to this concurrency before the measured window.
        loadgen.run(request, concurrency * 2, concurrency, cap_s=10, timeout_s=30)
        self.quiesce(f"{target.name} {profile.key} c={concurrency}")
        record: dict[str, Any] = {"target": target.name, "c": concurrency}
        with self.cpu_window(target, profile.key, settle=0.3) as cpu:
            if self.use_wrk:
                w = wrk.run(
                    f"http://{HOST}:{request.port}",
                    connections=concurrency,
                    duration_s=self.budget.wrk_s,
                    path=request.path,
                    body=request.body,
                    headers=request.headers,
                    cpu=self.client_cpu,
                )
                ok, errors, wall = w.ok_requests, w.errors, w.duration_s
                p50, p99, client = w.p50_ms, w.p99_ms, w.client_cpu
            else:
                r = loadgen.run(request, self.budget.fallback_n, concurrency, cap_s=self.budget.wrk_s * 5)
                lat = percentiles([s.latency * 1e3 for s in r.ok])
                ok, errors, wall = len(r.ok), r.errors, r.wall
                p50, p99, client = lat["p50"], lat["p99"], r.client_cpu
                record["error_kinds"] = r.error_kinds()
        record.update(
            requests=ok,
            errors=errors,
            rps=ok / wall if wall else math.nan,
            p50_ms=p50,
            p99_ms=p99,
            server_cpu_s=cpu["server_cpu_s"],
            cpu_us=per_request_us(cpu["server_cpu_s"], ok),
            mock_cpu_us=per_request_us(cpu["mock_cpu_s"], ok),
            client_cpu_us=per_request_us(client, ok),
            server_cpu_util=cpu["server_cpu_s"] / wall if wall else math.nan,
            server_starved=cpu["server_wait_s"] / wall if wall else math.nan,
        )
        return record


def per_request_us(cpu_s: float, n: int) -> float:
    return cpu_s / n * 1e6 if n and not math.isnan(cpu_s) else math.nan


ScenarioFn = Callable[[Context], ScenarioResult]


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    fn: ScenarioFn
    order: int
    modes: frozenset[str]


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    key: str, title: str, order: int, modes: Sequence[str] = MODES
) -> Callable[[ScenarioFn], ScenarioFn]:
    """Register a scenario function under ``key`` (the name ``--scenarios`` uses)."""

    def register(fn: ScenarioFn) -> ScenarioFn:
        SCENARIOS[key] = Scenario(key, title, fn, order, frozenset(modes))
        return fn

    return register


def _skip(result: ScenarioResult, reason: str) -> ScenarioResult:
    result.skipped = reason
    return result


def _added(records: list[dict[str, Any]], keys: Sequence[str], base: str = "direct") -> None:
    """``added_<key>`` = value minus the ``base`` target's value in the same round (and same ``c``/``n``)."""
    baseline = {(r["round"], r.get("n")): r for r in records if r["target"] == base}
    for record in records:
        ref = baseline.get((record["round"], record.get("n")))
        for key in keys:
            if record["target"] == base or ref is None:
                record[f"added_{key}"] = math.nan  # rendered as a dash: the baseline adds nothing to itself
            else:
                record[f"added_{key}"] = record[key] - ref[key]


def _row(rows: list[dict[str, Any]], target: str, **match: Any) -> dict[str, Any]:
    for row in rows:
        if row["target"] == target and all(row.get(k) == v for k, v in match.items()):
            return row
    return {}


def _vs_floor(rows: list[dict[str, Any]], key: str = "cpu_us", group: str | None = None) -> None:
    for row in rows:
        floor = _row(rows, "floor", **({group: row[group]} if group else {}))
        row["cpu_vs_floor"] = ratio(row.get(key, math.nan), floor.get(key, math.nan))


def _vs_direct(rows: list[dict[str, Any]], key: str, out: str, group: str | None = None) -> None:
    for row in rows:
        direct = _row(rows, "direct", **({group: row[group]} if group else {}))
        row[out] = ratio(row.get(key, math.nan), direct.get(key, math.nan))


def _latency_record(target: Target, r: int, res: loadgen.RunResult, cpu: dict[str, float]) -> dict[str, Any]:
    ok = res.ok
    n = len(ok)
    return {
        "target": target.name,
        "round": r,
        "requests": n,
        "errors": res.errors,
        "server_cpu_s": cpu["server_cpu_s"],
        "cpu_us": per_request_us(cpu["server_cpu_s"], n),
        "mock_cpu_us": per_request_us(cpu["mock_cpu_s"], n),
        "client_cpu_us": per_request_us(res.client_cpu, n),
        "error_kinds": res.error_kinds(),
    }


# ---------------------------------------------------------------------------------------------------------
# (1) non-streaming, c=1


@scenario("latency", "1. Non-streaming, c=1: added latency vs direct", order=1)
def latency(ctx: Context) -> ScenarioResult:
    result = ScenarioResult("latency", SCENARIOS["latency"].title)
    targets = ctx.pick(COMPARED)
    profile = ctx.profiles["json"]
    n = ctx.budget.latency_n
    result.params = {
        "requests_per_round": n,
        "concurrency": 1,
        "rounds": ctx.budget.rounds,
        "cap_s": ctx.budget.cap_s,
    }
    pooled: dict[str, list[float]] = {t.name: [] for t in targets}
    for r, target in ctx.interleave(targets):
        ctx.log(f"latency round {r + 1}: {target.name}")
        res, cpu = ctx.client_round(target, target.request(profile), "json", n, warmup=min(50, n))
        lat_ms = [s.latency * 1e3 for s in res.ok]
        record = _latency_record(target, r, res, cpu)
        record.update({f"{k}_ms": v for k, v in percentiles(lat_ms).items()})
        result.records.append(record)
        pooled[target.name] += lat_ms
    _added(result.records, ["p50_ms", "p90_ms", "p99_ms"])
    result.rows = summarise(result.records)
    _vs_floor(result.rows)
    result.columns = [
        Column("target", "target", "s"),
        Column("added_p50_ms", "added p50 ms", ".3f"),
        Column("added_p99_ms", "added p99 ms", ".3f"),
        Column("cpu_vs_floor", "CPU vs floor", "x"),
        Column("cpu_us", "CPU µs/req", ".0f"),
        Column("p50_ms", "p50 ms", ".3f"),
        Column("p90_ms", "p90 ms", ".3f"),
        Column("p99_ms", "p99 ms", ".3f"),
        Column("requests", "requests", "d"),
        Column("errors", "errors", "d"),
    ]
    gw = _row(result.rows, "plano-trio")
    if gw:
        result.checks += [
            Check.at_most("Added latency c=1, p50 (non-streaming)", gw["added_p50_ms"], 0.7, "ms"),
            Check.at_most("Added latency c=1, p99 (non-streaming)", gw["added_p99_ms"], 2.0, "ms"),
        ]
        if _row(result.rows, "floor"):
            result.checks.append(
                Check.info("CPU per request vs floor, c=1 non-streaming", gw["cpu_vs_floor"], TIMES)
            )
    result.charts.append(
        Chart(
            "cdf",
            "latency_cdf.png",
            "Non-streaming c=1 latency (all rounds)",
            "latency (ms)",
            series=pooled,
            log_x=True,
        )
    )
    return result


# ---------------------------------------------------------------------------------------------------------
# (2) streaming, c=1, 20 chunks


@scenario("stream", "2. Streaming, c=1, 20 chunks: added time-to-first-event and total", order=2)
def stream(ctx: Context) -> ScenarioResult:
    result = ScenarioResult("stream", SCENARIOS["stream"].title)
    targets = ctx.pick(COMPARED)
    profile = ctx.profiles["stream20"]
    n = ctx.budget.stream_n
    result.params = {"requests_per_round": n, "chunks": profile.chunks, "chunk_bytes": profile.chunk_bytes}
    pooled: dict[str, list[float]] = {t.name: [] for t in targets}
    for r, target in ctx.interleave(targets):
        ctx.log(f"stream round {r + 1}: {target.name}")
        res, cpu = ctx.client_round(target, target.request(profile), "stream20", n, warmup=min(30, n))
        ttfe = percentiles([s.ttfe * 1e3 for s in res.ok])
        total = percentiles([s.latency * 1e3 for s in res.ok])
        record = _latency_record(target, r, res, cpu)
        record.update(
            ttfe_p50_ms=ttfe["p50"],
            ttfe_p99_ms=ttfe["p99"],
            total_p50_ms=total["p50"],
            total_p99_ms=total["p99"],
        )
        result.records.append(record)
        pooled[target.name] += [s.ttfe * 1e3 for s in res.ok]
    _added(result.records, ["ttfe_p50_ms", "ttfe_p99_ms", "total_p50_ms", "total_p99_ms"])
    result.rows = summarise(result.records)
    _vs_floor(result.rows)
    result.columns = [
        Column("target", "target", "s"),
        Column("added_ttfe_p50_ms", "added TTFE p50 ms", ".3f"),
        Column("added_ttfe_p99_ms", "added TTFE p99 ms", ".3f"),
        Column("added_total_p50_ms", "added total p50 ms", ".3f"),
        Column("cpu_vs_floor", "CPU vs floor", "x"),
        Column("cpu_us", "CPU µs/stream", ".0f"),
        Column("ttfe_p50_ms", "TTFE p50 ms", ".3f"),
        Column("ttfe_p99_ms", "TTFE p99 ms", ".3f"),
        Column("total_p50_ms", "total p50 ms", ".3f"),
        Column("total_p99_ms", "total p99 ms", ".3f"),
        Column("requests", "streams", "d"),
        Column("errors", "errors", "d"),
    ]
    gw = _row(result.rows, "plano-trio")
    if gw:
        result.checks.append(
            Check.at_most("Added TTFE c=1, p50 (streaming)", gw["added_ttfe_p50_ms"], 1.0, "ms")
        )
    result.charts.append(
        Chart(
            "cdf",
            "ttfe_cdf.png",
            "Streaming c=1 time to first event (all rounds)",
            "TTFE (ms)",
            series=pooled,
            log_x=True,
        )
    )
    return result


# ---------------------------------------------------------------------------------------------------------
# (3) non-streaming throughput, (4) streaming throughput


def _throughput(ctx: Context, key: str, profile: Profile, concurrencies: Sequence[int]) -> ScenarioResult:
    result = ScenarioResult(key, SCENARIOS[key].title)
    targets = ctx.pick(COMPARED)
    tool = "wrk" if ctx.use_wrk else "timing client (wrk not installed)"
    result.params = {
        "tool": tool,
        "duration_s": ctx.budget.wrk_s if ctx.use_wrk else None,
        "requests": None if ctx.use_wrk else ctx.budget.fallback_n,
        "concurrency": list(concurrencies),
        "stream": profile.stream,
        "chunks": profile.chunks if profile.stream else None,
    }
    for c in concurrencies:
        for r, target in ctx.interleave(targets):
            ctx.log(f"{key} c={c} round {r + 1}: {target.name}")
            record = ctx.throughput_round(target, profile, c)
            record["round"] = r
            result.records.append(record)
    result.rows = summarise(result.records, ("target", "c"))
    _vs_floor(result.rows, group="c")
    _vs_direct(result.rows, "rps", "rps_vs_direct", group="c")
    unit = "streams/s" if profile.stream else "req/s"
    result.columns = [
        Column("target", "target", "s"),
        Column("c", "c", "d"),
        Column("cpu_vs_floor", "CPU vs floor", "x"),
        Column("rps_vs_direct", f"{unit} vs direct", "x"),
        Column("cpu_us", "CPU µs/req", ".0f"),
        Column("rps", unit, ".0f"),
        Column("p50_ms", "p50 ms", ".2f"),
        Column("p99_ms", "p99 ms", ".2f"),
        Column("server_cpu_util", "server CPU util", ".2f"),
        Column("server_starved", "server starved", ".2f"),
        Column("mock_cpu_us", "mock µs/req", ".0f"),
        Column("requests", "requests", "d"),
        Column("errors", "errors", "d"),
    ]
    result.notes.append(
        f"{tool}; latency is to the complete response{' (whole stream)' if profile.stream else ''}. "
        "`server CPU util` = server CPU-s / wall-s (1.00 = one core saturated); `server starved` = time "
        "its threads were runnable but waiting for the CPU (other tenants) / wall-s."
    )
    cats = [f"c={c}" for c in concurrencies]
    result.charts.append(
        Chart(
            "bars",
            f"{key}_rps.png",
            f"{'Streaming' if profile.stream else 'Non-streaming'} throughput (median of rounds)",
            "",
            unit,
            series={
                t.name: [_row(result.rows, t.name, c=c).get("rps", math.nan) for c in concurrencies]
                for t in targets
            },
            categories=cats,
        )
    )
    result.charts.append(
        Chart(
            "bars",
            f"{key}_cpu.png",
            f"{'Streaming' if profile.stream else 'Non-streaming'}: server CPU per request (median)",
            "",
            "CPU µs/request",
            series={
                t.name: [_row(result.rows, t.name, c=c).get("cpu_us", math.nan) for c in concurrencies]
                for t in targets
            },
            categories=cats,
        )
    )
    return result


def _peer_checks(result: ScenarioResult, what: str, c: int, unit: str, portkey_goal: float) -> None:
    """plano-trio's requests/s over each peer's *in this run* (the only comparison that carries over:
    figures from another harness or another day mix machines and noise).  Portkey's has a target."""
    gw = _row(result.rows, "plano-trio", c=c)
    if not gw:
        return
    portkey = _row(result.rows, "portkey", c=c)
    if portkey:
        result.checks.append(
            Check.at_least(
                f"{what} c={c} throughput vs Portkey (same run)",
                ratio(gw["rps"], portkey["rps"]),
                portkey_goal,
                TIMES,
                note=f"plano-trio {gw['rps']:.0f} vs Portkey {portkey['rps']:.0f} {unit}",
            )
        )
    else:
        check = Check.at_least(
            f"{what} c={c} throughput vs Portkey (same run)", math.nan, portkey_goal, TIMES
        )
        check.note = "Portkey not in this run (--peers portkey)"
        result.checks.append(check)
    lite = _row(result.rows, "litellm", c=c)
    if lite:
        result.checks.append(
            Check.info(
                f"{what} c={c} throughput vs LiteLLM (same run)",
                ratio(gw["rps"], lite["rps"]),
                TIMES,
                note=f"LiteLLM {lite['rps']:.0f} {unit}",
            )
        )


@scenario("throughput", "3. Non-streaming throughput (c=32, c=128)", order=3)
def throughput(ctx: Context) -> ScenarioResult:
    result = _throughput(ctx, "throughput", ctx.profiles["json"], ctx.budget.throughput_c)
    result.title = f"3. Non-streaming throughput ({', '.join(f'c={c}' for c in ctx.budget.throughput_c)})"
    _peer_checks(result, "Non-streaming", 32, "req/s", 2.0)
    gw = _row(result.rows, "plano-trio", c=32)
    if gw and _row(result.rows, "floor", c=32):
        result.checks.append(
            Check.at_most(
                "CPU per proxied request vs floor, non-streaming c=32", gw["cpu_vs_floor"], 1.25, TIMES
            )
        )
    return result


@scenario("stream_throughput", "4. Streaming throughput (c=32, 20 chunks)", order=4)
def stream_throughput(ctx: Context) -> ScenarioResult:
    result = _throughput(ctx, "stream_throughput", ctx.profiles["stream20"], (ctx.budget.stream_c,))
    _peer_checks(result, "Streaming", ctx.budget.stream_c, "streams/s", 1.5)
    gw = _row(result.rows, "plano-trio", c=ctx.budget.stream_c)
    if gw and _row(result.rows, "floor"):
        result.checks.append(
            Check.at_most(
                f"CPU per proxied stream vs floor, streaming c={ctx.budget.stream_c}",
                gw["cpu_vs_floor"],
                1.3,
                TIMES,
            )
        )
    return result


# ---------------------------------------------------------------------------------------------------------
# (5) concurrent long-lived streams, (6) memory


def _paced_round(ctx: Context, target: Target, r: int, n: int) -> tuple[dict[str, Any], list[float]]:
    """N synchronised paced streams; gap stats, totals, CPU and the peak memory seen during the run."""
    profile = ctx.profiles["paced"]
    return stream_round(ctx, target, target.request(profile), profile, r, n, synchronized=True)


def stream_round(
    ctx: Context,
    target: Target,
    request: loadgen.Request,
    profile: Profile,
    r: int,
    n: int,
    *,
    synchronized: bool = False,
    ramp_s: float = 0.0,
    stretch: float = 20.0,
    body_for: loadgen.BodyFor | None = None,
    on_result: Callable[[loadgen.RunResult], None] | None = None,
) -> tuple[dict[str, Any], list[float]]:
    """N concurrent paced streams of ``profile``: gaps, TTFT, totals, CPU per stream and per delta, and
    the peak memory and upstream connections seen during the run.  Returns (record, every gap in ms).

    A stream slower than ``stretch`` times its nominal length is abandoned (counted as not completed).
    ``body_for`` gives each connection its own body (``loadgen.run``); ``on_result`` sees the raw run
    (e.g. to keep the response ids a state store must hold).
    """
    pid = target.server(profile.key).pid
    # proxies only: the mock's own sockets would include other proxies' idle pools
    port = ctx.mocks[profile.key].port if target.proxies else None
    expected_s = profile.chunks * profile.delay_ms / 1000
    timeout = max(30.0, stretch * expected_s)
    with Sampler(pid, port, ctx.client_cpu) as sampler:  # its own process: see bench/sampler.py
        res, cpu = ctx.client_round(
            target,
            request,
            profile.key,
            n,
            n,
            synchronized=synchronized,
            ramp_s=ramp_s,
            timeout_s=timeout,
            cap_s=timeout + ramp_s + 10,
            body_for=body_for,
        )
    peak, peak_conns = sampler.peaks.memory, sampler.peaks.conns
    if on_result is not None:
        on_result(res)
    record = stream_stats(res, profile, n)
    record.update(
        target=target.name,
        round=r,
        server_cpu_s=cpu["server_cpu_s"],
        cpu_ms_per_stream=per_request_us(cpu["server_cpu_s"], record["streams"]) / 1000,
        cpu_us_per_delta=per_request_us(cpu["server_cpu_s"], record["deltas"]),
        server_cpu_util=cpu["server_cpu_s"] / res.wall if res.wall else math.nan,
        server_starved=cpu["server_wait_s"] / res.wall if res.wall else math.nan,
        mock_cpu_util=cpu["mock_cpu_s"] / res.wall if res.wall else math.nan,
        peak_rss_mib=peak.rss_mib,
        peak_pss_mib=peak.pss_mib,
        peak_upstream_conns=peak_conns if peak_conns >= 0 else math.nan,
    )
    return record, [g * 1e3 for s in res.ok for g in s.gaps]


def stream_stats(res: loadgen.RunResult, profile: Profile, n: int) -> dict[str, Any]:
    """What the client saw of ``n`` paced streams of ``profile``: completion, gaps (and the share of
    deltas that arrived bunched), TTFE/TTFT, totals; the deltas delivered (for CPU per delta)."""
    ok = res.ok
    gaps_ms = [g * 1e3 for s in ok for g in s.gaps]
    gap = percentiles(gaps_ms)
    total = percentiles([s.latency for s in ok])
    ttfe = percentiles([s.ttfe * 1e3 for s in ok])
    ttft = percentiles([s.ttft * 1e3 for s in ok])
    expected_s = profile.chunks * profile.delay_ms / 1000
    return {
        "n": n,
        "streams": len(ok),
        "errors": res.errors,
        "completed_pct": 100 * len(ok) / n if n else math.nan,
        "gap_p50_ms": gap["p50"],
        "gap_p99_ms": gap["p99"],
        "bunched_pct": 100 * sum(1 for g in gaps_ms if g < 2.0) / len(gaps_ms) if gaps_ms else math.nan,
        "added_gap_p50_ms": gap["p50"] - profile.delay_ms,
        "added_gap_p99_ms": gap["p99"] - profile.delay_ms,
        "ttfe_p50_ms": ttfe["p50"],
        "ttfe_p99_ms": ttfe["p99"],
        "ttft_p50_ms": ttft["p50"],
        "ttft_p99_ms": ttft["p99"],
        "total_p50_s": total["p50"],
        "total_p99_s": total["p99"],
        "stretch_p50": total["p50"] / expected_s if expected_s else math.nan,
        "wall_s": res.wall,
        "deltas": sum(s.content_events for s in res.samples),
        "client_cpu_util": res.client_cpu / res.wall if res.wall else math.nan,
        "error_kinds": res.error_kinds(),
    }


_PACED_COLUMNS = [
    Column("target", "target", "s"),
    Column("n", "streams", "d"),
    Column("added_gap_p50_ms", "added gap p50 ms", ".2f"),
    Column("added_gap_p99_ms", "added gap p99 ms", ".2f"),
    Column("bunched_pct", "bunched %", ".1f"),
    Column("total_p50_s", "total p50 s", ".3f"),
    Column("total_p99_s", "total p99 s", ".3f"),
    Column("ttfe_p99_ms", "TTFE p99 ms", ".1f"),
    Column("cpu_vs_floor", "CPU vs floor", "x"),
    Column("cpu_ms_per_stream", "CPU ms/stream", ".2f"),
    Column("server_cpu_util", "server CPU util", ".2f"),
    Column("client_cpu_util", "client CPU util", ".2f"),
    Column("peak_rss_mib", "peak RSS MiB", ".1f"),
    Column("peak_upstream_conns", "peak conns at mock", ".0f"),
    Column("streams", "ok", "d"),
    Column("errors", "errors", "d"),
]


@scenario("paced", "5. Concurrent long-lived streams (50 chunks, 20 ms apart)", order=5)
def paced(ctx: Context) -> ScenarioResult:
    result = ScenarioResult("paced", SCENARIOS["paced"].title)
    profile = ctx.profiles["paced"]
    result.title = (
        f"5. Concurrent long-lived streams ({profile.chunks} chunks, {profile.delay_ms:g} ms apart)"
    )
    targets = ctx.pick(COMPARED)
    result.params = {"n": list(ctx.budget.paced_ns), "chunks": profile.chunks, "delay_ms": profile.delay_ms}
    gaps: dict[int, dict[str, list[float]]] = {}
    collapsed: set[str] = set()
    for n in ctx.budget.paced_ns:
        gaps[n] = {}
        for r, target in ctx.interleave([t for t in targets if t.name not in collapsed]):
            ctx.log(f"paced n={n} round {r + 1}: {target.name}")
            record, g = _paced_round(ctx, target, r, n)
            result.records.append(record)
            gaps[n].setdefault(target.name, []).extend(g)
        for target in targets:
            done = [x for x in result.records if x["target"] == target.name and x["n"] == n]
            if done and sum(x["streams"] for x in done) < 0.5 * n * len(done):
                collapsed.add(target.name)
                result.notes.append(f"{target.name} completed < 50% of {n} streams; larger N skipped for it.")
    result.rows = summarise(result.records, ("target", "n"))
    _vs_floor(result.rows, key="cpu_ms_per_stream", group="n")
    result.columns = list(_PACED_COLUMNS)
    _queue_notes(result)
    result.notes.append(
        f"added gap = inter-delta gap minus the {profile.delay_ms:g} ms pacing (the `direct` row is the "
        "client+mock baseline on CPU1); total = whole stream, ideal "
        f"{profile.chunks * profile.delay_ms / 1000:g} s; `bunched` = share of gaps under 2 ms (deltas "
        "that arrived together instead of paced).  All N streams are released at once."
    )
    gw = _row(result.rows, "plano-trio", n=1000)
    if gw:
        ctx.shared["gap1000"] = (gw["added_gap_p99_ms"], "")
    if gaps:
        n_max = max(gaps)
        result.charts.append(
            Chart(
                "cdf",
                "paced_gaps_cdf.png",
                f"Inter-chunk gaps, {n_max} concurrent paced streams",
                "gap between content deltas (ms)",
                series=gaps[n_max],
                log_x=True,
                vline=profile.delay_ms,
            )
        )
    _gap_check(ctx, result)
    return result


def _queue_notes(result: ScenarioResult) -> None:
    """Say so when a proxy held fewer upstream connections than streams: the rest queued inside it."""
    for row in result.rows:
        n = row.get("n") or row.get("streams_asked")
        conns = row.get("peak_upstream_conns", math.nan)
        if row["target"].startswith("direct") or not n or math.isnan(conns) or conns >= 0.95 * n:
            continue
        result.notes.append(
            f"{row['target']} at {int(n):,} streams: at most {conns:.0f} connections reached the mock at "
            "once, so the other streams waited inside the proxy (see TTFE and total); gaps describe only "
            "the streams in flight."
        )


def _gap_check(ctx: Context, result: ScenarioResult) -> None:
    if "gap1000" in ctx.shared and not ctx.shared.get("gap_checked"):
        value, note = ctx.shared["gap1000"]
        result.checks.append(Check.at_most("1,000 paced streams: added gap p99", value, 20.0, "ms", note))
        ctx.shared["gap_checked"] = True


@scenario("memory", "6. Memory (RSS/PSS) idle and with open streams", order=6)
def memory(ctx: Context) -> ScenarioResult:
    result = ScenarioResult("memory", SCENARIOS["memory"].title)
    m = ctx.budget.memory_streams
    result.title = f"6. Memory (RSS/PSS): idle, and peak with {m:,} open paced streams"
    result.params = {"streams": m}
    for target in ctx.pick(["plano-trio", "floor", *PEERS, "direct"]):
        idle = ctx.idle_memory.get(target.name)
        pid = target.server("paced").pid if target.name == "direct" else target.main.pid
        now = procstat.memory(pid)
        record: dict[str, Any] = {
            "target": target.name if target.name != "direct" else "direct (paced mock)",
            "round": 0,
            "idle_rss_mib": idle.rss_mib if idle else math.nan,
            "idle_pss_mib": idle.pss_mib if idle else math.nan,
            "before_rss_mib": now.rss_mib,
        }
        if target.supports("paced"):
            ctx.log(f"memory: {m} streams through {target.name}")
            paced_record, _ = _paced_round(ctx, target, 0, m)
            record.update(
                peak_rss_mib=paced_record["peak_rss_mib"],
                peak_pss_mib=paced_record["peak_pss_mib"],
                streams=paced_record["streams"],
                errors=paced_record["errors"],
                added_gap_p99_ms=paced_record["added_gap_p99_ms"],
                total_p99_s=paced_record["total_p99_s"],
                peak_upstream_conns=paced_record["peak_upstream_conns"],
                streams_asked=m,
            )
            if target.name == "plano-trio" and m >= 1000 and "gap1000" not in ctx.shared:
                ctx.shared["gap1000"] = (paced_record["added_gap_p99_ms"], "from the memory run (1 round)")
        result.records.append(record)
    result.rows = summarise(result.records)
    result.columns = [
        Column("target", "target", "s"),
        Column("idle_rss_mib", "idle RSS MiB", ".1f"),
        Column("idle_pss_mib", "idle PSS MiB", ".1f"),
        Column("before_rss_mib", "RSS before load MiB", ".1f"),
        Column("peak_rss_mib", f"peak RSS MiB ({m:,} streams)", ".1f"),
        Column("peak_pss_mib", "peak PSS MiB", ".1f"),
        Column("added_gap_p99_ms", "added gap p99 ms", ".1f"),
        Column("peak_upstream_conns", "peak conns at mock", ".0f"),
        Column("streams", "ok", "d"),
        Column("errors", "errors", "d"),
    ]
    _queue_notes(result)
    result.notes.append(
        "idle = right after start-up and one warm-up request per profile; `RSS before load` = after the "
        "previous scenarios (pools and caches grown).  Memory is summed over the process tree, sampled "
        "every 100 ms during the streams."
    )
    gw = _row(result.rows, "plano-trio")
    if gw:
        result.checks.append(Check.at_most("Memory idle (RSS)", gw["idle_rss_mib"], 60, "MiB"))
        peak_check = Check.at_most(
            f"Memory with {m:,} open streams (peak RSS)", gw.get("peak_rss_mib", math.nan), 200, "MiB"
        )
        if m < 1000:
            peak_check.passed = None
            peak_check.note = "fewer than 1,000 streams in this mode"
        result.checks.append(peak_check)
    _gap_check(ctx, result)
    return result


# ---------------------------------------------------------------------------------------------------------
# (7) start-up


def _startup_once(ctx: Context, cmd: list[str], config: Path) -> float:
    """Spawn the gateway on a fresh port; seconds from just before exec to the first 200 on /healthz."""
    ctx.quiesce("a start-up run")
    port = free_port()
    config.write_text(gateway_config(port, ctx.mocks, ctx.profiles, ctx.gateway_extra))
    proc = spawn(
        "startup", cmd, ctx.work_dir, cpu=ctx.server_cpu, url=f"http://{HOST}:{port}", ready_path=None
    )
    try:
        wait_http(proc, "/healthz", 30, interval=0.002)
        return time.perf_counter() - proc.spawned_at
    finally:
        proc.stop()


@scenario("startup", "7. Start-up time to first answered request", order=7)
def startup(ctx: Context) -> ScenarioResult:
    result = ScenarioResult("startup", SCENARIOS["startup"].title)
    runs = ctx.budget.startup_runs
    config = ctx.work_dir / "startup.yaml"
    base_python = str(Path(sys.base_prefix) / "bin" / "python3")
    variants: list[tuple[str, list[str]]] = [
        ("installed (python -m plano_trio up)", [sys.executable, "-m", "plano_trio", "up", str(config)]),
    ]
    pyz = Path(__file__).resolve().parent.parent / "dist" / "plano-trio.pyz"
    if ctx.budget.mode == "smoke":
        result.notes.append("smoke mode: zipapp start-up not measured (its first run may unpack ~20 MB).")
    elif pyz.exists():
        variants.append(
            (
                f"zipapp (dist/plano-trio.pyz, {Path(base_python).name})",
                [base_python, str(pyz), "up", str(config)],
            )
        )
    else:
        result.notes.append(
            "dist/plano-trio.pyz not found: zipapp start-up not measured (`make zipapp` builds it)."
        )
    result.params = {"runs": runs, "probe": "GET /healthz every 2 ms"}
    for label, cmd in variants:
        cmd = [*cmd, "--log-level", "warning"]
        first = _startup_once(ctx, cmd, config)  # may fill caches (shiv)
        times = [_startup_once(ctx, cmd, config) for _ in range(runs)]
        ctx.log(f"startup {label}: first {first:.3f}s, then {', '.join(f'{t:.3f}' for t in times)}")
        result.records.append(
            {
                "target": label,
                "round": 0,
                "first_s": first,
                "median_s": median(times),
                "min_s": min(times),
                "max_s": max(times),
            }
        )
        result.checks.append(
            Check.at_most(f"Start-up to first 200, {label.split(' (')[0]} (median)", median(times), 1.0, "s")
        )
    for name, target in ctx.targets.items():
        if name in ("floor", *PEERS):
            result.records.append(
                {
                    "target": f"{name} (spawn → ready, once)",
                    "round": 0,
                    "first_s": target.main.ready_s,
                    "median_s": math.nan,
                    "min_s": math.nan,
                    "max_s": math.nan,
                }
            )
    result.rows = summarise(result.records)
    result.columns = [
        Column("target", "how", "s"),
        Column("median_s", "median s", ".3f"),
        Column("min_s", "min s", ".3f"),
        Column("max_s", "max s", ".3f"),
        Column("first_s", "first run s", ".3f"),
    ]
    result.notes.append(
        "Spawn (just before exec) → first HTTP 200 on /healthz, pinned like the gateway; the first run is "
        "listed separately because it may fill caches (shiv extracts the zipapp to ~/.shiv once per build)."
    )
    return result


# ---------------------------------------------------------------------------------------------------------
# Hooks for later scenarios


@scenario("translated", "9. Translated path: OpenAI client → Anthropic provider, streaming c=1", order=9)
def translated(ctx: Context) -> ScenarioResult:
    """Ready for when Chat→Messages translation lands: until the gateway answers an anthropic model with
    a *translated* reply (not the mock's own OpenAI answer), this reports why it was skipped."""
    result = ScenarioResult("translated", SCENARIOS["translated"].title)
    if not ctx.has("plano-trio"):
        return _skip(result, "needs the plano-trio target")
    if ctx.translation is not None:
        return _skip(result, ctx.translation)
    profile = ctx.profiles["stream20"]
    gw = ctx.targets["plano-trio"]
    mock = ctx.mocks["stream20"]
    native = Target("direct (Messages)", {"stream20": mock})
    chat_body = (
        b'{"model":"claude-sonnet-4-6","messages":[{"role":"user","content":"Say hello."}],"stream":true}'
    )
    messages_body = (
        b'{"model":"claude-sonnet-4-6","max_tokens":1024,"stream":true,'
        b'"messages":[{"role":"user","content":"Say hello."}]}'
    )
    variants = [
        (native, native.request(profile, path="/v1/messages", body=messages_body)),
        (gw, gw.request(profile)),
        (
            Target("plano-trio (→ anthropic)", gw.procs),
            gw.request(profile, body=chat_body),
        ),
    ]
    if ctx.has("litellm"):  # the same translation in LiteLLM (an anthropic/ model in its config)
        lite = ctx.targets["litellm"]
        variants += [
            (lite, lite.request(profile)),
            (
                Target("litellm (→ anthropic)", lite.procs, api_key=lite.api_key),
                lite.request(profile, body=chat_body),
            ),
        ]
    if ctx.has("portkey"):  # the same translation in Portkey, told by a header to speak Anthropic
        from bench.portkey import portkey_headers

        pk = ctx.targets["portkey"]
        variants += [
            (pk, pk.request(profile)),
            (
                Target("portkey (→ anthropic)", pk.procs),
                pk.request(profile, body=chat_body, headers=portkey_headers(mock.url, "anthropic")),
            ),
        ]
    n = ctx.budget.stream_n
    requests = {t.name: req for t, req in variants}
    for r, target in ctx.interleave([t for t, _ in variants]):
        res, cpu = ctx.client_round(target, requests[target.name], "stream20", n, warmup=min(30, n))
        ttfe = percentiles([s.ttfe * 1e3 for s in res.ok])
        record = _latency_record(target, r, res, cpu)
        record.update(ttfe_p50_ms=ttfe["p50"], ttfe_p99_ms=ttfe["p99"])
        result.records.append(record)
    _added(result.records, ["ttfe_p50_ms", "ttfe_p99_ms"], base="direct (Messages)")
    result.rows = summarise(result.records)
    result.columns = [
        Column("target", "target", "s"),
        Column("added_ttfe_p50_ms", "added TTFE p50 ms (vs native)", ".3f"),
        Column("added_ttfe_p99_ms", "added TTFE p99 ms", ".3f"),
        Column("cpu_us", "CPU µs/stream", ".0f"),
        Column("requests", "streams", "d"),
        Column("errors", "errors", "d"),
    ]
    return result


def probe_translation(gateway: Target) -> str | None:
    """None if an anthropic model through the gateway comes back *translated*; else the reason not."""
    from bench.targets import chat_body, http_status

    try:
        status, body = http_status(
            gateway.main.port, "/v1/chat/completions", "POST", chat_body("claude-sonnet-4-6", False)
        )
    except OSError as error:
        return f"probe failed: {error}"
    if status != 200:
        return f"POST /v1/chat/completions with an anthropic model returned {status}: {body[:160]!r}"
    if b"chatcmpl-mock" in body:
        return (
            "the anthropic provider was sent an OpenAI Chat request (the reply is the mock's own "
            "/v1/chat/completions answer, id chatcmpl-mock…): no Messages translation yet"
        )
    return None


def git_describe(repo: Path) -> str:
    if shutil.which("git") is None:
        return "?"
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"{head}{' (dirty)' if dirty else ''}" if head else "?"


# Scenarios kept in their own modules register themselves on import; importing them here (last, once the
# registry exists) makes every entry point that reads SCENARIOS see them.
from bench import (  # noqa: E402, F401
    failover_scenario,
    filters_scenario,
    http2_scenario,
    long_stream_scenario,
    routing_scenario,
    signals_scenario,
    soak_scenario,
    state_scenario,
    tracing_scenario,
    workers_scenario,
)
