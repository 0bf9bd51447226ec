"""The load-benchmark harness must never rot: run ``python -m bench run --smoke`` end to end.

Smoke mode starts the real mock provider and the real gateway as processes, runs every scenario with
tiny counts (direct + plano-trio only; wrk if installed, else the timing client) and writes the
results.  Here we only check the harness itself: results exist, every target answered, zero errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--smoke", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (out / "results.md").read_text().startswith("# plano-trio bench")
    data: dict[str, Any] = json.loads((out / "results.json").read_text())

    answered: set[str] = set()
    for scenario in data["scenarios"]:
        skipped = scenario["skipped"] or ""
        assert not skipped.startswith("failed"), f"{scenario['key']}: {skipped}"
        for row in scenario["rows"]:
            assert not row.get("errors"), f"{scenario['key']}/{row['target']}: {row.get('error_kinds')}"
            answered.add(row["target"])
    assert {"direct", "plano-trio"} <= answered
    measured = {s["key"] for s in data["scenarios"] if not s["skipped"]}
    assert {"latency", "stream", "throughput", "stream_throughput", "paced", "memory", "startup"} <= measured
    assert elapsed < 20, f"smoke run took {elapsed:.1f} s"
