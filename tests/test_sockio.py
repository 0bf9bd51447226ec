"""`sockio`: direct socket reads and writes keep trio's contract (checkpoints, cancellation, closing)."""

from __future__ import annotations

import socket
import struct

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from plano_trio import sockio

_RESET = struct.pack("ii", 1, 0)


def _pair() -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    return trio.socket.socketpair()


@pytest.mark.parametrize("wait_first", [False, True])
async def test_a_read_returns_what_is_there_and_empty_bytes_at_the_end(wait_first: bool) -> None:
    ours, theirs = _pair()
    await theirs.send(b"hello")
    assert await sockio.receive_some(ours, 100, wait_first=wait_first) == b"hello"
    theirs.close()
    assert await sockio.receive_some(ours, 100, wait_first=wait_first) == b""
    ours.close()


@pytest.mark.parametrize("wait_first", [False, True])
async def test_a_read_waits_for_data(wait_first: bool) -> None:
    ours, theirs = _pair()
    async with trio.open_nursery() as nursery:
        got: list[bytes] = []

        async def read() -> None:
            got.append(await sockio.receive_some(ours, 100, wait_first=wait_first))

        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        await theirs.send(b"late")
    assert got == [b"late"]
    ours.close()
    theirs.close()


async def test_a_read_is_a_checkpoint_even_when_data_is_there() -> None:
    ours, theirs = _pair()
    await theirs.send(b"x")
    with trio.CancelScope() as scope:
        scope.cancel()
        await sockio.receive_some(ours, 100)
    assert scope.cancelled_caught
    assert await sockio.receive_some(ours, 100) == b"x"  # nothing was consumed by the cancelled read
    with trio.testing.assert_checkpoints():
        await theirs.send(b"y")
        await sockio.receive_some(ours, 100)
    ours.close()
    theirs.close()


async def test_closing_the_socket_wakes_a_waiting_read_with_closed_resource() -> None:
    ours, theirs = _pair()
    raised: list[BaseException] = []

    async def read() -> None:
        try:
            await sockio.receive_some(ours, 100)
        except trio.ClosedResourceError as error:
            raised.append(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        ours.close()
    assert raised
    with pytest.raises(trio.ClosedResourceError):
        await sockio.receive_some(ours, 100)
    with pytest.raises(trio.ClosedResourceError):
        await sockio.send_all(ours, b"x")
    theirs.close()


async def test_a_reset_connection_is_broken_resource() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = trio.socket.socket()
    await client.connect(listener.getsockname())
    server, _ = await listener.accept()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    server.close()
    await trio.sleep(0.01)
    with pytest.raises(trio.BrokenResourceError):
        await sockio.receive_some(client, 100)
    with pytest.raises(trio.BrokenResourceError):
        for _ in range(3):  # the first write after a reset may still be accepted by the kernel
            await sockio.send_all(client, b"x" * 1000)
    client.close()
    listener.close()


async def _drain(sock: trio.socket.SocketType, into: bytearray, size: int) -> None:
    while len(into) < size:
        data = await sock.recv(65536)
        if not data:
            return
        into += data


async def test_an_uninterrupted_write_finishes_inside_a_cancelled_scope_and_reports_its_waits() -> None:
    """Bigger than the socket buffers, so it has to wait for the reader; cancellation cannot cut it."""
    ours, theirs = _pair()
    payload = bytes(range(256)) * 20_000  # 5 MB
    waits: list[int] = []
    received = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_drain, theirs, received, len(payload))
        with trio.CancelScope() as scope:
            scope.cancel()
            await sockio.send_all_uninterrupted(ours, payload, lambda: waits.append(1))
    assert bytes(received) == payload
    assert waits  # the guard's clock was re-armed before each wait
    ours.close()
    theirs.close()


async def test_a_cancellable_write_stops_while_waiting_for_room() -> None:
    ours, theirs = _pair()
    with trio.move_on_after(0.05) as scope:
        await sockio.send_all(ours, b"x" * 20_000_000)  # nobody reads: it must wait, then give up
    assert scope.cancelled_caught
    with trio.CancelScope() as scope:
        scope.cancel()
        await sockio.send_all(ours, b"nothing")  # cancelled before the first byte
    assert scope.cancelled_caught
    ours.close()
    theirs.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=200_000), min_size=1, max_size=6))
def test_what_is_written_is_what_is_read(pieces: list[bytes]) -> None:
    async def main() -> None:
        ours, theirs = _pair()
        expected = b"".join(pieces)
        received = bytearray()

        async def read() -> None:
            while len(received) < len(expected):
                received.extend(await sockio.receive_some(theirs, 65536))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            for i, piece in enumerate(pieces):
                if i % 2:
                    await sockio.send_all(ours, piece)
                else:
                    await sockio.send_all_uninterrupted(ours, memoryview(piece))
        assert bytes(received) == expected
        ours.close()
        theirs.close()

    trio.run(main)
