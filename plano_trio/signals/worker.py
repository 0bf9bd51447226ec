"""The signals worker process: requests in on stdin, analyses out on stdout, one at a time.

The gateway (`gateway.signals_worker`) starts this module as a child
process (`python -m plano_trio.signals.worker`) and talks to it over two
pipes with the length-prefixed frames of `frames` (re-exported here, where
the gateway's modules have always found them).

Why a process: `analyze` is pure Python and holds the GIL for 1-50 ms a
conversation (see the package docstring), which in a thread would delay
every wake-up of the gateway's event loop by as much.

Why this module imports so little: it is imported by the gateway's process
too (for the codec), so the analysis (`job`, and with it the detectors and
their phrase indexes) is imported by `main` only, as the child starts.  The
child imports `plano_trio.signals` and what it needs (msgspec, the standard
library's text tools), nothing of the gateway's: its idle memory is that of
a bare interpreter plus the analysis (`tests/test_memory_footprint.py` keeps
it so).

The child's stdout is the result pipe only: the file descriptor is moved
aside and fd 1 pointed at stderr, so a stray `print` cannot corrupt a frame.
Both sides read and write the pipes' file descriptors directly, in large
pieces: no buffered file objects, so nothing is held back unseen.
The child runs at the idle scheduling priority (`lower_priority`) and gives
the CPU away after every analysis (`answer`): on a busy core the gateway's
process gets the CPU first, and analyses wait (the gateway's queue then
fills and skips, which it counts).  A gateway pinned to some CPUs sends its
child to the others (`off_the_gateways_cpus`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from functools import partial

from .frames import (
    APIS,
    JOB_HEAD,
    MAX_RESULT_BYTES,
    RESULT_HEAD,
    SPAN_FLAG,
    Analysis,
    AttributeValue,
    FrameError,
    encode_job,
    encode_result,
    take_jobs,
    take_results,
)

__all__ = [
    "APIS",
    "BATCH_CPU_S",
    "JOB_HEAD",
    "MAX_RESULT_BYTES",
    "NICE",
    "READ_CHUNK",
    "RESULT_HEAD",
    "SPAN_FLAG",
    "Analysis",
    "AttributeValue",
    "FrameError",
    "answer",
    "encode_job",
    "encode_result",
    "lower_priority",
    "main",
    "off_the_gateways_cpus",
    "take_jobs",
    "take_results",
]

READ_CHUNK = 1024 * 1024
BATCH_CPU_S = 0.005
"""Results are written as soon as this much analysis is waiting to go out (or no complete job is left)."""
NICE = 19
"""Where `SCHED_IDLE` is not available, the worker's niceness: the lowest priority."""


_GIVE_WAY: Callable[[], object] = getattr(os, "sched_yield", lambda: None)
"""Let any other runnable task on this CPU go first (a no-op where the call does not exist)."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def lower_priority() -> str:
    """Run only when the CPU has nothing else to do: `SCHED_IDLE` (Linux), else the lowest niceness.

    Measured on one core shared with the gateway (`bench/signals_scenario.py`): at niceness 19 a
    request arriving while an analysis runs waited for it (Linux's EEVDF scheduler lets the running
    task finish its time slice, about 3 ms), which added 2-3 ms to the time to first token at c=1; a
    `SCHED_IDLE` task loses the CPU to any normal one at its next scheduling point, which `answer`
    makes after every analysis (a waking task did not preempt it in between on the 2-vCPU VM the bench
    runs on).  It still gets a sliver of a saturated core, so it is never starved outright.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # type: ignore[attr-defined,unused-ignore]
        return "idle"
    except (AttributeError, OSError):
        pass
    with contextlib.suppress(AttributeError, OSError):  # a resource limit may forbid it too
        os.nice(NICE)
        return "nice"
    return "normal"


def off_the_gateways_cpus() -> bool:
    """Move off the CPUs the gateway is pinned to, when it is pinned and others exist.

    The child inherits the gateway's CPU affinity.  A gateway pinned to a
    core (`taskset`, a bench, one worker per core) would then share that
    core with every analysis; even at the idle priority that costs the
    gateway its warm caches each time it takes the core back (measured on a
    pinned core: +13 % of gateway CPU per streamed request and a quarter of
    its throughput at c=32).  The analyses go to the machine's other CPUs
    (their idle time only, at this priority); a container's cpuset still
    applies (the kernel keeps the intersection, and refuses an empty one,
    which leaves the inherited set).  An unpinned gateway's child keeps
    every CPU.  True when it moved.
    """
    try:
        inherited = os.sched_getaffinity(0)
        others = set(range(os.cpu_count() or 1)) - inherited
        if not others:
            return False
        os.sched_setaffinity(0, others)
    except (AttributeError, OSError):
        return False
    return True


def main() -> None:
    """Serve jobs until stdin ends.

    Jobs are read in large pieces, and the results of all the complete jobs
    one read brought are written together (see `answer`): under load the
    gateway then wakes once for several results rather than once each.  The
    analysis is imported here, in the child only.
    """
    from .job import analyse

    results = os.dup(1)
    os.dup2(2, 1)  # fd 1 is stderr from here on: only `results` carries frames
    lower_priority()
    off_the_gateways_cpus()
    buffer = bytearray()
    while True:
        chunk = os.read(0, READ_CHUNK)
        if not chunk:
            return
        buffer += chunk
        answer(buffer, analyse, partial(_write_all, results))


def answer(
    buffer: bytearray,
    analyse: Callable[[int, bytes, bool], Analysis],
    write: Callable[[bytes], object],
    give_way: Callable[[], object] = _GIVE_WAY,
) -> None:
    """Analyse the complete jobs at the start of `buffer` (removed from it) and `write` their results,
    batched: a batch goes out once `BATCH_CPU_S` of analysis is in it, the rest after the last job.

    After every analysis the child offers the CPU to whatever else is waiting for it (`give_way`,
    `sched_yield`: ~1 µs when nothing is).  Its idle priority alone did not get it preempted: on this
    project's 2-vCPU VM (Linux 6.18), a gateway or client woken while the child worked through a batch
    waited for the whole batch, on the child's CPU or the gateway's alike, which made the one request in
    flight at c=1 about 1.5 ms slower every 25 ms batch (2.4 % of requests over 1.2 ms, c=1 p99 2.0 ms
    against 0.75 ms with signals off); with a yield after each analysis, 0.4 %.  A single analysis still
    runs to its end (1-50 ms for a long conversation).
    """
    out: list[bytes] = []
    held = 0.0
    for job_id, flags, body in take_jobs(buffer):
        api_index = flags & ~SPAN_FLAG
        if api_index >= len(APIS):
            analysis = Analysis(error=f"unknown client API {api_index}")
        else:
            analysis = analyse(api_index, body, bool(flags & SPAN_FLAG))
        out.append(encode_result(job_id, analysis))
        held += analysis.cpu_s
        if held >= BATCH_CPU_S:
            write(b"".join(out))
            out, held = [], 0.0
        give_way()
    if out:
        write(b"".join(out))


if __name__ == "__main__":
    main()
