"""The gateway's own process sets the garbage collector up for serving; an embedding process keeps its own.

Checked in a child interpreter, since freezing and thresholds are process-wide: the test process, which
runs many gateways in-process, must keep CPython's defaults (`serve(..., tune_gc=False)`, the default).
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from plano_trio.server.serve import GC_YOUNG_THRESHOLD

_CHILD = """
import gc, json
from plano_trio.server.serve import tune_garbage_collector
before = gc.get_threshold()
tune_garbage_collector()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def test_tuning_raises_the_young_threshold_and_freezes_what_start_up_built() -> None:
    child = [sys.executable, "-c", _CHILD]
    state = json.loads(subprocess.run(child, capture_output=True, text=True, check=True, timeout=60).stdout)
    assert state["after"] == [GC_YOUNG_THRESHOLD, *state["before"][1:]]
    assert state["frozen"] > 1000  # the modules' objects, at least


def test_the_embedding_process_keeps_its_own_settings() -> None:
    """By now this process has run many gateways in-process (the suite runs in name order)."""
    assert gc.get_threshold()[0] != GC_YOUNG_THRESHOLD
