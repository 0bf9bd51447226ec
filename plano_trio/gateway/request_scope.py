"""A request's own cancel scope: ended early by its client leaving, its deadline, or shutdown's cut.

A request must stop its upstream work the moment its client goes away (a
model call that nobody reads still costs tokens).  The ASGI way to learn it
is to wait for `http.disconnect` on `receive`, in a task of its own next to
the work.  That task, the nursery that holds it and the cancellation that
ends it cost ~50 µs of CPU per request (measured: `bench.profile`, about a
twentieth of a whole proxied request), for news that almost never comes.

The server edge reads every client connection anyway and sees its end first
hand (`plano_trio.server.send_guard`).  It reports each connection's start
and end to `ClientWatch`; a request on a connection reported live only
registers its scope there, and the end's report cancels it: a list entry
instead of a task.  A request whose connection is not live there keeps the
watcher task: its connection may have ended before the request got here
(the ASGI disconnect is then already queued), or nothing reports (a test
driving the ASGI app directly).  So does every HTTP/2 request: a client can
reset one stream and keep its connection, which only the ASGI message
reports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from plano_trio.gateway.asgi import wait_for_disconnect
from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.relay import Interruption
from plano_trio.gateway.runtime import Runtime

T = TypeVar("T")


async def in_request_scope(
    runtime: Runtime,
    ctx: RequestContext,
    work: Callable[[trio.CancelScope], Awaitable[T]],
    deadline: float = float("inf"),
) -> T | Interruption:
    """`work` in the request's own cancel scope; how it ended early, if it did.

    The scope ends early when the client goes away, when `deadline` passes
    (or one `work` sets on the scope: a single relay sets it there, failover
    gives each attempt a scope of its own inside it), or when shutdown cuts
    live requests (`Runtime.cut_streams`).
    """
    watch = runtime.client_watch
    key = ctx.connection
    scope = trio.CancelScope(deadline=deadline)
    watched = watch.watch(key, scope) if key is not None and not ctx.http2 else None
    if watched is None:
        return await _with_watcher_task(runtime, ctx, work, deadline)
    with scope:
        runtime.live_requests.add(scope)
        if runtime.cutting:  # shutdown's cut already ran (this request was still uploading)
            scope.cancel()
        try:
            return await work(scope)
        finally:
            runtime.live_requests.discard(scope)
            watch.unwatch(key, watched)
    return _interruption(runtime, scope, watched.gone)


async def _with_watcher_task(
    runtime: Runtime, ctx: RequestContext, work: Callable[[trio.CancelScope], Awaitable[T]], deadline: float
) -> T | Interruption:
    """`in_request_scope` for a request whose connection's end nobody reports: a task waits for the
    ASGI `http.disconnect` next to the work."""
    client_gone = False
    async with trio.open_nursery() as nursery:
        scope = nursery.cancel_scope
        scope.deadline = deadline

        async def watch_client() -> None:
            nonlocal client_gone
            await wait_for_disconnect(ctx.receive)
            client_gone = True
            scope.cancel()

        nursery.start_soon(watch_client)
        runtime.live_requests.add(scope)
        if runtime.cutting:
            scope.cancel()
        try:
            done = await work(scope)
        finally:
            runtime.live_requests.discard(scope)
        scope.cancel()
        return done
    return _interruption(runtime, scope, client_gone)


def _interruption(runtime: Runtime, scope: trio.CancelScope, client_gone: bool) -> Interruption:
    if client_gone:
        return "client_gone"
    if runtime.cutting and trio.current_time() < scope.deadline:
        return "cut"
    return "deadline"
