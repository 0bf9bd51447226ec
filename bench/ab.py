"""Paired A/B: this tree's gateway against another revision's, loaded side by side.

``python -m bench.ab --base REV`` answers "did this change cost CPU?" (and,
with ``--base-extra``/``--new-extra`` YAML appended to either config, "what
does this setting cost?") more precisely than two separate bench runs can
on a shared machine, where even
the floor drifts by 20-30 % between runs.  Both gateways run at the same time
on the same core (the mock and the load generator on the other), and
alternate in short batches, so drift hits both alike.  CPU is each gateway
process's on-CPU time from ``/proc/<pid>/task/*/schedstat`` (nanoseconds,
every thread), far finer than utime+stime's clock ticks.  Each load reports
the median per-request figure over all batches, and the ratio new/base.

The base revision is checked out with ``git worktree`` into a temporary
directory and run from there with this venv's Python, so only plano-trio's
own code differs between the two.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NamedTuple

from bench import loadgen
from bench.targets import Proc, chat_body, free_port, python, spawn

REPO = Path(__file__).resolve().parent.parent


class Load(NamedTuple):
    concurrency: int
    stream: bool
    per_batch: int
    """Requests per batch."""
    mock_headers: tuple[tuple[str, str], ...] = ()
    """How the mock answers (``x-mock-*``; the gateway passes them on)."""
    deltas: int = 0
    """Content deltas per stream when the figure is per delta (0: per request)."""
    model: str = "gpt-4o-mini"
    """The model asked for (`claude-sonnet-4-6` is the mock's Messages API: the gateway translates)."""


PACED = (("x-mock-chunks", "100"), ("x-mock-delay-ms", "20"), ("x-mock-chunk-bytes", "30"))
"""Long streams in short: 100 deltas of ~30 bytes, 20 ms apart (real token pacing, one event per read)."""

LOADS = {
    "json-c1": Load(1, False, 300),
    "json-c32": Load(32, False, 1500),
    "stream-c32": Load(32, True, 1200),
    "paced-c100": Load(100, True, 200, PACED, deltas=100),
    "paced-messages-c100": Load(100, True, 200, PACED, deltas=100, model="claude-sonnet-4-6"),
}


def on_cpu_seconds(pid: int) -> float:
    """Everything `pid`'s threads have run so far, in seconds (schedstat's first field is ns)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    place = Path(tempfile.mkdtemp(prefix="plano-trio-ab-"))
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(place), rev], check=True)
    try:
        yield place
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(place)], check=False)
        shutil.rmtree(place, ignore_errors=True)


def gateway_yaml(port: int, mock: Proc, extra: str = "") -> str:
    """The smallest gateway config: one model listener on `port`, one OpenAI provider at `mock`."""
    return (
        "version: v0.4.0\nlisteners:\n"
        f"  - {{name: llm, type: model, address: 127.0.0.1, port: {port}, timeout: 60s}}\n"
        "model_providers:\n"
        f'  - {{model: openai/gpt-4o-mini, access_key: k, base_url: "{mock.url}", default: true}}\n'
        f'  - {{model: anthropic/claude-sonnet-4-6, access_key: k, base_url: "{mock.url}"}}\n'
        + (extra + "\n" if extra else "")
    )


def start_gateway(stack: ExitStack, tree: Path, mock: Proc, work: Path, name: str, extra: str = "") -> Proc:
    """`plano-trio up` from `tree`, on CPU0, answered by `mock`; ready once `/healthz` answers.

    ``extra`` is appended to the config (top-level YAML, e.g. ``overrides: {disable_signals: true}``)."""
    port = free_port()
    config = work / f"{name}.yaml"
    config.write_text(gateway_yaml(port, mock, extra))
    cmd = [python(), "-m", "plano_trio", "up", str(config), "--log-level", "warning"]
    gateway = spawn(f"gateway-{name}", cmd, work, cpu=0, url=f"http://127.0.0.1:{port}", cwd=tree)
    stack.callback(gateway.stop)
    return gateway


def start_mock(stack: ExitStack, work: Path) -> Proc:
    cmd = [python(), "-m", "tests.mock_provider", "--host", "127.0.0.1", "--port", "0"]
    mock = spawn("mock", [*cmd, "--chunks", "20", "--chunk-bytes", "180"], work, cpu=1, cwd=REPO)
    stack.callback(mock.stop)
    return mock


def chat_request(port: int, load: Load) -> loadgen.Request:
    body = chat_body(load.model, load.stream)
    path = "/v1/chat/completions"
    return loadgen.Request("127.0.0.1", port, path, body, load.stream, headers=load.mock_headers)


def measure(gateways: dict[str, Proc], load: str, batches: int) -> dict[str, list[float]]:
    """CPU µs per request (per delta for a paced load) of each gateway, one figure per batch, in
    alternating order."""
    spec = LOADS[load]
    concurrency, per_batch = spec.concurrency, spec.per_batch
    per = per_batch * max(1, spec.deltas)
    figures: dict[str, list[float]] = {name: [] for name in gateways}
    for gateway in gateways.values():  # warm-up: pools filled, code paths hot
        loadgen.run(chat_request(gateway.port, spec), 200, concurrency)
    names = list(gateways)
    for batch in range(batches):
        for name in names if batch % 2 == 0 else reversed(names):
            gateway = gateways[name]
            before = on_cpu_seconds(gateway.pid)
            request = chat_request(gateway.port, spec)
            result = loadgen.run(request, per_batch, concurrency)
            spent = on_cpu_seconds(gateway.pid) - before
            ok = sum(1 for sample in result.samples if sample.ok)
            if ok < per_batch:
                print(f"  {name}: {per_batch - ok} of {per_batch} failed in a {load} batch", flush=True)
            figures[name].append(spent / per * 1e6)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base", default=None, help="git revision to compare this tree against (default: this tree)"
    )
    parser.add_argument("--base-extra", default="", help="YAML appended to the base gateway's config")
    parser.add_argument("--new-extra", default="", help="YAML appended to the new gateway's config")
    parser.add_argument("--batches", type=int, default=30, help="batches per gateway and load (default 30)")
    parser.add_argument(
        "--loads", default=",".join(LOADS), help=f"comma-separated subset of {', '.join(LOADS)}"
    )
    args = parser.parse_args(argv)
    loads = [load for load in args.loads.split(",") if load]
    with ExitStack() as stack:
        base_tree = stack.enter_context(worktree(args.base)) if args.base else REPO
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        mock = start_mock(stack, work)
        gateways = {
            "base": start_gateway(stack, base_tree, mock, work, "base", args.base_extra),
            "new": start_gateway(stack, REPO, mock, work, "new", args.new_extra),
        }
        print("| load | base µs/req (paced: /delta) | new | new/base | batches |")
        print("|---|---|---|---|---|")
        for load in loads:
            figures = measure(gateways, load, args.batches)
            base, new = statistics.median(figures["base"]), statistics.median(figures["new"])
            print(f"| {load} | {base:.0f} | {new:.0f} | {new / base:.3f} | {args.batches} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
