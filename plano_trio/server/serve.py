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
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from plano_trio.config.schema import Config, Listener
from plano_trio.gateway.app import ModelListenerApp
from plano_trio.gateway.runtime import Runtime

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


async def serve(
    config: Config,
    *,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve every supported listener until `shutdown` is set (or a signal arrives)."""
    if shutdown is None:
        shutdown = trio.Event()
    runtime = Runtime(config)
    graceful = config.server.graceful_shutdown_s
    binds: list[str] = []
    try:
        async with trio.open_nursery() as outer:
            outer.start_soon(_watch_signals, shutdown)
            async with trio.open_nursery() as servers:
                for listener in config.listeners:
                    if listener.type != "model":
                        log.warning(
                            "listener '%s' (type %s) is not supported yet; not started",
                            listener.name,
                            listener.type,
                        )
                        continue
                    app = ModelListenerApp(listener, runtime)
                    hconfig = hypercorn_config(listener, graceful)
                    bound = await servers.start(
                        partial(hypercorn_serve, app, hconfig, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]
                    )
                    binds.extend(bound)
                    log.info("listener '%s' (model) on %s", listener.name, ", ".join(bound))
                task_status.started(binds)
            # Every server has returned: shutdown was requested and in-flight requests drained.
            outer.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await runtime.aclose()
    log.info("stopped")
