"""The per-connection idle timer (hypercorn's `SingleTask` contract) and what it means for a connection."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from plano_trio.server.idle_task import IdleTask
from tests.mock_provider import MockProvider
from tests.support import provider_config, running_gateway, task_names


class _Group:
    """hypercorn's TaskGroup as `IdleTask` uses it: `spawn` into a nursery."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.spawned = 0

    def spawn(self, func: Any, *args: Any) -> None:
        self.spawned += 1
        self.nursery.start_soon(func, *args)


class _Timer:
    """An action like hypercorn's `_idle_timeout`: wait `delay`, then close (recorded)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.started = 0
        self.closed_at: float | None = None

    async def __call__(self) -> None:
        self.started += 1
        await trio.sleep(self.delay)
        self.closed_at = trio.current_time()


async def test_idle_runs_out_and_closes(autojump_clock: trio.testing.MockClock) -> None:
    timer = _Timer(5.0)
    async with trio.open_nursery() as nursery:
        group, idle = _Group(nursery), IdleTask()
        start = trio.current_time()
        await idle.restart(group, timer)
    assert timer.closed_at == start + 5.0
    assert group.spawned == 1


async def test_requests_stop_and_restart_the_timer_with_one_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timer = _Timer(5.0)
    async with trio.open_nursery() as nursery:
        group, idle = _Group(nursery), IdleTask()
        await idle.restart(group, timer)  # the connection opened: idle
        for _ in range(10):
            await trio.sleep(4.0)  # a request comes before the timer runs out
            await idle.stop()
            await trio.sleep(30.0)  # a long request: no timer meanwhile
            assert timer.closed_at is None
            await idle.restart(group, timer)  # answered: idle again
        last = trio.current_time()
    assert timer.closed_at == last + 5.0
    assert group.spawned == 1
    assert timer.started == 11


async def test_a_restart_starts_the_wait_over(autojump_clock: trio.testing.MockClock) -> None:
    timer = _Timer(5.0)
    async with trio.open_nursery() as nursery:
        group, idle = _Group(nursery), IdleTask()
        await idle.restart(group, timer)
        await trio.sleep(3.0)
        await idle.restart(group, timer)
        again = trio.current_time()
    assert timer.closed_at == again + 5.0


@pytest.mark.parametrize("armed", [True, False])
async def test_the_connections_end_ends_the_task(autojump_clock: trio.testing.MockClock, armed: bool) -> None:
    """Mid-request (stopped) or idle (armed): once reads found the end, the task ends at once, so
    hypercorn, which waits for a connection's tasks, lets the connection go."""
    timer = _Timer(5.0)
    async with trio.open_nursery() as nursery:
        group, idle = _Group(nursery), IdleTask()
        await idle.restart(group, timer)
        if not armed:
            await idle.stop()
        await trio.sleep(1.0)
        start = trio.current_time()
        idle.ended()
    assert trio.current_time() == start
    assert timer.closed_at is None
    await idle.restart(group, timer)  # too late to matter: nothing is spawned any more
    assert group.spawned == 1


async def test_a_keep_alive_connection_keeps_one_timer_task(mock: MockProvider) -> None:
    """Through the real server: many requests on one connection, one timer task; the client closing
    the connection ends it (and the connection) at once."""
    async with running_gateway(provider_config(mock.url)) as gw:
        body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}).encode()
        request = (
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode() + body
        stream = await trio.open_tcp_stream(gw.host, gw.port)
        for _ in range(5):
            await stream.send_all(request)
            answer = b""
            while b'"finish_reason"' not in answer:
                answer += await stream.receive_some(65536)
        await trio.sleep(0.05)
        timers = [name for name in task_names() if "IdleTask._run" in name]
        assert len(timers) == 1
        await stream.aclose()
        with trio.fail_after(2):  # hypercorn's own timer would hold it for keep_alive_timeout (5 s)
            while any("IdleTask._run" in name for name in task_names()):
                await trio.sleep(0.01)
