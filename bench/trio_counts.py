"""Run a trio program with scheduler counters: tasks spawned, task steps (wake-ups), cancel scopes.

``python -m bench.trio_counts OUT.json -m plano_trio up CONFIG`` runs the module after ``-m`` as
``python -m`` would, with an instrument added to every ``trio.run`` and ``trio.CancelScope.__enter__``
counted.  A daemon thread rewrites ``OUT.json`` every 0.1 s with the running totals, so a harness reads
them before and after a measured load and divides the difference by the requests served (``bench.profile``
does).  What a request costs in trio's scheduler is the question: every task is a spawn and several steps,
every step a pass through the run loop, every cancel scope an object and a deadline bookkeeping entry.

Counting costs CPU of its own, so a counted process is for counting, never for timing.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import runpy
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import trio
import trio.abc

__all__ = ["Counts", "main"]


class Counts(trio.abc.Instrument):
    """Running totals, read by the dump thread without a lock (ints: torn reads are impossible)."""

    def __init__(self) -> None:
        self.tasks_spawned = 0
        self.task_steps = 0
        self.cancel_scopes = 0
        self.io_waits = 0
        self.steps_by_task: collections.Counter[str] = collections.Counter()
        self.spawned_by_name: collections.Counter[str] = collections.Counter()

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.tasks_spawned += 1
        self.spawned_by_name[_short_name(task.name)] += 1

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.task_steps += 1
        self.steps_by_task[_short_name(task.name)] += 1

    def before_io_wait(self, timeout: float) -> None:
        self.io_waits += 1

    def snapshot(self) -> dict[str, int]:
        """The totals, then ``steps:<task>`` and ``spawned:<task>`` per task name (functions, shortened)."""
        totals = {
            "tasks_spawned": self.tasks_spawned,
            "task_steps": self.task_steps,
            "cancel_scopes": self.cancel_scopes,
            "io_waits": self.io_waits,
        }
        totals.update({f"steps:{name}": n for name, n in list(self.steps_by_task.items())})
        totals.update({f"spawned:{name}": n for name, n in list(self.spawned_by_name.items())})
        return totals


def _short_name(name: str) -> str:
    """``hypercorn.protocol.http_stream.HTTPStream.app_send`` → ``http_stream.HTTPStream.app_send``."""
    return ".".join(name.split(".")[-3:])


def _install(counts: Counts) -> None:
    original_run = trio.run

    @functools.wraps(original_run)
    def run(*args: Any, **kwargs: Any) -> Any:
        kwargs["instruments"] = [*kwargs.get("instruments", ()), counts]
        return original_run(*args, **kwargs)

    trio.run = run  # type: ignore[assignment]
    enter: Callable[[trio.CancelScope], trio.CancelScope] = trio.CancelScope.__enter__

    def counted_enter(scope: trio.CancelScope) -> trio.CancelScope:
        counts.cancel_scopes += 1
        return enter(scope)

    trio.CancelScope.__enter__ = counted_enter  # type: ignore[method-assign]


def _dump_forever(counts: Counts, path: str) -> None:
    tmp = f"{path}.tmp"
    while True:
        with open(tmp, "w") as out:
            json.dump(counts.snapshot(), out)
        os.replace(tmp, path)
        time.sleep(0.1)


def read(path: str) -> dict[str, int]:
    """The totals last written to ``path``."""
    with open(path) as source:
        counts: dict[str, int] = json.load(source)
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "-m":
        raise SystemExit("usage: python -m bench.trio_counts OUT.json -m MODULE [ARGS...]")
    out, module, rest = args[0], args[2], args[3:]
    counts = Counts()
    _install(counts)
    threading.Thread(target=_dump_forever, args=(counts, out), daemon=True, name="trio-counts").start()
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
