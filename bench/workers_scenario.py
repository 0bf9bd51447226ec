"""Scenario 19, ``workers``: what ``plano-trio up --workers 2`` buys over one process (issue 16).

One process runs one trio loop, so it uses at most one core; ``--workers N`` forks N workers that share
the listening sockets (``plano_trio/server/workers.py``).  Issue 16 asks for the scaling efficiency
(throughput and CPU per request at N = 1 and 2 in the same run), the memory each worker costs, and
whether 1,000 concurrent 10 s streams (p99 added gap ≤ 20 ms, every stream complete) need more than one.

The scenario starts its own gateways, all with the run's gateway config (``targets.gateway_config``,
so the same mocks and knobs as the ``plano-trio`` target):

* ``1 worker, server CPU``: ``--workers 1`` pinned to the server CPU, the bench's usual baseline;
* ``1 worker, both CPUs`` and ``2 workers, both CPUs``: allowed on every CPU of the run.  On the 2-vCPU
  bench machine two workers need both cores, so the load generator (wrk, the timing client) and the
  mocks, which stay on the client CPU, share one of them with a worker: the efficiency below is what
  this machine allows, not what two free cores would.  (These gateways are started under an explicit
  ``taskset`` of both CPUs: a child of the bench otherwise inherits the bench's own pinning to the
  client CPU.)

Measured, in the same interleaved rounds (A B C, B C A, …):

* **throughput**: wrk at c=32 and c=128 (JSON) and c=32 (20-delta streams), as scenarios 3 and 4:
  requests/s and CPU per request summed over the whole process tree (supervisor + workers, from
  ``/proc``).  ``scaling efficiency`` = requests/s per worker ÷ the one-worker (both CPUs) gateway's in
  the same round: ``rps(N=2) / (2 * rps(N=1))``, 1.00 is perfect scaling;
* **memory**: RSS and PSS of each process of each tree (supervisor, each worker) after start-up and a
  warm-up, and again after the throughput load; memory per worker = tree PSS at N=2 minus at N=1 (PSS,
  because forked workers share their parent's pages copy-on-write: RSS counts those twice);
* **long streams** (``long_stream_scenario``'s profile, ramp and cut-off): N concurrent streams of the
  ``long`` profile (500 deltas at 50/s; quick: 250) through each gateway: completed %, p50/p99 added
  inter-delta gap, bunched %.  N = 1,000 (``PLANO_TRIO_BENCH_WORKERS_LONG_N`` sets it; 0 skips them).
  Answers: the smallest ``--workers`` (of 1 and 2) that reaches 100 % completion and p99 ≤ 20 ms.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import loadgen, procstat
from bench.long_stream_scenario import (
    GAP_GOAL_MS,
    NATIVE,
    RAMP_S,
    STRETCH,
    TARGET_N,
    _meets,
    _Variant,
    _warm_up,
)
from bench.model import TIMES, Chart, Check, Column, ScenarioResult, summarise
from bench.scenarios import SCENARIOS, Context, _row, scenario, stream_round
from bench.stats import ratio
from bench.targets import HOST, Proc, Profile, Target, free_port, gateway_config, python, spawn

__all__ = [
    "added_per_worker",
    "pair_with_base",
    "process_roles",
    "scaling_efficiency",
    "smallest_workers",
    "worker_share",
    "workers",
]

REPO = Path(__file__).resolve().parent.parent
LONG_PROFILE = "long"
LONG_N_ENV = "PLANO_TRIO_BENCH_WORKERS_LONG_N"

PINNED = "1 worker, server CPU"
ONE = "1 worker, both CPUs"
TWO = "2 workers, both CPUs"
BASE = ONE  # the efficiency's denominator: the same CPUs as the two workers, one process
MEMORY = "memory"


@dataclasses.dataclass(frozen=True, slots=True)
class Placement:
    """One gateway of the scenario: its row label, ``--workers`` and the CPUs it may run on."""

    label: str
    workers: int
    cpus: tuple[int, ...] | None  # None: whatever the bench process has (no pinning in this run)


def placements(server_cpu: int | None, client_cpu: int | None) -> list[Placement]:
    """The pinned one-process baseline, then one and two workers on both CPUs; without pinning (one
    CPU, ``--no-pin``) there is no pinned baseline and the others inherit the bench's CPUs."""
    if server_cpu is None or client_cpu is None:
        return [Placement(ONE, 1, None), Placement(TWO, 2, None)]
    both = (server_cpu, client_cpu)
    return [Placement(PINNED, 1, (server_cpu,)), Placement(ONE, 1, both), Placement(TWO, 2, both)]


# -- pure arithmetic (tests/test_bench_workers.py) ---------------------------------------------------------


def scaling_efficiency(rps: float, workers: int, base_rps: float, base_workers: int = 1) -> float:
    """Requests/s per worker over the base's per worker: 1.0 = N workers serve N times one's rate."""
    if workers <= 0 or base_workers <= 0:
        return math.nan
    return ratio(rps / workers, base_rps / base_workers)


def added_per_worker(tree_pss: float, workers: int, base_pss: float, base_workers: int = 1) -> float:
    """Memory one more worker costs: (tree PSS at ``workers`` minus at ``base_workers``) per added worker.
    At 2 over 1 that is issue 16's "tree PSS at N=2 - tree PSS at N=1" (supervisor included)."""
    if workers <= base_workers or math.isnan(tree_pss) or math.isnan(base_pss):
        return math.nan
    return (tree_pss - base_pss) / (workers - base_workers)


def worker_share(pss_by_role: Mapping[str, float], workers: int) -> float:
    """Mean PSS of a worker together with the processes it started (``process_roles`` names), i.e. the
    tree without its supervisor, per worker: the marginal cost of one more worker once a supervisor
    exists.  NaN when no worker was seen."""
    mine = [v for role, v in pss_by_role.items() if role.startswith("worker ")]
    if not mine or workers <= 0:
        return math.nan
    return sum(mine) / workers


def pair_with_base(records: Sequence[dict[str, Any]], base: str) -> None:
    """Per record, against ``base``'s record of the same round and section: ``efficiency`` (requests/s
    per worker ÷ the base's) and ``cpu_vs_base`` (CPU per request ÷ the base's).  NaN for the base
    itself and where the base has no record (a dash in the table)."""
    ref = {(r["round"], r["section"]): r for r in records if r["target"] == base}
    for record in records:
        other = ref.get((record["round"], record["section"]))
        if record["target"] == base or other is None:
            record["efficiency"] = record["cpu_vs_base"] = math.nan
            continue
        record["efficiency"] = scaling_efficiency(
            record["rps"], record["workers"], other["rps"], other["workers"]
        )
        record["cpu_vs_base"] = ratio(record["cpu_us"], other["cpu_us"])


def process_roles(root: int, children: Mapping[int, Sequence[int]], workers: int) -> dict[int, str]:
    """Name each process of a gateway's tree (``children``: pid -> its child pids).  With one worker the
    root is the ``gateway``; with more, the root is the ``supervisor`` and its children ``worker 1``,
    ``worker 2``, … in pid (fork) order.  Anything a serving process started itself (the signals
    analysis child) is ``<its parent>'s child``."""
    serving = (
        [(root, "gateway")]
        if workers <= 1
        else [(p, f"worker {i}") for i, p in enumerate(sorted(children.get(root, ())), 1)]
    )
    roles = {root: "gateway" if workers <= 1 else "supervisor"}
    for pid, name in serving:
        roles[pid] = name
        todo = list(children.get(pid, ()))
        while todo:
            child = todo.pop()
            roles[child] = f"{name}'s child"
            todo += children.get(child, ())
    return roles


def _children(root: int) -> dict[int, list[int]]:
    """pid -> child pids over ``root``'s live tree (parents from ``/proc/<pid>/stat``)."""
    out: dict[int, list[int]] = {}
    for pid in procstat.descendants(root)[1:]:
        with contextlib.suppress(OSError, ValueError, IndexError):
            out.setdefault(int(procstat._stat_fields(pid)[1]), []).append(pid)
    return out


def smallest_workers(rows: Sequence[Mapping[str, Any]]) -> int | None:
    """The fewest ``workers`` among long-stream rows that meet the target (``long_stream_scenario``'s
    rule: every stream complete, p99 added gap within bounds, deltas paced); None if no row does.
    A row without those figures (a gateway that failed its warm-up) never meets it."""
    keys = ("workers", "completed_pct", "added_gap_p99_ms", "bunched_pct")
    met = [int(r["workers"]) for r in rows if all(k in r for k in keys) and _meets(dict(r))]
    return min(met) if met else None


# -- gateways --------------------------------------------------------------------------------------------


def _taskset(cpus: tuple[int, ...] | None) -> list[str]:
    return [] if cpus is None else ["taskset", "-c", ",".join(str(c) for c in cpus)]


@contextlib.contextmanager
def _gateways(ctx: Context, specs: Sequence[Placement]) -> Iterator[dict[str, Target]]:
    """One gateway per placement, with the run's gateway config on a port of its own; registered with
    ``ctx`` (``quiesce`` watches them) and stopped by pid when the block ends."""
    procs: list[Proc] = []
    try:
        targets: dict[str, Target] = {}
        for spec in specs:
            port = free_port()
            slug = f"workers{spec.workers}-{'pinned' if spec.cpus and len(spec.cpus) == 1 else 'all'}"
            config = ctx.work_dir / f"plano-trio-{slug}.yaml"
            config.write_text(gateway_config(port, ctx.mocks, ctx.profiles, ctx.gateway_extra))
            cmd = [python(), "-m", "plano_trio", "up", str(config), "--log-level", "warning"]
            proc = spawn(
                f"plano-trio-{slug}",
                [*_taskset(spec.cpus), *cmd, "--workers", str(spec.workers)],
                ctx.work_dir / "logs",
                url=f"http://{HOST}:{port}",
                cwd=REPO,
            )
            procs.append(proc)
            targets[spec.label] = Target(spec.label, {"*": proc})
        with ctx.extra_targets(list(targets.values())):
            yield targets
    finally:
        for proc in reversed(procs):
            proc.stop()


def _warm(targets: Mapping[str, Target], profiles: Sequence[Profile]) -> None:
    """A few requests of each profile at c=8, so every worker has answered (the kernel spreads
    connections) and imports, pools and caches are in place before idle memory is read."""
    for target in targets.values():
        for profile in profiles:
            loadgen.run(target.request(profile), 32, 8, cap_s=20, timeout_s=20)


def _role_order(role: str) -> tuple[str, str]:
    """Supervisor first, then each worker followed by its own children."""
    return ("" if role == "supervisor" else role.split("'")[0], role)


def _memory(
    ctx: Context,
    targets: Mapping[str, Target],
    specs: Mapping[str, Placement],
    phase: str,
    table: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """RSS/PSS (MiB) of each process of each gateway's tree and of the whole tree, as ``<phase>_rss_mib``
    and ``<phase>_pss_mib`` in ``table[(target, process)]``; read once the servers are idle."""
    ctx.quiesce(f"workers memory ({phase})")
    for label, target in targets.items():
        root = target.main.pid
        roles = process_roles(root, _children(root), specs[label].workers)
        tree = procstat.memory(root, pids=list(roles))
        by_role = sorted(roles.items(), key=lambda item: _role_order(item[1]))
        readings = [("tree", tree)] + [(role, procstat.memory(pid, tree=False)) for pid, role in by_role]
        for role, mem in readings:
            row = table.setdefault(
                (label, role), {"section": MEMORY, "target": label, "process": role, "round": 0}
            )
            row[f"{phase}_rss_mib"] = mem.rss_mib
            row[f"{phase}_pss_mib"] = mem.pss_mib


# -- measurement -----------------------------------------------------------------------------------------


def _loads(ctx: Context) -> list[tuple[str, Profile, int]]:
    """(section, profile, concurrency): scenario 3's JSON concurrencies and scenario 4's stream one."""
    json, stream = ctx.profiles["json"], ctx.profiles["stream20"]
    loads = [(f"json c={c}", json, c) for c in ctx.budget.throughput_c]
    return [*loads, (f"stream20 c={ctx.budget.stream_c}", stream, ctx.budget.stream_c)]


def _throughput(
    ctx: Context, targets: Mapping[str, Target], specs: Mapping[str, Placement]
) -> list[dict[str, Any]]:
    records = []
    for section, profile, c in _loads(ctx):
        for r, target in ctx.interleave(list(targets.values())):
            ctx.log(f"workers {section} round {r + 1}: {target.name}")
            record = ctx.throughput_round(target, profile, c)
            record.update(section=section, round=r, workers=specs[target.name].workers)
            records.append(record)
    pair_with_base(records, BASE)
    return records


def long_n(mode: str) -> int:
    """Streams per long run: ``PLANO_TRIO_BENCH_WORKERS_LONG_N`` if set (0: none), else 1,000 (smoke:
    20, only when the scenario is asked for by name)."""
    raw = os.environ.get(LONG_N_ENV, "").strip()
    if raw:
        return max(0, int(raw))
    return 20 if mode == "smoke" else TARGET_N


def _long_streams(
    ctx: Context, targets: Mapping[str, Target], specs: Mapping[str, Placement], n: int
) -> list[dict[str, Any]]:
    """``n`` long streams through each gateway (long_stream's ramp and cut-off), after one warm-up stream
    pair through all of them at once.  Quick mode leaves out ``1 worker, both CPUs`` (each run of 1,000
    streams takes ~25 s): one process on the server CPU against two workers answers the question (without
    pinning there is no such row, and the one-process row stays)."""
    profile = ctx.profiles[LONG_PROFILE]
    chosen = [
        t for name, t in targets.items() if ctx.budget.mode == "full" or name != ONE or PINNED not in targets
    ]
    variants = [_Variant(NATIVE, t, t.request(profile)) for t in chosen]
    ctx.log(f"workers: long-stream warm-up through {len(variants)} gateways (one stream length)")
    broken = _warm_up(ctx, variants, profile)
    records = []
    for r, target in ctx.interleave(
        [t for t in chosen if t.name not in broken], rounds=ctx.budget.long_rounds
    ):
        ctx.log(f"workers long streams n={n} round {r + 1}: {target.name}")
        record, _ = stream_round(
            ctx,
            target,
            target.request(profile),
            profile,
            r,
            n,
            synchronized=True,
            ramp_s=RAMP_S,
            stretch=STRETCH,
        )
        record.update(section=f"long streams N={n:,}", workers=specs[target.name].workers)
        records.append(record)
    for name, why in broken.items():
        records.append({"section": f"long streams N={n:,}", "target": name, "round": 0, "error_kinds": [why]})
    return records


_COLUMNS = [
    Column("section", "load", "s"),
    Column("target", "gateway", "s"),
    Column("process", "process", "s"),
    Column("rps", "req/s", ".0f"),
    Column("efficiency", "scaling eff.", "x"),
    Column("cpu_us", "CPU µs/req (tree)", ".0f"),
    Column("cpu_vs_base", "CPU/req ÷ 1 worker", "x"),
    Column("p99_ms", "p99 ms", ".1f"),
    Column("server_cpu_util", "server CPU util", ".2f"),
    Column("server_starved", "server starved", ".2f"),
    Column("idle_rss_mib", "idle RSS MiB", ".1f"),
    Column("idle_pss_mib", "idle PSS MiB", ".1f"),
    Column("load_rss_mib", "after-load RSS MiB", ".1f"),
    Column("load_pss_mib", "after-load PSS MiB", ".1f"),
    Column("completed_pct", "completed %", ".1f"),
    Column("added_gap_p50_ms", "added gap p50 ms", ".2f"),
    Column("added_gap_p99_ms", "added gap p99 ms", ".2f"),
    Column("bunched_pct", "bunched %", ".1f"),
    Column("peak_pss_mib", "peak PSS MiB", ".1f"),
    Column("requests", "ok", "d"),
    Column("errors", "errors", "d"),
]


@scenario(
    "workers",
    "19. --workers 1 vs 2: scaling efficiency, memory per worker, 1,000 long streams",
    order=19,
    modes=("quick", "full"),
)
def workers(ctx: Context) -> ScenarioResult:
    """Issue 16's ``--workers`` figures (see the module docstring)."""
    result = ScenarioResult("workers", SCENARIOS["workers"].title)
    specs = {p.label: p for p in placements(ctx.server_cpu, ctx.client_cpu)}
    n = long_n(ctx.budget.mode) if LONG_PROFILE in ctx.mocks else 0
    result.params = {
        "gateways": {k: f"--workers {p.workers}, CPUs {p.cpus or 'inherited'}" for k, p in specs.items()},
        "loads": [section for section, _, _ in _loads(ctx)],
        "tool": "wrk" if ctx.use_wrk else "timing client (wrk not installed)",
        "rounds": ctx.budget.rounds,
        "long_streams": n,
        "long_deltas": ctx.profiles[LONG_PROFILE].chunks if LONG_PROFILE in ctx.profiles else None,
    }
    memory: dict[tuple[str, str], dict[str, Any]] = {}
    with _gateways(ctx, list(specs.values())) as targets:
        _warm(targets, [ctx.profiles["json"], ctx.profiles["stream20"]])
        _memory(ctx, targets, specs, "idle", memory)
        records = _throughput(ctx, targets, specs)
        _memory(ctx, targets, specs, "load", memory)
        if n:
            records += _long_streams(ctx, targets, specs, n)
    result.records = records + list(memory.values())
    result.rows = summarise(records, ("section", "target")) + list(memory.values())
    result.columns = list(_COLUMNS)
    _checks(ctx, result, n)
    _charts(ctx, result, n)
    _notes(ctx, result, specs, n)
    return result


def _checks(ctx: Context, result: ScenarioResult, n: int) -> None:
    rows = result.rows
    for section, _, _ in _loads(ctx):
        two, one = _row(rows, TWO, section=section), _row(rows, BASE, section=section)
        if two and one:
            result.checks.append(
                Check.info(
                    f"--workers 2 scaling efficiency, {section} (req/s per worker ÷ 1 worker's)",
                    two["efficiency"],
                    TIMES,
                    note=f"{two['rps']:.0f} vs {one['rps']:.0f} req/s; CPU/req {two['cpu_us']:.0f} vs "
                    f"{one['cpu_us']:.0f} µs; both CPUs shared with wrk and the mock",
                )
            )
    for phase, what in (("idle", "idle"), ("load", "after the throughput load")):
        two = _row(rows, TWO, section=MEMORY, process="tree")
        one = _row(rows, BASE, section=MEMORY, process="tree")
        key = f"{phase}_pss_mib"
        if two and one:
            result.checks.append(
                Check.info(
                    f"Memory per worker, {what} (tree PSS, --workers 2 minus --workers 1)",
                    added_per_worker(two[key], 2, one[key]),
                    "MiB",
                    note=f"{two[key]:.1f} vs {one[key]:.1f} MiB; supervisor and a signals child included",
                )
            )
        by_role = {
            r["process"]: r.get(key, math.nan) for r in rows if r["section"] == MEMORY and r["target"] == TWO
        }
        if by_role:
            result.checks.append(
                Check.info(
                    f"PSS of one worker and its signals child, {what} (mean at --workers 2)",
                    worker_share(by_role, 2),
                    "MiB",
                    note=f"supervisor {by_role.get('supervisor', math.nan):.1f} MiB on top",
                )
            )
    if not n:
        return
    section = f"long streams N={n:,}"
    long_rows = [r for r in rows if r["section"] == section and "completed_pct" in r]
    two = _row(long_rows, TWO)
    short = n < TARGET_N
    if two:
        gap = Check.at_most(
            f"{n:,} concurrent long streams, --workers 2 (both CPUs): added gap p99",
            two["added_gap_p99_ms"],
            GAP_GOAL_MS,
            "ms",
            note=f"{two['bunched_pct']:.1f} % of deltas bunched",
        )
        done = Check.at_least(
            f"{n:,} concurrent long streams, --workers 2 (both CPUs): completed",
            two["completed_pct"],
            100.0,
            "%",
        )
        if gap.passed and not _meets(two):
            gap.passed = False  # clumped, not paced (long_stream's rule)
        for check in (gap, done):
            if short:
                check.passed, check.note = None, f"fewer than {TARGET_N:,} streams in this run"
        result.checks += [gap, done]
    fewest = smallest_workers(long_rows)
    check = Check.info(
        f"Smallest --workers (of 1, 2) with {n:,} long streams at p99 added gap ≤ {GAP_GOAL_MS:g} ms, 100 %",
        float(fewest) if fewest is not None else math.nan,
        "workers",
        note="neither reached it" if fewest is None else "",
    )
    result.checks.append(check)


def _charts(ctx: Context, result: ScenarioResult, n: int) -> None:
    rows = result.rows
    names = list(dict.fromkeys(r["target"] for r in rows))
    sections = [section for section, _, _ in _loads(ctx)]
    for key, filename, label, what in (
        ("rps", "workers_rps.png", "req/s", "median of rounds"),
        ("cpu_us", "workers_cpu.png", "CPU µs/req", "median of rounds; whole process tree"),
    ):
        result.charts.append(
            Chart(
                "bars",
                filename,
                f"--workers 1 vs 2: {label} ({what})",
                "",
                label,
                series={t: [_row(rows, t, section=s).get(key, math.nan) for s in sections] for t in names},
                categories=sections,
            )
        )
    if n:
        section = f"long streams N={n:,}"

        def gap(target: str) -> float:
            return float(_row(rows, target, section=section).get("added_gap_p99_ms", math.nan))

        result.charts.append(
            Chart(
                "lines",
                "workers_long_gap.png",
                f"{n:,} concurrent long streams: p99 added gap vs --workers",
                "--workers",
                "p99 added gap (ms)",
                series={"both CPUs": [gap(ONE), gap(TWO)], "server CPU only": [gap(PINNED), math.nan]},
                x=[1.0, 2.0],
                log_y=True,
                hline=GAP_GOAL_MS,
            )
        )


def _notes(ctx: Context, result: ScenarioResult, specs: Mapping[str, Placement], n: int) -> None:
    cpus = {
        label: ", ".join(f"CPU{c}" for c in p.cpus) if p.cpus else "inherited" for label, p in specs.items()
    }
    result.notes += [
        "Gateways: "
        + "; ".join(f"`{label}` = --workers {p.workers} on {cpus[label]}" for label, p in specs.items())
        + ".  wrk, the timing client and the mocks stay on the client CPU, so the gateways allowed both "
        "CPUs share one of them with the load generator: on this 2-vCPU machine the efficiency is a "
        "lower bound of what two free cores would give.",
        f"`scaling eff.` = req/s per worker ÷ `{BASE}`'s in the same round (median over rounds; for "
        f"`{PINNED}` it is simply its req/s ÷ that one's); `CPU µs/req (tree)` = CPU of the whole tree "
        "(supervisor, workers, each serving process's signals child) over the requests answered; "
        "`CPU/req ÷ 1 worker` the same ratio.  `server CPU util` and `server starved` (run-queue wait) "
        "are summed over the tree's processes too, so two workers can exceed 1.00.",
        "Memory rows: RSS/PSS of each process after start-up and 32 warm-up requests per profile at c=8 "
        "(`idle`), and once the throughput runs are over and the gateways idle again (`after-load`); "
        "`tree` sums the process tree.  Every serving process (the lone gateway, each worker) starts its "
        "own signals analysis child (`… 's child`).  One worker is a lone process (no supervisor), so "
        "memory per worker (tree PSS at 2 minus at 1) includes the supervisor's share and a signals child.",
    ]
    if n:
        profile = ctx.profiles[LONG_PROFILE]
        result.notes.append(
            f"Long streams: {n:,} streams of {profile.chunks} deltas of ~{profile.chunk_bytes} B, "
            f"{profile.delay_ms:g} ms apart, started over {RAMP_S:g} s (as in `long_stream`); a stream "
            f"slower than {STRETCH:g}{TIMES} its length is not completed; `peak PSS` is the tree's during "
            f"the run.  The mock writing and the client reading {n * 1000 / profile.delay_ms:,.0f} deltas/s "
            "share the client CPU with the second worker."
            + (f"  Quick mode: no long-stream row for `{ONE}`." if ctx.budget.mode == "quick" else "")
        )
    else:
        result.notes.append(f"Long streams not run ({LONG_N_ENV}=0 or no `long` mock profile).")
