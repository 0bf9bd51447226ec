"""bench.shed end to end at a size one core relays easily: every stream admitted, none shed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _shed(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bench.shed", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)


def test_a_light_load_is_admitted_whole_with_and_without_the_key() -> None:
    run = _shed("--streams", "20", "--limits", "50", "--rounds", "1")
    assert run.returncode == 0, run.stderr[-3000:]
    medians = run.stdout.split("Medians of 1 rounds:")[1]
    rows = [line.split(" | ") for line in medians.splitlines() if " | median | " in line]
    assert [row[0] for row in rows] == ["| direct (client + mock)", "| off", "| max_loop_lag_ms: 50"]
    for row in rows:  # offered, admitted %, shed %, 503 at the count %, completed %
        assert row[2:7] == ["20", "100.0", "0.0", "0.0", "100.0"], row
    assert "| max_loop_lag_ms: 50 | 1.00x |" in run.stdout


def test_late_connections_and_a_base_revision_run_in_the_same_rounds() -> None:
    run = _shed("--streams", "10", "--limits", "50", "--rounds", "1", "--connect-late", "--base", "HEAD")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "each client connecting as its stream starts" in run.stdout
    medians = run.stdout.split("Medians of 1 rounds:")[1]
    rows = [line.split(" | ") for line in medians.splitlines() if " | median | " in line]
    assert [row[0] for row in rows] == [
        "| direct (client + mock)",
        "| off",
        "| max_loop_lag_ms: 50",
        "| HEAD: off",
        "| HEAD: max_loop_lag_ms: 50",
    ]
    for row in rows:
        assert row[2:7] == ["10", "100.0", "0.0", "0.0", "100.0"], row


def test_a_ramp_past_the_idle_close_is_refused() -> None:
    run = _shed("--ramp-s", "3.5")
    assert run.returncode == 2 and "--ramp-s must stay under 4 s" in run.stderr
