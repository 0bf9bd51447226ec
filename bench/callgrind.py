"""Instructions counted by callgrind for one run of a bench module: a CPU figure that does not depend on
what else the machine is doing (the bench's wall-clock and schedstat figures do), for tools that compare
two code paths by the instructions they execute (`state_cost`, `tracing_cost`)."""

from __future__ import annotations

import re
import subprocess
import sys


def instructions(module: str, *args: str) -> int:
    """Instructions of `python -m module args...` under callgrind, every thread included."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    done = subprocess.run(
        [*command, sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    assert found is not None, done.stderr[-2000:]
    return int(found.group(1))
