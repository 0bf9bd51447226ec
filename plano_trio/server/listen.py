"""hypercorn-trio's serve loop, with a bound on open client connections.

hypercorn's own `worker_serve` accepts without limit through
`trio.serve_listeners`: under a flood of connections that never finish their
request the process runs out of file descriptors, `accept` fails with
EMFILE, and even `/healthz` cannot get in.  `serve_app` does what
`worker_serve` does for our use (lifespan, plain-TCP listeners on the given
sockets, graceful shutdown) but accepts through a `ConnectionGate`:
connections beyond the bound go to the overflow lane (`server.overflow`),
and beyond that the listener waits for a connection to close.  It also
takes every connection queued at each wake-up (`ACCEPT_BATCH`) where trio's
`accept` takes one per pass of the run loop, so a loaded gateway does not
leave new clients waiting in the kernel's queue, out of sight of admission.

Graceful shutdown is hypercorn's, with one addition: when `shutdown_trigger`
returns, connections the kernel had already completed but nobody accepted
yet (a load balancer has usually sent a request on them) are accepted and
served, with `connection: close`; then the listening sockets close (new
connections are refused), in-flight connections get `graceful_timeout` to
finish, and are cancelled.  Closing a listening socket resets what waits in
its queue, which a load balancer turns into a 502 unless it can resend the
request (HAProxy only can for a body that fits its buffer).
TLS and QUIC listeners are not served: plano-trio's listeners are plain TCP.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import cast

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState, LifespanState
from hypercorn.utils import parse_socket_addr, repr_socket_addr

from plano_trio.gateway.client_watch import ClientWatch
from plano_trio.server.connection import ClientConnection
from plano_trio.server.idle_task import IdleTask
from plano_trio.server.lanes import ConnectionGate, Lane, LaneCounts
from plano_trio.server.overflow import serve_overflow
from plano_trio.server.send_guard import GuardedStream, SendGuard

log = logging.getLogger("plano_trio.server")

ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
"""`accept` errors that mean "out of a resource for now" (descriptors held by upstream sockets or files,
not by client connections): wait and retry, as `trio.serve_listeners` does, rather than crash."""

ACCEPT_RETRY_S = 0.1


class _Failures:
    count = 0


def connection_failed(error: BaseException) -> None:
    """Log a connection that ended in an exception: the first with its traceback, then every 1000th (a
    client that can trigger one can trigger many)."""
    _Failures.count += 1
    if _Failures.count == 1 or _Failures.count % 1000 == 0:
        log.error("a client connection failed (%d so far); closed it", _Failures.count, exc_info=error)


class _Connections:
    """What every accepted connection of one server needs: the app, hypercorn's state, the handler nursery."""

    __slots__ = ("app", "client_watch", "config", "context", "guard", "nursery", "state")

    def __init__(
        self,
        app: AppWrapper,
        config: HypercornConfig,
        context: WorkerContext,
        state: ConnectionState,
        nursery: trio.Nursery,
        guard: SendGuard,
        client_watch: ClientWatch | None = None,
    ) -> None:
        self.client_watch = client_watch
        self.guard = guard
        self.app = app
        self.config = config
        self.context = context
        self.state = state
        self.nursery = nursery

    def _watch(self, guarded: GuardedStream, connection: ClientConnection) -> Hashable | None:
        """Report the connection live to the client watch; its key (None: not watched).

        The key is what hypercorn puts in each request's scope as `client` and `server`, computed the
        same way, so a request finds its connection (None when there is no watch, or the socket has no
        addresses to compute it from, e.g. it was reset already)."""
        watch = self.client_watch
        if watch is None:
            return None
        sock = guarded.socket
        try:
            key = (
                parse_socket_addr(sock.family, sock.getpeername()),
                parse_socket_addr(sock.family, sock.getsockname()),
            )
        except OSError:
            return None
        if key[0] is None:
            return None
        watch.connection_started(key, connection)
        return key

    def _ended(self, key: Hashable | None, idle: IdleTask) -> None:
        """A read found the connection's end: its requests are cancelled, its idle timer stops."""
        if key is not None and self.client_watch is not None:
            self.client_watch.connection_ended(key)
        idle.ended()

    async def serve(self, stream: trio.SocketStream, lane: Lane, gate: ConnectionGate) -> None:
        """Run one connection in its lane; its slot is released only once its socket is closed.

        An exception out of hypercorn's handling of one connection (a client
        that found a bug in it, e.g. hypercorn 0.18 raising `KeyError` on an
        HTTP/2 DATA frame for a stream it already answered) closes that
        connection, never the server: every connection runs in the server's
        one nursery, where it would otherwise cancel all the others and end
        the process."""
        guarded = self.guard.guard(stream) if lane is Lane.MAIN else None
        key: Hashable | None = None
        try:
            if guarded is not None:
                # TCPServer is typed for TLS streams but recognises a plain one by its missing handshake.
                tls_typed = cast("trio.SSLStream[trio.SocketStream]", guarded)
                server = ClientConnection(self.app, self.config, self.context, self.state, tls_typed)
                key = self._watch(guarded, server)
                idle = IdleTask()
                server.idle_task = idle  # type: ignore[assignment]  # hypercorn's own restarts a task per request
                guarded.on_end = partial(self._ended, key, idle)
                await server
            else:
                await serve_overflow(stream)
        except* Exception as group:
            connection_failed(group)
        finally:
            if key is not None and self.client_watch is not None:
                self.client_watch.connection_ended(key)
            if guarded is not None:
                self.guard.streams.discard(guarded)
            await trio.aclose_forcefully(stream)
            gate.release(lane)


ACCEPT_BATCH = 64
"""Most connections one wake-up of an accept task takes from its listening socket's queue.

trio's `SocketListener.accept` takes one connection and then yields to the
scheduler, so an accept task took one connection per pass of the run loop.
Idle, a pass is microseconds.  With a few hundred long streams relaying,
a pass takes tens of milliseconds, and connections arriving together
waited in the kernel's queue for one pass each (seconds for a few hundred)
before their requests were even read: out of reach of admission's quick
503, and invisible to every timeout and metric of the gateway.  Taking
everything queued at each wake-up serves them in one pass; the bound keeps
one pass from starting unbounded work (the next batch comes a pass later).
"""

_IGNORABLE_ACCEPT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "EPROTO",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
    )
    if hasattr(errno, name)
)
"""`accept` errors about one queued connection (the client gave up on it, or its network went away):
skip it and take the next, as trio's `SocketListener.accept` does."""


def open_queue(listener: trio.SocketListener) -> socket.socket:
    """A non-blocking twin of `listener`'s socket (a duplicate descriptor) that connections are taken from
    without waiting; close it with `close_queue`."""
    queue = socket.socket(fileno=os.dup(listener.socket.fileno()))
    queue.setblocking(False)
    return queue


def close_queue(queue: socket.socket) -> None:
    """Close a twin from `open_queue`, after telling trio, whose epoll set may still hold its descriptor
    (the listening socket it shares stays open, so the kernel would keep that registration)."""
    trio.lowlevel.notify_closing(queue)
    queue.close()


def take_queued(queue: socket.socket, gate: ConnectionGate, connections: _Connections, limit: int) -> int:
    """Accept, without waiting, up to `limit` connections already in `queue` while `gate` has room;
    how many were taken.  Raises the `accept` errors that are not about one connection."""
    taken = 0
    for _ in range(limit):
        if not gate.counts.has_room:
            break
        try:
            conn, _address = queue.accept()
        except BlockingIOError:
            break
        except OSError as error:
            if error.errno in _IGNORABLE_ACCEPT_ERRNOS:
                continue
            raise
        conn.setblocking(False)
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(conn))
        connections.nursery.start_soon(connections.serve, stream, gate.admit(), gate)
        taken += 1
    return taken


async def accept_loop(queue: socket.socket, gate: ConnectionGate, connections: _Connections) -> None:
    """Accept from `queue` (`open_queue`) while `gate` has room, each connection into its lane, until
    cancelled; everything queued at each wake-up, up to `ACCEPT_BATCH`.

    The listener stays open when this returns: `serve_app` accepts what is
    still queued (`accept_queued`) before closing it."""
    while True:
        await gate.wait_for_room()
        await trio.lowlevel.wait_readable(queue)
        try:
            take_queued(queue, gate, connections, ACCEPT_BATCH)
        except OSError as error:
            if error.errno not in ACCEPT_CAPACITY_ERRNOS:
                raise
            log.error(
                "accept returned %s (%s); retrying in %.1f s",
                errno.errorcode.get(error.errno or 0, "?"),
                os.strerror(error.errno or 0),
                ACCEPT_RETRY_S,
            )
            await trio.sleep(ACCEPT_RETRY_S)


QUEUED_READ_GRACE_S = 0.05
"""How long connections taken from the queue at shutdown get to start their request."""

MAX_QUEUED_AT_SHUTDOWN = 4096
"""Most queued connections taken at shutdown per listener (the backlog is 1024 by default)."""


def accept_queued(queue: socket.socket, gate: ConnectionGate, connections: _Connections) -> int:
    """Accept, without waiting, the connections already in `queue` while `gate` has room.

    Runs once at shutdown, between the last `accept_loop` and closing the
    socket: an empty queue ends it at once, and so does any error (the
    listener is about to close anyway).
    """
    try:
        return take_queued(queue, gate, connections, MAX_QUEUED_AT_SHUTDOWN)
    except OSError:
        return 0


def _listen(sockets: Sockets, backlog: int) -> list[tuple[trio.SocketListener, str]]:
    if sockets.secure_sockets or sockets.quic_sockets:
        raise ValueError("TLS and QUIC listeners are not supported")
    bound = []
    for sock in sockets.insecure_sockets:
        sock.listen(backlog)
        address = f"http://{repr_socket_addr(sock.family, sock.getsockname())}"
        bound.append((trio.SocketListener(trio.socket.from_stdlib_socket(sock)), address))
    return bound


async def serve_app(
    app: AppWrapper,
    config: HypercornConfig,
    sockets: Sockets,
    *,
    max_connections: int,
    send_timeout_s: float,
    shutdown_trigger: Callable[[], Awaitable[None]],
    client_watch: ClientWatch | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on `sockets` (each gets `max_connections` plus an overflow lane) until the trigger.

    A client write that makes no progress for `send_timeout_s` closes its
    connection (see `send_guard`).  Each client connection's start and end
    is reported to `client_watch` (see `gateway.request_scope`).

    Reports the bound addresses through `task_status`; returns after the
    graceful drain and the app's lifespan shutdown.
    """
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(app, config, lifespan_state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        guard = SendGuard(send_timeout_s)
        lifespan_nursery.start_soon(guard.run)
        async with trio.open_nursery() as handlers:
            state = ConnectionState(lifespan_state.copy())
            connections = _Connections(app, config, context, state, handlers, guard, client_watch)
            listeners = _listen(sockets, config.backlog)
            queues = [open_queue(listener) for listener, _ in listeners]
            gates = [ConnectionGate(LaneCounts(max_connections)) for _ in listeners]
            try:
                async with trio.open_nursery() as accepting:
                    for queue, gate in zip(queues, gates, strict=True):
                        accepting.start_soon(accept_loop, queue, gate, connections)
                    task_status.started([address for _, address in listeners])
                    await shutdown_trigger()
                    accepting.cancel_scope.cancel()
                taken = sum(
                    accept_queued(queue, gate, connections) for queue, gate in zip(queues, gates, strict=True)
                )
                if taken:
                    log.info("accepted %d queued connection(s) before closing the listener", taken)
                    # Their requests are in the socket buffers already: let them be read before
                    # `terminated` is set, which ends a connection still idle (no request yet) at once.
                    await trio.sleep(QUEUED_READ_GRACE_S)
            finally:
                for queue in queues:
                    close_queue(queue)
                for listener, _ in listeners:
                    with trio.CancelScope(shield=True):
                        await listener.aclose()
                await context.terminated.set()
                handlers.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
