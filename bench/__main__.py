"""``python -m bench run [--quick|--smoke] [--peers litellm,portkey] [--out DIR] [--scenarios a,b]``.

Modes: default (full, several minutes), ``--quick`` (< 2 min, for developers), ``--smoke`` (a few
seconds, direct + plano-trio only; the test-suite runs it so the harness never rots).  The Markdown
result is printed on stdout; progress goes to stderr.  ``python -m bench list`` shows the scenarios.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.scenarios import PEERS, SCENARIOS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="plano-trio load benchmarks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the benchmark (direct, floor, plano-trio[, peers])")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short pass for developers (< 2 minutes)")
    mode.add_argument("--smoke", action="store_true", help="seconds-long sanity pass (tests use it)")
    run.add_argument(
        "--peers",
        default="",
        help=f"comma-separated peer gateways to measure in the same run: {', '.join(PEERS)}",
    )
    run.add_argument("--out", type=Path, help="results directory (default bench/results/<timestamp>-<mode>)")
    run.add_argument("--scenarios", default="", help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    run.add_argument("--no-pin", action="store_true", help="do not pin processes with taskset")
    run.add_argument("--no-charts", action="store_true", help="skip the matplotlib PNGs")
    run.add_argument(
        "--gateway-pool",
        type=int,
        metavar="N",
        help="set plano_trio.upstream_pool_max_per_host=N in the gateway config (default: product default)",
    )
    commands.add_parser("list", help="list the scenarios")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        for key, spec in sorted(SCENARIOS.items(), key=lambda kv: kv[1].order):
            print(f"{key:18} {spec.title}  [{', '.join(sorted(spec.modes))}]")
        return 0
    peers = tuple(p.strip() for p in args.peers.split(",") if p.strip())
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        print(f"unknown peer(s): {', '.join(unknown)}; known: {', '.join(PEERS)}", file=sys.stderr)
        return 2

    from bench.runner import Options, run  # heavier imports only when running

    options = Options(
        mode="smoke" if args.smoke else "quick" if args.quick else "full",
        peers=peers,
        out=args.out.resolve() if args.out else None,  # servers also run from other directories
        scenarios=tuple(s.strip() for s in args.scenarios.split(",") if s.strip()),
        pin=not args.no_pin,
        charts=not args.no_charts,
        gateway_pool=args.gateway_pool,
    )
    out = run(options)
    print((out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
