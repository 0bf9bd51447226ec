"""Scenarios 10 and 11: conversation state (issue 5) — does the database stay off the token stream?

``state`` (10) starts three plano-trio gateways of its own, identical except for ``state_storage``:

* ``memory``;
* ``postgres`` (a fresh schema per run, ``options=-csearch_path=<schema>``, dropped at the end);
* ``postgres +50 ms``: the same database and schema behind ``latency_relay`` (every chunk delayed
  50 ms each way, so >= 100 ms per round trip: a database in another region).

Each serves ``anthropic/claude-sonnet-4-6`` from the stream20 mock, so ``/v1/responses`` is translated
to Messages and the *gateway* stores every turn (providers with a native Responses API keep their own
state and would measure nothing).  The three are interleaved like every other target, and measured:

1. **c=1, chained**: streaming requests, each continuing the previous response (``previous_response_id``)
   for ``TURNS`` turns, then a new conversation: history reads *and* writes on every target.  TTFT is
   the time to the first ``response.output_text.delta``.  These history reads are cache hits: the turn
   a request continues was written by the same process a moment ago, and the store keeps it (the
   ``/debug/state`` counters are recorded to show it: DB reads stay 0).
2. **c=32, new conversations**: responses/s and CPU per response (writes only).  The CPU window closes
   only after the write queue is empty, so the write-behind work these responses caused is counted,
   in the gateway and (info) in the PostgreSQL server.
3. **cold reads** (postgres targets): c=1 continuations of turns the *other* postgres instance wrote.
   Both share the schema, like two instances of one deployment, so these are guaranteed cache misses:
   the history comes from the database, one round trip on the request path before anything goes
   upstream.  That is by design the one database call a request makes; this shows what it costs
   (~nothing locally, >= 100 ms through the relay).
4. **accounting**: every response the client saw complete is a turn that must be stored.  After the
   queues drain, the response ids are looked up in the table (postgres) or the store's counters are read
   (memory): ``lost`` must be 0.

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
import secrets
import time
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from bench import loadgen, procstat
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

    def wait_flushed(self, timeout_s: float = 30.0) -> tuple[bool, float]:
        """Poll until nothing is queued or reserved (every completed turn committed).

        Returns (flushed, seconds waited).  The polls are requests the gateway serves inside a CPU
        window, so they are few and cheap: one keep-alive connection, 5 ms apart backing off to 50 ms
        (~10 polls for the slowest target's last batch, against hundreds of measured responses).
        """
        t0 = time.monotonic()
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


def _pg_endpoint(conninfo: str) -> tuple[str, int]:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(conninfo)
    return str(params.get("hostaddr") or params.get("host") or HOST), int(params.get("port") or 5432)


def _state_yaml(storage: dict[str, str]) -> str:
    return "state_storage:\n" + "".join(f"  {key}: {json.dumps(value)}\n" for key, value in storage.items())


@contextlib.contextmanager
def _rig(ctx: Context, dsn: str) -> Iterator[_Rig]:
    """Schema, relay and the three gateways for one run; everything stopped (by pid) and dropped after."""
    from bench.state_bench import _sql, _with_schema

    schema = f"bench_state_{secrets.token_hex(5)}"
    _sql(dsn, f"CREATE SCHEMA {schema}")
    procs: list[Proc] = []
    logs = ctx.work_dir / "logs"
    try:
        schema_dsn = _with_schema(dsn, schema)
        variants: list[tuple[str, dict[str, str]]] = [
            (MEMORY, {"type": "memory"}),
            (POSTGRES, {"type": "postgres", "connection_string": schema_dsn}),
        ]
        host, port = _pg_endpoint(dsn)
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
            slow = {"type": "postgres", "connection_string": _via_relay(schema_dsn, relay.port)}
            variants.append((POSTGRES_SLOW, slow))
        gateways: list[_Gateway] = []
        for label, storage in variants:
            gw_port = free_port()
            slug = label.replace(" ", "").replace("+", "-")
            config = ctx.work_dir / f"plano-trio-state-{slug}.yaml"
            extra = ctx.gateway_extra + _state_yaml(storage)
            config.write_text(gateway_config(gw_port, ctx.mocks, ctx.profiles, extra))
            proc = spawn(
                f"plano-trio-state-{slug}",
                [python(), "-m", "plano_trio", "up", str(config), "--log-level", "warning"],
                logs,
                cpu=ctx.server_cpu,
                url=f"http://{HOST}:{gw_port}",
                cwd=REPO,
                timeout=60,
            )
            procs.append(proc)
            gateways.append(_Gateway(Target(f"plano-trio ({label})", {"*": proc}), storage["type"]))
        rig = _Rig(gateways, schema_dsn, _postmaster_pid(dsn))
        if len(variants) < 3:
            rig.notes.append(f"PostgreSQL is not on loopback ({host}): the +50 ms relay target was skipped.")
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
    ctx.quiesce(f"{gw.name} c={concurrency}")
    before = gw.stats()
    pg0 = procstat.cpu_seconds(rig.postmaster) if rig.postmaster else math.nan
    with ctx.cpu_window(gw.target, PROFILE) as cpu:
        res = loadgen.run(request, n, concurrency, cap_s=cap, timeout_s=30, body_for=body_for)
        flushed, drain_s = gw.wait_flushed()  # inside the window: the write work these responses caused
    pg_cpu = procstat.cpu_seconds(rig.postmaster) - pg0 if rig.postmaster else math.nan
    after = gw.stats()
    gw.keep(res)
    counters = {k: int(after.get(k, 0)) - int(before.get(k, 0)) for k in _COUNTERS}
    return _Run(res, cpu["server_cpu_s"], cpu["mock_cpu_s"], pg_cpu, counters, flushed, drain_s)


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


def _record(gw: _Gateway, r: int) -> dict[str, Any]:
    return {"target": gw.name, "round": r, "requests": 0, "errors": 0}


def _ratios(records: list[dict[str, Any]], keys: Sequence[str], base: str) -> None:
    """``<key>_x`` = value / the memory target's value in the same round (then medians over rounds)."""
    by_round = {rec["round"]: rec for rec in records if rec["target"] == base}
    for rec in records:
        ref = by_round.get(rec["round"], {})
        for key in keys:
            rec[f"{key}_x"] = ratio(rec.get(key, math.nan), ref.get(key, math.nan))
        rec["slowdown_x"] = ratio(ref.get("rps", math.nan), rec.get("rps", math.nan))


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
    result.params = {
        "model": f"anthropic/{MODEL} → stream20 mock (20 deltas)",
        "c1_requests_per_round": b.state_chain_n,
        "turns_per_conversation": TURNS,
        f"c{THROUGHPUT_C}_responses_per_round": b.state_c32_n,
        "cold_reads_per_round": b.state_cold_n,
        "rounds": b.rounds,
        "relay": f"+{RELAY_DELAY_MS:g} ms per chunk each way",
    }
    with _rig(ctx, dsn) as rig:
        gws = rig.gateways
        by_name = {g.name: g for g in gws}
        base = gws[0].name  # memory
        records: dict[tuple[str, int], dict[str, Any]] = {}
        pooled: dict[str, list[float]] = {g.name: [] for g in gws}
        counts: dict[str, collections.Counter[str]] = {g.name: collections.Counter() for g in gws}

        def rec(gw: _Gateway, r: int) -> dict[str, Any]:
            return records.setdefault((gw.name, r), _record(gw, r))

        def tally(gw: _Gateway, record: dict[str, Any], run: _Run, phase: str) -> None:
            record["requests"] += len(run.result.ok)
            record["errors"] += run.result.errors
            record.setdefault("error_kinds", []).extend(run.result.error_kinds())
            for key, value in run.counters.items():
                counts[gw.name][f"{phase}_{key}"] += value
            if not run.flushed:
                rig.notes.append(f"{gw.name}: write queue not empty 30 s after a {phase} run")

        # (1) c=1, chained conversations: history reads (cache) + writes
        for r, target in ctx.interleave([g.target for g in gws]):
            gw = by_name[target.name]
            ctx.log(f"state c=1 chain round {r + 1}: {gw.name}")
            run = _measure(ctx, rig, gw, b.state_chain_n, 1, _Chains(TURNS), warmup=2 * TURNS)
            ok = run.result.ok
            ttft = percentiles(_ms(ok))
            cont = percentiles(_ms(_labelled(run, "continued")))
            record = rec(gw, r)
            record.update(
                ttft_p50_ms=ttft["p50"],
                ttft_p99_ms=ttft["p99"],
                ttft_new_p50_ms=percentiles(_ms(_labelled(run, "new")))["p50"],
                ttft_cont_p50_ms=cont["p50"],
                ttft_cont_p99_ms=cont["p99"],
                c1_cpu_us=per_request_us(run.server_cpu_s, len(ok)),
            )
            tally(gw, record, run, "c1")
            pooled[gw.name] += _ms(ok)
            gw.chain_ids += [s.response_id for s in ok if s.response_id]

        # (2) c=32, new conversations: writes only
        for r, target in ctx.interleave([g.target for g in gws]):
            gw = by_name[target.name]
            ctx.log(f"state c={THROUGHPUT_C} round {r + 1}: {gw.name}")
            run = _measure(ctx, rig, gw, b.state_c32_n, THROUGHPUT_C, None, warmup=2 * THROUGHPUT_C)
            ok = run.result.ok
            wall = run.result.wall
            record = rec(gw, r)
            record.update(
                rps=len(ok) / wall if wall else math.nan,
                c32_ttft_p50_ms=percentiles(_ms(ok))["p50"],
                cpu_us=per_request_us(run.server_cpu_s, len(ok)),
                pg_cpu_us=per_request_us(run.pg_cpu_s, len(ok)),
                mock_cpu_us=per_request_us(run.mock_cpu_s, len(ok)),
                drain_ms=run.drain_s * 1e3,
                avg_batch=ratio(run.counters["flushed_total"], run.counters["batches"]),
                server_cpu_util=run.server_cpu_s / (wall + run.drain_s) if wall else math.nan,
                client_cpu_util=run.result.client_cpu / wall if wall else math.nan,
            )
            tally(gw, record, run, "c32")

        # (3) cold reads: continue turns the *other* postgres instance wrote (cache misses → the DB)
        pgs = [g for g in gws if g.storage == "postgres"]
        if len(pgs) == 2:
            sources = {pgs[0].name: collections.deque(pgs[1].chain_ids)}
            sources[pgs[1].name] = collections.deque(pgs[0].chain_ids)
            for r, target in ctx.interleave([g.target for g in pgs]):
                gw = by_name[target.name]
                ids = sources[gw.name]
                n = min(b.state_cold_n, len(ids) - 2)
                if n < 1:
                    continue
                ctx.log(f"state cold reads round {r + 1}: {gw.name}")
                # the 2 warm-up reads open the read pool's connection (through the relay: 2 round trips)
                run = _measure(ctx, rig, gw, n, 1, _Continue(ids), warmup=2)
                cold = percentiles(_ms(run.result.ok))
                record = rec(gw, r)
                record.update(cold_ttft_p50_ms=cold["p50"], cold_ttft_p99_ms=cold["p99"])
                tally(gw, record, run, "cold")
                pooled.setdefault(f"{gw.name} cold read", []).extend(_ms(run.result.ok))

        # (4) accounting, before the gateways stop
        accounts = _account(rig)

    result.records = list(records.values())
    _ratios(result.records, ("ttft_p50_ms", "ttft_p99_ms", "rps", "cpu_us"), base)
    result.rows = summarise(result.records)
    for row in result.rows:
        row.update(accounts.get(row["target"], {}))
        c = counts[row["target"]]
        row["c1_db_reads"] = c["c1_reads"]
        row["c1_cache_hits"] = c["c1_cache_hits"]
        row["cold_db_reads"] = c["cold_reads"] if row["target"] != base else math.nan
        if row["target"] == base:
            for key in ("ttft_p50_ms_x", "ttft_p99_ms_x", "rps_x", "cpu_us_x", "slowdown_x"):
                row[key] = math.nan  # the baseline: a ratio to itself says nothing
    result.columns = [
        Column("target", "target", "s"),
        Column("ttft_p50_ms", "TTFT p50 ms (c=1)", ".2f"),
        Column("ttft_p50_ms_x", "÷ memory", "x"),
        Column("ttft_p99_ms", "TTFT p99 ms", ".2f"),
        Column("ttft_p99_ms_x", "÷ memory", "x"),
        Column("ttft_cont_p50_ms", "TTFT p50, continued turns", ".2f"),
        Column("c1_db_reads", "DB reads (c=1)", "d"),
        Column("cold_ttft_p50_ms", "TTFT p50, cold read", ".2f"),
        Column("rps", f"responses/s (c={THROUGHPUT_C})", ".0f"),
        Column("rps_x", "÷ memory", "x"),
        Column("cpu_us", "CPU µs/resp", ".0f"),
        Column("cpu_us_x", "÷ memory", "x"),
        Column("pg_cpu_us", "PostgreSQL CPU µs/turn", ".0f"),
        Column("server_cpu_util", "server CPU util", ".2f"),
        Column("avg_batch", "turns per commit", ".1f"),
        Column("drain_ms", "queue drained after ms", ".0f"),
        Column("turns", "turns complete", "d"),
        Column("stored", "stored", "d"),
        Column("lost", "lost", "d"),
        Column("errors", "errors", "d"),
    ]
    rows = {row["target"]: row for row in result.rows}
    for gw in gws[1:]:
        if gw.name not in rows:
            continue
        row = rows[gw.name]
        label = gw.name.removeprefix("plano-trio (").removesuffix(")")
        result.checks += [
            Check.at_most(f"State TTFT c=1 p50, {label} ÷ memory", row["ttft_p50_ms_x"], LOSSLESS, TIMES),
            Check.at_most(f"State TTFT c=1 p99, {label} ÷ memory", row["ttft_p99_ms_x"], LOSSLESS, TIMES),
            Check.at_most(
                f"State throughput c={THROUGHPUT_C}, memory ÷ {label} (time per response)",
                row["slowdown_x"],
                LOSSLESS,
                TIMES,
                note=f"{label} {row.get('rps', math.nan):.0f} responses/s, {row['rps_x']:.3f}{TIMES} memory",
            ),
            Check.info(f"State CPU per response c={THROUGHPUT_C}, {label} ÷ memory", row["cpu_us_x"], TIMES),
        ]
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
        "`previous_response_id`), then a new one.  `÷ memory` = within-round ratio, median of rounds.",
        "`DB reads (c=1)`: history reads that went to PostgreSQL (`/debug/state` `reads`).  They are 0 "
        "because a continued turn's parent was stored by the same process a moment earlier and is served "
        "from the in-process history cache.  A cache miss (another instance wrote the turn, the cache "
        "evicted it, or a restart) *does* read the database before the request goes upstream: "
        "`TTFT p50, cold read` measures exactly that, continuing turns the other postgres instance "
        "(same schema) wrote: one round trip, so about twice the relay delay behind the relay.",
        f"c={THROUGHPUT_C}: new conversations only (every response is one write); the timing client, not "
        "wrk, so every response is checked complete and its id kept.  The CPU window closes after the "
        "write queue is empty (`queue drained after`: last response → empty queue), so the write-behind "
        "work (encode, COPY, commit) is in `CPU µs/resp`; `server CPU util` = CPU-s over that whole span.  "
        "`PostgreSQL CPU µs/turn` is the whole local server's process tree over the same window (info: "
        "it is unpinned and shares the machine).",
        "`lost` = responses the client saw complete (`response.completed`, warm-ups included) whose id "
        "is not in `plano_trio_turns` once the queue drained (memory: the store's entry count); both "
        "postgres gateways write one fresh schema, dropped after the run.",
    ]
    hits = {row["target"]: row.get("c1_cache_hits") for row in result.rows if row["target"] != base}
    if hits:
        result.notes.append(
            "history-cache hits in the c=1 runs: " + ", ".join(f"{k}: {v:,}" for k, v in hits.items())
        )
    result.notes += rig.notes
    result.charts.append(
        Chart(
            "cdf",
            "state_ttft_cdf.png",
            "/v1/responses TTFT, c=1 chained (all rounds) and cold history reads",
            "TTFT (ms)",
            series=pooled,
            log_x=True,
        )
    )
    return result


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
