"""bench.h2load against an in-test h2c server that recycles its connections with GOAWAY.

The server (the `h2` package over trio sockets, real loopback sockets) processes a fixed number of
requests per connection, as hypercorn does with `keep_alive_max_requests`, and tells the client so with
a GOAWAY.  The client must behave as RFC 9113 §6.8 asks: streams above the GOAWAY's `last_stream_id` go
again on a fresh connection, streams at or below it finish where they are, and none of that counts as
an error; what it cost is counted as reconnects and retried requests instead.

The GOAWAY frame is written raw (hyperframe), next to what the server's `H2Connection` emits: h2 4.x
refuses to send anything once its own GOAWAY is out, so a server built on it (hypercorn 0.18) cannot
answer the streams it let finish; the written-raw frame leaves the server's h2 open, which is how a
server such as nginx behaves.  The "lossy" mode is hypercorn's behaviour: streams at or below
`last_stream_id` unanswered, the connection closed later.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import h2.config
import h2.connection
import h2.events
import pytest
import trio
from hyperframe.frame import GoAwayFrame

from bench import h2load
from bench.loadgen import Request

ANSWER = b'{"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}'


@dataclasses.dataclass
class _Connection:
    """One server connection's state: which streams it processes, answered, and whether it said GOAWAY."""

    stream: trio.SocketStream
    h2: h2.connection.H2Connection
    lock: trio.Lock = dataclasses.field(default_factory=trio.Lock)  # one writer: h2's buffer, the socket
    processed: list[int] = dataclasses.field(default_factory=list)
    answered: int = 0
    last_stream_id: int | None = None  # set once GOAWAY is due
    goaway_sent: bool = False
    done: trio.Event = dataclasses.field(default_factory=trio.Event)


@dataclasses.dataclass
class GoawayServer:
    """h2c server that processes `per_connection` requests per connection, then sends GOAWAY.

    graceful: at the first request beyond `per_connection`, GOAWAY with the last processed stream's id;
    the processed streams are still answered, the others ignored; closed once all are answered.
    lossy (what hypercorn 0.18 on h2 4.x does at request `keep_alive_max_requests` + 1): GOAWAY at the
    `per_connection`-th request, with its id; nothing answered after that; the connection closed
    `linger_s` later (hypercorn: at its keep-alive timeout)."""

    per_connection: int
    lossy: bool = False
    delay_s: float = 0.002  # each answer waits this long: several streams are in flight at the GOAWAY
    linger_s: float = 0.1
    connections: int = 0
    processed: int = 0  # requests the server processed (answered, or in lossy mode accepted)
    ignored: int = 0  # requests above a GOAWAY's last_stream_id: not processed

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        conn = _Connection(stream, h2.connection.H2Connection(config))
        conn.h2.initiate_connection()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read, conn, nursery)
                await conn.done.wait()
                nursery.cancel_scope.cancel()
            # a lingering close, as servers do: closing with unread bytes (streams the client sent
            # before it read the GOAWAY) would reset the connection and could lose the last answers
            with trio.move_on_after(1.0):
                await stream.send_eof()
                while await stream.receive_some(65536):
                    pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()

    async def _read(self, conn: _Connection, nursery: trio.Nursery) -> None:
        try:
            await self._flush(conn)
            while data := await conn.stream.receive_some(65536):
                for event in conn.h2.receive_data(data):
                    self._on_event(conn, event, nursery)
                await self._flush(conn)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        conn.done.set()  # the client closed its end (or broke it)

    def _on_event(self, conn: _Connection, event: h2.events.Event, nursery: trio.Nursery) -> None:
        if isinstance(event, h2.events.RequestReceived):
            stream_id = event.stream_id or 0
            if conn.last_stream_id is not None:
                self.ignored += 1
            elif self.lossy and len(conn.processed) + 1 >= self.per_connection:
                self.processed += 1  # it "ran", and its answer is lost
                conn.last_stream_id = stream_id
                nursery.start_soon(self._linger_then_close, conn)
            elif len(conn.processed) < self.per_connection:
                conn.processed.append(stream_id)
                self.processed += 1
            else:
                conn.last_stream_id = conn.processed[-1] if conn.processed else 0
                self.ignored += 1
        elif isinstance(event, h2.events.DataReceived):
            conn.h2.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id or 0)
        elif (
            isinstance(event, h2.events.StreamEnded)
            and (event.stream_id or 0) in conn.processed
            and (not self.lossy or conn.last_stream_id is None)
        ):
            nursery.start_soon(self._answer, conn, event.stream_id or 0)

    async def _answer(self, conn: _Connection, stream_id: int) -> None:
        await trio.sleep(self.delay_s)
        if self.lossy and conn.last_stream_id is not None:
            return  # hypercorn's h2 refuses to send once its GOAWAY is out
        headers = [(b":status", b"200"), (b"content-type", b"application/json")]
        conn.h2.send_headers(stream_id, [*headers, (b"content-length", b"%d" % len(ANSWER))])
        conn.h2.send_data(stream_id, ANSWER, end_stream=True)
        await self._flush(conn)  # this answer is on the wire when it returns (by this flush or one before)
        conn.answered += 1
        self._close_if_done(conn)

    async def _linger_then_close(self, conn: _Connection) -> None:
        await trio.sleep(self.linger_s)
        conn.done.set()

    async def _flush(self, conn: _Connection) -> None:
        """Write what h2 has to send, and the GOAWAY after it once it is due (raw: see the module doc)."""
        async with conn.lock:
            data = conn.h2.data_to_send()
            goaway = conn.last_stream_id is not None and not conn.goaway_sent
            if goaway:
                data += GoAwayFrame(0, last_stream_id=conn.last_stream_id or 0, error_code=0).serialize()
            if data:
                await conn.stream.send_all(data)
            conn.goaway_sent = conn.goaway_sent or goaway
        self._close_if_done(conn)

    def _close_if_done(self, conn: _Connection) -> None:
        """Once the GOAWAY and every processed stream's answer are written, the connection closes."""
        if conn.goaway_sent and not self.lossy and conn.answered == len(conn.processed):
            conn.done.set()


async def _run(
    server: GoawayServer, n: int, concurrency: int, connections: int, timeout_s: float = 3.0
) -> h2load.H2RunResult:
    """`h2load.run` (blocking, its own asyncio loop) in a thread, against `server` on a loopback port."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        request = Request("127.0.0.1", port, "/v1/chat/completions", b"{}", False)
        run = partial(h2load.run, request, n, concurrency, connections, cap_s=4.0, timeout_s=timeout_s)
        result = await trio.to_thread.run_sync(run)
        nursery.cancel_scope.cancel()
    return result


@pytest.mark.parametrize(("concurrency", "connections"), [(1, 1), (8, 1), (8, 4)])
async def test_goaway_every_request_completes(concurrency: int, connections: int) -> None:
    """60 requests over connections recycled every 10 requests: all answered, no errors, each request
    processed exactly once, and every connection after the first on a slot counted as a reconnect."""
    server = GoawayServer(per_connection=10)
    result = await _run(server, 60, concurrency, connections)
    assert [s.error for s in result.samples if s.error] == []
    assert len(result.ok) == len(result.samples) == 60
    assert result.errors == 0 and result.timed_out == 0
    assert server.processed == 60  # nothing sent twice to be processed twice, nothing lost
    # every stream above a last_stream_id was sent again (some the server closed before reading)
    assert result.retried >= server.ignored
    assert server.connections == connections + result.reconnects
    if connections == 1:  # one connection at a time: exactly 10 requests each
        assert result.reconnects == 5
    else:
        assert result.reconnects >= math.ceil(60 / 10) - connections
    if concurrency == 1:  # the 11th request of each recycled connection is the one its GOAWAY refuses
        assert result.retried == 5


async def test_streams_at_or_below_last_stream_id_unanswered_are_errors() -> None:
    """hypercorn's GOAWAY: the stream it names as processed is never answered; the client waits for it
    (it may have been processed: not retried), then counts it as an error when the connection closes."""
    server = GoawayServer(per_connection=3, lossy=True)
    result = await _run(server, 5, 1, 1)
    errors = [s.error or "" for s in result.samples if not s.ok]
    assert len(errors) == result.errors == 1
    assert "closed after GOAWAY (last_stream_id 5)" in errors[0]  # the 3rd request: stream 5
    assert len(result.ok) == 4
    assert (result.reconnects, result.retried) == (1, 0)


async def test_a_request_no_connection_processes_is_an_error_after_bounded_sends() -> None:
    """A server that refuses every stream (GOAWAY, last_stream_id 0) costs each request a bounded
    number of sends, then an error, rather than a loop of reconnects until the cap."""
    server = GoawayServer(per_connection=0)
    result = await _run(server, 2, 1, 1)
    assert result.errors == 2 and server.processed == 0
    assert all("not processed by the server" in (s.error or "") for s in result.samples)
    sends = 2 * h2load._ATTEMPTS
    assert (result.retried, result.reconnects, server.connections) == (sends - 2, sends - 1, sends)
