"""Bytecode instructions the gateway's interpreter runs per relayed token, by function and by layer.

``python -m bench.opcodes [--base REV] [--model M]`` starts the mock provider and plano-trio (this tree,
and the revision ``REV`` checked out in a temporary worktree), loads each with a few paced streams
(``--streams`` streams of ``--deltas`` ~30-byte deltas, 20 ms apart), and counts every bytecode
instruction the gateway's main thread executes while that load runs: ``sys.settrace`` with
``f_trace_opcodes``, switched on and off by SIGUSR1/SIGUSR2 from this harness (the recorder is this
file run as a script in front of ``plano_trio up``; it needs nothing but the standard library, so a
base revision that predates it is counted the same way).  It prints instructions per delta for each
tree, split into `bench.profile`'s layers (our server edge and the rest of ours, hypercorn, h11, trio's
scheduler, trio's sockets and streams; anything else is "other"), and the functions whose count moved
most.

Why count instructions at all: CPU per delta on this shared VM moves by several per cent between runs
(`bench.ab` needs a dozen alternating batches to see 3 %), while our code's count stays within a few
instructions from run to run (trio's run loop varies by a few per cent with how the deltas happen to
batch), so it tells at once whether a change removed work from the path a token takes, and where. It is
not time: a system call costs as much as hundreds of instructions, and code that runs right after one
runs slower than in a microbenchmark (cold caches and branch predictors), so the paired CPU figure
(`bench.ab`) still decides whether a change pays. Per-request work (the request head, the upstream
request, the response head) is included, spread over the deltas. Tracing slows the gateway about
twentyfold, which is why the load is a few streams only.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def layer_of(filename: str) -> str:
    """The layer of a shortened file name: `bench.profile`'s layers, matched the same way (shortening
    keeps every fragment they match on); "other" for the rest (the standard library, and trio's helpers
    from `outcome` and `attrs`).  Imported here, not at the top: the recorder half of this file runs in
    the gateway's process with the standard library only."""
    from bench import profile

    return profile.layer_of("/" + filename) or "other"


def short_name(filename: str) -> str:
    """``/…/site-packages/trio/_core/_run.py`` → ``trio/_core/_run.py``; ours from ``plano_trio/``."""
    for marker in ("site-packages/", "/plano_trio/"):
        if marker in filename:
            tail = filename.rpartition(marker)[2]
            return tail if marker == "site-packages/" else f"plano_trio/{tail}"
    return filename


# --- the recorder, inside the gateway's process ------------------------------------------------------


def _record(out: str, argv: list[str]) -> None:
    """Run ``plano_trio`` with ``argv``; count instructions between SIGUSR1 and SIGUSR2, then write
    ``count<TAB>file<TAB>function`` lines to ``out``."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            counts[code.co_filename, code.co_name] += 1
        return trace

    def start(*_: object) -> None:
        counts.clear()
        sys.settrace(trace)

    def stop(*_: object) -> None:
        sys.settrace(None)
        with open(out, "w") as dump:
            for (filename, name), n in counts.most_common():
                dump.write(f"{n}\t{filename}\t{name}\n")

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    # Run as a script, this file's directory leads sys.path (where `profile.py` would shadow the standard
    # library's): put the tree being counted there instead.
    sys.path[0] = os.getcwd()
    sys.argv = ["plano_trio", *argv]
    import runpy

    runpy.run_module("plano_trio", run_name="__main__", alter_sys=True)


# --- the harness ---------------------------------------------------------------------------------------


def read_counts(path: Path) -> dict[tuple[str, str], int]:
    """``(short file, function) → instructions`` from a recorder's dump."""
    counts: dict[tuple[str, str], int] = {}
    for line in path.read_text().splitlines():
        n, filename, name = line.split("\t")
        key = (short_name(filename), name)
        counts[key] = counts.get(key, 0) + int(n)
    return counts


def count_tree(
    tree: Path, work: Path, name: str, model: str, streams: int, deltas: int
) -> dict[tuple[str, str], float]:
    """Instructions per delta by function, for the gateway of ``tree`` under the paced load."""
    from bench import loadgen
    from bench.ab import PACED, Load, chat_request, gateway_yaml, start_mock
    from bench.targets import free_port, python, spawn

    with ExitStack() as stack:
        mock = start_mock(stack, work)
        port = free_port()
        config = work / f"{name}.yaml"
        config.write_text(gateway_yaml(port, mock))
        dump = work / f"{name}.opcodes"
        cmd = [python(), str(Path(__file__).resolve()), "--record", str(dump), "up", str(config)]
        gateway = spawn(
            f"gateway-{name}",
            [*cmd, "--log-level", "warning"],
            work,
            cpu=0,
            url=f"http://127.0.0.1:{port}",
            cwd=tree,
        )
        stack.callback(gateway.stop)
        mock_headers = tuple((k, str(deltas) if k == "x-mock-chunks" else v) for k, v in PACED)
        load = Load(streams, True, streams * 4, mock_headers, deltas=deltas, model=model)
        request = chat_request(port, load)
        loadgen.run(request, load.per_batch, streams)  # warm-up: pool filled, code paths hot
        os.kill(gateway.pid, signal.SIGUSR1)
        time.sleep(0.2)
        result = loadgen.run(request, load.per_batch, streams, cap_s=120.0, timeout_s=120.0)
        os.kill(gateway.pid, signal.SIGUSR2)
        ok = sum(1 for sample in result.samples if sample.ok)
        if ok < load.per_batch:
            print(f"  {name}: {load.per_batch - ok} of {load.per_batch} streams failed", flush=True)
        for _ in range(100):
            if dump.exists() and dump.stat().st_size:
                break
            time.sleep(0.1)
        time.sleep(0.3)  # the dump is written in one go; let it finish
        per = max(1, ok * deltas)
        return {key: n / per for key, n in read_counts(dump).items()}


def _layer_rank(order: list[str]) -> Callable[[str], int]:
    """Sort key: `bench.profile`'s layer order, "other" last."""
    return lambda layer: order.index(layer) if layer in order else len(order)


def by_layer(counts: dict[tuple[str, str], float]) -> dict[str, float]:
    layers: dict[str, float] = collections.defaultdict(float)
    for (filename, _), n in counts.items():
        layers[layer_of(filename)] += n
    return dict(layers)


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["--record"]:
        _record(args_in[1], args_in[2:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.opcodes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=None, help="git revision to count next to this tree")
    parser.add_argument(
        "--model",
        default="gpt-4o-mini",
        help="gpt-4o-mini (relayed as is) or claude-sonnet-4-6 (translated from Messages)",
    )
    parser.add_argument("--streams", type=int, default=5, help="concurrent streams (default 5)")
    parser.add_argument("--deltas", type=int, default=100, help="deltas per stream (default 100)")
    parser.add_argument("--top", type=int, default=25, help="functions listed (default 25)")
    args = parser.parse_args(args_in)
    from bench.ab import worktree

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        trees = {"new": REPO_ROOT}
        if args.base:
            trees = {"base": stack.enter_context(worktree(args.base)), **trees}
        counted = {
            name: count_tree(tree, work, name, args.model, args.streams, args.deltas)
            for name, tree in trees.items()
        }
    names = list(counted)
    print(f"instructions per delta ({args.model}, {args.streams} streams x {args.deltas} deltas)\n")
    print("| layer | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    layers = {name: by_layer(counts) for name, counts in counted.items()}
    from bench import profile

    order = [layer for _, layer in profile.LAYERS]
    for layer in sorted({layer for counts in layers.values() for layer in counts}, key=_layer_rank(order)):
        print(f"| {layer} | " + " | ".join(f"{layers[n].get(layer, 0.0):.0f}" for n in names) + " |")
    print("| **total** | " + " | ".join(f"**{sum(counted[n].values()):.0f}**" for n in names) + " |\n")
    keys = set().union(*counted.values())
    first, last = counted[names[0]], counted[names[-1]]
    ranked = sorted(
        keys,
        key=lambda k: -abs(last.get(k, 0.0) - first.get(k, 0.0)) if len(names) > 1 else -last.get(k, 0.0),
    )
    print("| function | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key in ranked[: args.top]:
        print(
            f"| `{key[0]}:{key[1]}` | " + " | ".join(f"{counted[n].get(key, 0.0):.1f}" for n in names) + " |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
