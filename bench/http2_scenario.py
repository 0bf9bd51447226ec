"""Scenario 18, ``http2``: what an HTTP/2 (h2c) client costs the gateway, against HTTP/1.1 keep-alive.

Issue 16: much of a request's CPU is hypercorn's own HTTP/1.1 handling (h11), so measure what a client
speaking HTTP/2 instead gets (h2c with prior knowledge: the gateway's listeners are plain TCP, and
hypercorn serves a connection that opens with the HTTP/2 preface as HTTP/2), and say which client
settings make the gateway cheapest.

Per target (``plano-trio``, and ``floor``: hypercorn answering constant bytes, the same stack with no
gateway in it), load (JSON; SSE, the ``stream20`` profile) and concurrency (1, 32), each client
setting in `SETTINGS`:

* the bench's own clients, cheap enough not to be what is measured: HTTP/1.1 keep-alive (`loadgen`,
  one connection per request in flight), h2c with every request a stream of one connection, and h2c
  with one connection per request in flight (`h2load`);
* the OpenAI SDK's transport, httpx (`httpx_load`): HTTP/1.1 (the SDK's default) and
  ``http2=True, http1=False`` (prior knowledge, every request a stream of one connection).  httpx
  costs the client 1.3-3.3 ms of CPU per request (`loadgen` ~0.2, `h2load` ~0.5), so these runs are
  shorter and the gateway idles half the time during them; their h2 ÷ h1 ratio compares httpx with
  itself.

Figures: the gateway's CPU per request (µs, on-CPU time of every thread from
``/proc/<pid>/task/*/schedstat``, as `bench.ab` reads it), requests/s, p50/p99 of the latency (JSON)
or of the time to the first event (SSE), the client's own CPU per request, and `CPU ÷ h1`: this
setting's CPU per request over the same library's HTTP/1.1 figure *in the same round* (then the
median over rounds).  Every run opens its connections inside the measured window (as `loadgen` and
wrk do), amortised over n/c requests per connection.

Conclusion rows (``→ cheapest for …``): per target, load and c, the bench-client setting with the
lowest gateway CPU per request (httpx's rows are left out of that choice: a half-idle gateway spends
differently per request for that reason alone).

Rounds interleave everything: within a round, for one load and concurrency, every (setting, target)
pair runs once, the order rotating from round to round, so both targets and all settings see the
same minutes of the shared machine.

httpx over h2c ends each request body with a separate empty DATA frame; a gateway that answered
before it arrived used to fail on it in hypercorn 0.18 (a KeyError that ended the connection and the
gateway process; fixed: `tests/test_http2_client.py`).  So before loading the shared gateway with httpx
over h2c, the scenario still probes a throwaway gateway of the same config (`h2load.late_end_stream`);
if it does not survive, those rows are skipped for plano-trio and the check says why.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from bench import ab, h2load, httpx_load, loadgen, procstat
from bench.model import TIMES, Check, Column, ScenarioResult, summarise
from bench.scenarios import SCENARIOS, Context, _row, scenario
from bench.stats import percentiles
from bench.targets import HOST, Proc, Profile, Target, free_port, gateway_config, python, spawn

__all__ = ["SETTINGS", "Setting", "cheapest", "http2", "within_round_ratios"]

LOADS = ("json", "stream20")
CONCURRENCY = (1, 32)


@dataclasses.dataclass(frozen=True, slots=True)
class Setting:
    """One way a client can talk to the gateway: which library, which protocol, how many connections."""

    key: str  # the row label
    library: str  # "bench" (loadgen / h2load) or "httpx" (the OpenAI SDK's transport)
    http2: bool
    one_connection: bool  # every request in flight a stream of one connection (h2 only)
    base: str  # the same library's HTTP/1.1 setting: the denominator of `CPU ÷ h1`

    def connections(self, concurrency: int) -> int:
        return 1 if self.one_connection else concurrency

    def applies(self, concurrency: int) -> bool:
        """At c=1 "one connection" and "a connection per request" are the same setting: run it once."""
        return concurrency > 1 or not self.http2 or self.one_connection

    def run(self, request: loadgen.Request, n: int, concurrency: int, cap_s: float) -> loadgen.RunResult:
        conns = self.connections(concurrency)
        if self.library == "httpx":
            return httpx_load.run(request, n, concurrency, http2=self.http2, connections=conns, cap_s=cap_s)
        if self.http2:
            return h2load.run(request, n, concurrency, conns, cap_s=cap_s)
        return loadgen.run(request, n, concurrency, cap_s=cap_s)


H1 = "h1 keep-alive"
H2_ONE = "h2c, 1 conn"
H2_MANY = "h2c, c conns"
SDK_H1 = "httpx h1 (SDK default)"
SDK_H2 = "httpx h2c, 1 conn"
SETTINGS = (
    Setting(H1, "bench", http2=False, one_connection=False, base=H1),
    Setting(H2_ONE, "bench", http2=True, one_connection=True, base=H1),
    Setting(H2_MANY, "bench", http2=True, one_connection=False, base=H1),
    Setting(SDK_H1, "httpx", http2=False, one_connection=False, base=SDK_H1),
    Setting(SDK_H2, "httpx", http2=True, one_connection=True, base=SDK_H1),
)
"""Row order of the table; `base` names the HTTP/1.1 row each h2 row is divided by."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Sizes:
    rounds: int
    n_c1: int  # requests per c=1 run (bench clients)
    n_c32: int  # requests per c=32 run (bench clients)
    httpx_share: float  # httpx runs are this fraction as long (the client is the slow part)

    @classmethod
    def for_mode(cls, mode: str) -> _Sizes:
        """Quick: 3 short rounds rather than the budget's 2 (ratios of neighbouring runs, medians of 3)."""
        return {"smoke": cls(1, 20, 64, 1.0), "quick": cls(3, 150, 480, 0.4)}.get(
            mode, cls(3, 600, 1600, 0.4)
        )

    def n(self, setting: Setting, concurrency: int) -> int:
        n = self.n_c1 if concurrency == 1 else self.n_c32
        return max(2 * concurrency, int(n * self.httpx_share)) if setting.library == "httpx" else n


def within_round_ratios(records: list[dict[str, Any]], key: str = "cpu_us", out: str = "x_cpu_h1") -> None:
    """``out`` = ``key`` ÷ the same target/load/c/round's ``key`` of the setting's ``base`` row (NaN for
    the base rows themselves, and where the base run is missing)."""
    bases = {(r["target"], r["load"], r["c"], r["round"], r["client"]): r for r in records}
    by_key = {s.key: s for s in SETTINGS}
    for record in records:
        setting = by_key.get(record["client"])
        base = None
        if setting is not None and setting.base != setting.key:
            base = bases.get((record["target"], record["load"], record["c"], record["round"], setting.base))
        value, ref = record.get(key, math.nan), base.get(key, math.nan) if base else math.nan
        record[out] = value / ref if ref and not math.isnan(ref) and not math.isnan(value) else math.nan


def cheapest(
    rows: Sequence[dict[str, Any]],
    target: str,
    load: str,
    concurrency: int,
    clients: Collection[str] | None = None,
) -> dict[str, Any]:
    """The row of the client setting (among `clients`, default all) with the lowest CPU per request for
    that target, load and c; rows with errors do not count (a setting that fails is not advice)."""
    candidates = [
        r
        for r in rows
        if r["target"] == target
        and r["load"] == load
        and r["c"] == concurrency
        and (clients is None or r["client"] in clients)
        and not r.get("errors")
        and not math.isnan(r.get("cpu_us", math.nan))
    ]
    return min(candidates, key=lambda r: r["cpu_us"], default={})


def _cells(
    targets: list[Target], concurrency: int, skip: set[tuple[str, str]]
) -> list[tuple[Target, Setting]]:
    """Every (target, setting) pair run at `concurrency`, settings in table order, targets side by side."""
    return [
        (target, setting)
        for setting in SETTINGS
        if setting.applies(concurrency)
        for target in targets
        if (target.name, setting.key) not in skip
    ]


def _rotated(items: list[tuple[Target, Setting]], shift: int) -> Iterator[tuple[Target, Setting]]:
    if items:
        shift %= len(items)
        yield from items[shift:] + items[:shift]


def _measure(
    ctx: Context, target: Target, profile: Profile, setting: Setting, concurrency: int, n: int
) -> dict[str, Any]:
    """One run of `setting` at `concurrency` against `target`: its gateway's CPU (schedstat) around it."""
    request = target.request(profile)
    server = target.server(profile.key)
    cpu0 = ab.on_cpu_seconds(server.pid)
    wait0 = procstat.runqueue_wait_seconds(server.pid)
    result = setting.run(request, n, concurrency, cap_s=max(10.0, ctx.budget.cap_s))
    cpu = ab.on_cpu_seconds(server.pid) - cpu0
    wait = procstat.runqueue_wait_seconds(server.pid) - wait0
    ok = result.ok
    times = [(s.ttfe if profile.stream else s.latency) * 1e3 for s in ok]
    spread = percentiles(times, (50, 99))
    wall = result.wall
    return {
        "requests": len(ok),
        "errors": result.errors,
        "rps": len(ok) / wall if wall else math.nan,
        "cpu_us": cpu / len(ok) * 1e6 if ok else math.nan,
        "client_cpu_us": result.client_cpu / len(ok) * 1e6 if ok else math.nan,
        "p50_ms": spread["p50"],
        "p99_ms": spread["p99"],
        "server_cpu_util": cpu / wall if wall else math.nan,
        "server_starved": wait / wall if wall else math.nan,
        "error_kinds": result.error_kinds(),
        # h2load's connections replaced after a GOAWAY or a close (hypercorn recycles an h2 connection
        # after keep_alive_max_requests); the other clients do not count theirs
        "reconnects": result.reconnects if isinstance(result, h2load.H2RunResult) else math.nan,
    }


def _probe_gateway(ctx: Context) -> tuple[bool, str]:
    """Does a gateway of the run's config keep its h2c connection (and live) when a request's
    END_STREAM comes in a frame of its own after the body?  Probed on a throwaway gateway."""
    port = free_port()
    config = ctx.work_dir / "plano-trio-h2probe.yaml"
    config.write_text(gateway_config(port, ctx.mocks, ctx.profiles, ctx.gateway_extra))
    cmd = [python(), "-m", "plano_trio", "up", str(config), "--log-level", "warning"]
    proc = spawn(
        "plano-trio-h2probe", cmd, ctx.work_dir / "logs", cpu=ctx.server_cpu, url=f"http://{HOST}:{port}"
    )
    try:
        request = dataclasses.replace(Target("probe", {"*": proc}).request(ctx.profiles["json"]), port=port)
        first, second = h2load.late_end_stream(request)
        # a crash unwinds the gateway's nurseries for a moment before the process exits
        alive = second == 200 or _exit_code(proc, timeout=3.0) is None
    finally:
        proc.stop()
    if (first, second) == (200, 200) and alive:
        return True, "a late END_STREAM frame is ignored; the connection carries the next request"
    what = f"first request {first}, then {'HTTP ' + str(second) if second else 'the connection was gone'}"
    return (
        False,
        f"{what}; the gateway process {'survived' if alive else 'exited'} (tests/test_http2_client.py)",
    )


def _exit_code(proc: Proc, timeout: float) -> int | None:
    """The process's exit code if it exits within `timeout` (a crash takes a moment), else None."""
    try:
        return proc.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


_COLUMNS = [
    Column("target", "target", "s"),
    Column("load", "load", "s"),
    Column("c", "c", "d"),
    Column("client", "client setting", "s"),
    Column("cpu_us", "gateway CPU µs/req", ".0f"),
    Column("x_cpu_h1", "CPU ÷ h1 (same client)", "x"),
    Column("rps", "req/s", ".0f"),
    Column("p50_ms", "p50 ms (SSE: TTFE)", ".2f"),
    Column("p99_ms", "p99 ms", ".2f"),
    Column("client_cpu_us", "client CPU µs/req", ".0f"),
    Column("server_cpu_util", "server CPU util", ".2f"),
    Column("server_starved", "server starved", ".2f"),
    Column("requests", "ok", "d"),
    Column("errors", "errors", "d"),
    Column("reconnects", "h2 reconnects", "g"),
]


@scenario(
    "http2",
    "18. HTTP/2 clients: h2c (prior knowledge) vs HTTP/1.1 keep-alive, gateway CPU per request",
    order=18,
    modes=("quick", "full"),
)
def http2(ctx: Context) -> ScenarioResult:
    """Issue 16's HTTP/2 question (see the module docstring for what and why)."""
    result = ScenarioResult("http2", SCENARIOS["http2"].title)
    if not ctx.has("plano-trio"):
        result.skipped = "needs the plano-trio target"
        return result
    targets = ctx.pick(["plano-trio", "floor"])
    sizes = _Sizes.for_mode(ctx.budget.mode)
    safe, probe = _probe_gateway(ctx)
    skip = set() if safe else {("plano-trio", SDK_H2)}
    result.params = {
        "rounds": sizes.rounds,
        "requests per run": f"c=1: {sizes.n_c1}, c=32: {sizes.n_c32} (httpx: x{sizes.httpx_share:g})",
        "h2c": "prior knowledge on the plain-TCP listener; bench client: h2load (h2 + asyncio)",
        "cpu": "gateway on-CPU time from /proc/<pid>/task/*/schedstat (ns, every thread)",
        "late END_STREAM probe": probe,
    }
    for r in range(sizes.rounds):
        for load in LOADS:
            profile = ctx.profiles[load]
            for concurrency in CONCURRENCY:
                for target in targets:  # upstream pool grown to c, code paths hot
                    loadgen.run(target.request(profile), 2 * concurrency, concurrency, cap_s=10)
                ctx.quiesce(f"http2 {load} c={concurrency} round {r + 1}")
                ctx.log(f"http2 round {r + 1}: {load} c={concurrency}")
                cells = _cells(targets, concurrency, skip)
                for target, setting in _rotated(cells, r * 3):
                    record = {"target": target.name, "load": load, "c": concurrency, "client": setting.key}
                    record["round"] = r
                    record.update(
                        _measure(ctx, target, profile, setting, concurrency, sizes.n(setting, concurrency))
                    )
                    result.records.append(record)
    within_round_ratios(result.records)
    result.rows = summarise(result.records, ("target", "load", "c", "client"))
    order = {s.key: i for i, s in enumerate(SETTINGS)}
    result.rows.sort(
        key=lambda row: (row["load"], row["c"], row["target"] != "plano-trio", order[row["client"]])
    )
    result.rows += _conclusions(result.rows, [t.name for t in targets])
    result.columns = list(_COLUMNS)
    _checks(result, safe, probe)
    _notes(result, safe)
    return result


def _conclusions(rows: list[dict[str, Any]], targets: list[str]) -> list[dict[str, Any]]:
    """One row per target, load and c naming the client setting with the lowest gateway CPU/request.

    Among the bench clients' settings only: during httpx's runs the gateway idles half the time waiting
    for the client, which changes its CPU per request by itself (fewer requests per wake-up)."""
    bench = [s.key for s in SETTINGS if s.library == "bench"]
    out = []
    for target in targets:
        for load in LOADS:
            for concurrency in CONCURRENCY:
                best = cheapest(rows, target, load, concurrency, bench)
                if best:
                    out.append({**best, "target": f"→ cheapest for {target}"})
    return out


def _checks(result: ScenarioResult, safe: bool, probe: str) -> None:
    rows = result.rows
    for load, label in (("json", "JSON"), ("stream20", "SSE")):
        for concurrency in CONCURRENCY:
            row = _row(rows, "plano-trio", load=load, c=concurrency, client=H2_ONE)
            result.checks.append(
                Check.info(
                    f"plano-trio CPU/request, h2c (1 conn) ÷ HTTP/1.1 keep-alive, {label} c={concurrency}",
                    row.get("x_cpu_h1", math.nan),
                    TIMES,
                )
            )
    for concurrency in CONCURRENCY:
        row = _row(rows, "plano-trio", load="json", c=concurrency, client=SDK_H2)
        result.checks.append(
            Check.info(
                f"plano-trio CPU/request, SDK httpx h2c ÷ httpx HTTP/1.1, JSON c={concurrency}",
                row.get("x_cpu_h1", math.nan),
                TIMES,
                "" if safe else "not run: see the late END_STREAM check",
            )
        )
    result.checks.append(
        Check(
            "h2c: a request's END_STREAM in a later frame (httpx) keeps the gateway's connection",
            1.0 if safe else 0.0,
            "",
            "1 (survives)",
            safe,
            probe,
        )
    )


def _notes(result: ScenarioResult, safe: bool) -> None:
    result.notes.append(
        "`CPU ÷ h1` divides by the same library's HTTP/1.1 row of the same round (bench clients by "
        f"`{H1}`, httpx by `{SDK_H1}`), then takes the median over rounds.  `h2c, 1 conn`: every request "
        "in flight a stream of one connection (the gateway allows 32 per connection); `h2c, c conns`: one "
        "connection per request in flight.  Connections are opened inside the measured run.  "
        "`h2 reconnects` (bench h2c rows; median per run): connections h2load opened again after a GOAWAY "
        "or a close; requests the GOAWAY left unprocessed are sent again, not errors, while a stream the "
        "server let finish and never answered is one (hypercorn 0.18: every stream in flight at its GOAWAY)."
    )
    result.notes.append(
        "httpx costs the client 1-5 ms of CPU per request (see `client CPU µs/req`) on the CPU it shares "
        "with the mock, so during its runs the gateway is less busy (`server CPU util`) and reads fewer "
        "requests per wake-up: compare httpx rows with httpx rows.  `server starved`: the time the "
        "gateway's threads waited for their CPU ÷ the run's wall time (other tenants of the machine); "
        "near `server CPU util`, req/s and latency describe the machine, CPU per request still the server."
    )
    if not safe:
        result.notes.append(
            f"`{SDK_H2}` was not run against plano-trio: httpx's separate END_STREAM frame, arriving after "
            "the gateway answered, ends the connection and the gateway process (hypercorn KeyError); a "
            "fix belongs in plano_trio/server (ignore DATA for a stream already answered) or in "
            "read_body (wait for the end of the body on HTTP/2)."
        )
    for row in result.rows:
        if row.get("errors") and not str(row["target"]).startswith("→"):
            kinds = "; ".join(row.get("error_kinds") or [])
            result.notes.append(f"{row['target']} {row['load']} c={row['c']} {row['client']}: {kinds}")
