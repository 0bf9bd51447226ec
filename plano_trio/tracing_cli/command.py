"""`plano-trio trace ...` on the command line: argparse wiring and the two runs (listen, view).

Heavy imports (grpcio, protobuf, hypercorn) and the viewer's own modules wait until a trace command
runs, so `plano-trio up` starts no slower, and its process is no larger, for carrying the viewer.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from typing import Any

import msgspec

log = logging.getLogger("plano_trio.trace")

LISTEN = "listen"
DEFAULT_HOST = "127.0.0.1"
VIEW_OPTIONS = ("where", "filter", "json", "list", "limit", "since", "verbose")
LISTEN_OPTIONS = ("host", "http_port", "max_traces")


def add_trace_command(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `trace` to the CLI's subcommands (`commands` is argparse's subparsers object)."""
    trace = commands.add_parser(
        "trace",
        parents=parents,
        help="show traces from a trace listener, or run one (`trace listen`)",
        description=(
            "`plano-trio trace listen` runs an OTLP receiver (gRPC, and HTTP with --http-port) that keeps "
            "the most recent traces in memory; `plano-trio trace [last|any|ID]` prints them as a span tree "
            "(or JSON). Compatible with Plano's `planoai trace`: either viewer reads either listener. The "
            "viewer finds the listener at 127.0.0.1:$PLANO_TRACE_PORT (default 4317)."
        ),
    )
    trace.add_argument(
        "target",
        nargs="?",
        metavar="last|any|ID|listen",
        help="the newest trace (default), every trace, a trace id (32 hex) or its first 8; "
        "`listen` runs the listener",
    )
    view = trace.add_argument_group("viewing")
    view.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="traces with a span whose attribute KEY has VALUE (repeatable: all must hold)",
    )
    view.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="PATTERN",
        help="show only attribute keys matching PATTERN (* is a wildcard; repeatable or comma-separated)",
    )
    view.add_argument("--json", action="store_true", help="print JSON in `planoai trace --json`'s shape")
    view.add_argument("--list", action="store_true", help="list trace ids only")
    view.add_argument("--limit", type=int, metavar="N", help="at most N traces")
    view.add_argument("--since", metavar="WINDOW", help="only spans started within WINDOW (5m, 2h, 1d)")
    view.add_argument("-v", "--verbose", action="store_true", help="every attribute, values uncut")
    listen = trace.add_argument_group("listen")
    listen.add_argument(
        "--port",
        type=int,
        metavar="PORT",
        help="OTLP/gRPC and viewer port (default: $PLANO_TRACE_PORT, "
        "else 4317; with `listen`, 0 picks a free one); when viewing, the listener's port",
    )
    listen.add_argument(
        "--host",
        metavar="ADDRESS",
        help=f"address to listen on (default {DEFAULT_HOST}; 0.0.0.0 for all, "
        "which lets anyone who can reach it read the traces)",
    )
    listen.add_argument(
        "--http-port", type=int, metavar="PORT", help="also take OTLP/HTTP on PORT (e.g. 4318)"
    )
    listen.add_argument("--max-traces", type=int, metavar="N", help="traces kept (default 50)")


def run_trace(args: argparse.Namespace) -> int:
    from plano_trio.tracing_cli.viewer import ViewerError, listener_port

    try:
        port = args.port if args.port is not None else listener_port()
    except ViewerError as error:
        print(f"plano-trio trace: {error}", file=sys.stderr)
        return 2
    if args.target == LISTEN:
        return _run_listen(args, port)
    return _run_view(args, port)


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    return [f"--{name.replace('_', '-')}" for name in names if getattr(args, name) not in (None, False, [])]


def _run_listen(args: argparse.Namespace, port: int) -> int:
    misplaced = _given(args, VIEW_OPTIONS)
    if misplaced:
        print(
            f"plano-trio trace listen: {', '.join(misplaced)} are for viewing, not listening", file=sys.stderr
        )
        return 2
    import trio

    from plano_trio.tracing_cli.limits import Limits
    from plano_trio.tracing_cli.listener import Listener, ListenerError
    from plano_trio.tracing_cli.store import TraceStore

    if args.max_traces is not None and args.max_traces < 1:
        print("plano-trio trace listen: --max-traces must be at least 1", file=sys.stderr)
        return 2
    limits = Limits() if args.max_traces is None else Limits(max_traces=args.max_traces)
    store = TraceStore(limits)
    try:
        listener = Listener(store, args.host or DEFAULT_HOST, port, args.http_port)
    except ListenerError as error:
        log.error("%s", error)
        return 1

    async def main() -> None:
        shutdown = trio.Event()
        # Signals are caught before the ready line is printed: whoever reads it may stop us at once.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(listener.serve, shutdown)
                log.info(
                    "trace listener: OTLP/gRPC and viewer queries on %s%s; keeping the last %d traces "
                    "(Ctrl-C stops)",
                    listener.grpc_address,
                    f", OTLP/HTTP on {listener.http_url}" if listener.http_url else "",
                    limits.max_traces,
                )
                async for _ in signals:
                    break
                shutdown.set()

    try:
        trio.run(main)
    finally:
        listener.close()
    stats = store.stats()
    log.info(
        "trace listener stopped: held %d traces (%d spans); %d spans over the per-trace limit dropped, "
        "%d traces evicted",
        stats.traces,
        stats.spans,
        stats.dropped_spans,
        stats.evicted_traces,
    )
    return 0


def _run_view(args: argparse.Namespace, port: int) -> int:
    misplaced = _given(args, LISTEN_OPTIONS)
    if misplaced:
        print(f"plano-trio trace: {', '.join(misplaced)} are for `trace listen`", file=sys.stderr)
        return 2
    from plano_trio.tracing_cli.query import (
        Query,
        QueryError,
        parse_filters,
        parse_limit,
        parse_since,
        parse_target,
        parse_where,
        select,
    )
    from plano_trio.tracing_cli.render import render_ids, render_trace
    from plano_trio.tracing_cli.viewer import ViewerError, fetch_traces

    try:
        query = Query(
            target=parse_target(args.target, listing=args.list, windowed=bool(args.since or args.limit)),
            patterns=parse_filters(args.filter),
            where=parse_where(args.where),
            since_s=parse_since(args.since),
            limit=parse_limit(args.limit),
        )
        reply = fetch_traces(port)
        selection = select(reply.traces, query, time.time_ns())
    except (QueryError, ViewerError) as error:
        print(f"plano-trio trace: {error}", file=sys.stderr)
        return 1
    for warning in selection.warnings:
        print(f"plano-trio trace: warning: {warning}", file=sys.stderr)
    if args.json:
        data = {"trace_ids": selection.trace_ids} if args.list else {"traces": selection.traces}
        print(json.dumps(msgspec.to_builtins(data), indent=2, ensure_ascii=False))
        return 0
    if not selection.traces:
        print("No traces found.")
        return 0
    if args.list:
        print("Trace IDs:")
        print("\n".join(render_ids(selection.traces)))
        return 0
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    blocks = ["\n".join(render_trace(trace, verbose=args.verbose, color=color)) for trace in selection.traces]
    print("\n\n".join(blocks))
    return 0
