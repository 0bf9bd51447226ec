"""The soak scenario's verdicts from its samples (bench.soak_scenario's pure core), without a gateway.

These functions decide whether a half-hour soak passes (RSS slope, CPU drift, descriptor growth), so a
wrong edge case there reads as a leak that is not there, or hides one that is.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.soak_scenario import (
    WARMUP_SHARE,
    Point,
    _cpu_per_request_us,
    _slope,
    after_warmup,
    drift,
    fd_growth,
    per_interval,
    rss_slope_mib_per_10min,
    thirds,
)

NAN = math.nan


def _pt(t: float, rss: float = 100.0, fds: int = 20, cpu: float = 0.0, requests: int = 0) -> Point:
    return Point(t_s=t, rss_mib=rss, fds=fds, cpu_s=cpu, requests=requests, errors=0)


def _same(got: float, expected: float) -> bool:
    """Equal within float rounding, NaN equal to NaN (a verdict of "not measurable" is a value here)."""
    if math.isnan(expected):
        return math.isnan(got)
    return got == pytest.approx(expected, rel=1e-9, abs=1e-9)


def _steady(n: int, step_s: float = 10.0, cost_s: float = 0.001, rps: int = 100) -> list[Point]:
    """n samples every step_s of a gateway serving rps requests a second at cost_s CPU seconds each."""
    return [_pt(i * step_s, cpu=i * step_s * rps * cost_s, requests=int(i * step_s * rps)) for i in range(n)]


# -- _slope ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xs", "ys", "expected"),
    [
        ([0, 1, 2, 3], [1, 3, 5, 7], 2.0),  # on a line
        ([0, 1, 2, 3], [5, 5, 5, 5], 0.0),  # flat
        ([0, 1, 2], [0, 1, 0], 0.0),  # a bump in the middle does not tilt the fit
        ([0, 1, 2, 3], [0, 0, 0, 4], 1.2),  # one high end: least squares, not first-vs-last (4/3)
        ([3, 0, 2, 1], [7, 1, 5, 3], 2.0),  # the order of the samples does not matter
        ([0, 10], [0, -5], -0.5),  # shrinking
        ([], [], NAN),
        ([1], [1], NAN),  # one sample: no slope
        ([2, 2, 2], [1, 2, 3], NAN),  # one distinct x: no slope
        ([0.7] * 7, [0, 1, 5, 2, 9, 1, 1], NAN),  # ... even where the mean of the xs rounds off them
    ],
)
def test_slope(xs: list[float], ys: list[float], expected: float) -> None:
    assert _same(_slope(xs, ys), expected)


_TIMES = st.lists(st.integers(0, 20_000), min_size=2, max_size=60, unique=True)


@given(_TIMES, st.floats(-50, 50), st.floats(-1e4, 1e4))
def test_slope_of_points_on_a_line_is_the_lines(ticks: list[int], m: float, c: float) -> None:
    xs = [t * 0.5 for t in ticks]  # sample times: half seconds, distinct
    assert _slope(xs, [m * x + c for x in xs]) == pytest.approx(m, rel=1e-6, abs=1e-6)


@given(st.integers(2, 30), st.floats(-1e4, 1e4), st.lists(st.floats(0, 1e4), min_size=30, max_size=30))
def test_slope_of_one_distinct_x_is_nan(n: int, x: float, ys: list[float]) -> None:
    assert math.isnan(_slope([x] * n, ys[:n]))


# -- after_warmup ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("times", "share", "kept"),
    [
        ([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 0.2, [20, 30, 40, 50, 60, 70, 80, 90, 100]),
        ([0, 10, 20, 30], 0.5, [20, 30]),  # a sample exactly at the boundary belongs to the tail
        ([0, 10, 20, 30], 0.0, [0, 10, 20, 30]),
        ([0, 10, 20, 30], 1.0, [30]),  # the last sample always stays
        ([0, 50, 55, 100], 0.5, [50, 55, 100]),  # by time, not by count
        ([0], 0.2, [0]),
        ([], 0.2, []),
    ],
)
def test_after_warmup(times: list[float], share: float, kept: list[float]) -> None:
    assert [p.t_s for p in after_warmup([_pt(t) for t in times], share)] == kept


@given(st.integers(1, 400), st.floats(0.01, 60), st.floats(0, 1))
def test_after_warmup_keeps_the_tail_share(n: int, step_s: float, share: float) -> None:
    """Evenly spaced samples from t=0: the tail after `share` of the run, as a suffix of the samples,
    holding the last `1 - share` of them (one either side for a sample on the boundary)."""
    points = [_pt(i * step_s) for i in range(n + 1)]
    tail = after_warmup(points, share)
    assert tail == points[len(points) - len(tail) :]  # a suffix
    assert tail[-1] is points[-1]
    assert abs((len(tail) - 1) - n * (1 - share)) <= 1


# -- rss_slope_mib_per_10min ----------------------------------------------------------------------------


def _rss_run(growth_per_10min: float, warmup_jump: float = 0.0, minutes: int = 30) -> list[Point]:
    """A sample a minute; RSS climbs by warmup_jump during the warm-up (caches filling), then grows
    steadily by growth_per_10min."""
    warm = minutes * WARMUP_SHARE
    points = []
    for i in range(minutes + 1):
        rss = 100 + warmup_jump * min(i, warm) / warm + growth_per_10min * max(0.0, i - warm) / 10
        points.append(_pt(i * 60.0, rss=rss))
    return points


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        (_rss_run(0.0), 0.0),
        (_rss_run(0.0, warmup_jump=40.0), 0.0),  # the warm-up's growth is not a leak
        (_rss_run(1.0, warmup_jump=40.0), 1.0),
        (_rss_run(2.5), 2.5),
        (_rss_run(-0.5), -0.5),  # memory given back
        ([_pt(0), _pt(600, rss=200)], NAN),  # one sample after the warm-up: no slope
        ([], NAN),
    ],
)
def test_rss_slope(points: list[Point], expected: float) -> None:
    assert _same(rss_slope_mib_per_10min(points), expected)


@given(st.floats(-5, 5), st.floats(0, 500), st.integers(10, 180))
def test_rss_slope_is_the_tails_growth_whatever_the_warmup_did(
    growth: float, warmup_jump: float, minutes: int
) -> None:
    assert rss_slope_mib_per_10min(_rss_run(growth, warmup_jump, minutes)) == pytest.approx(
        growth, rel=1e-6, abs=1e-6
    )


# -- _cpu_per_request_us and per_interval ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (_pt(0, cpu=1.0, requests=100), _pt(10, cpu=2.0, requests=1100), 1000.0),  # 1 s over 1000
        (_pt(0, cpu=1.0, requests=100), _pt(10, cpu=1.0, requests=200), 0.0),
        (_pt(0, cpu=1.0, requests=100), _pt(10, cpu=2.0, requests=100), NAN),  # nothing completed
    ],
)
def test_cpu_per_request(a: Point, b: Point, expected: float) -> None:
    assert _same(_cpu_per_request_us(a, b), expected)


def test_per_interval() -> None:
    points = [
        _pt(0, rss=100, fds=20, cpu=0.0, requests=0),
        _pt(10, rss=101, fds=22, cpu=0.5, requests=1000),
        _pt(20, rss=101.5, fds=21, cpu=0.7, requests=1000),  # an interval with nothing completed
        _pt(20, rss=102, fds=21, cpu=0.7, requests=1000),  # two samples at one time: no rate
    ]
    keys = ("minute", "rss_mib", "fds", "requests", "rps", "cpu_us", "cpu_util")
    expected = [
        (10 / 60, 101, 22, 1000, 100, 500, 0.05),
        (20 / 60, 101.5, 21, 0, 0, NAN, 0.02),
        (20 / 60, 102, 21, 0, NAN, NAN, NAN),
    ]
    rows = per_interval(points)
    assert [tuple(row) for row in rows] == [keys] * len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert all(_same(row[k], w) for k, w in zip(keys, want, strict=True)), (row, want)


def test_per_interval_of_fewer_than_two_points() -> None:
    assert per_interval([]) == per_interval([_pt(0)]) == []


# -- thirds, drift, fd_growth ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([0, 10, 20, 30, 40, 50, 60, 70, 80, 90], [0, 30, 60, 90]),
        ([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100], [0, 30, 70, 100]),  # the nearest sample to 1/3, 2/3
        ([0, 10, 20, 30], [0, 10, 20, 30]),
        ([0, 100], [0, 0, 100, 100]),  # two samples: each third takes the nearer
        ([0, 10, 30, 40, 60], [0, 10, 40, 60]),  # a tie (10 and 30 around 20) goes to the earlier
        ([5, 10, 15, 20, 25, 30], [5, 10, 20, 30]),  # thirds of the run from t=0, not from the first sample
    ],
)
def test_thirds(times: list[float], expected: list[float]) -> None:
    assert [p.t_s for p in thirds([_pt(t) for t in times])] == expected


def _costs(seconds_per_request: list[float], rps: int = 100, step_s: float = 10.0) -> list[Point]:
    """Samples every step_s; interval i serves rps requests a second at seconds_per_request[i] each."""
    points = [_pt(0)]
    for cost in seconds_per_request:
        last = points[-1]
        done = int(rps * step_s)
        points.append(_pt(last.t_s + step_s, cpu=last.cpu_s + done * cost, requests=last.requests + done))
    return points


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        (_steady(10), (1000.0, 1000.0, 1.0)),  # a steady cost: no drift
        (_costs([0.005] * 3 + [0.001] * 6), (1000.0, 1000.0, 1.0)),  # a costly warm-up is left out
        (_costs([0.001] * 6 + [0.0012] * 3), (1000.0, 1200.0, 1.2)),  # creeping up in the last third
        (_costs([0.001] * 3 + [0.002] * 3 + [0.001] * 3), (2000.0, 1000.0, 0.5)),
        (_costs([0.001] * 3 + [0.0] * 3 + [0.001] * 3), (0.0, 1000.0, NAN)),  # no CPU to divide by
        (_steady(3), (NAN, NAN, NAN)),  # too few samples to have thirds
        (
            [_pt(0), _pt(10), _pt(20, cpu=1, requests=100), _pt(30, cpu=2, requests=100)],
            (10_000.0, NAN, NAN),  # nothing completed in the last third
        ),
    ],
)
def test_drift(points: list[Point], expected: tuple[float, float, float]) -> None:
    got = drift(points)
    assert all(_same(g, e) for g, e in zip(got, expected, strict=True)), got


@given(st.integers(4, 200), st.floats(1e-5, 0.1), st.integers(1, 1000))
def test_drift_of_a_steady_cost_is_one(n: int, cost_s: float, rps: int) -> None:
    second, last, ratio = drift(_steady(n, cost_s=cost_s, rps=rps))
    assert second == pytest.approx(cost_s * 1e6) and last == pytest.approx(cost_s * 1e6)
    assert ratio == pytest.approx(1.0)


def _fds(counts: list[int]) -> list[Point]:
    return [_pt(i * 10.0, fds=n) for i, n in enumerate(counts)]


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        (_fds([20] * 10), 0),
        (_fds([20, 30, 20, 22, 25, 21, 22, 25, 23, 21]), 0),  # jitter of connections in flight
        (_fds([20, 20, 20, 20, 21, 22, 23, 24, 25, 26]), 4),  # a leak: the last third's peak is higher
        (_fds([20, 20, 20, 40, 20, 20, 20, 20, 20, 20]), -20),  # a burst in the second third
        (_fds([20, 20, 50, 20, 20, 20, 20, 20, 20, 20]), 0),  # ... the first third is the warm-up
        (_fds([20, 20, 20]), 0),  # too few samples
        (_fds([20, 30, 40, 50]), 20),  # the sample at 2/3 counts in the last third (40, 50 against 30)
    ],
)
def test_fd_growth(points: list[Point], expected: int) -> None:
    assert fd_growth(points) == expected
