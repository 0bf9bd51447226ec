"""Where a request's CPU goes: hypercorn, h11, trio's scheduler, trio's sockets, or our code.

``python -m bench.profile`` starts the mock provider, the floor (hypercorn-trio answering the mock's own
bytes, ``bench.floor_app``), the same floor behind the gateway's own server edge (``--edge ours``: what
hypercorn's protocol code costs under our connection handling) and plano-trio, the servers pinned to CPU0
and everything else to CPU1, and for each load (JSON and SSE at c=32, JSON at c=1):

1. runs the load against each server for ``--seconds`` while ``py-spy record --nonblocking`` samples it
   from CPU1 (nonblocking: the server is never paused, so its own CPU figures stay true), and reads the
   server's on-CPU time (schedstat, ns) around the run: CPU µs per request;
2. attributes every sample to the *innermost frame that belongs to a layer* (``LAYERS``): a sample in the
   standard library, or in C code called from Python, belongs to whichever layer called it, so a
   ``socket.send`` made by trio's socket wrapper is trio's, and one made from h11's writer would be h11's;
3. turns each layer's share of the samples into µs per request (share times CPU µs per request).

It then starts a second gateway and floor under ``bench.trio_counts`` and reports, per request, the tasks
trio spawned, the task steps it ran (each a wake-up: one pass of a task through the run loop), the cancel
scopes entered and the times the loop waited for I/O.  Counting costs CPU, so those servers are only
counted, never timed.

The result is the attribution table in ``bench/README.md`` ("Where a request's CPU goes").  Raw py-spy
stacks (``*.txt``, collapsed format, one line per distinct stack) and the tables (``profile.md``) are kept
under ``--out`` for a closer look, e.g. with ``flamegraph.pl`` or speedscope.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

from bench import loadgen
from bench.ab import Load, chat_request, gateway_yaml, on_cpu_seconds, start_mock
from bench.targets import Proc, free_port, python, spawn
from bench.trio_counts import read as read_counts

REPO = Path(__file__).resolve().parent.parent

LAYERS: tuple[tuple[str, str], ...] = (
    ("/plano_trio/server/", "ours: server edge"),
    ("/plano_trio/", "ours"),
    ("/bench/floor_app.py", "ours"),
    ("/tests/mock_provider.py", "ours"),  # the floor builds replies with the mock's builder (at start-up)
    ("/hypercorn/", "hypercorn"),
    ("/h11/", "h11"),
    ("/h2/", "h2"),
    ("/hpack/", "h2"),
    ("/trio/_core/", "trio scheduler"),
    ("/trio/", "trio sockets & streams"),
    ("/opentelemetry/", "opentelemetry"),
    ("/psycopg/", "psycopg"),
)
"""(path fragment, layer) in match order: a frame belongs to the first layer whose fragment its file has."""

UNATTRIBUTED = "other (stdlib only)"

LOADS: dict[str, tuple[int, bool]] = {
    "json-c32": (32, False),
    "stream-c32": (32, True),
    "json-c1": (1, False),
}
"""load name → (concurrency, stream)."""

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    function: str
    file: str
    line: int


def parse_frame(text: str) -> Frame:
    """One frame of py-spy's collapsed (``raw``) output: ``function (file:line)``; anything else is kept as
    a function with no file (py-spy writes thread and process roots that way)."""
    match = _FRAME.match(text)
    if match is None:
        return Frame(text, "", 0)
    return Frame(match["function"], match["file"], int(match["line"] or 0))


def parse_collapsed(lines: Iterable[str]) -> Iterator[tuple[list[Frame], int]]:
    """(frames from the root to the leaf, sample count) of each line ``frame;frame;... count``.

    Malformed lines (no count) are skipped: the file is py-spy's, but a half-written last line is possible
    when the recorder is stopped."""
    for raw in lines:
        stack, _, count = raw.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        yield [parse_frame(part) for part in stack.split(";")], int(count)


def layer_of(path: str) -> str | None:
    """The layer a source file belongs to (None: the standard library or anything not in ``LAYERS``)."""
    for fragment, layer in LAYERS:
        if fragment in path:
            return layer
    return None


def owner(frames: Sequence[Frame]) -> tuple[str, Frame | None]:
    """The layer a sample is charged to, and the frame that decided it: the innermost frame with a layer."""
    for frame in reversed(frames):
        layer = layer_of(frame.file)
        if layer is not None:
            return layer, frame
    return UNATTRIBUTED, None


TRIO_LAYERS = frozenset({"trio scheduler", "trio sockets & streams"})
RUN_LOOP = "the run loop itself"
_LOOP_FRAMES = frozenset({"run", "unrolled_run"})


def requester(frames: Sequence[Frame]) -> str:
    """Who asked trio for the work a sample shows: the innermost layered frame outside trio.

    A sample in trio's socket code under our upstream client is I/O *we* asked for; under hypercorn's
    TCP server it is the downstream connection's.  Samples with no such frame are the run loop's own
    (scheduling, epoll), which no single caller owns.  Frames outside the innermost ``trio.run`` or
    ``unrolled_run`` (``run`` itself waits for I/O) are the program that started the loop, not a
    requester."""
    start = 0
    for index in range(len(frames) - 1, -1, -1):
        if frames[index].function in _LOOP_FRAMES and frames[index].file.endswith("/trio/_core/_run.py"):
            start = index + 1
            break
    for frame in reversed(frames[start:]):
        layer = layer_of(frame.file)
        if layer is not None and layer not in TRIO_LAYERS:
            return layer
    return RUN_LOOP


@dataclasses.dataclass(slots=True)
class Attribution:
    """Samples per layer, per function within each layer (the function charged), and, for trio's layers,
    per layer that asked trio for the work (``requester``)."""

    total: int = 0
    layers: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    functions: collections.Counter[tuple[str, str]] = dataclasses.field(default_factory=collections.Counter)
    trio_for: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def add(self, frames: Sequence[Frame], count: int) -> None:
        layer, frame = owner(frames)
        self.total += count
        self.layers[layer] += count
        if layer in TRIO_LAYERS:
            self.trio_for[requester(frames)] += count
        where = f"{_short(frame.file)}:{frame.function}" if frame is not None else frames[-1].function
        self.functions[(layer, where)] += count

    def share(self, layer: str) -> float:
        return self.layers[layer] / self.total if self.total else 0.0


def attribute(stacks: Iterable[tuple[list[Frame], int]]) -> Attribution:
    result = Attribution()
    for frames, count in stacks:
        result.add(frames, count)
    return result


def _short(path: str) -> str:
    """``…/site-packages/h11/_readers.py`` → ``h11/_readers.py``; our files from the package root."""
    for marker in ("site-packages/", "/work/main/", str(REPO) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def layer_table(columns: dict[str, tuple[Attribution, float]]) -> list[str]:
    """Markdown rows: µs per request of each layer for each column (name → (attribution, CPU µs/req)).

    A layer's µs is its share of the column's samples times the column's measured CPU per request."""
    layers = sorted({layer for attribution, _ in columns.values() for layer in attribution.layers})
    order = [layer for _, layer in LAYERS if layer in layers]
    order = list(dict.fromkeys(order)) + [layer for layer in layers if layer not in order]
    head = "| layer | " + " | ".join(f"{name} µs/req (share)" for name in columns) + " |"
    rows = [head, "|---|" + "---|" * len(columns)]
    for layer in order:
        cells = []
        for attribution, cpu_us in columns.values():
            share = attribution.share(layer)
            cells.append(f"{share * cpu_us:.0f} ({share:.0%})")
        rows.append(f"| {layer} | " + " | ".join(cells) + " |")
    rows.append(
        "| **total (measured)** | " + " | ".join(f"**{cpu:.0f}**" for _, cpu in columns.values()) + " |"
    )
    return rows


def trio_table(columns: dict[str, tuple[Attribution, float]]) -> list[str]:
    """Markdown rows: trio's µs per request (both trio layers) split by the layer that asked for it."""
    askers = sorted({asker for attribution, _ in columns.values() for asker in attribution.trio_for})
    head = "| trio work asked for by | " + " | ".join(f"{name} µs/req" for name in columns) + " |"
    rows = [head, "|---|" + "---|" * len(columns)]
    for asker in askers:
        cells = [
            f"{attribution.trio_for[asker] / attribution.total * cpu_us:.0f}" if attribution.total else "0"
            for attribution, cpu_us in columns.values()
        ]
        rows.append(f"| {asker} | " + " | ".join(cells) + " |")
    return rows


def top_functions(attribution: Attribution, cpu_us: float, n: int, layer: str | None = None) -> list[str]:
    """Markdown rows: the ``n`` functions charged the most (optionally within the layers whose names start
    with ``layer``), µs per request."""
    rows = ["| layer | function | µs/req | share |", "|---|---|---|---|"]
    picked = [
        (key, count)
        for key, count in attribution.functions.most_common()
        if layer is None or key[0].startswith(layer)
    ]
    for (where_layer, where), count in picked[:n]:
        share = count / attribution.total
        rows.append(f"| {where_layer} | `{where}` | {share * cpu_us:.0f} | {share:.1%} |")
    return rows


def per_task_rows(figures: dict[str, dict[str, float]], least: float = 0.1) -> list[str]:
    """Markdown rows: steps and spawns per request of each task name, per server (``steps:``/``spawned:``
    keys of ``bench.trio_counts``), the names sorted by the most steps of any server."""
    servers = list(figures)
    names = sorted(
        {key.split(":", 1)[1] for counts in figures.values() for key in counts if ":" in key},
        key=lambda name: -max(figures[s].get(f"steps:{name}", 0.0) for s in servers),
    )
    rows = ["| task | " + " | ".join(f"{s} steps | {s} spawned" for s in servers) + " |"]
    rows.append("|---|" + "---|---|" * len(servers))
    for name in names:
        cells = [
            (figures[s].get(f"steps:{name}", 0.0), figures[s].get(f"spawned:{name}", 0.0)) for s in servers
        ]
        if max(max(cell) for cell in cells) >= least:
            rows.append(f"| `{name}` | " + " | ".join(f"{st:.1f} | {sp:.1f}" for st, sp in cells) + " |")
    return rows


# -- the I/O edge -------------------------------------------------------------------------------------------


def _servers(stack: ExitStack, work: Path, mock: Proc, counted: bool) -> dict[str, Proc]:
    """The floor and a gateway on CPU0; ``counted``: under ``bench.trio_counts`` (for counting only)."""
    prefix = [python(), "-m", "bench.trio_counts"]
    servers: dict[str, Proc] = {}
    for name in ("floor", "floor, our edge", "plano-trio"):
        tag = (f"{name}-counted" if counted else name).replace(", ", "-").replace(" ", "-")
        wrap = [*prefix, str(work / f"{tag}.counts.json")] if counted else [python()]
        if name.startswith("floor"):
            edge = ["--edge", "ours"] if "edge" in name else []
            cmd = [*wrap, "-m", "bench.floor_app", "--port", "0", *edge]
            proc = spawn(tag, cmd, work, cpu=0, cwd=REPO)
        else:
            port = free_port()
            config = work / f"{tag}.yaml"
            config.write_text(gateway_yaml(port, mock))
            cmd = [*wrap, "-m", "plano_trio", "up", str(config), "--log-level", "warning"]
            proc = spawn(tag, cmd, work, cpu=0, url=f"http://127.0.0.1:{port}", cwd=REPO)
        stack.callback(proc.stop)
        servers[name] = proc
    return servers


def _profile_run(proc: Proc, stream: bool, concurrency: int, seconds: float, rate: int, out: Path) -> float:
    """Load ``proc`` for ``seconds`` under py-spy; the raw stacks go to ``out``; returns CPU µs/request."""
    request = chat_request(proc.port, Load(concurrency, stream, 0))
    loadgen.run(request, 300, concurrency)  # warm-up
    record = ["record", "--pid", str(proc.pid), "--nonblocking", "--format", "raw", "--full-filenames"]
    record += ["--rate", str(rate), "--duration", str(int(seconds) + 2), "--output", str(out)]
    spy = subprocess.Popen(
        ["taskset", "-c", "1", _py_spy(), *record], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(0.5)  # attached before the load starts
    before = on_cpu_seconds(proc.pid)
    result = loadgen.run(request, 10**7, concurrency, cap_s=seconds)
    spent = on_cpu_seconds(proc.pid) - before
    spy.wait(timeout=seconds + 30)
    completed = sum(1 for sample in result.samples if sample.ok)
    return spent / max(1, completed) * 1e6


def _count_run(
    proc: Proc, counts_file: Path, stream: bool, concurrency: int, requests: int
) -> dict[str, float]:
    request = chat_request(proc.port, Load(concurrency, stream, 0))
    loadgen.run(request, 300, concurrency)
    time.sleep(0.3)
    before = read_counts(str(counts_file))
    result = loadgen.run(request, requests, concurrency)
    time.sleep(0.3)  # the dump thread rewrites the file every 0.1 s
    after = read_counts(str(counts_file))
    completed = max(1, sum(1 for sample in result.samples if sample.ok))
    return {key: (after[key] - before.get(key, 0)) / completed for key in after}


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--loads", default=",".join(LOADS), help=f"comma-separated subset of {', '.join(LOADS)}"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="profiled seconds per server and load")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25, help="functions listed per load")
    parser.add_argument(
        "--count-requests", type=int, default=2000, help="requests per load for trio's counts"
    )
    parser.add_argument("--out", type=Path, default=None, help="keep stacks and tables here")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {1})
    out = args.out or Path(tempfile.mkdtemp(prefix="plano-trio-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    report: list[str] = []
    with ExitStack() as stack:
        mock = start_mock(stack, out)
        servers = _servers(stack, out, mock, counted=False)
        for load in args.loads.split(","):
            concurrency, stream = LOADS[load]
            columns: dict[str, tuple[Attribution, float]] = {}
            for name, proc in servers.items():
                stacks = out / f"{load}-{name.replace(', ', '-').replace(' ', '-')}.txt"
                cpu_us = _profile_run(proc, stream, concurrency, args.seconds, args.rate, stacks)
                with open(stacks) as source:
                    columns[name] = (attribute(parse_collapsed(source)), cpu_us)
            report += [f"## {load}", "", *layer_table(columns), "", *trio_table(columns), ""]
            attribution, cpu_us = columns["plano-trio"]
            report += [
                f"Top functions, plano-trio, {load}:",
                "",
                *top_functions(attribution, cpu_us, args.top),
                "",
            ]
            report += ["Our code only:", "", *top_functions(attribution, cpu_us, args.top, "ours"), ""]
            print(f"[profile] {load} done", file=sys.stderr, flush=True)
        for proc in servers.values():
            proc.stop()
        counted = _servers(stack, out, mock, counted=True)
        by_task: dict[str, dict[str, float]] = {}
        rows = [
            "| load | server | tasks spawned | task steps | cancel scopes | I/O waits |",
            "|---|---|---|---|---|---|",
        ]
        for load in args.loads.split(","):
            concurrency, stream = LOADS[load]
            for name, proc in counted.items():
                figures = _count_run(
                    proc, out / f"{proc.name}.counts.json", stream, concurrency, args.count_requests
                )
                by_task.setdefault(name, figures)
                rows.append(
                    f"| {load} | {name} | {figures['tasks_spawned']:.1f} | {figures['task_steps']:.1f} "
                    f"| {figures['cancel_scopes']:.1f} | {figures['io_waits']:.1f} |"
                )
        report += ["## trio's scheduler, per request", "", *rows, ""]
        report += ["Task steps and spawns per request by task, first load, 0.1 and up:", ""]
        report += [*per_task_rows(by_task), ""]
    text = "\n".join(report)
    (out / "profile.md").write_text(text)
    print(text)
    print(f"\n(stacks and tables in {out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
