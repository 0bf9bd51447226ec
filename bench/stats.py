"""Small statistics helpers shared by the scenarios and the report (stdlib only, no numpy).

Percentiles use linear interpolation between closest ranks (numpy's default), so p99 of 100 samples is
not just the maximum.  Medians over rounds are how every headline figure is formed: one noisy round on
the shared VM moves a median of three far less than it moves a mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["median", "percentile", "percentiles", "ratio"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``; NaN for an empty sequence."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def percentiles(values: Sequence[float], qs: Iterable[float] = (50, 90, 99)) -> dict[str, float]:
    """``{"p50": …, "p90": …, "p99": …}`` from one sort."""
    ordered = sorted(values)
    return {f"p{q:g}": percentile(ordered, q) for q in qs}


def median(values: Iterable[float]) -> float:
    """Median ignoring NaN (a round that produced nothing must not poison the others); NaN if none."""
    clean = [v for v in values if not math.isnan(v)]
    return percentile(clean, 50) if clean else math.nan


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN when either side is missing or ``b`` is zero."""
    if math.isnan(a) or math.isnan(b) or b == 0:
        return math.nan
    return a / b
