"""A request's own scope: the client watch's bookkeeping (tables) and both ways of learning the client
left.  Through the real server, an HTTP/1.1 request has no watcher task: `test_gateway_chat`'s
disconnect test checks it."""

from __future__ import annotations

from typing import Any, cast

import pytest
import trio

from plano_trio.gateway.client_watch import ClientWatch
from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.request_scope import in_request_scope
from plano_trio.gateway.runtime import Runtime

A = (("127.0.0.1", 5000), ("127.0.0.1", 12000))
B = (("127.0.0.1", 5001), ("127.0.0.1", 12000))


async def test_watch_needs_a_live_connection() -> None:
    watch = ClientWatch()
    assert watch.watch(A, trio.CancelScope()) is None  # never reported: the caller watches the ASGI way
    watch.connection_started(A)
    assert watch.watch(A, trio.CancelScope()) is not None
    assert watch.watch(B, trio.CancelScope()) is None
    assert watch.connection_ended(A) == 1
    assert watch.watch(A, trio.CancelScope()) is None  # ended: a request arriving now must not wait on it


@pytest.mark.parametrize(
    ("steps", "cancelled", "live"),
    [
        # (action, key) in order; which of the three scopes end cancelled; connections left
        ([("start", A), ("watch0", A), ("end", A)], [True, False, False], 0),
        ([("start", A), ("start", B), ("watch0", A), ("watch1", B), ("end", B)], [False, True, False], 1),
        ([("start", A), ("watch0", A), ("watch1", A), ("unwatch0", A), ("end", A)], [False, True, False], 0),
        ([("start", A), ("watch0", A), ("unwatch0", A), ("unwatch0", A)], [False, False, False], 1),
        ([("start", A), ("end", A), ("end", A), ("watch0", A)], [False, False, False], 0),
    ],
)
async def test_client_watch_bookkeeping(
    steps: list[tuple[str, Any]], cancelled: list[bool], live: int
) -> None:
    watch = ClientWatch()
    scopes = [trio.CancelScope() for _ in range(3)]
    handles: dict[int, Any] = {}
    for action, key in steps:
        if action == "start":
            watch.connection_started(key)
        elif action == "end":
            watch.connection_ended(key)
        elif action.startswith("watch"):
            index = int(action[-1])
            handles[index] = watch.watch(key, scopes[index])
        else:
            watch.unwatch(key, handles[int(action[-1])])
    assert [scope.cancel_called for scope in scopes] == cancelled
    assert watch.connections == live
    assert watch.requests == 0 or live > 0


class _Runtime:
    def __init__(self) -> None:
        self.client_watch = ClientWatch()
        self.live_requests: set[trio.CancelScope] = set()
        self.cutting = False


def _ctx(receive: Any, connection: Any, http2: bool = False) -> RequestContext:
    async def send(message: Any) -> None:
        raise AssertionError("nothing is sent here")

    return RequestContext("POST", "/", [], b"id", receive, send, 0.0, http2, connection=connection)


async def _never() -> dict[str, Any]:
    await trio.sleep_forever()
    raise AssertionError


async def test_the_edges_report_ends_a_live_connections_request() -> None:
    runtime = _Runtime()
    runtime.client_watch.connection_started(A)

    async def work(scope: trio.CancelScope) -> str:
        runtime.client_watch.connection_ended(A)  # as the edge does when a read finds the end
        await trio.sleep_forever()
        return "unreachable"

    done = await in_request_scope(cast(Runtime, runtime), _ctx(_never, A), work)
    assert done == "client_gone"
    assert not runtime.live_requests


@pytest.mark.parametrize(("connection", "http2"), [(A, False), (None, False), (A, True)])
async def test_without_a_live_connection_the_asgi_disconnect_ends_it(connection: Any, http2: bool) -> None:
    """Not reported live (ended before the request got here, or no edge), or HTTP/2 (a stream can be
    reset alone): the watcher task reads the ASGI `http.disconnect`."""
    runtime = _Runtime()
    if http2:
        runtime.client_watch.connection_started(A)
    messages = [{"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else await _never()

    async def work(scope: trio.CancelScope) -> str:
        await trio.sleep_forever()
        return "unreachable"

    done = await in_request_scope(cast(Runtime, runtime), _ctx(receive, connection, http2), work)
    assert done == "client_gone"


@pytest.mark.parametrize("live", [True, False])
async def test_deadline_and_cut(live: bool) -> None:
    runtime = _Runtime()
    if live:
        runtime.client_watch.connection_started(A)

    async def work(scope: trio.CancelScope) -> str:
        await trio.sleep_forever()
        return "unreachable"

    ctx = _ctx(_never, A)
    assert await in_request_scope(cast(Runtime, runtime), ctx, work, trio.current_time() + 0.01) == "deadline"
    runtime.cutting = True
    assert await in_request_scope(cast(Runtime, runtime), ctx, work, trio.current_time() + 60) == "cut"
