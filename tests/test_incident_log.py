"""`IncidentLog`: the first failure of an incident is logged, then at most one line per interval."""

from __future__ import annotations

import logging

import pytest

from plano_trio.logs import IncidentLog


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("events", "logged"),
    [
        # (event, time) -> was a line logged?
        ([("fail", 0), ("fail", 1), ("fail", 2)], [True, False, False]),
        ([("fail", 0), ("fail", 59), ("fail", 60), ("fail", 61)], [True, False, True, False]),
        ([("ok", 0), ("ok", 1)], [False, False]),
        ([("fail", 0), ("ok", 1), ("ok", 2)], [True, True, False]),
        ([("fail", 0), ("ok", 1), ("fail", 2)], [True, True, True]),  # a new incident logs at once
    ],
)
def test_one_line_per_incident_and_interval(events: list[tuple[str, float]], logged: list[bool]) -> None:
    clock = FakeClock()
    incidents = IncidentLog(logging.getLogger("test.incident"), "down", "up", interval_s=60.0, clock=clock)
    got = []
    for event, at in events:
        clock.now = 100.0 + at
        got.append(incidents.failure({"target": "t"}) if event == "fail" else incidents.success())
    assert got == logged


def test_the_next_line_counts_what_was_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    incidents = IncidentLog(logging.getLogger("test.incident"), "down", "up", interval_s=10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.incident"):
        for _ in range(5):
            incidents.failure({"target": "db"})
        clock.now += 10
        incidents.failure({"target": "db"})
        incidents.success()
    fields = [record.fields for record in caplog.records]  # type: ignore[attr-defined]
    assert fields == [
        {"target": "db", "failures": 1, "not_logged": 0},
        {"target": "db", "failures": 6, "not_logged": 4},
        {"failures": 6},
    ]
    assert not incidents.active
