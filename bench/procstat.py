"""CPU time and memory of a process tree, read straight from ``/proc``.

Why /proc and not wall-clock throughput: the bench machine is a shared 2-vCPU VM where requests/s moves
by up to 2x between identical runs, while *server CPU-seconds per request* moves by ~10-20%
(``docs/measurements.md``, "Benchmark method").  So every measured run brackets the server with two
``cpu_seconds`` readings and divides by the requests it completed.

A server is counted with all its live descendants (LiteLLM or a hypercorn supervisor may fork workers)
plus ``cutime``/``cstime`` of children it has already reaped.  Clock-tick resolution (usually 10 ms) is
why measured runs last long enough to burn at least a few hundred ms of CPU.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

__all__ = [
    "Memory",
    "clock_ticks",
    "connections_to_port",
    "cpu_seconds",
    "descendants",
    "memory",
    "process_name",
    "runqueue_wait_seconds",
]

_PROC = Path("/proc")


def clock_ticks() -> int:
    """Ticks per second of the utime/stime fields (``getconf CLK_TCK``)."""
    return os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """Fields of ``/proc/<pid>/stat`` after the ``(comm)`` one, which may itself contain spaces."""
    raw = (_PROC / str(pid) / "stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def _ppid_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, ValueError, IndexError):
            continue  # the process went away while we looked
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """``pid`` and every live descendant (scans /proc: works without CONFIG_PROC_CHILDREN)."""
    children = _ppid_map()
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, ()))
    return out


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """utime+stime of ``pid`` (and, with ``tree``, its live descendants and reaped children), in s.

    Fields 14-17 of stat (1-based): utime, stime, cutime, cstime.  After dropping pid and comm they sit at
    indexes 11-14.  A process that vanished mid-scan contributes nothing, never an exception.
    """
    ticks = 0
    for p in descendants(pid) if tree else [pid]:
        try:
            fields = _stat_fields(p)
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
        if p == pid and tree:
            ticks += int(fields[13]) + int(fields[14])
    return ticks / clock_ticks()


def runqueue_wait_seconds(pid: int, pids: list[int] | None = None) -> float:
    """Time the threads of ``pid``'s tree spent runnable but waiting for a CPU, in s (the second field
    of ``/proc/<pid>/task/<tid>/schedstat``, ns).  On a machine shared with other tenants this says how
    much of a run a server was starved: wanting the CPU it is pinned to while someone else had it."""
    total = 0
    for p in pids if pids is not None else descendants(pid):
        try:
            tids = os.listdir(_PROC / str(p) / "task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(_PROC / str(p) / "task" / tid / "schedstat") as stat:
                    total += int(stat.read().split()[1])
            except (OSError, ValueError, IndexError):
                continue  # the thread exited while we looked
    return total / 1e9


@dataclasses.dataclass(frozen=True, slots=True)
class Memory:
    """Resident and proportional set size in bytes, summed over a process tree."""

    rss: int
    pss: int

    @property
    def rss_mib(self) -> float:
        return self.rss / 2**20

    @property
    def pss_mib(self) -> float:
        return self.pss / 2**20


def _rollup(pid: int) -> Memory:
    rss = pss = 0
    with open(_PROC / str(pid) / "smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    return Memory(rss, pss)


def memory(pid: int, tree: bool = True, pids: list[int] | None = None) -> Memory:
    """RSS and PSS from ``/proc/<pid>/smaps_rollup`` (PSS splits shared pages fairly between processes,
    so it is the honest figure for a forked tree; RSS is the conservative one the targets use).
    ``pids``: the tree, when the caller already knows it (sampling loops skip the /proc scan)."""
    rss = pss = 0
    for p in pids if pids is not None else descendants(pid) if tree else [pid]:
        try:
            m = _rollup(p)
        except OSError:
            continue
        rss += m.rss
        pss += m.pss
    return Memory(rss, pss)


def process_name(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def _socket_inodes(pids: list[int]) -> set[str]:
    inodes: set[str] = set()
    for p in pids:
        try:
            fds = os.listdir(_PROC / str(p) / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(_PROC / str(p) / "fd" / fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    return inodes


def connections_to_port(pid: int, port: int, pids: list[int] | None = None) -> int:
    """Established IPv4 TCP connections owned by ``pid`` (and descendants) with either end on ``port``.

    On a proxy and the mock's port this counts the upstream connections the proxy really holds open,
    which tells "N streams in flight" apart from "N streams queued inside the proxy"; other processes'
    idle pooled connections to the same mock are not counted (socket inodes are matched to ``pid``).
    """
    inodes = _socket_inodes(pids if pids is not None else descendants(pid))
    suffix = f":{port:04X}"
    count = 0
    try:
        with open(_PROC / "net" / "tcp") as f:
            next(f, None)
            for line in f:
                fields = line.split()
                if (
                    len(fields) > 9
                    and fields[3] == "01"
                    and (fields[1].endswith(suffix) or fields[2].endswith(suffix))
                    and fields[9] in inodes
                ):
                    count += 1
    except OSError:
        return -1
    return count
