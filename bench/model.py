"""Result types shared by the scenarios, the runner and the report (plain data, JSON-friendly).

Kept apart from ``scenarios`` so the report can render any scenario generically: a scenario declares
its columns, rows (medians over rounds), raw per-round records, PASS/FAIL checks and chart series, and
``report`` turns those into Markdown, JSON and PNGs without knowing what the scenario measured.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal, cast

from bench.stats import median

__all__ = ["DASH", "TIMES", "Chart", "Check", "Column", "ScenarioResult", "summarise"]

TIMES = "\u00d7"  # the ratio sign used in tables and check units
DASH = "\u2013"  # a missing value in a table


@dataclasses.dataclass(frozen=True, slots=True)
class Column:
    """A table column: ``fmt`` is a format spec (``".2f"``), ``"x"`` for a ratio, ``"s"`` for text."""

    key: str
    header: str
    fmt: str = ".2f"

    def render(self, value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return DASH
        if self.fmt == "s":
            return str(value)
        if self.fmt == "x":
            return f"{value:.2f}{TIMES}"
        if self.fmt == "d":
            return f"{int(value):,}"
        return format(value, self.fmt)


def _unit(unit: str) -> str:
    return unit if unit in (TIMES, "") else f" {unit}"


@dataclasses.dataclass(slots=True)
class Check:
    """One target from the issue, evaluated on this run.  ``passed`` None means informational/not run."""

    name: str
    measured: float
    unit: str
    goal: str
    passed: bool | None
    note: str = ""

    @classmethod
    def at_most(cls, name: str, measured: float, limit: float, unit: str, note: str = "") -> Check:
        ok = None if math.isnan(measured) else measured <= limit
        return cls(name, measured, unit, f"≤ {limit:g}{_unit(unit)}", ok, note)

    @classmethod
    def at_least(cls, name: str, measured: float, limit: float, unit: str, note: str = "") -> Check:
        ok = None if math.isnan(measured) else measured >= limit
        return cls(name, measured, unit, f"≥ {limit:g}{_unit(unit)}", ok, note)

    @classmethod
    def info(cls, name: str, measured: float, unit: str, note: str = "") -> Check:
        return cls(name, measured, unit, "(info)", None, note)

    @property
    def verdict(self) -> str:
        if self.goal == "(info)":
            return "info"
        if self.passed is None:
            return "n/a"
        return "PASS" if self.passed else "FAIL"


@dataclasses.dataclass(slots=True)
class Chart:
    """Data for one PNG.  ``cdf``: series of raw values; ``bars``: one value per category per series;
    ``lines``: one value per ``x`` per series (a curve, e.g. added gap against the number of streams)."""

    kind: Literal["cdf", "bars", "lines"]
    filename: str
    title: str
    xlabel: str
    ylabel: str = ""
    series: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    categories: list[str] = dataclasses.field(default_factory=list)
    log_x: bool = False
    vline: float | None = None  # e.g. the 20 ms pacing on a gap chart
    hline: float | None = None  # e.g. a target on a ``lines`` chart
    log_y: bool = False
    x: list[float] = dataclasses.field(default_factory=list)  # ``lines``: the x of each value


@dataclasses.dataclass(slots=True)
class ScenarioResult:
    key: str
    title: str
    columns: list[Column] = dataclasses.field(default_factory=list)
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    records: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    checks: list[Check] = dataclasses.field(default_factory=list)
    charts: list[Chart] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    skipped: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "params": self.params,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 2),
            "columns": [dataclasses.asdict(c) for c in self.columns],
            "rows": self.rows,
            "rounds": self.records,
            "checks": [dataclasses.asdict(c) | {"verdict": c.verdict} for c in self.checks],
            "notes": self.notes,
        }


_SUMMED = ("requests", "errors", "streams", "timed_out")


def summarise(records: Sequence[dict[str, Any]], group: Iterable[str] = ("target",)) -> list[dict[str, Any]]:
    """Collapse per-round records into one row per group: numbers -> median over rounds, except counts
    (requests, errors, …) which are summed; lists of error kinds are merged; other values kept."""
    keys = tuple(group)
    grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(tuple(record[k] for k in keys), []).append(record)
    rows = []
    for ident, items in grouped.items():
        row: dict[str, Any] = dict(zip(keys, ident, strict=True))
        row["rounds"] = len(items)
        for name in items[0]:
            if name in keys or name == "round":
                continue
            values = [it.get(name) for it in items]
            if name in _SUMMED:
                row[name] = sum(int(v or 0) for v in values)
            elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                row[name] = median(float(v) for v in values if v is not None)
            elif all(isinstance(v, list) for v in values):
                merged: list[Any] = []
                for v in values:
                    merged += [x for x in cast(list[Any], v) if x not in merged]
                row[name] = merged[:5]
            else:
                row[name] = values[0]
        rows.append(row)
    return rows
