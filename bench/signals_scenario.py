"""Scenario 16, ``signals``: what conversation-quality signals cost the hot path; worker CPU per conversation.

Issue 14's bench requirement, in one run, over real sockets:

1. **Streaming with signals on vs off**: gateways of this tree with the same config but for
   ``overrides.disable_signals`` (on, off, and a second off as a control), all on the server CPU
   (the signals worker is the ``on`` gateway's child, so it inherits that pinning and competes for
   the same core, at the idle priority).  Every request is a 20-message conversation, streamed (20
   chunks from the mock).

   * c=1: one request to each gateway in turn; TTFT (first content delta) p50/p99 per gateway and
     on/off per round (control/off shows the method's noise).  Target: p50 within 1.03 times.
   * c=32: alternating batches; requests/s, TTFT p50 and the gateway process's own CPU per request
     (its threads only, from schedstat), and the worker's CPU per request beside it.  Target:
     throughput within 1.03 times.

2. **CPU per analysed conversation** at 10, 50 and 100 messages (``bench.signals_bench``'s ``chat`` and
   ``agent`` shapes), through the gateway: ``cold`` sends a different conversation every request (the
   worker remembers nothing of it), ``warm`` the same one again (a client resending its history; the
   worker remembers the messages it saw).  Measured as the worker process's on-CPU time per analysis
   (schedstat, every thread: decoding, analysis, frames), and the worker's own count of CPU inside
   the analysis (``plano_trio_signals_analysis_cpu_seconds``).  ``bench/signals_bench.py`` has the
   same analysis in-process, without the gateway.

The gateways' ``/metrics`` (skipped and failed analyses) go into the notes: at c=32 the worker, held
at the lowest priority on the gateway's core, may fall behind and skip; that is the design (analyses
never take CPU from requests) and the count says how often.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import ab, loadgen, signals_bench
from bench.model import TIMES, Check, Column, ScenarioResult, summarise
from bench.scenarios import SCENARIOS, Context, _row, scenario
from bench.stats import percentiles
from bench.targets import HOST, Proc, Target, free_port, http_status, python, spawn

__all__ = ["signals", "signals_config"]

REPO = Path(__file__).resolve().parent.parent
MODEL = "gpt-4o-mini"
ON = "signals on"
OFF = "signals off"
CONTROL = "signals off (control)"
TURNS = (10, 50, 100)
SHAPES = ("chat", "agent", "worst")
STREAM_TURNS = 20
"""Messages in the conversation of the streaming loads (a short chat)."""
WORKER_MODULE = b"plano_trio.signals.worker"


@dataclasses.dataclass(frozen=True, slots=True)
class _Sizes:
    c1_n: int  # c=1: requests per gateway and round
    c32_batch: int  # c=32: requests per batch
    c32_batches: int
    cost_n: int  # CPU per conversation: analyses per size, shape and cold/warm

    @classmethod
    def for_mode(cls, mode: str) -> _Sizes:
        return {"smoke": cls(10, 64, 2, 5), "quick": cls(200, 400, 10, 40)}.get(
            mode, cls(1000, 1000, 20, 150)
        )


def signals_config(port: int, mock_url: str, metrics_port: int, on: bool, extra: str = "") -> str:
    """One gateway's Plano YAML: the same listener and provider for both; `on` False adds
    `overrides.disable_signals`."""
    text = (
        "version: v0.4.0\nlisteners:\n"
        f"  - {{name: llm, type: model, address: {HOST}, port: {port}, timeout: 60s}}\n"
        "model_providers:\n"
        f'  - {{model: openai/{MODEL}, access_key: bench-key, base_url: "{mock_url}", default: true}}\n'
        f"plano_trio:\n  metrics_bind_address: {HOST}:{metrics_port}\n"
    )
    if not on:
        text += "overrides:\n  disable_signals: true\n"
    return text + extra


@dataclasses.dataclass(frozen=True, slots=True)
class _Rig:
    gateways: dict[str, Proc]
    metrics: dict[str, int]  # label -> /metrics port
    mock: Proc


@contextlib.contextmanager
def _rig(ctx: Context) -> Iterator[_Rig]:
    """The streaming mock on the client CPU, both gateways on the server CPU; every process stopped by
    its own pid when the block ends (the worker exits when its gateway does: its stdin closes)."""
    logs = ctx.work_dir / "logs"
    procs: list[Proc] = []
    try:
        mock_cmd = [python(), "-m", "tests.mock_provider", "--host", HOST, "--port", "0"]
        mock = spawn(
            "mock-signals",
            [*mock_cmd, "--chunks", "20", "--chunk-bytes", "180"],
            logs,
            cpu=ctx.client_cpu,
            cwd=REPO,
        )
        procs.append(mock)
        gateways: dict[str, Proc] = {}
        metrics: dict[str, int] = {}
        for label, on, slug in ((ON, True, "on"), (OFF, False, "off"), (CONTROL, False, "control")):
            port, metrics[label] = free_port(), free_port()
            config = ctx.work_dir / f"plano-trio-signals-{slug}.yaml"
            config.write_text(signals_config(port, mock.url, metrics[label], on, ctx.gateway_extra))
            cmd = [python(), "-m", "plano_trio", "up", str(config), "--log-level", "warning"]
            gateways[label] = spawn(
                f"plano-trio-signals-{slug}",
                cmd,
                logs,
                cpu=ctx.server_cpu,
                url=f"http://{HOST}:{port}",
                cwd=REPO,
            )
            procs.append(gateways[label])
        targets = [Target(f"plano-trio ({label})", {"*": proc}) for label, proc in gateways.items()]
        with ctx.extra_targets(targets):
            yield _Rig(gateways, metrics, mock)
    finally:
        for proc in reversed(procs):
            proc.stop()


def _body(shape: str, turns: int, stream: bool, seed: int = 1) -> bytes:
    request: dict[str, Any] = dict(signals_bench.SHAPES[shape](turns, seed))
    request["model"] = MODEL
    if stream:
        request["stream"] = True
    return json.dumps(request).encode()


def _request(port: int, body: bytes, stream: bool) -> loadgen.Request:
    return loadgen.Request(HOST, port, "/v1/chat/completions", body, stream)


def worker_pid(gateway: Proc) -> int | None:
    """The gateway's signals worker (its child running `plano_trio.signals.worker`), if running."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == gateway.pid and WORKER_MODULE in cmdline:
            return int(entry.name)
    return None


def _thread_cpu(pid: int | None) -> float:
    """On-CPU seconds of `pid`'s threads (0 when there is no such process)."""
    if pid is None:
        return 0.0
    try:
        return ab.on_cpu_seconds(pid)
    except OSError:
        return 0.0


_SAMPLE = re.compile(r"^(plano_trio_signals_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", re.M)


def _metrics(port: int) -> dict[str, float]:
    """The gateway's `plano_trio_signals_*` samples: name plus labels as written, to value."""
    try:
        status, body = http_status(port, "/metrics")
    except OSError:
        return {}
    if status != 200:
        return {}
    return {f"{m.group(1)}{m.group(2) or ''}": float(m.group(3)) for m in _SAMPLE.finditer(body.decode())}


def _analyses(metrics: dict[str, float]) -> tuple[float, float]:
    """(analyses completed, CPU seconds the worker counted inside them)."""
    return (
        metrics.get("plano_trio_signals_analysis_cpu_seconds_count", 0.0),
        metrics.get("plano_trio_signals_analysis_cpu_seconds_sum", 0.0),
    )


def _answered(metrics: dict[str, float]) -> float:
    """Analyses the worker is done with: completed, skipped or failed."""
    return _analyses(metrics)[0] + sum(
        value
        for key, value in metrics.items()
        if key.startswith(("plano_trio_signals_skipped", "plano_trio_signals_failed"))
    )


def _settle(rig: _Rig, expected: float, timeout: float = 60.0) -> dict[str, float]:
    """Wait until the `on` gateway has answered (or skipped) `expected` analyses in all; its metrics."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = _metrics(rig.metrics[ON])
        if _answered(metrics) >= expected or time.monotonic() > deadline:
            return metrics
        time.sleep(0.05)


def _stream_c1(ctx: Context, rig: _Rig, sizes: _Sizes) -> list[dict[str, Any]]:
    """TTFT at c=1: one request to each gateway in turn (the order rotating), `ctx.budget.rounds` rounds.

    One request at a time, not batches: the machine's drift then hits every gateway alike, request by
    request.  Each request is its own `loadgen.run` (a fresh client connection, measured from the send),
    which also leaves a client's few milliseconds between one answer and the next question, as a real
    conversation has; the worker's analysis of one turn runs in them.  The control gateway has signals
    off too: control/off shows how far two identical gateways differ in this measurement.
    """
    body = _body("chat", STREAM_TURNS, True)
    labels = (ON, OFF, CONTROL)
    requests = {label: _request(rig.gateways[label].port, body, True) for label in labels}
    for request in requests.values():  # warm-up: code paths, the worker started
        loadgen.run(request, 20, 1)
    records = []
    for r in range(ctx.budget.rounds):
        ctx.quiesce(f"signals c=1 round {r + 1}")
        ctx.log(f"signals c=1 round {r + 1}: {', '.join(labels)} in turn, {sizes.c1_n} requests each")
        ttft: dict[str, list[float]] = {label: [] for label in labels}
        errors = dict.fromkeys(labels, 0)
        for i in range(sizes.c1_n):
            for label in labels[i % 3 :] + labels[: i % 3]:
                result = loadgen.run(requests[label], 1, 1)
                ttft[label] += [s.ttft * 1e3 for s in result.ok]
                errors[label] += result.errors
        for label in labels:
            record: dict[str, Any] = {"target": label, "load": "stream-c1", "c": 1, "round": r}
            record.update({f"ttft_{k}_ms": v for k, v in percentiles(ttft[label]).items()})
            record.update(requests=len(ttft[label]), errors=errors[label])
            records.append(record)
    off = {rec["round"]: rec for rec in records if rec["target"] == OFF}
    for record in records:
        base = off[record["round"]]
        for key in ("ttft_p50_ms", "ttft_p99_ms"):
            value = record[key] / base[key] if base[key] else math.nan
            record[f"x_{key}"] = math.nan if record["target"] == OFF else value
    return records


def _stream_c32(ctx: Context, rig: _Rig, sizes: _Sizes) -> list[dict[str, Any]]:
    """Throughput and TTFT at c=32, alternating batches; CPU of each gateway and of the worker."""
    body = _body("chat", STREAM_TURNS, True)
    requests = {label: _request(rig.gateways[label].port, body, True) for label in (ON, OFF)}
    for request in requests.values():
        loadgen.run(request, 200, 32)
    ctx.quiesce("signals c=32")
    ctx.log(f"signals c=32: {sizes.c32_batches} alternating batches of {sizes.c32_batch}")
    records = []
    for batch in range(sizes.c32_batches):
        for label in (ON, OFF) if batch % 2 == 0 else (OFF, ON):
            gateway = rig.gateways[label]
            worker = worker_pid(gateway)
            g0, w0 = _thread_cpu(gateway.pid), _thread_cpu(worker)
            result = loadgen.run(requests[label], sizes.c32_batch, 32)
            time.sleep(0.2)  # the worker finishes what this batch queued (or skips it) before the next
            spent, worker_spent = _thread_cpu(gateway.pid) - g0, _thread_cpu(worker) - w0
            ok = len(result.ok)
            records.append(
                {
                    "target": label,
                    "load": "stream-c32",
                    "c": 32,
                    "round": batch,
                    "rps": ok / result.wall if result.wall else math.nan,
                    "ttft_p50_ms": percentiles([s.ttft * 1e3 for s in result.ok])["p50"],
                    "cpu_us": spent / max(1, ok) * 1e6,
                    "worker_cpu_us": worker_spent / max(1, ok) * 1e6,
                    "requests": ok,
                    "errors": result.errors,
                }
            )
    by_round = {(rec["round"], rec["target"]): rec for rec in records}
    for record in records:
        off = by_round.get((record["round"], OFF))
        if record["target"] == OFF or off is None:
            continue
        record["x_rps"] = off["rps"] / record["rps"] if record["rps"] else math.nan
        record["x_ttft_p50_ms"] = (
            record["ttft_p50_ms"] / off["ttft_p50_ms"] if off["ttft_p50_ms"] else math.nan
        )
        record["x_cpu"] = record["cpu_us"] / off["cpu_us"] if off["cpu_us"] else math.nan
    return records


def _cost(ctx: Context, rig: _Rig, sizes: _Sizes) -> list[dict[str, Any]]:
    """Worker CPU per analysed conversation, by shape and size, cold and warm (c=1, non-streaming)."""
    gateway = rig.gateways[ON]
    records = []
    seed = 1000
    for shape in SHAPES:
        for turns in TURNS:
            for kind in ("cold", "warm"):
                if kind == "cold":
                    bodies = [_body(shape, turns, False, seed + i) for i in range(sizes.cost_n)]
                    seed += sizes.cost_n
                else:
                    bodies = [_body(shape, turns, False, 7)] * sizes.cost_n
                    loadgen.run(_request(gateway.port, bodies[0], False), 1, 1)  # seen once before
                ctx.quiesce(f"signals cost {shape} {turns} {kind}")
                before = _metrics(rig.metrics[ON])
                count0, inside0 = _analyses(before)
                worker = worker_pid(gateway)
                w0 = _thread_cpu(worker)
                for body in bodies:
                    loadgen.run(_request(gateway.port, body, False), 1, 1)
                after = _settle(rig, _answered(before) + len(bodies))
                count1, inside1 = _analyses(after)
                analysed = count1 - count0
                records.append(
                    {
                        "target": ON,
                        "load": f"{shape} {turns} msgs, {kind}",
                        "round": 0,
                        "worker_ms": (_thread_cpu(worker) - w0) / analysed * 1e3 if analysed else math.nan,
                        "inside_ms": (inside1 - inside0) / analysed * 1e3 if analysed else math.nan,
                        "body_kib": statistics.mean(len(b) for b in bodies) / 1024,
                        "requests": int(analysed),
                    }
                )
    return records


_COLUMNS = [
    Column("target", "target", "s"),
    Column("load", "load", "s"),
    Column("ttft_p50_ms", "TTFT p50 ms", ".3f"),
    Column("ttft_p99_ms", "TTFT p99 ms", ".3f"),
    Column("x_ttft_p50_ms", "TTFT p50 on/off", "x"),
    Column("x_ttft_p99_ms", "TTFT p99 on/off", "x"),
    Column("rps", "req/s", ".0f"),
    Column("x_rps", "req/s off/on", "x"),
    Column("cpu_us", "gateway CPU µs/req", ".0f"),
    Column("x_cpu", "gateway CPU on/off", "x"),
    Column("worker_cpu_us", "worker CPU µs/req", ".0f"),
    Column("body_kib", "body KiB", ".1f"),
    Column("worker_ms", "worker CPU ms/analysis", ".2f"),
    Column("inside_ms", "analysis CPU ms (worker's count)", ".2f"),
    Column("requests", "ok", "d"),
    Column("errors", "errors", "d"),
]


@scenario(
    "signals",
    "16. Signals: streaming TTFT and throughput on vs off, worker CPU per conversation",
    order=16,
    modes=("quick", "full"),
)
def signals(ctx: Context) -> ScenarioResult:
    """Issue 14's signals bench (see the module docstring for what and why)."""
    result = ScenarioResult("signals", SCENARIOS["signals"].title)
    sizes = _Sizes.for_mode(ctx.budget.mode)
    result.params = {
        "gateways": f"{ON} (default), {OFF} and {CONTROL} (disable_signals), same config, server CPU",
        "stream body": f"{STREAM_TURNS}-message chat conversation, stream: true, 20 chunks from the mock",
        "c1": f"{sizes.c1_n} requests per gateway and round, one to each gateway in turn",
        "c32": f"{sizes.c32_batches} alternating batches of {sizes.c32_batch} per gateway",
        "cost": f"{sizes.cost_n} analyses per shape, size and kind; shapes {', '.join(SHAPES)}",
        "rounds": ctx.budget.rounds,
        "cpu": "on-CPU time from /proc/<pid>/task/*/schedstat: the gateway's threads, the worker's",
    }
    with _rig(ctx) as rig:
        records = _stream_c1(ctx, rig, sizes) + _stream_c32(ctx, rig, sizes) + _cost(ctx, rig, sizes)
        final = _metrics(rig.metrics[ON])
        shown = {k: v for k, v in final.items() if "skipped" in k or "failed" in k or k.endswith("_count")}
        result.notes.append(
            f"`{ON}` signals counters at the end: "
            + (", ".join(f"{k} {v:g}" for k, v in sorted(shown.items())) or "none")
            + "."
        )
    result.records = records
    result.rows = summarise(records, ("target", "load"))
    result.columns = list(_COLUMNS)
    _checks(result)
    result.notes.append(
        "c=1 and c=32 rows: medians over rounds (c=32: over batch pairs); on/off ratios are taken within a "
        "round or batch pair, then the median.  Cost rows: the worker's on-CPU time per analysis (decode, "
        "analysis, frames) and the CPU the worker counted inside the analysis; cold = a conversation never "
        "seen, warm = the same conversation again."
    )
    return result


def _checks(result: ScenarioResult) -> None:
    rows = result.rows
    c1, c32 = _row(rows, ON, load="stream-c1"), _row(rows, ON, load="stream-c32")
    result.checks += [
        Check.at_most(
            "Signals on: streaming TTFT p50 vs off (c=1)", c1.get("x_ttft_p50_ms", math.nan), 1.03, TIMES
        ),
        Check.info("Signals on: streaming TTFT p99 vs off (c=1)", c1.get("x_ttft_p99_ms", math.nan), TIMES),
        Check.info(
            "Control (signals off) vs off: TTFT p50 (c=1), this measurement's noise",
            _row(rows, CONTROL, load="stream-c1").get("x_ttft_p50_ms", math.nan),
            TIMES,
        ),
        Check.at_most(
            "Signals on: streaming throughput, off over on (c=32)", c32.get("x_rps", math.nan), 1.03, TIMES
        ),
        Check.info("Signals on: streaming TTFT p50 vs off (c=32)", c32.get("x_ttft_p50_ms", math.nan), TIMES),
        Check.info("Signals on: gateway CPU/request vs off (c=32)", c32.get("x_cpu", math.nan), TIMES),
    ]
    for shape in SHAPES:
        for turns in TURNS:
            row = _row(rows, ON, load=f"{shape} {turns} msgs, cold")
            result.checks.append(
                Check.info(
                    f"Worker CPU per analysis, {shape}, {turns} messages, cold",
                    row.get("worker_ms", math.nan),
                    "ms",
                )
            )
