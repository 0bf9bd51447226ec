"""Turn scenario results into ``results.md``, ``results.json`` and PNG charts.

The Markdown leads with the PASS/FAIL table of the issue's targets (ratios against the same run, or
against the issue's earlier measurements where labelled so), then one table per scenario with ratio
columns first and absolute numbers after: absolute req/s on a shared 2-vCPU VM move by up to 2x between
identical runs, ratios within a run and CPU per request do not (see README "How to read the numbers").

Charts are optional: without matplotlib the run still writes Markdown and JSON and says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.model import DASH, TIMES, Chart, Check, ScenarioResult

__all__ = ["markdown", "render_charts", "write_all", "write_json"]


def _clean(value: Any) -> Any:
    """JSON has no NaN: map it to null, recursively."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def all_checks(results: Sequence[ScenarioResult]) -> list[Check]:
    return [c for r in results for c in r.checks]


def write_json(out: Path, meta: dict[str, Any], results: Sequence[ScenarioResult]) -> Path:
    path = out / "results.json"
    data = {
        "meta": meta,
        "checks": [
            {"scenario": r.key, "name": c.name, "measured": c.measured, "unit": c.unit, "goal": c.goal}
            | {"verdict": c.verdict, "note": c.note}
            for r in results
            for c in r.checks
        ],
        "scenarios": [r.to_json() for r in results],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_clean(data), indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def _fmt_measured(check: Check) -> str:
    if math.isnan(check.measured):
        return DASH
    value = f"{check.measured:.2f}" if abs(check.measured) < 100 else f"{check.measured:.0f}"
    return f"{value}{TIMES if check.unit == TIMES else ' ' + check.unit}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def markdown(meta: dict[str, Any], results: Sequence[ScenarioResult], charts: Sequence[str] = ()) -> str:
    machine = meta.get("machine", {})
    versions = meta.get("versions", {})
    lines = [
        f"# plano-trio bench — {meta.get('mode')} — {meta.get('timestamp')}",
        "",
        f"- machine: {machine.get('cpus')} CPU ({machine.get('cpu_model')}), {machine.get('mem_gib')} GiB; "
        f"load average {meta.get('loadavg_start')} at start, {meta.get('loadavg_end', '?')} at end; "
        f"CPU pressure (share of time some task waited for a CPU, last 60 s) "
        f"{meta.get('cpu_pressure_start', '?')} at start, {meta.get('cpu_pressure_end', '?')} at end",
        f"- pinning: {meta.get('pinning')}",
        f"- gateway upstream pool per origin: {meta.get('gateway_pool', '?')}; "
        f"translated path: {meta.get('translation', '?')}",
        f"- load generators: {meta.get('wrk')}; timing client = asyncio+uvloop raw HTTP/1.1",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + f"; git {meta.get('git')}",
        f"- run took {meta.get('seconds', '?')} s; medians over "
        f"{meta.get('budget', {}).get('rounds', '?')} interleaved round(s); CPU from /proc (utime+stime)",
        "",
        "## Targets",
        "",
    ]
    checks = all_checks(results)
    if checks:
        lines += _table(
            ["target", "measured", "goal", "result", "note"],
            [[c.name, _fmt_measured(c), c.goal, f"**{c.verdict}**", c.note] for c in checks],
        )
    else:
        lines.append("(no target was evaluated in this run)")
    if meta.get("startup_problems"):
        lines += ["", "Warm-up problems: " + "; ".join(meta["startup_problems"])]
    if meta.get("quiesce"):
        lines += ["", "Waits for busy servers to go idle before a measured run:"]
        lines += [f"- {item}" for item in meta["quiesce"]]
    for result in results:
        lines += ["", f"## {result.title}", ""]
        if result.skipped:
            lines.append(f"*Skipped:* {result.skipped}")
            continue
        if result.params:
            lines.append(
                "<sub>" + ", ".join(f"{k}={v}" for k, v in result.params.items() if v is not None) + "</sub>"
            )
            lines.append("")
        lines += _table(
            [c.header for c in result.columns],
            [[c.render(row.get(c.key)) for c in result.columns] for row in result.rows],
        )
        errors = [
            f"{row['target']}: {'; '.join(row['error_kinds'])}"
            for row in result.rows
            if row.get("error_kinds")
        ]
        notes = result.notes + (["Errors — " + " · ".join(errors)] if errors else [])
        if notes:
            lines.append("")
            lines += [f"- {note}" for note in notes]
    if charts:
        lines += ["", "## Charts", ""]
        lines += [f"![{name}]({name})" for name in charts]
    return "\n".join(lines) + "\n"


def render_charts(out: Path, results: Sequence[ScenarioResult]) -> tuple[list[str], str | None]:
    """Write every chart as PNG; returns (file names, or a reason no charts were drawn)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "matplotlib not installed (pip install matplotlib): no charts"
    written = []
    for result in results:
        for chart in result.charts:
            if not any(chart.series.values()):
                continue
            fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
            if chart.kind == "cdf":
                _draw_cdf(ax, chart)
            elif chart.kind == "lines":
                _draw_lines(ax, chart)
            else:
                _draw_bars(ax, chart)
            ax.set_title(chart.title)
            ax.set_xlabel(chart.xlabel)
            if chart.ylabel:
                ax.set_ylabel(chart.ylabel)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            fig.savefig(out / chart.filename)
            plt.close(fig)
            written.append(chart.filename)
    return written, None


def _draw_cdf(ax: Any, chart: Chart) -> None:
    for name, values in chart.series.items():
        if not values:
            continue
        ordered = sorted(values)
        n = len(ordered)
        ax.step(ordered, [(i + 1) / n for i in range(n)], where="post", label=f"{name} (n={n:,})")
    if chart.log_x:
        ax.set_xscale("log")
    if chart.vline is not None:
        ax.axvline(chart.vline, color="grey", linestyle="--", linewidth=1)
    ax.set_ylabel(chart.ylabel or "fraction ≤ x")
    ax.set_ylim(0, 1.01)


_TICKED = 12  # a ``lines`` chart with more x values gets matplotlib's own ticks


def _draw_lines(ax: Any, chart: Chart) -> None:
    for name, values in chart.series.items():
        points = [
            (x, v)
            for x, v in zip(chart.x, values, strict=False)
            if not math.isnan(v) and (v > 0 or not chart.log_y)  # a log axis has no place for v <= 0
        ]
        if points:
            marker = "o" if len(chart.x) <= _TICKED else None  # a time series of hundreds: a plain line
            ax.plot([x for x, _ in points], [v for _, v in points], marker=marker, label=name)
    if chart.log_x:
        ax.set_xscale("log")
    if len(chart.x) <= _TICKED:  # a few measured points (N = 100, 300, 1,000): a tick at each
        ax.set_xticks(chart.x, [f"{x:,g}" for x in chart.x])
    if chart.log_y:
        ax.set_yscale("log")
    if chart.hline is not None:
        ax.axhline(chart.hline, color="grey", linestyle="--", linewidth=1)


def _draw_bars(ax: Any, chart: Chart) -> None:
    names = list(chart.series)
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [0.0 if math.isnan(v) else v for v in chart.series[name]]
        xs = [j + i * width for j in range(len(chart.categories))]
        bars = ax.bar(xs, values, width, label=name)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7)
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(chart.categories))], chart.categories)
    positive = [v for vs in chart.series.values() for v in vs if v > 0 and not math.isnan(v)]
    if positive and max(positive) / min(positive) > 20:  # direct dwarfs the proxies on a linear axis
        ax.set_yscale("log")


def write_all(
    out: Path, meta: dict[str, Any], results: Sequence[ScenarioResult], charts: bool = True
) -> Path:
    """JSON, charts and Markdown; returns the Markdown path (also printed by the CLI)."""
    names: list[str] = []
    if charts:
        names, reason = render_charts(out, results)
        if reason:
            meta["charts"] = reason
    write_json(out, meta, results)
    path = out / "results.md"
    path.write_text(markdown(meta, results, names))
    return path
