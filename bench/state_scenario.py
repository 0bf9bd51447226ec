"""Scenarios 10 and 11: conversation state (issues 5 and 16) — does the database stay off the token stream?

``state`` (10) starts three plano-trio gateways of its own, identical except for ``state_storage``:

* ``memory``;
* ``postgres`` (a fresh schema per run, ``options=-csearch_path=<schema>``, dropped at the end);
* ``postgres +50 ms``: the same database and schema behind ``latency_relay`` (every chunk delayed
  50 ms each way, so >= 100 ms per round trip: a database in another region).

With ``PLANO_TRIO_BENCH_STATE_BASE=<rev>`` the same three also run from a ``git worktree`` of that
revision (``memory @rev`` …): before and after a change, side by side in one run, each postgres row
divided by the memory row of its own tree.  Those rows are information, not checked.

Each serves ``anthropic/claude-sonnet-4-6`` from the stream20 mock, so ``/v1/responses`` is translated
to Messages and the *gateway* stores every turn (providers with a native Responses API keep their own
state and would measure nothing).  Every phase runs in short blocks that rotate through the targets
(A B C, then B C A, …), and percentiles and rates are taken over all of a target's blocks: on a
machine shared with other work, a burst of it lands on every target alike.  Measured:

1. **c=1, chained**: streaming requests, each continuing the previous response (``previous_response_id``)
   for ``TURNS`` turns, then a new conversation: history reads *and* writes on every target.  TTFT is
   the time to the first ``response.output_text.delta``.  These history reads are cache hits: the turn
   a request continues was written by the same process a moment ago, and the store keeps it (the
   ``/debug/state`` counters are recorded to show it: DB reads stay 0).
2. **c=32, new conversations**: TTFT p50/p99, responses/s and CPU per response (writes only).  The CPU
   window closes only after the write queue is empty, so the write-behind work these responses caused
   is counted, in the gateway and (info) in the PostgreSQL server.
3. **cold reads** (postgres targets): c=1 continuations of turns the *other* postgres instance wrote.
   Both share the schema, like two instances of one deployment, so these are guaranteed cache misses:
   the history comes from the database, one round trip on the request path before anything goes
   upstream.  That is by design the one database call a request makes; this shows what it costs
   (~nothing locally, >= 100 ms through the relay).
4. **accounting**: every response the client saw complete is a turn that must be stored.  After the
   queues drain, the response ids are looked up in the table (postgres) or the store's counters are read
   (memory): ``lost`` must be 0.

The targets (issue 16): postgres ÷ memory at most 1.05 for TTFT p50 and p99 at c=1 and c=32 and for
time per response at c=32, with and without the relay.  The PostgreSQL backends serving the gateways
are pinned to the client's core before every block, like the relay: a database is another machine,
and an unpinned backend woken by the gateway tends to run on the gateway's core.

``state_store`` (11) puts ``python -m bench.state_bench``'s numbers in the same report: the store's
sustained batched write rate, and bytes per turn against Plano's full-history-per-row scheme.

Both need PostgreSQL (``PLANO_TRIO_BENCH_PG``, default ``host=127.0.0.1 port=5432 user=postgres
dbname=test``) and skip themselves, saying why, without it.  ``--smoke`` leaves them out.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import http.client
import json
import math
import os
import secrets
import subprocess
import time
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from bench import ab, loadgen, procstat
from bench.model import TIMES, Chart, Check, Column, ScenarioResult, summarise
from bench.scenarios import SCENARIOS, Context, per_request_us, scenario
from bench.stats import percentiles, ratio
from bench.targets import HOST, Proc, Target, free_port, gateway_config, http_status, python, spawn

__all__ = ["state", "state_store"]

REPO = Path(__file__).resolve().parent.parent
PROFILE = "stream20"  # the mock the gateway config points anthropic/claude-sonnet-4-6 at
MODEL = "claude-sonnet-4-6"
TURNS = 4  # per conversation in the c=1 chain: one new turn, then three that read the history
THROUGHPUT_C = 32
RELAY_DELAY_MS = 50.0
LOSSLESS = 1.05  # the ratio target: postgres within 5% of memory
C1_BLOCK = TURNS  # c=1 requests per block (one conversation): short, so blocks rotate often
FLUSH_SETTLE_S = 0.03  # the writer's linger (plano_trio.state.postgres.WRITE_LINGER_S) plus a commit
SLOW_SETTLE_S = FLUSH_SETTLE_S + 4 * RELAY_DELAY_MS / 1000  # + two round trips (a COPY takes two)
C1_MIN = 800  # c=1 requests per target at least: a p99 from fewer says little on a shared machine
C32_BLOCK = 5 * THROUGHPUT_C  # c=32 responses per block
MEMORY, POSTGRES, POSTGRES_SLOW = "memory", "postgres", f"postgres +{RELAY_DELAY_MS:g} ms"


def _dsn() -> str:
    from bench.state_bench import DEFAULT_DSN  # lazily: state_bench imports psycopg, trio, plano_trio

    return DEFAULT_DSN


def _turn_body(previous: str | None, model: str = MODEL) -> bytes:
    """A streaming Responses turn; ``previous`` continues that response's conversation."""
    text = "And now?" if previous else "Say hello."
    payload: dict[str, Any] = {"model": model, "input": text, "stream": True}
    if previous is not None:
        payload["previous_response_id"] = previous
    return json.dumps(payload, separators=(",", ":")).encode()


class _Chains:
    """``loadgen.BodyFor``: each connection continues its own conversation for ``turns`` turns, then
    starts a new one (also after a failed turn: a failed response is not stored, so it has no sequel)."""

    def __init__(self, turns: int) -> None:
        self.turns = turns
        self.depth: dict[int, int] = {}

    def __call__(self, worker: int, previous: loadgen.Sample | None) -> tuple[bytes, str]:
        depth = self.depth.get(worker, 0)
        if previous is None or not previous.ok or previous.response_id is None or depth >= self.turns:
            self.depth[worker] = 1
            return _turn_body(None), "new"
        self.depth[worker] = depth + 1
        return _turn_body(previous.response_id), "continued"


class _Continue:
    """``loadgen.BodyFor``: continue each of ``ids`` once (turns another instance wrote: cold reads)."""

    def __init__(self, ids: collections.deque[str]) -> None:
        self.ids = ids

    def __call__(self, worker: int, previous: loadgen.Sample | None) -> tuple[bytes, str]:
        return _turn_body(self.ids.popleft()), "cold"


@dataclasses.dataclass(eq=False)
class _Gateway:
    """One state-storage variant: its target, and every response id the client saw complete."""

    target: Target
    storage: str  # "memory" | "postgres"
    baseline: str  # the name of the memory gateway its ratios divide by (same source tree)
    current: bool  # runs this tree (not a base revision's): its ratios are checked against the targets
    settle_s: float  # after a block, how long its writes take to commit (see `wait_flushed`)
    ids: set[str] = dataclasses.field(default_factory=set)
    chain_ids: list[str] = dataclasses.field(default_factory=list)  # the other instance's cold reads

    @property
    def name(self) -> str:
        return self.target.name

    def stats(self) -> dict[str, Any]:
        """The store's counters (``GET /debug/state``): queue depth, flushes, reads, cache hits."""
        try:
            status, body = http_status(self.target.main.port, "/debug/state")
        except OSError:
            return {}
        value = json.loads(body) if status == 200 else {}
        return value if isinstance(value, dict) else {}

    def wait_flushed(self, timeout_s: float = 30.0, settle_s: float = 0.0) -> tuple[bool, float]:
        """Poll until nothing is queued or reserved (every completed turn committed).

        Returns (flushed, seconds waited).  The polls are requests the gateway serves inside a CPU
        window, so they are few: one keep-alive connection, the first after ``settle_s`` (the writer
        lingers ~20 ms for company, and a poll costs a c=1 block's worth of CPU per request), then
        5 ms apart backing off to 50 ms.
        """
        t0 = time.monotonic()
        time.sleep(settle_s)
        interval = 0.005
        conn = http.client.HTTPConnection(HOST, self.target.main.port, timeout=10)
        try:
            while True:
                conn.request("GET", "/debug/state")
                response = conn.getresponse()
                stats = json.loads(response.read()) if response.status == 200 else {}
                if stats and not stats.get("queue_depth") and not stats.get("reserved"):
                    return True, time.monotonic() - t0
                if time.monotonic() - t0 > timeout_s:
                    return False, time.monotonic() - t0
                time.sleep(interval)
                interval = min(0.05, interval * 2)
        except (OSError, http.client.HTTPException, ValueError):
            return False, time.monotonic() - t0
        finally:
            conn.close()

    def keep(self, result: loadgen.RunResult) -> None:
        self.ids.update(s.response_id for s in result.samples if s.ok and s.response_id)


@dataclasses.dataclass
class _Rig:
    gateways: list[_Gateway]
    schema_dsn: str  # the per-run schema, direct (not through the relay)
    app_name: str  # the gateways' application_name: how their PostgreSQL backends are found
    postmaster: int | None  # PostgreSQL's postmaster pid, if it runs on this machine (info CPU)
    notes: list[str] = dataclasses.field(default_factory=list)


# -- PostgreSQL plumbing (reusing state_bench's helpers) ---------------------------------------------------


def _postgres_problem(dsn: str) -> str | None:
    """None if PostgreSQL answers at ``dsn``; else why the state scenarios cannot run."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return f"PostgreSQL not reachable ({dsn}): {str(error).strip()[:200]}"
    return None


def _postmaster_pid(dsn: str) -> int | None:
    """The server's postmaster (parent of our backend), when the server runs on this machine: its
    process tree's CPU shows what the writes cost the database (info; it includes anyone else's work)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        backend = int(row[0]) if row else 0
        try:  # read while connected: the backend exits with the connection
            status = Path(f"/proc/{backend}/status").read_text()
        except OSError:
            return None
    ppid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), 0)
    return ppid if ppid > 1 and "postgres" in procstat.process_name(ppid) else None


def _via_relay(conninfo: str, port: int) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = dict(conninfo_to_dict(conninfo))
    params.pop("hostaddr", None)
    params.update(host=HOST, port=str(port))
    return make_conninfo("", **params)


def _with_app_name(conninfo: str, name: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo("", **{**conninfo_to_dict(conninfo), "application_name": name})


def _pin_backends(rig: _Rig, cpu: int | None) -> None:
    """Pin the PostgreSQL backends serving this run's gateways to ``cpu`` (the client's core).

    A database is another machine; on this one an unpinned backend, woken by the gateway's query, tends
    to run on the gateway's core (the scheduler keeps a wakee near its waker) and its work would count
    as the gateway's latency.  Backends are found by ``application_name`` (unique to the run); it is
    called before every measured block because connections open lazily and reconnect.
    """
    if cpu is None:
        return
    from bench.state_bench import _sql

    rows = _sql(
        rig.schema_dsn, "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (rig.app_name,)
    )
    for (pid,) in rows:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(pid), {cpu})


def _pg_endpoint(conninfo: str) -> tuple[str, int]:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(conninfo)
    return str(params.get("hostaddr") or params.get("host") or HOST), int(params.get("port") or 5432)


def _state_yaml(storage: dict[str, str]) -> str:
    return "state_storage:\n" + "".join(f"  {key}: {json.dumps(value)}\n" for key, value in storage.items())


@dataclasses.dataclass(frozen=True)
class _Variant:
    label: str
    storage: dict[str, str]
    tree: Path  # the plano-trio source the gateway runs (this one, or a base revision's worktree)
    baseline: str  # the label of the memory variant its ratios divide by
    settle_s: float = FLUSH_SETTLE_S


def _variants(schema_dsn: str, slow_dsn: str | None, tree: Path, suffix: str) -> list[_Variant]:
    memory = f"{MEMORY}{suffix}"
    out = [
        _Variant(memory, {"type": "memory"}, tree, memory),
        _Variant(f"{POSTGRES}{suffix}", {"type": "postgres", "connection_string": schema_dsn}, tree, memory),
    ]
    if slow_dsn is not None:
        out.append(
            _Variant(
                f"{POSTGRES_SLOW}{suffix}",
                {"type": "postgres", "connection_string": slow_dsn},
                tree,
                memory,
                SLOW_SETTLE_S,
            )
        )
    return out


@contextlib.contextmanager
def _rig(ctx: Context, dsn: str) -> Iterator[_Rig]:
    """Schema, relay and the gateways for one run; everything stopped (by pid) and dropped after.

    With ``PLANO_TRIO_BENCH_STATE_BASE=<rev>`` the same three gateways also run from a ``git worktree``
    of that revision (this venv's Python, so only plano-trio's code differs): before and after, side
    by side in one run, each postgres row divided by its own tree's memory row.
    """
    from bench.state_bench import _sql, _with_schema

    schema = f"bench_state_{secrets.token_hex(5)}"
    _sql(dsn, f"CREATE SCHEMA {schema}")
    procs: list[Proc] = []
    logs = ctx.work_dir / "logs"
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        try:
            app_name = f"plano-trio-{schema}"
            schema_dsn = _with_app_name(_with_schema(dsn, schema), app_name)
            host, port = _pg_endpoint(dsn)
            slow_dsn = None
            if host in (HOST, "localhost"):
                delay = f"{RELAY_DELAY_MS:g}"
                relay = spawn(
                    "pg-relay",
                    [python(), "-m", "bench.latency_relay", "--target-port", str(port), "--delay-ms", delay],
                    logs,
                    cpu=ctx.client_cpu,  # the "network" shares CPU1 with the mocks, not the gateway's core
                    ready_path=None,
                    cwd=REPO,
                )
                procs.append(relay)
                slow_dsn = _via_relay(schema_dsn, relay.port)
            else:
                notes.append(f"PostgreSQL is not on loopback ({host}): the +50 ms relay target was skipped.")
            variants = _variants(schema_dsn, slow_dsn, REPO, "")
            base_rev = os.environ.get("PLANO_TRIO_BENCH_STATE_BASE", "")
            if base_rev:
                try:
                    base_tree = stack.enter_context(ab.worktree(base_rev))
                except subprocess.CalledProcessError as error:
                    notes.append(f"cannot check out {base_rev} for the before rows: {error}")
                else:
                    variants += _variants(schema_dsn, slow_dsn, base_tree, f" @{base_rev}")
            gateways: list[_Gateway] = []
            for variant in variants:
                gw_port = free_port()
                slug = "".join(ch if ch.isalnum() else "-" for ch in variant.label)
                config = ctx.work_dir / f"plano-trio-state-{slug}.yaml"
                extra = ctx.gateway_extra + _state_yaml(variant.storage)
                config.write_text(gateway_config(gw_port, ctx.mocks, ctx.profiles, extra))
                proc = spawn(
                    f"plano-trio-state-{slug}",
                    [python(), "-m", "plano_trio", "up", str(config), "--log-level", "warning"],
                    logs,
                    cpu=ctx.server_cpu,
                    url=f"http://{HOST}:{gw_port}",
                    cwd=variant.tree,
                    timeout=60,
                )
                procs.append(proc)
                target = Target(f"plano-trio ({variant.label})", {"*": proc})
                gateways.append(
                    _Gateway(
                        target,
                        variant.storage["type"],
                        f"plano-trio ({variant.baseline})",
                        variant.tree == REPO,
                        variant.settle_s,
                    )
                )
            rig = _Rig(gateways, schema_dsn, app_name, _postmaster_pid(dsn), notes)
            with ctx.extra_targets([g.target for g in gateways]):
                yield rig
        finally:
            for proc in reversed(procs):
                proc.stop()
            _sql(dsn, f"DROP SCHEMA {schema} CASCADE")


# -- measurement -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Run:
    result: loadgen.RunResult
    server_cpu_s: float
    server_wait_s: float  # the gateway runnable but not running (another process had its core)
    mock_cpu_s: float
    pg_cpu_s: float
    counters: dict[str, int]  # /debug/state counters during the run (reads, cache hits, flushes)
    flushed: bool  # the write queue emptied before the CPU window closed
    drain_s: float  # from the last response to the write queue being empty (inside the CPU window)


_COUNTERS = ("reads", "cache_hits", "cache_misses", "flushed_total", "batches", "refused", "write_failures")


def _measure(
    ctx: Context,
    rig: _Rig,
    gw: _Gateway,
    n: int,
    concurrency: int,
    body_for: loadgen.BodyFor | None,
    warmup: int,
    warmup_body_for: loadgen.BodyFor | None = None,
) -> _Run:
    """Warm-up, quiesce, then one measured run whose CPU window also covers the write-behind flush."""
    request = gw.target.request(ctx.profiles[PROFILE], path="/v1/responses", body=_turn_body(None))
    cap = max(60.0, ctx.budget.cap_s * 6)
    if warmup:
        warm = loadgen.run(
            request, warmup, min(concurrency, warmup), cap_s=cap, body_for=warmup_body_for or body_for
        )
        gw.keep(warm)
        gw.wait_flushed()  # the warm-up's writes must not land in the measured window
    ctx.quiesce(f"{gw.name} c={concurrency}", window=0.05 if concurrency == 1 else 0.15)
    _pin_backends(rig, ctx.client_cpu)
    before = gw.stats()
    pg0 = procstat.cpu_seconds(rig.postmaster) if rig.postmaster else math.nan
    pid = gw.target.main.pid
    on_cpu0 = _on_cpu_s(pid)
    with ctx.cpu_window(gw.target, PROFILE) as cpu:
        res = loadgen.run(request, n, concurrency, cap_s=cap, timeout_s=30, body_for=body_for)
        # inside the window: the write work these responses caused
        flushed, drain_s = gw.wait_flushed(settle_s=gw.settle_s)
    server_cpu_s = _on_cpu_s(pid) - on_cpu0
    pg_cpu = procstat.cpu_seconds(rig.postmaster) - pg0 if rig.postmaster else math.nan
    after = gw.stats()
    gw.keep(res)
    counters = {k: int(after.get(k, 0)) - int(before.get(k, 0)) for k in _COUNTERS}
    return _Run(
        res, server_cpu_s, cpu["server_wait_s"], cpu["mock_cpu_s"], pg_cpu, counters, flushed, drain_s
    )


def _on_cpu_s(pid: int) -> float:
    """On-CPU seconds of ``pid``'s tree from schedstat (ns): utime's 10 ms ticks are too coarse for a
    block of four requests.  A process that exits meanwhile contributes nothing."""
    total = 0.0
    for p in procstat.descendants(pid):
        with contextlib.suppress(OSError):
            total += ab.on_cpu_seconds(p)
    return total


def _ms(samples: Sequence[loadgen.Sample]) -> list[float]:
    return [s.ttft * 1e3 for s in samples]


def _labelled(run: _Run, label: str) -> list[loadgen.Sample]:
    return [s for s in run.result.ok if s.label == label]


def _count_stored(rig: _Rig, ids: Sequence[str]) -> int:
    from bench.state_bench import _sql

    rows = _sql(
        rig.schema_dsn, "SELECT count(*) FROM plano_trio_turns WHERE response_id = ANY(%s)", (list(ids),)
    )
    return int(rows[0][0])


def _account(rig: _Rig) -> dict[str, dict[str, Any]]:
    """Turns the client saw complete vs turns stored, per gateway, after every queue drained."""
    out: dict[str, dict[str, Any]] = {}
    for gw in rig.gateways:
        drained, _ = gw.wait_flushed()
        if gw.storage == "postgres":
            stored = _count_stored(rig, sorted(gw.ids))
        else:  # a memory store holds exactly what it was given (unless its LRU bound evicted some)
            stats = gw.stats()
            stored = int(stats.get("entries", 0)) + int(stats.get("evicted", 0))
        out[gw.name] = {
            "turns": len(gw.ids),
            "stored": min(stored, len(gw.ids)),
            "lost": max(0, len(gw.ids) - stored),
            "drained": drained,
        }
    from bench.state_bench import _sql

    total = int(_sql(rig.schema_dsn, "SELECT count(*) FROM plano_trio_turns")[0][0])
    pg = [g for g in rig.gateways if g.storage == "postgres"]
    pg_turns = sum(len(g.ids) for g in pg)
    pg_stored = sum(out[g.name]["stored"] for g in pg)
    if total != pg_stored:
        rig.notes.append(
            f"the table holds {total:,} rows; {pg_stored:,} of them are responses the client saw complete "
            f"({pg_turns:,} such responses): {total - pg_stored:,} rows are turns no client saw finish."
        )
    return out


@dataclasses.dataclass
class _Pool:
    """One target's samples and sums over all of its blocks (percentiles and rates are taken over these)."""

    c1_ttft: list[float] = dataclasses.field(default_factory=list)
    c1_cont: list[float] = dataclasses.field(default_factory=list)
    c1_new: list[float] = dataclasses.field(default_factory=list)
    c1_cpu_s: float = 0.0
    c1_ok: int = 0
    c32_ttft: list[float] = dataclasses.field(default_factory=list)
    c32_ok: int = 0
    c32_wall_s: float = 0.0
    c32_cpu_s: float = 0.0
    c32_wait_s: float = 0.0
    c32_pg_cpu_s: float = 0.0
    c32_drain_s: list[float] = dataclasses.field(default_factory=list)
    cold: list[float] = dataclasses.field(default_factory=list)
    wait_s: float = 0.0  # over every measured block
    span_s: float = 0.0
    counts: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    errors: int = 0
    error_kinds: list[str] = dataclasses.field(default_factory=list)

    def tally(self, run: _Run, phase: str, notes: list[str], name: str) -> None:
        self.errors += run.result.errors
        self.error_kinds += [k for k in run.result.error_kinds() if k not in self.error_kinds]
        for key, value in run.counters.items():
            self.counts[f"{phase}_{key}"] += value
        self.wait_s += run.server_wait_s
        self.span_s += run.result.wall + run.drain_s
        if not run.flushed:
            notes.append(f"{name}: write queue not empty 30 s after a {phase} run")


def _blocks(total: int, block: int, rounds: int) -> tuple[int, int]:
    """(rounds, requests per round): ``total`` split into blocks of about ``block``, at least ``rounds``."""
    count = max(rounds, round(total / block))
    return count, max(1, math.ceil(total / count))


_STATE_TITLE = (
    f"10. Conversation state: /v1/responses (→ Messages) with memory vs postgres vs postgres "
    f"+{RELAY_DELAY_MS:g} ms"
)


@scenario("state", _STATE_TITLE, order=10, modes=("quick", "full"))
def state(ctx: Context) -> ScenarioResult:
    """Issue 5's bench requirement: the database must not sit on the token stream (see module doc)."""
    result = ScenarioResult("state", SCENARIOS["state"].title)
    dsn = _dsn()
    problem = _postgres_problem(dsn)
    if problem:
        result.skipped = problem
        return result
    b = ctx.budget
    c1_rounds, c1_n = _blocks(max(b.state_chain_n, C1_MIN), C1_BLOCK, b.rounds)
    c32_rounds, c32_n = _blocks(b.state_c32_n, C32_BLOCK, b.rounds)
    result.params = {
        "model": f"anthropic/{MODEL} → stream20 mock (20 deltas)",
        "c1_requests": f"{c1_rounds} blocks of {c1_n}",
        "turns_per_conversation": TURNS,
        f"c{THROUGHPUT_C}_responses": f"{c32_rounds} blocks of {c32_n}",
        "cold_reads_per_round": b.state_cold_n,
        "rounds": b.rounds,
        "relay": f"+{RELAY_DELAY_MS:g} ms per chunk each way",
        "postgres_backends": f"pinned to CPU{ctx.client_cpu}" if ctx.client_cpu is not None else "unpinned",
    }
    with _rig(ctx, dsn) as rig:
        gws = rig.gateways
        by_name = {g.name: g for g in gws}
        pools = {g.name: _Pool() for g in gws}
        records: list[dict[str, Any]] = []
        warmed: set[tuple[str, int]] = set()

        def warmup(gw: _Gateway, concurrency: int, turns: int) -> int:
            if (gw.name, concurrency) in warmed:
                return 0
            warmed.add((gw.name, concurrency))
            return turns

        # (1) c=1, chained conversations: history reads (cache) + writes, in short blocks that rotate
        # through the targets, so whatever else the machine does lands on every target alike
        for r, target in ctx.interleave([g.target for g in gws], rounds=c1_rounds):
            gw = by_name[target.name]
            if r % max(1, c1_rounds // 4) == 0:
                ctx.log(f"state c=1 chain block {r + 1}/{c1_rounds}: {gw.name}")
            run = _measure(ctx, rig, gw, c1_n, 1, _Chains(TURNS), warmup=warmup(gw, 1, 2 * TURNS))
            pool = pools[gw.name]
            ok = run.result.ok
            pool.c1_ttft += _ms(ok)
            pool.c1_cont += _ms(_labelled(run, "continued"))
            pool.c1_new += _ms(_labelled(run, "new"))
            pool.c1_cpu_s += run.server_cpu_s
            pool.c1_ok += len(ok)
            pool.tally(run, "c1", rig.notes, gw.name)
            gw.chain_ids += [s.response_id for s in ok if s.response_id]
            records.append(
                {
                    "target": gw.name,
                    "phase": "c1",
                    "round": r,
                    "requests": len(ok),
                    "errors": run.result.errors,
                    "ttft_p50_ms": percentiles(_ms(ok))["p50"],
                    "cpu_us": per_request_us(run.server_cpu_s, len(ok)),
                    "server_wait_ms": run.server_wait_s * 1e3,
                }
            )

        # (2) c=32, new conversations: writes only; blocks rotate the same way
        for r, target in ctx.interleave([g.target for g in gws], rounds=c32_rounds):
            gw = by_name[target.name]
            if r % max(1, c32_rounds // 2) == 0:
                ctx.log(f"state c={THROUGHPUT_C} block {r + 1}/{c32_rounds}: {gw.name}")
            run = _measure(
                ctx, rig, gw, c32_n, THROUGHPUT_C, None, warmup=warmup(gw, THROUGHPUT_C, 2 * THROUGHPUT_C)
            )
            pool = pools[gw.name]
            ok = run.result.ok
            pool.c32_ttft += _ms(ok)
            pool.c32_ok += len(ok)
            pool.c32_wall_s += run.result.wall
            pool.c32_cpu_s += run.server_cpu_s
            pool.c32_wait_s += run.server_wait_s
            pool.c32_pg_cpu_s += run.pg_cpu_s
            pool.c32_drain_s.append(run.drain_s)
            pool.tally(run, "c32", rig.notes, gw.name)
            wall = run.result.wall
            records.append(
                {
                    "target": gw.name,
                    "phase": "c32",
                    "round": r,
                    "requests": len(ok),
                    "errors": run.result.errors,
                    "rps": len(ok) / wall if wall else math.nan,
                    "cpu_us": per_request_us(run.server_cpu_s, len(ok)),
                    "server_wait_ms": run.server_wait_s * 1e3,
                    "drain_ms": run.drain_s * 1e3,
                }
            )

        # (3) cold reads: continue turns the *other* postgres instance wrote (cache misses → the DB)
        pair = [
            by_name[n] for n in (f"plano-trio ({POSTGRES})", f"plano-trio ({POSTGRES_SLOW})") if n in by_name
        ]
        if len(pair) == 2:
            sources = {pair[0].name: collections.deque(pair[1].chain_ids)}
            sources[pair[1].name] = collections.deque(pair[0].chain_ids)
            for r, target in ctx.interleave([g.target for g in pair]):
                gw = by_name[target.name]
                ids = sources[gw.name]
                n = min(b.state_cold_n, len(ids) - 2)
                if n < 1:
                    continue
                ctx.log(f"state cold reads round {r + 1}: {gw.name}")
                # the 2 warm-up reads open the read pool's connection (through the relay: 2 round trips)
                run = _measure(ctx, rig, gw, n, 1, _Continue(ids), warmup=2)
                pools[gw.name].cold += _ms(run.result.ok)
                pools[gw.name].tally(run, "cold", rig.notes, gw.name)

        # (4) accounting, before the gateways stop
        accounts = _account(rig)

    result.records = records
    result.rows = [_row(gw, pools[gw.name], accounts.get(gw.name, {})) for gw in gws]
    _ratios(result.rows, gws)
    result.columns = [
        Column("target", "target", "s"),
        Column("ttft_p50_ms", "TTFT p50 ms (c=1)", ".2f"),
        Column("ttft_p50_ms_x", "÷ memory", "x"),
        Column("ttft_p99_ms", "TTFT p99 ms", ".2f"),
        Column("ttft_p99_ms_x", "÷ memory", "x"),
        Column("c32_ttft_p50_ms", f"TTFT p50 ms (c={THROUGHPUT_C})", ".2f"),
        Column("c32_ttft_p50_ms_x", "÷ memory", "x"),
        Column("c32_ttft_p99_ms", "TTFT p99 ms", ".2f"),
        Column("c32_ttft_p99_ms_x", "÷ memory", "x"),
        Column("rps", f"responses/s (c={THROUGHPUT_C})", ".0f"),
        Column("rps_x", "÷ memory", "x"),
        Column("cpu_us", "CPU µs/resp", ".0f"),
        Column("cpu_us_x", "÷ memory", "x"),
        Column("c1_cpu_us", "CPU µs/resp (c=1)", ".0f"),
        Column("c1_db_reads", "DB reads (c=1)", "d"),
        Column("cold_ttft_p50_ms", "TTFT p50, cold read", ".2f"),
        Column("pg_cpu_us", "PostgreSQL CPU µs/turn", ".0f"),
        Column("starved_pct", "starved %", ".1f"),
        Column("avg_batch", "turns per commit", ".1f"),
        Column("drain_ms", "queue drained after ms", ".0f"),
        Column("turns", "turns complete", "d"),
        Column("lost", "lost", "d"),
        Column("errors", "errors", "d"),
    ]
    for row, gw in zip(result.rows, gws, strict=True):
        if gw.storage != "postgres":
            continue
        label = row["target"].removeprefix("plano-trio (").removesuffix(")")
        ttft = (
            ("c=1 p50", "ttft_p50_ms_x"),
            ("c=1 p99", "ttft_p99_ms_x"),
            (f"c={THROUGHPUT_C} p50", "c32_ttft_p50_ms_x"),
            (f"c={THROUGHPUT_C} p99", "c32_ttft_p99_ms_x"),
        )
        throughput = f"State throughput c={THROUGHPUT_C}, memory ÷ {label} (time per response)"
        rate = f"{label} {row.get('rps', math.nan):.0f} responses/s, {row['rps_x']:.3f}{TIMES} memory"
        if gw.current:
            result.checks += [
                Check.at_most(f"State TTFT {what}, {label} ÷ memory", row[key], LOSSLESS, TIMES)
                for what, key in ttft
            ]
            result.checks.append(Check.at_most(throughput, row["slowdown_x"], LOSSLESS, TIMES, note=rate))
        else:  # the base revision's rows: what the targets were measured against, not held to them
            result.checks += [
                Check.info(f"State TTFT {what}, {label} ÷ memory", row[key], TIMES) for what, key in ttft
            ]
            result.checks.append(Check.info(throughput, row["slowdown_x"], TIMES, note=rate))
        result.checks.append(
            Check.info(f"State CPU per response c={THROUGHPUT_C}, {label} ÷ memory", row["cpu_us_x"], TIMES)
        )
    for row in result.rows:
        label = row["target"].removeprefix("plano-trio (").removesuffix(")")
        result.checks.append(
            Check.at_most(
                f"State turns lost, {label}",
                float(row.get("lost", math.nan)),
                0,
                "turns",
                note=f"{row.get('stored', 0):,} of {row.get('turns', 0):,} complete responses stored",
            )
        )
    result.notes += [
        "TTFT = request sent → first `response.output_text.delta` (the Responses stream is parsed by "
        f"its `event:` names); c=1: conversations of {TURNS} turns (1 new + {TURNS - 1} with "
        "`previous_response_id`), then a new one.  Every phase runs in short blocks that rotate through "
        "the targets (A B C, B C A, …), and percentiles and rates are taken over all of a target's "
        "blocks: on a shared machine a burst of someone else's work then lands on every target alike.  "
        "`÷ memory` = that target's figure ÷ memory's.  `starved %` = time the gateway was runnable "
        "but another process had its core, over its measured blocks (noise, not ours).",
        "`DB reads (c=1)`: history reads that went to PostgreSQL (`/debug/state` `reads`).  They are 0 "
        "because a continued turn's parent was stored by the same process a moment earlier and is served "
        "from the in-process history cache.  A cache miss (another instance wrote the turn, the cache "
        "evicted it, or a restart) *does* read the database before the request goes upstream: "
        "`TTFT p50, cold read` measures exactly that, continuing turns the other postgres instance "
        "(same schema) wrote: one round trip, so about twice the relay delay behind the relay.",
        f"c={THROUGHPUT_C}: new conversations only (every response is one write); the timing client, not "
        "wrk, so every response is checked complete and its id kept.  CPU is the gateway's on-CPU "
        "time (schedstat, every thread), and each block's window closes only after its write queue is "
        "empty (`queue drained after`: last response → empty queue, median of blocks; the first poll "
        f"waits {FLUSH_SETTLE_S * 1e3:.0f} ms, {SLOW_SETTLE_S * 1e3:.0f} ms behind the relay, because "
        "each poll is a request the gateway serves), so the write-behind work (encode, send, commit) is "
        "in `CPU µs/resp`, at c=1 too.  `PostgreSQL CPU µs/turn` is the whole local server's process "
        "tree over the same window (info: it includes anyone else's queries).",
        "The PostgreSQL backends serving the gateways (found by their `application_name`) are pinned to "
        "the client's core before every block, like the relay: a database is another machine, and an "
        "unpinned backend woken by the gateway tends to run on the gateway's own core.",
        "`lost` = responses the client saw complete (`response.completed`, warm-ups included) whose id "
        "is not in `plano_trio_turns` once the queue drained (memory: the store's entry count); both "
        "postgres gateways write one fresh schema, dropped after the run.",
    ]
    hits = {row["target"]: row.get("c1_cache_hits") for row in result.rows if row["c1_cache_hits"]}
    if hits:
        result.notes.append(
            "history-cache hits in the c=1 runs: " + ", ".join(f"{k}: {v:,}" for k, v in hits.items())
        )
    result.notes += rig.notes
    series = {name: pool.c1_ttft for name, pool in pools.items()}
    series |= {f"{name} cold read": pool.cold for name, pool in pools.items() if pool.cold}
    result.charts.append(
        Chart(
            "cdf",
            "state_ttft_cdf.png",
            "/v1/responses TTFT, c=1 chained (all blocks) and cold history reads",
            "TTFT (ms)",
            series=series,
            log_x=True,
        )
    )
    return result


def _row(gw: _Gateway, pool: _Pool, account: dict[str, Any]) -> dict[str, Any]:
    """One target's table row from its pooled samples."""
    c1 = percentiles(pool.c1_ttft)
    c32 = percentiles(pool.c32_ttft)
    cold = percentiles(pool.cold) if pool.cold else {"p50": math.nan, "p99": math.nan}
    counts = pool.counts
    postgres = gw.storage == "postgres"
    return {
        "target": gw.name,
        "requests": pool.c1_ok + pool.c32_ok + len(pool.cold),
        "errors": pool.errors,
        "error_kinds": pool.error_kinds[:5],
        "ttft_p50_ms": c1["p50"],
        "ttft_p99_ms": c1["p99"],
        "ttft_new_p50_ms": percentiles(pool.c1_new)["p50"] if pool.c1_new else math.nan,
        "ttft_cont_p50_ms": percentiles(pool.c1_cont)["p50"] if pool.c1_cont else math.nan,
        "c1_cpu_us": per_request_us(pool.c1_cpu_s, pool.c1_ok),
        "c32_ttft_p50_ms": c32["p50"],
        "c32_ttft_p99_ms": c32["p99"],
        "rps": pool.c32_ok / pool.c32_wall_s if pool.c32_wall_s else math.nan,
        "cpu_us": per_request_us(pool.c32_cpu_s, pool.c32_ok),
        "pg_cpu_us": per_request_us(pool.c32_pg_cpu_s, pool.c32_ok) if postgres else math.nan,
        "starved_pct": 100 * pool.wait_s / pool.span_s if pool.span_s else math.nan,
        "avg_batch": ratio(counts["c32_flushed_total"], counts["c32_batches"]) if postgres else math.nan,
        "drain_ms": percentiles(pool.c32_drain_s)["p50"] * 1e3 if pool.c32_drain_s else math.nan,
        "c1_db_reads": counts["c1_reads"],
        "c1_cache_hits": counts["c1_cache_hits"],
        "cold_ttft_p50_ms": cold["p50"],
        "cold_ttft_p99_ms": cold["p99"],
        "cold_db_reads": counts["cold_reads"] if postgres else math.nan,
        **account,
    }


def _ratios(rows: list[dict[str, Any]], gws: list[_Gateway]) -> None:
    """``<key>_x`` = the row's value ÷ its memory row's (same source tree; NaN on a memory row itself)."""
    by_name = {row["target"]: row for row in rows}
    for row, gw in zip(rows, gws, strict=True):
        ref = by_name[gw.baseline]
        for key in ("ttft_p50_ms", "ttft_p99_ms", "c32_ttft_p50_ms", "c32_ttft_p99_ms", "rps", "cpu_us"):
            row[f"{key}_x"] = ratio(row[key], ref[key]) if row is not ref else math.nan
        row["slowdown_x"] = ratio(ref["rps"], row["rps"]) if row is not ref else math.nan


# -- 11. state_bench in the report -------------------------------------------------------------------------


@scenario(
    "state_store",
    "11. State store: sustained batched write rate, bytes per turn vs Plano's scheme",
    order=11,
    modes=("quick", "full"),
)
def state_store(ctx: Context) -> ScenarioResult:
    """``python -m bench.state_bench`` through its own functions, so its numbers sit in the same report."""
    result = ScenarioResult("state_store", SCENARIOS["state_store"].title)
    dsn = _dsn()
    problem = _postgres_problem(dsn)
    if problem:
        result.skipped = problem
        return result
    import trio

    from bench import state_bench

    turns = ctx.budget.state_write_turns
    ctx.log(f"state_bench: {turns:,} turns through the store, then a 100-turn conversation both ways")
    rate = trio.run(partial(state_bench.measure_write_rate, dsn, turns))
    ours, theirs = trio.run(state_bench.measure_storage, dsn)
    result.params = {"write_turns": turns, "json_bytes_per_turn": rate.json_bytes_per_turn}

    def row(what: str, a: float, b: float | None, fmt: str = ",.0f") -> dict[str, Any]:
        return {
            "target": what,
            "round": 0,
            "ours": format(a, fmt),
            "theirs": "" if b is None else format(b, fmt),
            "x": ratio(b, a) if b is not None else math.nan,
        }

    result.records = [
        row("sustained write rate, turns/s", rate.turns_per_s, None),
        row("rows, 100-turn conversation", ours.rows_100, theirs.rows_100),
        row("bytes at 50 turns", ours.bytes_50, theirs.bytes_50),
        row("bytes at 100 turns", ours.bytes_100, theirs.bytes_100),
        row("bytes per turn (100 turns)", ours.per_turn_100, theirs.per_turn_100),
        row("growth 50 → 100 turns", ours.growth, theirs.growth, ".2f"),
        row("table + TOAST + indexes, bytes", ours.relation_bytes_100, theirs.relation_bytes_100),
    ]
    result.rows = summarise(result.records)
    result.columns = [
        Column("target", "", "s"),
        Column("ours", "plano-trio (delta rows)", "s"),
        Column("theirs", "Plano (conversation_states)", "s"),
        Column("x", "Plano ÷ plano-trio", "x"),
    ]
    result.checks.append(
        Check.at_least("State store sustained write rate", rate.turns_per_s, 10_000, "turns/s")
    )
    result.checks.append(
        Check.info("State bytes at 100 turns, Plano ÷ plano-trio", theirs.bytes_100 / ours.bytes_100, TIMES)
    )
    result.notes += [
        f"write path: {rate.turns:,} turns (~{rate.json_bytes_per_turn:,.0f} B JSON each) via `admit()` + "
        f"`put()` in {rate.seconds:.2f} s; {rate.batches:,} batches, avg {rate.avg_batch:.0f} turns, avg "
        f"flush {rate.avg_flush_ms} ms; {rate.producer_backoffs:,} producer back-offs (queue full).  Runs "
        "in the bench process (CPU1) against the local server, no gateway involved.",
        "bytes = sum(pg_column_size(row)) after TOAST compression; plano-trio rows also hold the full "
        "response object (for `GET /v1/responses/{id}`), which Plano does not store.  Plano's rows are "
        "written with its own `conversation_states` schema and upsert, one row per response holding "
        "the whole history so far: quadratic growth.  Same as `python -m bench.state_bench`.",
    ]
    return result
