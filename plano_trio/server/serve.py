"""Run the gateway: one hypercorn-trio server per listener, in one `trio.run`.

Structured concurrency from the top: a single nursery owns the signal
watcher and every listener's server.  SIGINT/SIGTERM set one shutdown event;
hypercorn then closes its listening sockets at once, lets in-flight requests
finish for up to `graceful_shutdown_s`, and returns.  Only then is the shared
upstream pool closed.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from plano_trio.config.schema import Config, Listener
from plano_trio.gateway.app import ModelListenerApp
from plano_trio.gateway.runtime import Runtime
from plano_trio.state import StateStore, open_state_store

log = logging.getLogger("plano_trio.server")


def hypercorn_config(listener: Listener, graceful_s: float) -> HypercornConfig:
    config = HypercornConfig()
    host = f"[{listener.address}]" if ":" in listener.address else listener.address
    config.bind = [f"{host}:{listener.port}"]
    config.graceful_timeout = graceful_s
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    config.backlog = 1024
    return config


async def _watch_signals(shutdown: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if not shutdown.is_set():
                log.info(
                    "received %s: no new connections; finishing in-flight requests",
                    signal.Signals(signum).name,
                )
                shutdown.set()


async def _abort_startup(shutdown: trio.Event, started: trio.Event, scope: trio.CancelScope) -> None:
    """A signal before the servers are up cancels startup (e.g. a Postgres connect retry loop)."""
    await shutdown.wait()
    if not started.is_set():
        scope.cancel()


@asynccontextmanager
async def _state_store(config: Config) -> AsyncIterator[StateStore | None]:
    if config.state_storage is None:
        yield None
        return
    settings = config.state_storage
    log.info("state storage: %s", settings.type)
    async with open_state_store(settings) as store:
        yield store


async def _serve_listeners(
    config: Config,
    runtime: Runtime,
    shutdown: trio.Event,
    sockets: Mapping[str, Sockets] | None,
    task_status: trio.TaskStatus[list[str]],
) -> None:
    """One hypercorn server per model listener; returns once all have shut down and drained.

    With `sockets` (multi-worker mode) each listener serves a socket the
    supervisor bound and shares with the other workers.
    """
    graceful = config.server.graceful_shutdown_s
    binds: list[str] = []
    async with trio.open_nursery() as servers:
        for listener in config.listeners:
            if listener.type != "model":
                log.warning(
                    "listener '%s' (type %s) is not supported yet; not started", listener.name, listener.type
                )
                continue
            app = ModelListenerApp(listener, runtime)
            hconfig = hypercorn_config(listener, graceful)
            shared = sockets.get(listener.name) if sockets else None
            if shared is None:
                server = partial(hypercorn_serve, app, hconfig, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]
            else:
                wrapped = wrap_app(app, hconfig.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
                server = partial(
                    worker_serve, wrapped, hconfig, sockets=shared, shutdown_trigger=shutdown.wait
                )
            bound = await servers.start(server)
            binds.extend(bound)
            log.info("listener '%s' (model) on %s", listener.name, ", ".join(bound))
        task_status.started(binds)


async def serve(
    config: Config,
    *,
    shutdown: trio.Event | None = None,
    sockets: Mapping[str, Sockets] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve every supported listener until `shutdown` is set (or a signal arrives).

    Order matters on the way down: servers stop accepting and drain their
    in-flight requests first; only then does the state store flush its write
    queue (bounded by `drain_timeout_s`), and finally the upstream pool closes.
    Raises `StateStartupError` if the state store cannot start.
    """
    if shutdown is None:
        shutdown = trio.Event()
    async with trio.open_nursery() as outer:
        outer.start_soon(_watch_signals, shutdown)
        started = trio.Event()
        with trio.CancelScope() as startup:
            outer.start_soon(_abort_startup, shutdown, started, startup)
            async with _state_store(config) as store:
                started.set()  # from here on, shutdown is graceful
                runtime = Runtime(config, store=store)
                try:
                    await _serve_listeners(config, runtime, shutdown, sockets, task_status)
                finally:
                    with trio.CancelScope(shield=True):
                        await runtime.aclose()
        outer.cancel_scope.cancel()
    log.info("stopped")
