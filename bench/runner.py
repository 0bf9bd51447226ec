"""One bench run: start everything, check it answers, run the selected scenarios, stop, report.

Order of events and why:

1. Pinning.  With >= 2 CPUs and ``taskset`` available, servers under test go to CPU0 and everything
   that generates or answers load (this process and its timing client, wrk, the mocks) to CPU1, so the
   measured server never competes with its own load generator (``docs/measurements.md``, "Benchmark
   method").  Recorded in the results either way.
2. Mocks (one per profile), then the targets: ``floor`` (not in smoke), ``plano-trio``, and with
   ``--peers litellm,portkey`` LiteLLM and Portkey's gateway.  ``direct`` is the mocks themselves.
3. Warm-up and a correctness gate: every target must answer every profile (complete streams) before
   anything is measured; idle memory is read right after.
4. Scenarios in registry order, each saved to ``results.json`` as soon as it finishes, so a crash or a
   Ctrl-C late in a long run keeps what was measured.
5. Every process stopped by its own pid; then Markdown, JSON and charts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import platform
import resource
import secrets
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import loadgen, procstat, report, wrk
from bench.scenarios import SCENARIOS, Budget, Context, git_describe, probe_translation
from bench.targets import Proc, Target, default_profiles, free_port, gateway_config, python, spawn

__all__ = ["Options", "run"]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    mode: str = "full"  # smoke | quick | full
    peers: tuple[str, ...] = ()
    out: Path | None = None
    scenarios: tuple[str, ...] = ()  # empty: every scenario registered for the mode
    pin: bool = True
    charts: bool = True
    gateway_pool: int | None = None  # plano_trio.upstream_pool_max_per_host (None: the product default)


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("plano-trio", "trio", "hypercorn", "h11", "msgspec", "uvloop"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def _machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "mem_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
    }


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _cpu_pressure() -> str:
    """``some avg60`` of ``/proc/pressure/cpu``: how much of the last minute some runnable task waited
    for a CPU (other tenants' work shows here even when the load average looks modest)."""
    try:
        for line in Path("/proc/pressure/cpu").read_text().splitlines():
            if line.startswith("some"):
                fields = dict(f.split("=", 1) for f in line.split()[1:])
                return f"{float(fields['avg60']):.0f} %"
    except (OSError, ValueError, KeyError):
        pass
    return "?"


def raise_fd_limit() -> int:
    """1,000 streams through a proxy need ~2,000 fds in the proxy and 1,000 here; children inherit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _selected(options: Options) -> list[str]:
    if options.scenarios:
        unknown = [s for s in options.scenarios if s not in SCENARIOS]
        if unknown:
            raise SystemExit(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        return sorted(options.scenarios, key=lambda k: SCENARIOS[k].order)
    return [k for k, s in sorted(SCENARIOS.items(), key=lambda kv: kv[1].order) if options.mode in s.modes]


def _check_target(target: Target, ctx: Context) -> list[str]:
    """Every profile through ``target`` must answer completely before we measure anything."""
    problems = []
    for profile in ctx.profiles.values():
        if not profile.probe or not target.supports(profile.key):
            continue
        request = target.request(profile)
        result = loadgen.run(request, 3 if profile.key != "paced" else 1, 1, cap_s=30, timeout_s=20)
        if result.errors or not result.ok:
            problems.append(f"{target.name}/{profile.key}: {'; '.join(result.error_kinds()) or 'no answer'}")
    return problems


def run(options: Options) -> Path:
    """Run the bench and return the results directory."""
    budget = Budget.for_mode(options.mode)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = options.out or BENCH_DIR / "results" / f"{stamp}-{options.mode}"
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    t_start = time.perf_counter()

    cpus = sorted(os.sched_getaffinity(0))
    pin = options.pin and len(cpus) >= 2 and shutil.which("taskset") is not None
    server_cpu, client_cpu = (cpus[0], cpus[1]) if pin else (None, None)
    old_affinity = set(cpus)
    if pin and client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    fd_limit = raise_fd_limit()
    # smoke checks the harness in seconds: the timing client's 200 requests instead of >= 1 s wrk runs
    use_wrk = wrk.available() and options.mode != "smoke"

    profiles = default_profiles(budget.paced_chunks, budget.paced_delay_ms, budget.long_chunks)
    procs: list[Proc] = []
    meta: dict[str, Any] = {
        "timestamp": stamp,
        "mode": options.mode,
        "machine": _machine(),
        "versions": _versions(),
        "git": git_describe(REPO),
        "pinning": (
            f"yes: servers on CPU{server_cpu}; mocks, timing client and wrk on CPU{client_cpu}"
            if pin
            else "no (fewer than 2 CPUs, taskset missing, or --no-pin)"
        ),
        "wrk": wrk.version() if use_wrk else "not installed: throughput via the timing client",
        "fd_limit": fd_limit,
        "loadavg_start": _loadavg(),
        "cpu_pressure_start": _cpu_pressure(),
        "clock_ticks": procstat.clock_ticks(),
        "profiles": {k: dataclasses.asdict(p) for k, p in profiles.items()},
        "budget": dataclasses.asdict(budget),
    }
    results: list[Any] = []
    ctx: Context | None = None
    try:
        _log(f"mode {options.mode}; results in {out}; pinning: {'on' if pin else 'off'}")
        mocks: dict[str, Proc] = {}
        for key, profile in profiles.items():
            cmd = [
                python(),
                "-m",
                "tests.mock_provider",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                *profile.mock_args(),
            ]
            mocks[key] = spawn(f"mock-{key}", cmd, logs, cpu=client_cpu, cwd=REPO)
            procs.append(mocks[key])
        targets: dict[str, Target] = {"direct": Target("direct", dict(mocks), proxies=False)}

        if options.mode != "smoke":
            floor = spawn(
                "floor", [python(), "-m", "bench.floor_app", "--port", "0"], logs, cpu=server_cpu, cwd=REPO
            )
            procs.append(floor)
            # constant replies, shaped per request by x-mock-* headers; no upstream
            targets["floor"] = Target("floor", {"*": floor}, proxies=False, mock_headers=True)

        port = free_port()
        config = out / "plano-trio.yaml"
        extra = ""
        if options.gateway_pool is not None:
            extra = f"plano_trio:\n  upstream_pool_max_per_host: {options.gateway_pool}\n"
        meta["gateway_pool"] = options.gateway_pool or "default (plano_trio.upstream_pool_max_per_host)"
        config.write_text(gateway_config(port, mocks, profiles, extra))
        gw = spawn(
            "plano-trio",
            [python(), "-m", "plano_trio", "up", str(config), "--log-level", "warning"],
            logs,
            cpu=server_cpu,
            url=f"http://127.0.0.1:{port}",
            cwd=REPO,
        )
        procs.append(gw)
        targets["plano-trio"] = Target("plano-trio", {"*": gw})

        if "litellm" in options.peers:
            from bench import peers

            key = "sk-bench-" + secrets.token_hex(16)
            _log("starting LiteLLM (installs into bench/.peers/litellm on first use)")
            lite = peers.start_litellm(mocks, profiles, logs, server_cpu, key)
            procs.append(lite)
            targets["litellm"] = Target("litellm", {"*": lite}, api_key=key)
            meta["versions"]["litellm"] = peers.litellm_version()

        if "portkey" in options.peers:
            from bench import portkey

            _log("starting Portkey's gateway (installs into bench/.peers/portkey on first use)")
            pk = portkey.start_portkey(logs, server_cpu)
            procs.append(pk)
            targets["portkey"] = portkey.portkey_target(pk, mocks, profiles)
            meta["versions"].update(portkey.portkey_versions())

        ctx = Context(budget, profiles, targets, mocks, out, server_cpu, client_cpu, use_wrk, log=_log)
        ctx.gateway_extra = extra
        problems = [p for t in targets.values() for p in _check_target(t, ctx)]
        if problems:
            meta["startup_problems"] = problems
            _log("warm-up problems:\n  " + "\n  ".join(problems))
            if any(p.startswith(("plano-trio/", "direct/")) for p in problems):
                raise RuntimeError(
                    "plano-trio or the mock did not answer correctly; see logs in " + str(logs)
                )
        for name, target in targets.items():
            pid = target.server("paced").pid if name == "direct" else target.main.pid
            ctx.idle_memory[name] = procstat.memory(pid)
        ctx.translation = probe_translation(targets["plano-trio"])
        meta["translation"] = ctx.translation or "works (anthropic model answered with a translated reply)"
        meta["targets"] = {
            name: {
                "pids": {k: p.pid for k, p in t.procs.items()},
                "ready_s": round(t.main.ready_s, 3),
                "idle_rss_mib": round(ctx.idle_memory[name].rss_mib, 1),
            }
            for name, t in targets.items()
        }

        for key in _selected(options):
            spec = SCENARIOS[key]
            _log(f"scenario {spec.title}")
            t0 = time.perf_counter()
            try:
                result = spec.fn(ctx)
            except Exception as error:  # keep the rest of the run; the failure is part of the report
                _log(f"scenario {key} failed: {type(error).__name__}: {error}")
                from bench.model import ScenarioResult

                result = ScenarioResult(key, spec.title, skipped=f"failed: {type(error).__name__}: {error}")
            result.seconds = time.perf_counter() - t0
            results.append(result)
            for name, target in targets.items():
                if not all(p.alive() for p in target.procs.values()):
                    raise RuntimeError(f"target {name} died during {key}; see {logs}")
            meta["quiesce"] = ctx.shared.get("quiesce", [])
            report.write_json(out, meta, results)
    finally:
        for proc in reversed(procs):
            proc.stop()
        if pin:
            os.sched_setaffinity(0, old_affinity)
        meta["loadavg_end"] = _loadavg()
        meta["cpu_pressure_end"] = _cpu_pressure()
        meta["seconds"] = round(time.perf_counter() - t_start, 1)
        if results:
            report.write_json(out, meta, results)
    report.write_all(out, meta, results, charts=options.charts)
    _log(f"done in {meta['seconds']} s: {out}")
    return out
