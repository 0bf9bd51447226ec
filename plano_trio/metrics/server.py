"""`open_metrics_server`: the `/metrics` listener's lifetime, and where it binds.

The address is `plano_trio.metrics_bind_address` when set (`off` or `""`
turn the listener off), else Plano's `METRICS_BIND_ADDRESS` environment
variable, else Plano's `0.0.0.0:9092`; an environment value that is not an
`ip:port` is logged and the default used, as brightstaff does.  An address
already in use is a logged warning and the gateway runs without metrics:
a second instance on the same host must not fail to start because of its
metrics port.

With `--workers N` the supervisor calls `share_with_workers` before it
forks (see `workers`); each worker's `open_metrics_server` then serves the
shared socket and answers its peers.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import NamedTuple

import trio

from plano_trio.config.schema import METRICS_OFF, Config
from plano_trio.config.values import parse_socket_address
from plano_trio.metrics.collectors import Observed
from plano_trio.metrics.exposition import ProcessMetrics, render
from plano_trio.metrics.http import ScrapeServer
from plano_trio.metrics.workers import WorkerGroup, combine, gather, make_group, serve_peer

log = logging.getLogger("plano_trio.metrics")

DEFAULT_BIND = ("0.0.0.0", 9092)
ENV_VAR = "METRICS_BIND_ADDRESS"
BACKLOG = 64

_shared: WorkerGroup | None = None
"""Set in the supervisor by `share_with_workers` before it forks; each worker inherits it."""


class MetricsServer(NamedTuple):
    address: str
    """`http://ip:port/metrics` as bound (the real port when 0 was asked for)."""


def bind_address(setting: str | None, env: Mapping[str, str]) -> tuple[str, int] | None:
    """Where to listen (None: metrics are off); see the module docstring for the order."""
    if setting is not None:
        if setting.strip().lower() in METRICS_OFF:
            return None
        parsed = parse_socket_address(setting)
        if parsed is None:  # the loader refuses this; a Config built in code may still carry it
            raise ValueError(f"invalid plano_trio.metrics_bind_address {setting!r}")
        return parsed
    raw = env.get(ENV_VAR)
    if raw is None:
        return DEFAULT_BIND
    parsed = parse_socket_address(raw)
    if parsed is None:
        log.warning("invalid %s %r (want ip:port); using the default %s:%d", ENV_VAR, raw, *DEFAULT_BIND)
        return DEFAULT_BIND
    return parsed


def bind_socket(address: tuple[str, int]) -> socket.socket | None:
    """A listening socket on `address`, or None (logged) when it cannot be had."""
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=BACKLOG)
    except OSError as error:
        log.warning(
            "metrics listener not started: cannot listen on %s: %s (set plano_trio.metrics_bind_address "
            "or %s to another address, or off)",
            _display(host, port),
            error.strerror or error,
            ENV_VAR,
        )
        return None


def share_with_workers(config: Config) -> WorkerGroup | None:
    """In the supervisor, before forking: bind the metrics socket once for every worker.

    Returns the group for the supervisor to `close()` once the workers have
    exited (None: metrics are off, or the address was taken).
    """
    global _shared
    address = bind_address(config.server.metrics_bind_address, os.environ)
    sock = bind_socket(address) if address is not None else None
    _shared = make_group(sock) if sock is not None else None
    return _shared


@asynccontextmanager
async def open_metrics_server(
    config: Config, runtime: Observed | None
) -> AsyncIterator[MetricsServer | None]:
    """Serve `/metrics` for `runtime` (and this process) while the block runs; `runtime` None shows only
    the request and process families.

    Yields None when metrics are off or the address was taken (logged).
    The server is a task of its own; a scrape holds the trio thread only to
    take a snapshot of the numbers (well under a millisecond); the text is
    written in a thread.
    """
    group = _shared
    if group is not None:
        sock: socket.socket | None = group.sock
    else:
        address = bind_address(config.server.metrics_bind_address, os.environ)
        sock = bind_socket(address) if address is not None else None
    if sock is None:
        yield None
        return
    local = ProcessMetrics(runtime)
    rendering = trio.CapacityLimiter(1)

    async def text() -> bytes:
        families = local.snapshot()
        if group is None:
            return await trio.to_thread.run_sync(render, families, limiter=rendering)
        answers = await gather(group)
        return await trio.to_thread.run_sync(lambda: render(combine(families, answers)), limiter=rendering)

    host, port = sock.getsockname()[:2]
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ScrapeServer(listener, text).serve)
        if group is not None:
            nursery.start_soon(serve_peer, group, local.snapshot)
        shown = _display(host, port)
        log.info("metrics on http://%s/metrics%s", shown, " (all workers)" if group is not None else "")
        try:
            yield MetricsServer(f"http://{shown}/metrics")
        finally:
            nursery.cancel_scope.cancel()


def _display(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
