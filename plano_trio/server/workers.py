"""Multi-core: several worker processes sharing each listener's socket.

Python runs one thread of our code at a time, so one process uses one core.
With `plano_trio.workers: N` (or `--workers N`) the supervisor binds every
model and agent listener's socket once, forks N workers that each run the
whole gateway (`serve()`, its own trio loop, upstream pool and state store)
on those shared sockets, and the kernel spreads accepted connections across
them.  The supervisor only forwards SIGINT/SIGTERM and waits: a worker
drains exactly as a single process does.  If a worker dies, the others are
stopped and the supervisor exits non-zero (a process manager restarts it),
rather than silently running with less capacity.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal

import trio
from hypercorn.config import Sockets

from plano_trio.config.schema import Config
from plano_trio.metrics import share_with_workers
from plano_trio.server.serve import STOP_SIGNALS, hypercorn_config, serve, served_listeners

log = logging.getLogger("plano_trio.server")


def bind_listeners(config: Config) -> dict[str, Sockets]:
    """Bind and listen on every served listener's address once, before forking.

    The same listeners `serve` starts (`served_listeners`): a listener `serve`
    finds no shared socket for would bind its own in each worker: all but
    the first would fail with EADDRINUSE (or, on port 0, each would listen
    on a different port).
    """
    bound: dict[str, Sockets] = {}
    for listener in served_listeners(config):
        hconfig = hypercorn_config(listener, config.server.graceful_shutdown_s)
        sockets = hconfig.create_sockets()
        for sock in sockets.insecure_sockets:
            sock.listen(hconfig.backlog)
        bound[listener.name] = sockets
    return bound


def _worker(config: Config, sockets: dict[str, Sockets], index: int) -> int:
    log.info("worker %d (pid %d) starting", index, os.getpid())
    trio.run(lambda: serve(config, sockets=sockets, tune_gc=True))
    return 0


def run_workers(config: Config, count: int) -> int:
    """Fork `count` workers on shared sockets; return the exit status for the supervisor."""
    sockets = bind_listeners(config)
    metrics = share_with_workers(config)  # one /metrics socket; a scrape adds up every worker
    children: set[int] = set()
    # Workers inherit the stop signals blocked and unblock them once their trio receiver is in place
    # (`serve`); a SIGTERM forwarded while a worker is still starting then waits instead of killing it.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    for index in range(count):
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the supervisor's code
            code = 1
            try:
                code = _worker(config, sockets, index)
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                os._exit(code)
        children.add(pid)
    for listener_sockets in sockets.values():
        for sock in listener_sockets.insecure_sockets:
            sock.close()  # the workers hold their own copies

    def forward(signum: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    status = 0
    while children:
        pid, raw = os.wait()
        children.discard(pid)
        code = os.waitstatus_to_exitcode(raw)
        if code != 0 and status == 0:
            status = code if code > 0 else 1
            log.error("worker pid %d exited with %d; stopping the others", pid, code)
            forward(signal.SIGTERM, None)
    if metrics is not None:
        metrics.close()
    log.info("all workers stopped")
    return status
