"""Watch a server during a stream run from a separate process: peak memory and upstream connections.

Why a process and not a tick on the timing client's loop: counting the connections a proxy holds to the
mock means reading the link of each of its file descriptors and all of ``/proc/net/tcp``; with 1,000
streams in flight (2,000 sockets in the proxy, as many again in the client) one count took ~100 ms
(measured), and on the client's loop that stalled the reads of every stream, so each sample showed up in
the measured inter-delta gaps of the proxies (not in ``direct``'s, which has no upstream to count).  In
its own process, on the client's CPU, the sampler is preempted whenever the client or the mock wakes up
(they sleep most of the time, so the scheduler favours them), and it counts connections only once a
second; memory (``smaps_rollup`` of the tree, < 1 ms) is read every 100 ms.

Protocol: the parent starts ``python -m bench.sampler PID [--port P]`` with a pipe on stdin; the sampler
runs until that pipe closes (the parent's ``stop()``, or the parent dying), then prints one JSON line
with the peaks and exits.  ``Sampler`` is that parent side, a context manager.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from bench import procstat

__all__ = ["Peaks", "Sampler", "main"]

REPO = Path(__file__).resolve().parent.parent


class Peaks:
    """What the sampler saw: peak RSS/PSS (bytes) and peak connections to the port (-1: not counted)."""

    __slots__ = ("conns", "memory")

    def __init__(self, memory: procstat.Memory, conns: int) -> None:
        self.memory = memory
        self.conns = conns


class Sampler:
    """Run ``bench.sampler`` on ``pid`` for the duration of a ``with`` block; ``peaks`` after it."""

    def __init__(self, pid: int, port: int | None, cpu: int | None, interval_s: float = 0.1) -> None:
        self.pid = pid
        self.port = port
        self.cpu = cpu
        self.interval_s = interval_s
        self.peaks = Peaks(procstat.Memory(0, 0), -1)
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        from bench.targets import python, taskset_prefix  # here: the sampler process need not import it

        cmd = [python(), "-m", "bench.sampler", str(self.pid), "--interval", f"{self.interval_s:g}"]
        if self.port is not None:
            cmd += ["--port", str(self.port)]
        self._proc = subprocess.Popen(
            [*taskset_prefix(self.cpu), *cmd],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
        )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            out, _ = proc.communicate(timeout=10)  # closes stdin: the sampler reports and exits
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return
        with contextlib.suppress(ValueError, KeyError, IndexError):
            data = json.loads(out.decode().strip().splitlines()[-1])
            self.peaks = Peaks(procstat.Memory(int(data["rss"]), int(data["pss"])), int(data["conns"]))


def _watch(pid: int, port: int | None, interval_s: float, conns_every_s: float) -> dict[str, int]:
    tree = procstat.descendants(pid)  # once: a server's workers exist before the run starts
    peak = procstat.Memory(0, 0)
    conns = -1 if port is None else 0
    next_count = 0.0
    while True:
        with contextlib.suppress(OSError):
            memory = procstat.memory(pid, pids=tree)
            if memory.rss > peak.rss:
                peak = memory
        now = time.monotonic()
        if port is not None and now >= next_count:
            conns = max(conns, procstat.connections_to_port(pid, port, tree))
            next_count = now + conns_every_s
        ready, _, _ = select.select([sys.stdin], [], [], interval_s)
        if ready and not sys.stdin.buffer.read1(4096):  # EOF: the parent is done
            return {"rss": peak.rss, "pss": peak.pss, "conns": conns}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sampler", description=__doc__.splitlines()[0])
    parser.add_argument("pid", type=int)
    parser.add_argument("--port", type=int, help="count the tree's established connections to this port")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between memory samples")
    parser.add_argument("--conns-every", type=float, default=1.0, help="seconds between connection counts")
    args = parser.parse_args(argv)
    print(json.dumps(_watch(args.pid, args.port, args.interval, args.conns_every)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
