"""Run the gateway: one hypercorn-trio server per model or agent listener, in one `trio.run`.

Structured concurrency from the top: a single nursery owns the signal
watcher and every listener's server.  SIGINT/SIGTERM set one shutdown event;
each server (`server.listen`) then closes its listening sockets at once, lets
in-flight requests finish for up to `graceful_shutdown_s`, and returns.  Only
then is the shared upstream pool closed.

At start the soft descriptor limit is raised to the hard one and each
listener's connection bound derived from it (`server.limits`), so a flood of
connections meets a bounded server with a live `/healthz`, not EMFILE.
"""

from __future__ import annotations

import gc
import logging
import signal
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.utils import wrap_app

from plano_trio.config.schema import Config, Listener
from plano_trio.gateway.access import open_access
from plano_trio.gateway.app import ModelListenerApp
from plano_trio.gateway.routing import open_routing
from plano_trio.gateway.runtime import Runtime
from plano_trio.gateway.signals_worker import open_signals
from plano_trio.metrics import open_metrics_server
from plano_trio.server.lanes import OVERFLOW_CONNECTIONS
from plano_trio.server.limits import connection_bound, raise_nofile_limit
from plano_trio.server.listen import serve_app
from plano_trio.state import StateStore, open_state_store
from plano_trio.telemetry import open_tracing

log = logging.getLogger("plano_trio.server")


def hypercorn_config(listener: Listener, graceful_s: float) -> HypercornConfig:
    """hypercorn's settings for one listener; each limit below bounds what one client can hold."""
    config = HypercornConfig()
    host = f"[{listener.address}]" if ":" in listener.address else listener.address
    config.bind = [f"{host}:{listener.port}"]
    config.graceful_timeout = graceful_s
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    # Connections beyond the listener's bound and its overflow lane wait here, in the kernel.
    config.backlog = 1024
    # Runs from the moment a connection opens (or a response ends) until a complete request head
    # arrives, so it bounds both an idle keep-alive connection and a head sent byte by byte.
    config.keep_alive_timeout = 5.0
    # Must stay off: hypercorn applies it to every read of the connection, including while a long
    # streamed answer is sent and the client has nothing to say, so it would cut healthy streams.
    # A stalled request body is bounded by the gateway's body timeouts instead.
    config.read_timeout = None
    # Largest request head hypercorn buffers before answering 431 (h11's bound on an incomplete event).
    config.h11_max_incomplete_size = 16 * 1024
    # One HTTP/2 connection may carry this many requests at once, each with its own upstream socket;
    # the connection bound counts connections, so a small cap keeps one connection from multiplying.
    config.h2_max_concurrent_streams = 32
    # hypercorn's default (1,000) ends a connection after that many requests; over HTTP/2 it does so
    # with a GOAWAY whose last stream id admits every stream in flight, and then never answers them
    # (its h2 state refuses to send after its own GOAWAY): those requests hang until the keep-alive
    # timeout closes the connection.  Connections are bounded by number and idle time instead.
    config.keep_alive_max_requests = 2**62
    config.h2_max_header_list_size = 64 * 1024
    return config


STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


async def _watch_signals(shutdown: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
    """Turn SIGINT/SIGTERM into `shutdown`; report started once the receiver is in place.

    A worker forked by `server.workers` starts with the stop signals blocked,
    so one sent while it is still starting waits in the kernel instead of
    killing it; unblocking here, with the receiver installed, delivers it.
    Once a stop signal has arrived, the process ignores further ones until
    it exits: a second SIGTERM from a process manager must not turn a clean
    drain (or the last moments after it) into death by signal.
    """
    received = False
    try:
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            task_status.started()
            async for signum in signals:
                received = True
                if not shutdown.is_set():
                    log.info(
                        "received %s: no new connections; finishing in-flight requests",
                        signal.Signals(signum).name,
                    )
                    shutdown.set()
    finally:
        if received:
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)


async def _cut_at_grace_end(shutdown: trio.Event, runtime: Runtime, grace_s: float) -> None:
    """Just before the grace period ends, end the requests still running, with an error event.

    Hypercorn cancels whatever is left when the grace period is over, which
    would close a stream without a word; cutting it a moment earlier lets
    each stream end with the client's in-stream error event (and the access
    log say "cut") instead.
    """
    await shutdown.wait()
    await trio.sleep(max(0.0, grace_s - min(1.0, grace_s / 10)))
    runtime.cut_streams()


async def _abort_startup(shutdown: trio.Event, started: trio.Event, scope: trio.CancelScope) -> None:
    """A signal before the servers are up cancels startup (e.g. a Postgres connect retry loop)."""
    await shutdown.wait()
    if not started.is_set():
        scope.cancel()


def _watch_loop_lag(nursery: trio.Nursery, runtime: Runtime) -> None:
    """With `max_loop_lag_ms` set, the task that measures how late the loop runs (for admission);
    without it nothing is started (nor its module imported)."""
    lag = runtime.admission.loop_lag
    if lag is None:
        return
    from plano_trio.server.lag_monitor import watch_loop_lag

    nursery.start_soon(watch_loop_lag, lag)


@asynccontextmanager
async def _state_store(config: Config) -> AsyncIterator[StateStore | None]:
    if config.state_storage is None:
        yield None
        return
    settings = config.state_storage
    log.info("state storage: %s", settings.type)
    async with open_state_store(settings) as store:
        yield store


SERVED_TYPES = ("model", "agent")
"""Listener types this server runs; `prompt` listeners (Plano's legacy prompt gateway) are not served."""


def served_listeners(config: Config) -> list[Listener]:
    """The listeners `serve` starts (and the supervisor binds in multi-worker mode), in config order."""
    return [listener for listener in config.listeners if listener.type in SERVED_TYPES]


def listener_app(config: Config, listener: Listener, runtime: Runtime) -> ModelListenerApp:
    """The ASGI app for one served listener: the model gateway, or an agent chain with its orchestrator.

    The agent modules are imported here, for a configured agent listener only: a gateway serving
    models alone never loads them (the memory of every module imported stays for the process's life).
    """
    if listener.type == "agent":
        from plano_trio.gateway.agents import AgentListenerApp

        return AgentListenerApp(
            listener, runtime, runtime.filters, orchestrator_model=config.routing.orchestrator_model
        )
    return ModelListenerApp(listener, runtime)


async def _serve_listeners(
    config: Config,
    runtime: Runtime,
    shutdown: trio.Event,
    sockets: Mapping[str, Sockets] | None,
    task_status: trio.TaskStatus[list[str]],
    *,
    tune_gc: bool = False,
) -> None:
    """One hypercorn server per model or agent listener; returns once all have shut down and drained.

    With `sockets` (multi-worker mode) each listener serves a socket the
    supervisor bound and shares with the other workers; otherwise it binds
    its own.  Each listener holds at most `max_connections` client
    connections (derived from the descriptor limit, shared out over every
    served listener, unless configured).  The addresses are reported in
    config order, so a caller that binds port 0 knows which is which.
    """
    graceful = config.server.graceful_shutdown_s
    served = served_listeners(config)
    for listener in config.listeners:
        if listener.type not in SERVED_TYPES:
            log.warning(
                "listener '%s' (type %s) is not supported yet; not started", listener.name, listener.type
            )
    limit = raise_nofile_limit()
    bound = connection_bound(config.server.max_connections, limit.soft, len(served))
    binds: list[str] = []
    async with trio.open_nursery() as servers:
        for listener in served:
            hconfig = hypercorn_config(listener, graceful)
            app = wrap_app(listener_app(config, listener, runtime), hconfig.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
            shared = sockets.get(listener.name) if sockets else None
            server = partial(
                serve_app,
                app,
                hconfig,
                shared if shared is not None else hconfig.create_sockets(),
                max_connections=bound,
                send_timeout_s=config.server.client_send_timeout_s,
                shutdown_trigger=shutdown.wait,
                client_watch=runtime.client_watch,
            )
            addresses = await servers.start(server)
            binds.extend(addresses)
            log.info(
                "listener '%s' (%s%s) on %s; up to %d client connections (+%d overflow)",
                listener.name,
                listener.type,
                _agents_note(listener),
                ", ".join(addresses),
                bound,
                OVERFLOW_CONNECTIONS,
            )
        if tune_gc:
            tune_garbage_collector()
        task_status.started(binds)


GC_YOUNG_THRESHOLD = 10_000
"""Net new container objects between two young-generation collections (CPython's default: 700)."""


def tune_garbage_collector() -> None:
    """Collect less often, and never again through what start-up built.

    Measured at JSON c=32 (20,000 requests, `gc.callbacks`): with CPython's
    defaults the cyclic collector ran 1,600 young passes, 140 middle and 13
    full ones, 39 µs of every request in all, and each full pass stopped the
    loop for 23-32 ms (it walks every object, start-up's included).  A
    request's objects die by reference count almost all, but a young pass
    every 700 allocations catches those of the requests in flight and moves
    them on to older generations, which then fill and are walked in turn.
    At 10,000 the same load ran 9 young passes (2-3 ms each, 1 µs a
    request) and no full one.  Start-up's objects (modules, config,
    catalogues, pools) live as long as the process: collected once here and
    frozen, no pass walks them again.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _agents_note(listener: Listener) -> str:
    if listener.type != "agent":
        return ""
    return ": " + (", ".join(agent.id for agent in listener.agents) or "no agents")


async def serve(
    config: Config,
    *,
    shutdown: trio.Event | None = None,
    sockets: Mapping[str, Sockets] | None = None,
    tune_gc: bool = False,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve every model and agent listener until `shutdown` is set (or a signal arrives).

    `tune_gc`: the process is the gateway's own (`plano-trio up`, a worker), so the garbage collector is
    set up for serving once the listeners are up (`tune_garbage_collector`); an embedding process (the
    tests) keeps its own settings.

    Order matters on the way down: servers stop accepting and drain their
    in-flight requests first, and the per-process background tasks (the
    grace-end cutter, the loop-lag monitor) end; then the signals worker finishes the analyses
    it holds (bounded by `signals_worker.DRAIN_S`; their spans wait for
    them), the trace exporter sends what it holds
    (bounded by `telemetry.FLUSH_TIMEOUT_S`), the state store flushes its
    write queue (bounded by `drain_timeout_s`), and finally the upstream
    pool closes.
    Raises `StateStartupError` if the state store cannot start.
    """
    if shutdown is None:
        shutdown = trio.Event()
    async with trio.open_nursery() as outer:
        await outer.start(_watch_signals, shutdown)
        started = trio.Event()
        with trio.CancelScope() as startup:
            outer.start_soon(_abort_startup, shutdown, started, startup)
            async with _state_store(config) as store:
                started.set()  # from here on, shutdown is graceful
                runtime = Runtime(config, store=store)
                try:
                    async with (
                        open_tracing(config.tracing) as tracing,
                        open_signals(config.server.signals, config.server.signals_queue_size) as signals,
                        open_routing(config, runtime.resolver, runtime.pool) as routing,
                        open_access(runtime.access),
                        open_metrics_server(config, runtime),
                        trio.open_nursery() as background,
                    ):
                        runtime.routing = routing
                        runtime.tracing = tracing
                        runtime.signals = signals
                        background.start_soon(
                            _cut_at_grace_end, shutdown, runtime, config.server.graceful_shutdown_s
                        )
                        _watch_loop_lag(background, runtime)
                        await _serve_listeners(
                            config, runtime, shutdown, sockets, task_status, tune_gc=tune_gc
                        )
                        background.cancel_scope.cancel()
                finally:
                    with trio.CancelScope(shield=True):
                        await runtime.aclose()
        outer.cancel_scope.cancel()
    log.info("stopped")
