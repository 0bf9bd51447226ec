"""Loop-lag shedding, the pure parts: the lag decision (a table of oversleeps) and admission's refusals."""

from __future__ import annotations

import pytest

from plano_trio.gateway.admission import CONCURRENCY, LOOP_LAG, Admission
from plano_trio.gateway.errors import ApiError, ErrorStyle
from plano_trio.gateway.loop_lag import LoopLag

LIMIT_S = 0.05

# (oversleeps fed one after the other in ms, then: lag reported in ms, shedding?)
CASES = [
    pytest.param([], 0, False, id="nothing seen yet"),
    pytest.param([1, 2, 1], 1, False, id="idle loop"),
    pytest.param([500], 0, False, id="one slow pass never sheds"),
    pytest.param([2000, 1, 3000, 2], 2, False, id="isolated stalls, however long, never shed"),
    pytest.param([120, 130], 120, True, id="two late wake-ups in a row shed"),
    pytest.param([120, 1, 130], 120, True, id="two late of the last three shed"),
    pytest.param([120, 130, 110], 120, True, id="sustained lag: the median"),
    pytest.param([120, 130, 110, 5], 110, True, id="one quick pass does not stop shedding"),
    pytest.param([120, 130, 110, 5, 4], 5, False, id="two quick passes stop it"),
    pytest.param([50, 50, 50], 50, False, id="at the limit is not over it"),
    pytest.param([51, 52, 60], 52, True, id="just over the limit"),
    pytest.param([-3, -1, 2], 0, False, id="an early wake-up counts as on time"),
]


@pytest.mark.parametrize(("oversleeps_ms", "lag_ms", "over"), CASES)
def test_lag_decision(oversleeps_ms: list[float], lag_ms: float, over: bool) -> None:
    lag = LoopLag(LIMIT_S)
    for oversleep in oversleeps_ms:
        lag.observe(oversleep / 1000)
    assert lag.lag_s == pytest.approx(lag_ms / 1000)
    assert lag.over is over


def test_recovery_follows_the_loop_both_ways() -> None:
    """The decision flips only when two of the last three samples are on the other side of the limit."""
    lag = LoopLag(LIMIT_S)
    seen = []
    for oversleep_ms in (200, 200, 1, 200, 1, 1, 200, 1, 200):
        lag.observe(oversleep_ms / 1000)
        seen.append(lag.over)
    assert seen == [False, True, True, True, False, False, False, False, True]


def _refusal(admission: Admission) -> ApiError:
    with pytest.raises(ApiError) as refused, admission:
        pass
    return refused.value


def test_admission_without_loop_lag_only_counts() -> None:
    admission = Admission(2)
    assert admission.loop_lag is None
    with admission, admission:
        assert admission.in_flight == 2
        error = _refusal(admission)
    assert admission.in_flight == 0
    assert (error.status, error.code, error.headers) == (503, "overloaded", ((b"retry-after", b"1"),))
    assert error.message == "The gateway is at its limit of 2 concurrent requests; retry shortly"
    assert admission.refused == {CONCURRENCY: 1}


def test_admission_refuses_while_the_loop_lags_and_admits_once_it_caught_up() -> None:
    lag = LoopLag(LIMIT_S)
    admission = Admission(10, lag)
    for oversleep_s in (0.2, 0.25, 0.3):
        lag.observe(oversleep_s)
    error = _refusal(admission)
    assert admission.in_flight == 0
    assert (error.status, error.code, error.headers) == (503, "overloaded", ((b"retry-after", b"1"),))
    assert error.message == "The gateway's event loop is running 250 ms late (limit 50 ms); retry shortly"
    assert b'"type":"overloaded_error"' in error.body(ErrorStyle.ANTHROPIC)
    assert admission.refused == {LOOP_LAG: 1}
    lag.observe(0.001)
    lag.observe(0.002)
    with admission:
        assert admission.in_flight == 1
    assert admission.refused == {LOOP_LAG: 1}
