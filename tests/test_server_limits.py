"""The server edge under hostile clients: a bounded number of open connections, and `/healthz` alive.

Connections that send a request head and then stall their body used to pile
up until the process ran out of file descriptors (`accept` failing with
EMFILE), after which nothing, not even `/healthz`, got in.  Now each
listener holds a bounded number of connections; beyond it a small overflow
lane answers `/healthz` 200 and everything else a quick 503.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.server.lanes import ConnectionGate, Lane, LaneCounts
from plano_trio.server.limits import connection_bound, raise_nofile_limit
from plano_trio.server.listen import (
    ACCEPT_BATCH,
    ACCEPT_RETRY_S,
    accept_loop,
    accept_queued,
    close_queue,
    open_queue,
    take_queued,
)
from plano_trio.server.overflow import MAX_HEAD_BYTES, OverflowConnection, overflow_reply
from tests.mock_provider import MockProvider
from tests.support import provider_config, running_gateway

ROOT = Path(__file__).resolve().parent.parent
CHAT_BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}'
STALLED_HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
    b"content-length: 100\r\n\r\n{"
)
"""A request whose head is complete and whose body stops after 1 of its 100 bytes."""


# --- the pure parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "soft", "listeners", "bound"),
    [
        (50, 1024, 1, 50),  # configured wins
        (50, 1024, 3, 50),  # configured is per listener
        (0, 1024, 1, 384),  # reserve 256, half of the rest
        (0, 1024, 2, 192),
        (0, 256, 1, 96),  # reserve at least 64
        (0, 100, 1, 18),
        (0, 20, 1, 8),  # never below the minimum
        (0, 1 << 20, 1, 393216),
    ],
)
def test_connection_bound(configured: int, soft: int, listeners: int, bound: int) -> None:
    assert connection_bound(configured, soft, listeners) == bound


@pytest.mark.parametrize("soft", [16, 1024, 4096, 1 << 20])
def test_derived_bound_leaves_room_for_upstream_sockets_and_overflow(soft: int) -> None:
    bound = connection_bound(0, soft, 1)
    assert 2 * bound + 32 <= soft or bound == 8


def test_lanes_fill_main_then_overflow_then_refuse() -> None:
    counts = LaneCounts(2, 1)
    assert [counts.admit() for _ in range(4)] == [Lane.MAIN, Lane.MAIN, Lane.OVERFLOW, None]
    assert not counts.has_room
    counts.release(Lane.OVERFLOW)
    assert counts.has_room
    counts.release(Lane.MAIN)
    assert counts.admit() is Lane.MAIN  # a freed main slot is used before the overflow lane
    with pytest.raises(ValueError, match="never admitted"):
        counts.release(Lane.OVERFLOW)


@given(st.integers(1, 5), st.integers(0, 3), st.lists(st.booleans(), max_size=60))
def test_lane_counts_never_exceed_limits(main: int, overflow: int, steps: list[bool]) -> None:
    counts = LaneCounts(main, overflow)
    held: list[Lane] = []
    for admit in steps:
        if admit:
            lane = counts.admit()
            assert (lane is None) == (len(held) == main + overflow)
            if lane is Lane.OVERFLOW:
                assert counts.main_open == main
            if lane is not None:
                held.append(lane)
        elif held:
            counts.release(held.pop(0))
        assert counts.main_open == held.count(Lane.MAIN) <= main
        assert counts.overflow_open == held.count(Lane.OVERFLOW) <= overflow


def _overflow(*chunks: bytes) -> OverflowConnection:
    conn = OverflowConnection()
    for chunk in chunks:
        conn.receive(chunk)
    return conn


def _parse(reply: bytes | None) -> tuple[int, dict[str, str], bytes]:
    assert reply is not None
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert int(headers["content-length"]) == len(body) or body == b""
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("chunks", "status", "finished"),
    [
        ((b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",), 200, True),
        ((b"GET /healthz?probe=1 HTTP/1.1\r\nhost: x\r\n\r\n",), 200, True),
        ((b"GET /heal", b"thz HTTP/1.1\r\nhost: x\r\n", b"\r\n"), 200, True),
        ((b"HEAD /healthz HTTP/1.1\r\nhost: x\r\n\r\n",), 200, True),
        ((b"POST /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",), 503, True),
        ((b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n",), 503, True),
        ((STALLED_HEAD,), 503, False),  # body still owed: linger for it
        ((STALLED_HEAD, b"x" * 99), 503, True),
        ((b"NOT HTTP\r\n\r\n",), 400, True),
        ((b"GET / HTTP/1.1\r\nhost: x\r\nx: " + b"a" * MAX_HEAD_BYTES,), 431, True),
    ],
)
def test_overflow_reply(chunks: tuple[bytes, ...], status: int, finished: bool) -> None:
    conn = _overflow(*chunks)
    got, headers, body = _parse(conn.reply)
    assert got == status
    assert conn.finished is finished
    assert headers["connection"] == "close"
    if status in (400, 431):  # h11 refused the bytes: its status, with a body the SDK can read
        assert headers["content-type"] == "application/json"
        code = {400: "malformed_http_request", 431: "request_header_fields_too_large"}[status]
        assert json.loads(body)["error"]["code"] == code
    if status == 503:
        assert headers["retry-after"] == "1"
        if not chunks[0].startswith(b"HEAD"):
            assert json.loads(body) == {
                "error": {
                    "message": "The gateway is at its connection limit; retry shortly.",
                    "type": "server_error",
                    "param": None,
                    "code": "overloaded",
                }
            }


def test_overflow_head_request_gets_no_body() -> None:
    _, headers, body = _parse(_overflow(b"HEAD /v1/models HTTP/1.1\r\nhost: x\r\n\r\n").reply)
    assert body == b"" and int(headers["content-length"]) > 0


@pytest.mark.parametrize(
    "chunks", [(b"",), (b"GET /healthz HTTP/1.1\r\n",), (b"GET /healthz HTTP/1.1\r\n", b"")]
)
def test_overflow_incomplete_head_gets_no_reply(chunks: tuple[bytes, ...]) -> None:
    conn = _overflow(*chunks)
    assert conn.reply is None or _parse(conn.reply)[0] == 400
    assert conn.finished is (chunks[-1] == b"")


@given(st.binary(max_size=2048), st.lists(st.integers(0, 2048), max_size=8))
def test_overflow_takes_any_bytes(data: bytes, cuts: list[int]) -> None:
    conn = OverflowConnection()
    edges = [0, *sorted(cuts), len(data)]
    for start, end in itertools.pairwise(edges):
        conn.receive(data[start:end])
    conn.receive(b"")
    assert conn.finished
    assert conn.reply is None or conn.reply.startswith(b"HTTP/1.1 ")


def test_raise_nofile_limit_goes_to_the_hard_limit() -> None:
    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 2048))

    script = (
        "from plano_trio.server.limits import raise_nofile_limit; import resource;"
        "limit = raise_nofile_limit();"
        "print(limit.before, limit.soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip("hard descriptor limit below 2048")
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        preexec_fn=low_soft_limit,
    )
    assert out.stdout.split() == ["256", "2048", "2048"], out.stderr
    assert raise_nofile_limit().soft >= 1024  # in-process: idempotent, never lowers


# --- over real sockets ------------------------------------------------------------------------------


async def _stall(host: str, port: int) -> trio.SocketStream:
    stream = await trio.open_tcp_stream(host, port)
    await stream.send_all(STALLED_HEAD)
    return stream


async def test_saturated_listener_answers_healthz_and_refuses_the_rest(mock: MockProvider) -> None:
    config = provider_config(mock.url, tail="plano_trio:\n  max_connections: 50\n")
    async with running_gateway(config) as gw, httpx.AsyncClient(timeout=5) as client:
        stalled = [await _stall(gw.host, gw.port) for _ in range(60)]
        await trio.sleep(0.2)  # let the server accept them all
        with trio.fail_after(1):
            health = await client.get(f"{gw.base}/healthz")
        refused = await client.post(f"{gw.v1}/chat/completions", content=CHAT_BODY)
        assert health.status_code == 200
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "overloaded"
        assert mock.requests == []

        for stream in stalled:
            await stream.aclose()
        with trio.fail_after(3):
            while (
                answer := await client.post(f"{gw.v1}/chat/completions", content=CHAT_BODY)
            ).status_code == 503:
                await trio.sleep(0.05)
        assert answer.status_code == 200
        assert len(mock.requests) == 1


@pytest.fixture
def low_fd_gateway(tmp_path: Path, mock: MockProvider) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    """`plano-trio up` with soft and hard RLIMIT_NOFILE 1024, as many hosts start services."""
    (tmp_path / "config.yaml").write_text(provider_config(mock.url))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path / "stderr.log"

    def limit_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "plano_trio", "up", "config.yaml", "--listener-port", str(port)],
            cwd=tmp_path,
            stderr=log_file,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)},
            preexec_fn=limit_descriptors,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            assert proc.poll() is None, log_path.read_text()
            yield proc, port, log_path
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)


def test_healthz_answers_with_more_stalled_connections_than_descriptors(
    low_fd_gateway: tuple[subprocess.Popen[str], int, Path],
) -> None:
    proc, port, log_path = low_fd_gateway
    needed = 1100 + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"the test client needs {needed} descriptors")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    idle_rss = _rss_bytes(proc.pid)
    with ExitStack() as stalled:
        for _ in range(1100):
            sock = stalled.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
            sock.sendall(STALLED_HEAD)
        time.sleep(0.5)
        # The documented bound: 1,000+ stalled clients cost the gateway well under 64 MiB.
        assert _rss_bytes(proc.pid) - idle_rss < 64 * 1024 * 1024
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=8) as health:
            assert health.status == 200
        assert time.monotonic() - started < 8
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(
                urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=CHAT_BODY),
                timeout=5,
            )
        assert refused.value.code == 503
    deadline = time.monotonic() + 5
    while True:  # the stalled connections are gone: the main lane frees up
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                data=CHAT_BODY,
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as answer:
                assert answer.status == 200
            break
        except urllib.error.HTTPError as error:
            assert error.code == 503 and time.monotonic() < deadline
            time.sleep(0.05)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    logs = log_path.read_text()
    assert "EMFILE" not in logs
    assert "soft limit 1024" in logs and "up to 384 client connections" in logs


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


class _ScriptedQueue:
    """A listening socket's twin whose `accept` fails as scripted; always readable (a socket pair end
    with a byte in it), so the accept loop wakes at once."""

    def __init__(self, errors: list[OSError]) -> None:
        self.errors = errors
        self._pair = socket.socketpair()
        self._pair[1].send(b"x")

    def fileno(self) -> int:
        return self._pair[0].fileno()

    def accept(self) -> tuple[socket.socket, object]:
        raise self.errors.pop(0)

    def close(self) -> None:
        for end in self._pair:
            end.close()


async def test_accept_out_of_descriptors_waits_and_retries() -> None:
    queue = _ScriptedQueue([OSError(errno.EMFILE, "Too many open files"), OSError(errno.EBADF, "Bad fd")])
    gate = ConnectionGate(LaneCounts(1))
    started = trio.current_time()
    try:
        with pytest.raises(OSError) as raised:
            await accept_loop(queue, gate, None)  # type: ignore[arg-type]
    finally:
        close_queue(queue)  # type: ignore[arg-type]
    assert raised.value.errno == errno.EBADF  # EMFILE was retried; anything else propagates
    assert trio.current_time() - started >= ACCEPT_RETRY_S
    assert gate.counts.main_open == 0  # the listener is serve_app's to close (after accept_queued)


def test_a_connection_the_client_gave_up_on_is_skipped() -> None:
    """ECONNABORTED is about one queued connection: the next is taken; the queue's end stops the batch."""
    queue = _ScriptedQueue([OSError(errno.ECONNABORTED, "aborted"), BlockingIOError()])
    try:
        recorder = _Recorder()
        connections = SimpleNamespace(nursery=recorder, serve=None)
        assert take_queued(queue, ConnectionGate(LaneCounts(4)), connections, 8) == 0  # type: ignore[arg-type]
        assert queue.errors == []
    finally:
        queue.close()


class _Recorder:
    """Stands in for the handler nursery: records the connections it is asked to serve."""

    def __init__(self) -> None:
        self.started: list[tuple[object, ...]] = []

    def start_soon(self, fn: object, *args: object) -> None:
        self.started.append(args)


async def test_connections_queued_at_shutdown_are_accepted_not_reset() -> None:
    """A load balancer's request waiting in the kernel's queue is served, up to the gate's room."""
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        queue = open_queue(listener)
        recorder = _Recorder()
        connections = SimpleNamespace(nursery=recorder, serve=None)
        gate = ConnectionGate(LaneCounts(1, 1))  # room for two of the three
        assert accept_queued(queue, gate, connections) == 2  # type: ignore[arg-type]
        assert [args[1] for args in recorder.started] == [Lane.MAIN, Lane.OVERFLOW]
        assert accept_queued(queue, ConnectionGate(LaneCounts(4)), connections) == 1  # type: ignore[arg-type]
        assert accept_queued(queue, ConnectionGate(LaneCounts(4)), connections) == 0  # empty: no wait
        for args in recorder.started:
            stream = args[0]
            assert isinstance(stream, trio.SocketStream)
            assert (await stream.receive_some(100)).startswith(b"GET /healthz")
            await stream.aclose()
        close_queue(queue)
    finally:
        for client in clients:
            client.close()
        await listener.aclose()


async def test_every_queued_connection_is_taken_in_one_wake_up() -> None:
    """trio's own accept takes one connection per pass of the run loop, which under load left a burst
    of connections waiting a pass each in the kernel's queue; the accept loop takes what is queued at
    once (up to `ACCEPT_BATCH`, and up to the gate's room)."""
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=256)
    port = listener.socket.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(ACCEPT_BATCH + 6)]
    queue = open_queue(listener)
    try:
        recorder = _Recorder()
        connections = SimpleNamespace(nursery=recorder, serve=None)
        gate = ConnectionGate(LaneCounts(ACCEPT_BATCH + 2, 0))
        passes = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept_loop, queue, gate, connections)
            while len(recorder.started) < ACCEPT_BATCH + 2 and passes < 100:
                await trio.lowlevel.checkpoint()
                passes += 1
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        assert len(recorder.started) == ACCEPT_BATCH + 2  # the gate's room, not the queue, stopped it
        assert passes <= 10  # two batches, not one pass per connection
        for args in recorder.started:
            await args[0].aclose()
        assert take_queued(queue, ConnectionGate(LaneCounts(8)), connections, 3) == 3  # type: ignore[arg-type]
        assert take_queued(queue, ConnectionGate(LaneCounts(8)), connections, 3) == 1  # the last one
        assert take_queued(queue, ConnectionGate(LaneCounts(8)), connections, 3) == 0  # empty: no wait
        for args in recorder.started[ACCEPT_BATCH + 2 :]:
            await args[0].aclose()
    finally:
        close_queue(queue)
        for client in clients:
            client.close()
        await listener.aclose()


@pytest.mark.parametrize(
    ("target", "shape"),
    [
        (b"/v1/chat/completions", "openai"),
        (b"/v1/messages", "anthropic"),
        (b"/v1/messages?beta=true", "anthropic"),
    ],
)
def test_overflow_refusal_speaks_the_callers_error_shape(target: bytes, shape: str) -> None:
    reply = overflow_reply(b"POST", target)
    assert reply.startswith(b"HTTP/1.1 503")
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    if shape == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"
    else:
        assert body["error"]["code"] == "overloaded"
