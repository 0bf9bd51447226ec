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

import pytest

from bench.targets import chat_body, http_status
from tests.mock_provider import MockProvider

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
    assert elapsed < 45, f"smoke run took {elapsed:.1f} s"  # ~10 s alone; a shared 2-core box triples it


# -- the failover scenario's parts (the scenario itself runs in quick/full mode only: it needs retries) --


def test_failover_configs_differ_only_in_retry_policy() -> None:
    """The with/without-policy CPU comparison is fair only if the two gateway configs are otherwise equal."""
    from bench.failover_scenario import FALLBACK, PRIMARY, failover_config
    from plano_trio.config.loader import load_config_text

    urls = {role: f"http://127.0.0.1:{9000 + i}" for i, role in enumerate([*PRIMARY, "fallback"])}
    bare = load_config_text(failover_config(12000, urls, policy=False))
    policy = load_config_text(failover_config(12000, urls, policy=True))
    assert [p.name for p in bare.model_providers] == [p.name for p in policy.model_providers]
    assert all(p.retry_policy is None for p in bare.model_providers)
    policies = {p.name: p.retry_policy for p in policy.model_providers}
    for model in PRIMARY.values():
        rule = policies[model]
        assert rule is not None and rule.fallback_models == (FALLBACK,)
        assert [(sorted(r.codes), r.strategy) for r in rule.on_status_codes] == [
            ([429], "different_provider")
        ]
        assert rule.backoff is None  # a failover's measured price must not include a deliberate wait
    assert policies[FALLBACK] is None
    prefixes = {p.name: p.prefix for p in policy.model_providers}
    assert prefixes[FALLBACK] != prefixes[PRIMARY["flaky"]]  # what `different_provider` needs


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.0, [200] * 10),
        (0.2, [200, 200, 200, 200, 429] * 2),
        (0.5, [200, 429] * 5),
        (1.0, [429] * 10),
    ],
)
def test_mock_fail_fraction_is_evenly_spread(fraction: float, expected: list[int]) -> None:
    """``--fail-fraction`` fails exactly that share of POSTs, evenly; health probes are not counted."""
    with MockProvider(record=False, fail_fraction=fraction) as mock:
        statuses = []
        for _ in range(10):
            assert http_status(mock.port, "/healthz")[0] == 200
            status, body = http_status(mock.port, "/v1/chat/completions", "POST", chat_body("m", False))
            statuses.append(status)
            if status == 429:
                assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"
    assert statuses == expected
