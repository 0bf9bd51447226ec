"""The ``workers`` bench scenario's arithmetic: scaling efficiency, memory per worker, process roles, the
smallest worker count that meets the long-stream target (pure functions, no processes)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.workers_scenario import (
    ONE,
    PINNED,
    TWO,
    Placement,
    added_per_worker,
    long_n,
    pair_with_base,
    placements,
    process_roles,
    scaling_efficiency,
    smallest_workers,
    worker_share,
)

NAN = math.nan


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


@pytest.mark.parametrize(
    ("rps", "workers", "base_rps", "base_workers", "expected"),
    [
        (2000.0, 2, 1000.0, 1, 1.0),  # perfect scaling
        (1500.0, 2, 1000.0, 1, 0.75),
        (1000.0, 2, 1000.0, 1, 0.5),  # the second worker added nothing
        (800.0, 1, 1000.0, 1, 0.8),  # one worker against another placement: a plain rps ratio
        (3000.0, 4, 1500.0, 2, 1.0),  # against a two-worker base
        (NAN, 2, 1000.0, 1, NAN),
        (2000.0, 2, NAN, 1, NAN),
        (2000.0, 2, 0.0, 1, NAN),
        (2000.0, 0, 1000.0, 1, NAN),
    ],
)
def test_scaling_efficiency(
    rps: float, workers: int, base_rps: float, base_workers: int, expected: float
) -> None:
    assert _same(scaling_efficiency(rps, workers, base_rps, base_workers), expected)


@pytest.mark.parametrize(
    ("tree", "workers", "base", "base_workers", "expected"),
    [
        (96.0, 2, 43.0, 1, 53.0),  # issue 16's "tree PSS at N=2 - tree PSS at N=1"
        (150.0, 4, 60.0, 1, 30.0),  # spread over the three added workers
        (40.0, 2, 43.0, 1, -3.0),  # a smaller tree is reported, not hidden
        (96.0, 1, 43.0, 1, NAN),  # no worker added
        (NAN, 2, 43.0, 1, NAN),
        (96.0, 2, NAN, 1, NAN),
    ],
)
def test_added_per_worker(tree: float, workers: int, base: float, base_workers: int, expected: float) -> None:
    assert _same(added_per_worker(tree, workers, base, base_workers), expected)


def _rec(target: str, rnd: int, section: str, workers: int, rps: float, cpu_us: float) -> dict[str, Any]:
    return {
        "target": target,
        "round": rnd,
        "section": section,
        "workers": workers,
        "rps": rps,
        "cpu_us": cpu_us,
    }


def test_pair_with_base_same_round_and_section() -> None:
    records = [
        _rec(ONE, 0, "json c=32", 1, 1000, 1000),
        _rec(TWO, 0, "json c=32", 2, 1500, 1200),
        _rec(PINNED, 0, "json c=32", 1, 900, 950),
        _rec(ONE, 1, "json c=32", 1, 500, 1100),  # a slow round: its pair is judged against it
        _rec(TWO, 1, "json c=32", 2, 900, 1210),
        _rec(TWO, 0, "stream20 c=32", 2, 400, 2000),  # no base in this section
    ]
    pair_with_base(records, ONE)
    got = [(r["efficiency"], r["cpu_vs_base"]) for r in records]
    expected = [(NAN, NAN), (0.75, 1.2), (0.9, 0.95), (NAN, NAN), (0.9, 1.1), (NAN, NAN)]
    for (eff, cpu), (want_eff, want_cpu) in zip(got, expected, strict=True):
        assert _same(eff, want_eff) and _same(cpu, want_cpu)


@pytest.mark.parametrize(
    ("children", "workers", "expected"),
    [
        ({}, 1, {10: "gateway"}),
        ({10: [11]}, 1, {10: "gateway", 11: "gateway's child"}),  # the signals analysis child
        (
            {10: [21, 20], 20: [30], 21: [31], 31: [40]},
            2,
            {
                10: "supervisor",
                20: "worker 1",
                21: "worker 2",
                30: "worker 1's child",
                31: "worker 2's child",
                40: "worker 2's child",
            },
        ),
        ({10: [20, 21]}, 2, {10: "supervisor", 20: "worker 1", 21: "worker 2"}),
        ({}, 2, {10: "supervisor"}),  # workers gone: only the supervisor is left to name
    ],
)
def test_process_roles(children: dict[int, list[int]], workers: int, expected: dict[int, str]) -> None:
    assert process_roles(10, children, workers) == expected


def _long(workers: int, completed: float, gap_p99: float, bunched: float = 0.0) -> dict[str, Any]:
    return {
        "workers": workers,
        "completed_pct": completed,
        "added_gap_p99_ms": gap_p99,
        "bunched_pct": bunched,
    }


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([_long(1, 100.0, 12.0), _long(2, 100.0, 8.0)], 1),
        ([_long(1, 88.0, 180.0), _long(2, 100.0, 15.0)], 2),
        ([_long(1, 100.0, 25.0), _long(2, 99.9, 10.0)], None),  # one stream short is a miss
        ([_long(1, 100.0, 3.0, bunched=80.0), _long(2, 100.0, 19.0)], 2),  # clumped, not paced
        ([_long(2, 100.0, 10.0), _long(1, 100.0, 10.0)], 1),  # order does not matter
        ([_long(1, 100.0, NAN), _long(2, 100.0, 20.0)], 2),  # the bound is inclusive
        ([{"workers": 1, "error_kinds": ["no answer"]}], None),  # a gateway that never streamed
        ([], None),
    ],
)
def test_smallest_workers(rows: list[dict[str, Any]], expected: int | None) -> None:
    assert smallest_workers(rows) == expected


@pytest.mark.parametrize(
    ("server", "client", "expected"),
    [
        (0, 1, [Placement(PINNED, 1, (0,)), Placement(ONE, 1, (0, 1)), Placement(TWO, 2, (0, 1))]),
        (None, None, [Placement(ONE, 1, None), Placement(TWO, 2, None)]),  # --no-pin or one CPU
    ],
)
def test_placements(server: int | None, client: int | None, expected: list[Placement]) -> None:
    assert placements(server, client) == expected


@pytest.mark.parametrize(
    ("mode", "env", "expected"),
    [
        ("full", None, 1000),
        ("quick", None, 1000),
        ("smoke", None, 20),
        ("quick", "300", 300),
        ("full", "0", 0),
    ],
)
def test_long_n(monkeypatch: pytest.MonkeyPatch, mode: str, env: str | None, expected: int) -> None:
    if env is None:
        monkeypatch.delenv("PLANO_TRIO_BENCH_WORKERS_LONG_N", raising=False)
    else:
        monkeypatch.setenv("PLANO_TRIO_BENCH_WORKERS_LONG_N", env)
    assert long_n(mode) == expected


@pytest.mark.parametrize(
    ("pss", "workers", "expected"),
    [
        (
            {
                "tree": 98.0,
                "supervisor": 25.0,
                "worker 1": 26.0,
                "worker 1's child": 10.0,
                "worker 2": 27.0,
                "worker 2's child": 10.0,
            },
            2,
            36.5,
        ),
        ({"tree": 43.0, "gateway": 33.0, "gateway's child": 10.0}, 1, NAN),  # no supervisor, no workers
        ({"supervisor": 25.0, "worker 1": 26.0}, 2, 13.0),  # a worker gone: the mean says so
        ({}, 2, NAN),
    ],
)
def test_worker_share(pss: dict[str, float], workers: int, expected: float) -> None:
    assert _same(worker_share(pss, workers), expected)
