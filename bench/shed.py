"""Load shedding on event-loop lag (`plano_trio.max_loop_lag_ms`) under an overload of long streams.

``python -m bench.shed [--streams 600] [--ramp-s 1] [--limits 50] [--rounds 2] [--connect-late] [--base
REV]`` starts gateways from this tree on ``bench.ab``'s rig (each pinned to CPU0, the mock and this client
on CPU1): one without the key and one per limit; the mock alone (``direct``) is loaded the same way, as the
baseline.  Each is loaded in turn, in alternating rounds, with ``--streams`` long streams
(``bench.ab.PACED``: 100 deltas of ~30 bytes, 20 ms apart, 2 s each), one per connection, the first bytes of
each sent evenly over ``--ramp-s`` once every connection is open and accepted (``SETTLE_S``): 1 s (the
``long_stream`` scenario's ramp) is a burst, e.g. ``--streams 900 --ramp-s 3`` a sustained 300 new streams a
second (600 at once if all were admitted).  Past about 300 such streams one core cannot relay them all;
without the key every stream is admitted and the new ones wait for their first token.  A refused client does
not retry (``loadgen.run(one_each=True)``): the run counts refusals.  About a minute per 3 rounds of 600
streams.  ``--connect-late``: each client connects only when its stream starts, so connections arrive while
the loop is loaded (new users, not a load balancer's open pool): how fast the gateway takes them from the
kernel's queue then counts.  ``--base REV``: the same gateways built from revision REV too (a temporary
worktree), in the same rounds.

Per gateway and round, then the median of the rounds: the share of streams admitted (200), shed for
the loop's lag and refused at ``max_concurrent_requests`` (1,024 in flight: both 503 +
``Retry-After``), the share of admitted streams that completed, and for those the time to first token
(p50/p99) and the inter-delta gap minus the 20 ms pacing (p99: what the gateway adds to a user's token
rate); for shed ones, how soon the 503 came.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import loadgen, scenarios  # scenarios first: it imports the scenario modules in order
from bench.ab import LOADS, REPO, chat_request, start_gateway, start_mock, worktree
from bench.long_stream_scenario import RAMP_S
from bench.runner import raise_fd_limit
from bench.stats import median, percentiles, ratio
from bench.targets import Proc, Profile

LOAD = LOADS["paced-c100"]
MOCK = dict(LOAD.mock_headers)
PROFILE = Profile(
    "paced",
    LOAD.model,
    True,
    chunks=int(MOCK["x-mock-chunks"]),
    delay_ms=float(MOCK["x-mock-delay-ms"]),
    chunk_bytes=int(MOCK["x-mock-chunk-bytes"]),
)
TIMEOUT_S = 60.0
SETTLE_S = 1.0
"""Between opening every connection and the first request: the idle gateway accepts them all first
(1,200 took 0.6 s), so requests arrive on established connections, as from a load balancer's pool.
Without it, trio's accept (one connection per pass of the loop) falls behind once the streams load the
loop, and requests wait seconds in the kernel on connections nobody accepted yet."""
IDLE_CLOSE_S = 5.0
"""hypercorn's `keep_alive_timeout` in the gateway: a connection without a request for this long is
closed, and the client's reconnect under load would meet the accept queue; the last request must
start before it."""
CLIENT_CPU = 1
OFF = "off"
DIRECT = "direct (client + mock)"
"""The mock alone, no gateway: what the rig itself adds (its CPU also runs the mock and this client)."""
LAG_REFUSAL = "event loop is running"
"""In the message of a 503 for loop lag (any other 503 is `max_concurrent_requests`')."""


def shed_round(
    gateway: Proc, n: int, ramp_s: float, settle_s: float = SETTLE_S, connect_late: bool = False
) -> dict[str, Any]:
    """``n`` paced streams through ``gateway``, one per connection, started evenly over ``ramp_s``: who
    was admitted, who shed, and how the admitted streams fared.  ``connect_late``: each client opens its
    connection when its stream starts (new users arriving), not all of them before the first request."""
    request = dataclasses.replace(chat_request(gateway.port, LOAD), expected_chunks=PROFILE.chunks)
    res = loadgen.run(
        request,
        n,
        n,
        synchronized=not connect_late,
        ramp_s=ramp_s,
        cap_s=TIMEOUT_S + ramp_s + 10,
        timeout_s=TIMEOUT_S,
        one_each=True,
        settle_s=settle_s,
    )
    admitted = [s for s in res.samples if s.status == 200]
    refused = [s for s in res.samples if s.status == 503]
    shed = [s for s in refused if LAG_REFUSAL in (s.error or "")]  # "HTTP 503: <the body's start>"
    record = scenarios.stream_stats(dataclasses.replace(res, samples=admitted), PROFILE, len(admitted))
    record.update(
        offered=n,
        admitted_pct=100 * len(admitted) / n,
        shed_pct=100 * len(shed) / n,
        at_limit_pct=100 * (len(refused) - len(shed)) / n,
        other=n - len(admitted) - len(refused),
        refusal_p50_ms=percentiles([s.latency * 1e3 for s in shed])["p50"],
    )
    return record


FIGURES = (
    "admitted_pct",
    "shed_pct",
    "at_limit_pct",
    "completed_pct",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "added_gap_p99_ms",
    "refusal_p50_ms",
    "other",
)
HEADER = (
    "| gateway | round | offered | admitted % | shed for lag % | 503 at max_concurrent_requests % | "
    "admitted completed % | TTFT p50 / p99 ms (admitted) | added gap p99 ms (admitted) | "
    "503 answered in, p50 ms | other errors |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def _row(name: str, r: str, record: dict[str, Any]) -> str:
    return (
        f"| {name} | {r} | {record['offered']:,} | {record['admitted_pct']:.1f} | "
        f"{record['shed_pct']:.1f} | {record['at_limit_pct']:.1f} | "
        f"{record['completed_pct']:.1f} | {record['ttft_p50_ms']:,.0f} / {record['ttft_p99_ms']:,.0f} | "
        f"{record['added_gap_p99_ms']:.1f} | {record['refusal_p50_ms']:,.0f} | {record['other']:g} |"
    )


def _ratios(name: str, record: dict[str, Any], off: dict[str, Any]) -> str:
    keys = ("admitted_pct", "ttft_p50_ms", "ttft_p99_ms", "added_gap_p99_ms")
    return f"| {name} | " + " | ".join(f"{ratio(record[k], off[k]):.2f}x" for k in keys) + " |"


def _medians(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds (a round without refusals has no refusal time: left out)."""
    return {"offered": records[0]["offered"], **{key: median(r[key] for r in records) for key in FIGURES}}


def _gateways(
    stack: ExitStack, tree: Path, mock: Proc, work: Path, limits: Sequence[int], prefix: str
) -> dict[str, Proc]:
    """The gateways of ``tree``: one without the key, one per limit; named ``prefix`` + what they run."""
    tag = "base-" if prefix else ""
    gateways = {prefix + OFF: start_gateway(stack, tree, mock, work, f"{tag}{OFF}")}
    for limit in limits:
        extra = f"plano_trio: {{max_loop_lag_ms: {limit}}}"
        gateways[f"{prefix}max_loop_lag_ms: {limit}"] = start_gateway(
            stack, tree, mock, work, f"{tag}lag{limit}", extra
        )
    return gateways


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=600, help="concurrent streams offered (default 600)")
    parser.add_argument(
        "--limits",
        default="50",
        help="comma-separated max_loop_lag_ms values to compare with off (default 50)",
    )
    parser.add_argument(
        "--ramp-s",
        type=float,
        default=RAMP_S,
        help=f"seconds over which the streams start (default {RAMP_S:g}: a burst; longer: a sustained rate)",
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        default=SETTLE_S,
        help=f"pause between opening the connections and the first request (default {SETTLE_S:g}; "
        "0: as the long_stream scenario, requests may meet connections not accepted yet)",
    )
    parser.add_argument(
        "--connect-late",
        action="store_true",
        help="each client connects when its stream starts, during the load (default: every connection "
        "is opened, and accepted, before the first request)",
    )
    parser.add_argument(
        "--base",
        metavar="REV",
        help="also run the gateway of git revision REV (a temporary worktree), without the key and with "
        "each limit, in the same alternating rounds",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds per gateway, alternating (default 2)")
    args = parser.parse_args(argv)
    if args.settle_s + args.ramp_s > IDLE_CLOSE_S - 1:
        parser.error(f"--settle-s + --ramp-s must stay under {IDLE_CLOSE_S - 1:g} s (see IDLE_CLOSE_S)")
    limits = [int(limit) for limit in args.limits.split(",") if limit]
    if len(os.sched_getaffinity(0)) > CLIENT_CPU:
        os.sched_setaffinity(0, {CLIENT_CPU})  # the gateways have CPU0 to themselves
    raise_fd_limit()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        mock = start_mock(stack, work)
        gateways: dict[str, Proc] = {DIRECT: mock, **_gateways(stack, REPO, mock, work, limits, "")}
        if args.base:
            base_tree = stack.enter_context(worktree(args.base))
            gateways.update(_gateways(stack, base_tree, mock, work, limits, f"{args.base}: "))
        for gateway in gateways.values():  # warm-up: pools filled, code paths hot
            loadgen.run(chat_request(gateway.port, LOAD), 20, 20, cap_s=30)
        print(
            f"{args.streams:,} streams of {PROFILE.chunks} deltas of ~{PROFILE.chunk_bytes} B, "
            f"{PROFILE.delay_ms:g} ms apart, started evenly over {args.ramp_s:g} s, "
            + (
                "each client connecting as its stream starts"
                if args.connect_late
                else f"{args.settle_s:g} s after the connections opened"
            )
            + "; refused clients do not retry"
        )
        print(HEADER)
        names = list(gateways)
        records: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else reversed(names):
                record = shed_round(
                    gateways[name], args.streams, args.ramp_s, args.settle_s, args.connect_late
                )
                records[name].append(record)
                print(_row(name, str(r + 1), record), flush=True)
        print(f"\nMedians of {args.rounds} rounds:\n\n{HEADER}")
        medians = {name: _medians(records[name]) for name in names}
        for name in names:
            print(_row(name, "median", medians[name]))
        print("\n| gateway ÷ off (medians) | admitted | TTFT p50 | TTFT p99 | added gap p99 |")
        print("|---|---|---|---|---|")
        for name in names[2:]:  # the limits (after direct and off)
            print(_ratios(name, medians[name], medians[OFF]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
