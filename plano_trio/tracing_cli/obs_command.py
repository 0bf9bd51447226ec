"""`plano-trio obs`: a live terminal view of recent LLM calls, read from a trace listener.

`planoai obs` is its own OTLP receiver; this one asks the listener of `plano-trio trace listen` (or
`planoai trace listen`: same query protocol) for what it holds, every `--interval` seconds, so the
gateway keeps one trace endpoint and `obs` and `trace` can run side by side, started and stopped at
will.  What it shows is what the listener holds: its last `--max-traces` traces (50 by default).

The screen is redrawn in place with plain ANSI sequences (cursor home, clear to end of line and of
screen), no curses; colours only on a terminal and without `NO_COLOR`.  `--once` prints one screen
and exits, `--json` prints the calls and the summary as JSON and exits (both for scripts and tests).
A listener that is down is an error with `--once`/`--json` (exit 1) and a line on the screen while
live (it keeps asking).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from typing import Any, TextIO

MIN_INTERVAL_S = 0.2
CLEAR_LINE = "\x1b[K"
HOME = "\x1b[H"
CLEAR_BELOW = "\x1b[J"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
HEADER_LINES = 12
"""Lines above the recent calls (title, totals, quality, models, table header): rows = height - this."""


def add_obs_command(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `obs` to the CLI's subcommands (`commands` is argparse's subparsers object)."""
    obs = commands.add_parser(
        "obs",
        parents=parents,
        help="live view of recent LLM calls (model, tokens, TTFT, route, quality) from a trace listener",
        description=(
            "A live terminal view of the LLM calls a trace listener holds (`plano-trio trace listen`, or "
            "Plano's): model, tokens, time to first token, latency, route, status and the conversation's "
            "signals quality, refreshed in place. The listener is found at 127.0.0.1:$PLANO_TRACE_PORT "
            "(default 4317); the gateway must trace to it (tracing.random_sampling > 0)."
        ),
    )
    obs.add_argument("--port", type=int, metavar="PORT", help="the trace listener's port")
    obs.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="seconds between refreshes (default 1)"
    )
    obs.add_argument("--once", action="store_true", help="print one screen and exit")
    obs.add_argument("--json", action="store_true", help="print the calls and summary as JSON and exit")
    obs.add_argument("--rows", type=int, metavar="N", help="recent calls shown (default: what fits)")


def run_obs(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from plano_trio.tracing_cli.obs import as_json, llm_calls, render
    from plano_trio.tracing_cli.viewer import ViewerError, fetch_traces, listener_port

    out = out or sys.stdout
    try:
        port = args.port if args.port is not None else listener_port()
    except ViewerError as error:
        print(f"plano-trio obs: {error}", file=sys.stderr)
        return 2
    listener = f"127.0.0.1:{port}"
    color = out.isatty() and not os.environ.get("NO_COLOR")

    def screen() -> list[str]:
        calls = llm_calls(fetch_traces(port).traces)
        height = shutil.get_terminal_size((120, 40)).lines
        rows = args.rows if args.rows is not None else max(3, height - HEADER_LINES)
        return render(calls, listener=listener, rows=rows, color=color, now_ns=time.time_ns())

    if args.json or args.once:
        try:
            if args.json:
                text = json.dumps(as_json(llm_calls(fetch_traces(port).traces), listener), indent=2)
            else:
                text = "\n".join(screen())
        except ViewerError as error:
            print(f"plano-trio obs: {error}", file=sys.stderr)
            return 1
        print(text, file=out)
        return 0

    interval = max(MIN_INTERVAL_S, args.interval)
    out.write(HIDE_CURSOR)
    try:
        while True:
            try:
                lines = screen()
            except ViewerError as error:
                lines = [f"plano-trio obs: {error}", f"(asking again every {interval:g} s; Ctrl-C stops)"]
            out.write(HOME + "".join(line + CLEAR_LINE + "\n" for line in lines) + CLEAR_BELOW)
            out.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0
    finally:
        out.write(SHOW_CURSOR)
        out.flush()
