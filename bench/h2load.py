"""A cheap timing HTTP/2 client (h2c, prior knowledge): `loadgen`'s samples, over multiplexed streams.

Why not httpx: as for `loadgen`, the load generator shares the client CPU with the mock provider, so it
must cost little per request, or the *client* becomes what is measured; httpx's HTTP/2 path costs
several times more per request than this (see `bench/README.md`, scenario 18).  This is the sans-I/O
`h2.connection.H2Connection` under an `asyncio.Protocol` on uvloop, the same shape as `loadgen`:
`data_received` feeds h2, stamps `perf_counter()` and appends `(time, bytes)` to the stream's
`loadgen.Sample`; SSE parsing and checks are `loadgen.analyse`'s, after the run.

What the server sees, per request: one write holding HEADERS and one DATA frame that carries the whole
body *and* END_STREAM (the cheapest framing for it; httpx sends END_STREAM in a separate empty DATA
frame, written after the body).  Per connection, the SETTINGS and the 16 MiB connection window
increment httpcore sends (so a connection's flow control behaves as the SDK's would), and every DATA
frame acknowledged as it is read (h2 sends WINDOW_UPDATE once half a window is used).

`run(request, n, concurrency, connections)`: `concurrency` requests in flight at all times, spread over
`connections` TCP connections (1: every request a stream of one connection; `concurrency`: one stream
per connection at a time, like HTTP/1.1 keep-alive).  A connection is opened by the first request
that needs it, inside the run (as `loadgen` does), and reopened if the server closes it.  A server
allows a bounded number of concurrent streams per connection (the gateway 32, hypercorn's default
100): more in flight on one connection are refused by h2 and counted as errors, not queued.

GOAWAY (hypercorn sends one once a connection has carried `keep_alive_max_requests`, 1000 by default)
is handled as RFC 9113 §6.8 asks of a client, so a long run does not count the server's routine
connection recycling as errors: the connection takes no new streams (the next request opens a fresh
one: a *reconnect*); streams above the frame's `last_stream_id` were not processed and are sent again
on the fresh connection (*retried*, at most `_ATTEMPTS` sends in all, the latency still counted from
the first send); streams at or below it may still finish, and a connection with none left is closed.
`run` returns an `H2RunResult`, which counts both apart from the errors.  Streams at or below
`last_stream_id` that the server never answers stay errors ("closed after GOAWAY ..."): they may have
been processed.  hypercorn 0.18 on h2 4.x is such a server: its h2 connection refuses to send any
frame once its own GOAWAY is out, so the responses of the streams in flight at that moment are lost
and the connection closes at `keep_alive_timeout`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import time
from typing import cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import Frame, GoAwayFrame

from bench.loadgen import Request, RunResult, Sample, _new_loop, analyse

__all__ = ["H2RunResult", "late_end_stream", "request_headers", "run"]

_CONNECTION_WINDOW = 2**24
"""Connection-level receive window increment httpcore sends after its SETTINGS (16 MiB)."""

_ATTEMPTS = 3
"""Sends of one request that GOAWAYs leave unprocessed before it counts as an error: a server that
refused every new stream would otherwise turn a run into a loop of reconnects."""


@dataclasses.dataclass(slots=True)
class H2RunResult(RunResult):
    """`loadgen.RunResult` plus what connection recycling cost: neither count is an error."""

    reconnects: int = 0  # connections opened in place of one the server closed or sent GOAWAY on
    retried: int = 0  # requests sent again: a GOAWAY said their stream was not processed


def request_headers(request: Request) -> list[tuple[bytes, bytes]]:
    """The request's HTTP/2 header list: pseudo-headers first, names lower-case (HTTP/2 requires it)."""
    headers = [
        (b":method", request.method.encode()),
        (b":scheme", b"http"),
        (b":authority", f"{request.host}:{request.port}".encode()),
        (b":path", request.path.encode()),
    ]
    if request.body or request.method == "POST":
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(request.body))]
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.headers]
    return headers


class _H2Client(h2.connection.H2Connection):
    """h2's connection, except that a received GOAWAY leaves it open to the server's frames.

    h2 4.x moves its connection to CLOSED on a received GOAWAY, and every frame after that (in the same
    read too, before the caller has seen the GOAWAY's event) raises ProtocolError: no stream at or below
    `last_stream_id` could be answered, though RFC 9113 §6.8 says they may be.  So the connection's
    state is put back as it was.  The only thing the CLOSED state guarded on our side, new streams, is
    refused by `_Connection.request` once it has seen the GOAWAY."""

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Frame], list[h2.events.Event]]:
        machine = self.state_machine
        before = machine.state
        frames, events = super()._receive_goaway_frame(frame)
        if before is not h2.connection.ConnectionState.CLOSED:
            machine.state = before
        return frames, events


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection; each stream's response is collected into its own `Sample`.

    A stream's future resolves to its `Sample`, or to None when a GOAWAY says the server did not
    process it (the caller sends the request again, on another connection).  After a GOAWAY the
    connection is `draining`: no new streams, the remaining ones may finish, then it is closed."""

    def __init__(self) -> None:
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_inbound_headers=False,  # the server under test is not what we are checking here
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.h2 = _H2Client(config)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.draining = False  # a GOAWAY arrived: no new streams here
        self.last_stream_id: int | None = None  # the lowest `last_stream_id` of the GOAWAYs received
        self._streams: dict[int, tuple[Sample, asyncio.Future[Sample | None]]] = {}

    @property
    def usable(self) -> bool:
        """Can carry a new stream: open, and no GOAWAY received."""
        return not self.closed and not self.draining

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        settings = h2.settings.SettingCodes
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                settings.ENABLE_PUSH: 0,
                settings.MAX_CONCURRENT_STREAMS: 100,
                settings.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        del self.h2.local_settings[settings.ENABLE_CONNECT_PROTOCOL]
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(_CONNECTION_WINDOW)
        self.transport.write(self.h2.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.draining:
            self._fail_all(f"closed after GOAWAY (last_stream_id {self.last_stream_id}) before its end")
        else:
            self._fail_all(f"connection closed mid-response ({exc or 'EOF'})")

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as error:
            self._fail_all(f"HTTP/2 protocol error: {error!r}")
            self.abort()
            return
        streams = self._streams
        for event in events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                data_event = cast(h2.events.DataReceived, event)
                entry = streams.get(data_event.stream_id or 0)
                if entry is not None and data_event.data:
                    entry[0].pieces.append((now, data_event.data))
                    entry[0].body_bytes += len(data_event.data)
                self.h2.acknowledge_received_data(
                    data_event.flow_controlled_length or 0, data_event.stream_id or 0
                )
            elif kind is h2.events.ResponseReceived:
                head = cast(h2.events.ResponseReceived, event)
                entry = streams.get(head.stream_id or 0)
                if entry is not None:
                    entry[0].t_headers = now
                    entry[0].status = _status(head.headers or [])
            elif kind is h2.events.StreamEnded:
                self._finish(cast(h2.events.StreamEnded, event).stream_id or 0, now, None)
            elif kind is h2.events.StreamReset:
                reset = cast(h2.events.StreamReset, event)
                self._finish(reset.stream_id or 0, now, f"stream reset by the server ({reset.error_code!r})")
            elif kind is h2.events.ConnectionTerminated:
                self._goaway(cast(h2.events.ConnectionTerminated, event))
        out = self.h2.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)
        self._close_if_drained()

    def _goaway(self, event: h2.events.ConnectionTerminated) -> None:
        """Stop opening streams here; hand back the ones the server says it did not process (their
        callers send them again); the others may still finish (`_H2Client` keeps reading for them)."""
        self.draining = True
        last = event.last_stream_id or 0
        self.last_stream_id = last if self.last_stream_id is None else min(last, self.last_stream_id)
        for stream_id in [s for s in self._streams if s > self.last_stream_id]:
            _, future = self._streams.pop(stream_id)
            if not future.done():
                future.set_result(None)

    def _close_if_drained(self) -> None:
        """A draining connection with no stream left is closed (the server would keep it until its
        idle timeout)."""
        if self.draining and not self._streams and not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def request(
        self, headers: list[tuple[bytes, bytes]], body: bytes, t_send: float = 0.0
    ) -> asyncio.Future[Sample | None]:
        """Send one request as a new stream (one write); the future resolves when the stream ends, to
        None if the server did not process it (GOAWAY: send it again elsewhere).  `t_send`: when the
        request was first sent, if this is a retry (the latency counts from then)."""
        assert self.transport is not None
        future: asyncio.Future[Sample | None] = asyncio.get_running_loop().create_future()
        if not self.usable:  # the caller checked, but a GOAWAY is not something to race with
            future.set_result(None)
            return future
        sample = Sample(t_send=t_send or time.perf_counter())
        try:
            stream_id = self.h2.get_next_available_stream_id()
            self.h2.send_headers(stream_id, headers, end_stream=not body)
            if body:
                self.h2.send_data(stream_id, body, end_stream=True)
        except h2.exceptions.ProtocolError as error:  # e.g. more streams than the server allows
            sample.error, sample.t_end = f"HTTP/2: {error!r}", time.perf_counter()
            future.set_result(sample)
            return future
        self._streams[stream_id] = (sample, future)
        self.transport.write(self.h2.data_to_send())
        return future

    def cancel(self, future: asyncio.Future[Sample | None]) -> None:
        """Forget a stream whose caller gave up on it (timeout), resetting it at the server."""
        for stream_id, (_, pending) in list(self._streams.items()):
            if pending is future:
                del self._streams[stream_id]
                try:
                    self.h2.reset_stream(stream_id)
                except h2.exceptions.ProtocolError:
                    pass
                else:
                    if self.transport is not None and not self.closed:
                        self.transport.write(self.h2.data_to_send())
                self._close_if_drained()
                return

    def _finish(self, stream_id: int, now: float, error: str | None) -> None:
        entry = self._streams.pop(stream_id, None)
        if entry is None:
            return
        sample, future = entry
        sample.t_end = now
        sample.error = error
        if not future.done():
            future.set_result(sample)

    def _fail_all(self, reason: str) -> None:
        now = time.perf_counter()
        for stream_id in list(self._streams):
            self._finish(stream_id, now, reason)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _status(headers: list[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name == b":status":
            return int(value)
    return 0


class _Pool:
    """`size` connections, each opened by the first request that needs it, and opened again (a
    reconnect) once the server closed it or sent GOAWAY on it."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port = host, port
        self.connections: list[_Connection | None] = [None] * size
        self.locks = [asyncio.Lock() for _ in range(size)]
        # replaced connections still finishing their streams: aborted with the rest by `close`;
        # pruned of closed ones at every reconnect, so it holds at most the connections still draining
        self.retired: list[_Connection] = []
        self.reconnects = 0

    async def get(self, slot: int) -> _Connection:
        async with self.locks[slot]:
            conn = self.connections[slot]
            if conn is None or not conn.usable:
                loop = asyncio.get_running_loop()
                _, fresh = await loop.create_connection(_Connection, self.host, self.port)
                if conn is not None:
                    self.reconnects += 1
                    self.retired = [c for c in self.retired if not c.closed]
                    if not conn.closed:
                        self.retired.append(conn)
                self.connections[slot] = conn = fresh
            return conn

    def close(self) -> None:
        for conn in [*self.connections, *self.retired]:
            if conn is not None:
                conn.abort()


async def _drive(
    request: Request, total: int, concurrency: int, connections: int, cap_s: float, timeout_s: float
) -> H2RunResult:
    if request.host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the bench only targets the loopback interface")
    headers = request_headers(request)
    samples: list[Sample] = []
    remaining = total
    timed_out = 0
    retried = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cap_s
    pool = _Pool(request.host, request.port, connections)
    cpu0 = sum(os.times()[:2])

    async def send(slot: int) -> Sample | None:
        """One request, sent again (up to `_ATTEMPTS` sends) while GOAWAYs leave it unprocessed; None
        when the run's cap hit first (counted in `timed_out`)."""
        nonlocal timed_out, retried
        t_send = time.perf_counter()
        for attempt in range(_ATTEMPTS):
            if attempt:
                retried += 1
            try:
                conn = await pool.get(slot)
            except OSError as error:
                await asyncio.sleep(0.01)
                return Sample(error=f"connect: {error}", t_send=time.perf_counter())
            future = conn.request(headers, request.body, t_send)
            try:
                left = min(timeout_s, max(0.001, deadline - loop.time()))
                sample = await asyncio.wait_for(asyncio.shield(future), left)
            except TimeoutError:
                conn.cancel(future)
                if loop.time() >= deadline:
                    timed_out += 1
                    return None
                return Sample(error=f"timeout after {timeout_s:g}s", t_send=time.perf_counter())
            if sample is not None:
                return sample
        return Sample(
            error=f"not processed by the server in {_ATTEMPTS} sends (GOAWAY each time)",
            t_send=t_send,
            t_end=time.perf_counter(),
        )

    async def worker(i: int) -> None:
        nonlocal remaining
        slot = i % connections
        while remaining > 0 and loop.time() < deadline:
            remaining -= 1
            sample = await send(slot)
            if sample is None:
                return
            samples.append(sample)

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    finally:
        pool.close()
    ends = [s.t_end for s in samples if s.t_end]
    sends = [s.t_send for s in samples if s.t_send]
    wall = (max(ends) - min(sends)) if ends and sends else time.perf_counter() - t0
    cpu = sum(os.times()[:2]) - cpu0
    return H2RunResult(samples, wall, cpu, timed_out=timed_out, reconnects=pool.reconnects, retried=retried)


def run(
    request: Request,
    n: int,
    concurrency: int = 1,
    connections: int = 1,
    *,
    cap_s: float = 30.0,
    timeout_s: float = 30.0,
) -> H2RunResult:
    """Send `request` `n` times, `concurrency` at a time over `connections` h2c connections; analysed
    like `loadgen.run`'s (JSON answer or complete SSE stream).  Stops at `cap_s` whatever `n` says.
    The result also counts the reconnects and retried requests that GOAWAYs caused (not errors)."""
    connections = max(1, min(connections, concurrency))
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        result = runner.run(_drive(request, n, concurrency, connections, cap_s, timeout_s))
    for sample in result.samples:
        analyse(sample, request)
    return result


# ---------------------------------------------------------------------------------------------------------
# A probe, frame by frame


def late_end_stream(request: Request, timeout_s: float = 10.0) -> tuple[int | None, int | None]:
    """Statuses of two requests on one h2c connection; None where the connection ended first.

    The first request's body frame leaves END_STREAM for an empty DATA frame of its own, written after
    the body (httpx's framing, so the OpenAI SDK's).  A server that answered as soon as the declared
    body was in could receive that frame for a stream it had already closed: hypercorn 0.18 raises
    KeyError then, which ended the connection and, escaping its TCPServer, once the gateway process.
    The gateway now reads an HTTP/2 body to its END_STREAM (`plano_trio.gateway.asgi.read_body`) and
    contains a failing connection (`plano_trio.server.listen`).  The second request shows whether the
    connection survived.  Blocking, on a plain socket: no event loop decides the timing.
    """
    headers = request_headers(request)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    with socket.create_connection((request.host, request.port), timeout=timeout_s) as sock:

        def flush() -> None:
            sock.sendall(conn.data_to_send())

        def status_of(stream_id: int) -> int | None:
            status = None
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return None
                if not data:
                    return None
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                        status = _status(event.headers or [])
                    elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                        flush()
                        return status
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return None
                flush()

        conn.initiate_connection()
        first = conn.get_next_available_stream_id()
        conn.send_headers(first, headers)
        conn.send_data(first, request.body)
        flush()
        conn.end_stream(first)  # the empty DATA frame with END_STREAM, in a write of its own
        flush()
        first_status = status_of(first)
        if first_status is None:
            return None, None
        second = conn.get_next_available_stream_id()
        conn.send_headers(second, headers)
        conn.send_data(second, request.body, end_stream=True)
        try:
            flush()
        except OSError:
            return first_status, None
        return first_status, status_of(second)
