"""`ClientConnection`: hypercorn's writes, a held response head, and the direct chunk path.

The connection is driven through `protocol_send`, the one method hypercorn
writes through, with a stream that records each write; end-to-end behaviour
(the SDKs reading streams and JSON answers through it) is in the gateway tests.
"""

from __future__ import annotations

import socket
import threading
from typing import cast

import h11
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, LifespanState

from plano_trio.server.connection import ClientConnection
from plano_trio.server.send_guard import GuardedStream, SendGuard


class Recorder:
    """A stream that records writes; `broken` makes them fail as a vanished client's do."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.broken = False

    async def send_all(self, data: bytes) -> None:
        if self.broken:
            raise trio.BrokenResourceError
        if data:
            self.writes.append(bytes(data))


class Protocol:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def handle(self, event: Event) -> None:
        self.events.append(event)


def _connection() -> tuple[ClientConnection, Recorder, Protocol]:
    stream = Recorder()
    connection = ClientConnection(
        cast(AppWrapper, None),  # never called: nothing here runs a request
        Config(),
        WorkerContext(None),
        cast(LifespanState, {}),
        cast("trio.SSLStream[trio.SocketStream]", stream),
    )
    protocol = Protocol()
    connection.protocol = protocol  # type: ignore[assignment]
    return connection, stream, protocol


def _real_connection(sock: trio.socket.SocketType) -> ClientConnection:
    """A connection writing to `sock` through the stream the server gives it."""
    stream = GuardedStream(trio.SocketStream(sock), SendGuard(timeout_s=30))
    return ClientConnection(
        cast(AppWrapper, None),
        Config(),
        WorkerContext(None),
        cast(LifespanState, {}),
        cast("trio.SSLStream[trio.SocketStream]", stream),
    )


def _head(*headers: tuple[bytes, bytes]) -> bytes:
    """A response head as h11 writes it."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    server.next_event()
    return server.send(h11.Response(status_code=200, headers=list(headers)))  # type: ignore[return-value]


async def test_a_head_with_a_length_goes_out_with_its_body_in_one_write() -> None:
    connection, stream, _ = _connection()
    head = _head((b"content-type", b"application/json"), (b"content-length", b"2"))
    await connection.protocol_send(RawData(data=head))
    assert stream.writes == []
    await connection.protocol_send(RawData(data=b"{}"))
    assert stream.writes == [head + b"{}"]


async def test_a_held_head_is_let_out_by_whatever_hypercorn_does_next() -> None:
    connection, stream, _ = _connection()
    head = _head((b"content-length", b"0"))
    await connection.protocol_send(RawData(data=head))
    await connection.protocol_send(Updated(idle=False))  # e.g. the next cycle's bookkeeping
    assert stream.writes == [head]


async def test_a_head_without_a_length_is_written_at_once() -> None:
    """A stream's head: the client sees it before the first event."""
    connection, stream, _ = _connection()
    head = _head((b"content-type", b"text/event-stream"), (b"transfer-encoding", b"chunked"))
    await connection.protocol_send(RawData(data=head))
    assert stream.writes == [head]


async def test_a_large_body_is_written_after_its_head_not_copied_behind_it() -> None:
    connection, stream, _ = _connection()
    head = _head((b"content-length", b"100000"))
    body = b"x" * 100_000
    await connection.protocol_send(RawData(data=head))
    await connection.protocol_send(RawData(data=body))
    assert stream.writes == [head, body]


async def test_chunks_are_framed_as_http1_chunked_body_pieces() -> None:
    connection, stream, _ = _connection()
    await connection.send_chunk(b"data: {}\n\n")
    await connection.send_chunk(b"")  # an empty chunk would end the body: not written
    await connection.send_chunk(b"x" * 300)
    assert stream.writes == [b"a\r\ndata: {}\n\n\r\n", b"12c\r\n" + b"x" * 300 + b"\r\n"]


async def test_chunks_parse_as_the_body_h11_started() -> None:
    """What a client's HTTP/1.1 parser reads: h11's head, our chunks, h11's end of body."""
    connection, stream, _ = _connection()
    server = h11.Connection(h11.SERVER)
    server.receive_data(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
    server.next_event()
    server.next_event()
    head = server.send(h11.Response(status_code=200, headers=[(b"content-type", b"text/event-stream")]))
    assert head is not None
    await connection.protocol_send(RawData(data=head))
    for piece in (b"data: 1\n\n", b"data: 2\n\n"):
        await connection.send_chunk(piece)
    end = server.send(h11.EndOfMessage())
    assert end is not None
    await connection.protocol_send(RawData(data=end))
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="POST", target="/", headers=[(b"host", b"x"), (b"content-length", b"0")]))
    client.send(h11.EndOfMessage())
    client.receive_data(b"".join(stream.writes))
    body = b""
    while (event := client.next_event()) is not h11.NEED_DATA:
        if isinstance(event, h11.Data):
            body += event.data
        if isinstance(event, h11.EndOfMessage):
            break
    assert body == b"data: 1\n\ndata: 2\n\n"
    assert server.our_state is h11.DONE


async def test_a_failed_write_tells_hypercorn_the_client_is_gone() -> None:
    connection, stream, protocol = _connection()
    stream.broken = True
    await connection.send_chunk(b"data: 1\n\n")
    assert [type(event) for event in protocol.events] == [Closed]
    assert not connection.send_lock.locked()


async def test_a_chunk_waits_behind_a_write_that_waits_for_room() -> None:
    """Over a real socket: while a write holds the lock waiting for the kernel to take its bytes, a
    chunk must not go straight to the socket, or the client would read it in the middle of that write.

    The reader frees room in the socket without letting the waiting write run (a blocking read, no
    checkpoint), so a chunk that skipped the queue would land in that room."""
    ours, peer = trio.socket.socketpair()
    theirs = socket.socket(fileno=peer.detach())
    theirs.setblocking(True)  # trio made the descriptor non-blocking; this reader blocks on purpose
    connection = _real_connection(ours)
    big = b"a" * 1_000_000  # far more than the socket buffers: the write waits for the reader
    chunk = b"data: 1\n\n"
    expected = big + b"9\r\n" + chunk + b"\r\n"
    received = bytearray()

    def read_the_rest() -> None:
        while len(received) < len(expected) and (data := theirs.recv(65536)):
            received.extend(data)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(connection.write, big)
            await trio.sleep(0.05)
            assert connection.send_lock.locked()  # the big write is waiting for room
            received.extend(theirs.recv(200_000))  # room now, and the waiting write has not run
            reader = threading.Thread(target=read_the_rest)
            reader.start()
            await connection.send_chunk(chunk)
    reader.join(10)
    assert bytes(received) == expected
    ours.close()
    theirs.close()


async def test_a_chunk_with_no_write_in_progress_goes_straight_to_the_socket() -> None:
    ours, theirs = trio.socket.socketpair()
    connection = _real_connection(ours)
    await connection.send_chunk(b"data: 1\n\n")
    assert await theirs.recv(100) == b"9\r\ndata: 1\n\n\r\n"
    ours.close()
    theirs.close()
