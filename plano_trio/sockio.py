"""Socket reads and writes for the two sockets every proxied request uses, at one scheduler pass each.

trio's `SocketStream` wraps each `recv`/`send` in layers that cost more
than the system call on a small read or write: a conflict detector, an
error-translating context manager, and a generic non-blocking helper that
enters an async context manager per call and then yields to the scheduler
even when the call completed at once.  hypercorn adds a lock and a shielded
cancel scope around every write (the lock's acquire yields too).  Relaying
one streamed token is one upstream read and one client write, so that was
three passes through trio's run loop per token where one (the wait for the
provider's next bytes) is needed.

These functions make the system calls directly on the socket's descriptor
(`os.read`/`os.write`: `recv`/`send` without flags on a connected TCP
socket) and keep trio's contract where it matters:

* **Reads** are checkpoints: cancellable before anything is read and while
  waiting, and they yield once when data was already there (as trio does),
  so a relay whose source is always ready still lets other tasks run.
* **Writes** come in two kinds.  `send_all_uninterrupted` is for a client
  connection, whose HTTP framing a half-written message would corrupt
  (hypercorn shields its writes for that reason): never cancelled, and it
  does not yield when the kernel takes everything at once (the common case)
  because the caller's next read is the checkpoint.  A write that stalls is
  bounded by whoever closes the socket (the server's send guard).
  `send_all` is for an upstream request: cancellable before the first byte
  and while waiting for room, so a provider that stops reading cannot hold a
  request past its deadline.

The descriptor is read afresh before every call, with no await in between:
a socket closed by another task (a timeout's `close`) reports -1, never a
number the kernel has since given to another socket.  A read or write on -1
fails (EBADF) and is reported as `trio.ClosedResourceError`, so only a wait
for readiness checks the descriptor first.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import trio
from trio.lowlevel import cancel_shielded_checkpoint, checkpoint_if_cancelled, wait_readable, wait_writable

Buffer = bytes | bytearray | memoryview


def _fd(sock: trio.socket.SocketType) -> int:
    """The socket's descriptor now; `trio.ClosedResourceError` once it was closed (-1)."""
    fd = sock.fileno()
    if fd < 0:
        raise trio.ClosedResourceError("socket was already closed")
    return fd


def _failure(fd: int, error: OSError) -> Exception:
    """What a failed `os.read`/`os.write` on `fd` means: the socket was closed before the call (its
    descriptor read -1, the call failed with EBADF), or the connection failed (reset)."""
    if fd < 0:
        return trio.ClosedResourceError("socket was already closed")
    return trio.BrokenResourceError(error)


async def receive_some(sock: trio.socket.SocketType, max_bytes: int, *, wait_first: bool = False) -> bytes:
    """Up to `max_bytes` from `sock` (b"" at end of stream), waiting until some arrive.

    `wait_first`: the caller expects nothing to be there yet (its last read
    drained the socket, and a paced token stream's next event is milliseconds
    away): wait for readiness before reading rather than make a read that
    fails.  Raises `trio.ClosedResourceError` when the socket is (or gets)
    closed here, `trio.BrokenResourceError` when the connection failed (reset)."""
    if wait_first:
        await wait_readable(_fd(sock))
        waited = True
    else:
        await checkpoint_if_cancelled()
        waited = False
    while True:
        fd = sock.fileno()  # not `_fd`: a closed socket's -1 fails the read, and `_failure` says why
        try:
            data = os.read(fd, max_bytes)
        except BlockingIOError:
            await wait_readable(fd)
            waited = True
            continue
        except OSError as error:
            raise _failure(fd, error) from error
        if not waited:
            await cancel_shielded_checkpoint()
        return data


def write_now(sock: trio.socket.SocketType, data: Buffer) -> int:
    """Write what the kernel takes of `data` now, without waiting: bytes written (0: no room)."""
    fd = sock.fileno()
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
    except OSError as error:
        raise _failure(fd, error) from error


async def send_all_uninterrupted(
    sock: trio.socket.SocketType, data: Buffer, on_wait: Callable[[], object] | None = None
) -> None:
    """Write all of `data`; never cancelled, and no scheduler pass when the kernel takes it at once.

    `on_wait` runs before each wait for room (the send guard re-arms its clock
    there: a client that keeps reading slowly is never cut)."""
    sent = write_now(sock, data)
    if sent < len(data):
        with trio.CancelScope(shield=True):
            await _send_rest(sock, data, sent, on_wait)


async def send_all(sock: trio.socket.SocketType, data: Buffer) -> None:
    """Write all of `data`; cancellable before the first byte and while waiting for room.

    Cancelled part-way, the connection is left mid-message: the caller must close it."""
    await checkpoint_if_cancelled()
    sent = write_now(sock, data)
    if sent < len(data):
        await _send_rest(sock, data, sent, None)


async def _send_rest(
    sock: trio.socket.SocketType, data: Buffer, sent: int, on_wait: Callable[[], object] | None
) -> None:
    """`data` from byte `sent` on, waiting for room before each write (cancellable unless the caller
    shields it); `on_wait` runs before each wait."""
    with memoryview(data) as view:
        while sent < len(view):
            if on_wait is not None:
                on_wait()
            await wait_writable(_fd(sock))
            with view[sent:] as rest:
                sent += write_now(sock, rest)
