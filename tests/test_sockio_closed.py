"""`sockio` on a closed socket: a read or write on its -1 descriptor is `trio.ClosedResourceError`, never
`trio.BrokenResourceError` (the descriptor is checked first only before a wait for readiness)."""

from __future__ import annotations

import errno

import pytest
import trio

from plano_trio import sockio


@pytest.mark.parametrize(
    ("fd", "code", "expected"),
    [
        (-1, errno.EBADF, trio.ClosedResourceError),  # closed before the call: its descriptor read -1
        (7, errno.ECONNRESET, trio.BrokenResourceError),
        (7, errno.EPIPE, trio.BrokenResourceError),
        (7, errno.EBADF, trio.BrokenResourceError),  # an open socket's call failed: not a close of ours
    ],
)
def test_failure(fd: int, code: int, expected: type[Exception]) -> None:
    assert type(sockio._failure(fd, OSError(code, "x"))) is expected


async def test_write_now_on_a_closed_socket() -> None:
    ours, theirs = trio.socket.socketpair()
    ours.close()
    with pytest.raises(trio.ClosedResourceError):
        sockio.write_now(ours, b"x")
    theirs.close()


@pytest.mark.parametrize("wait_first", [False, True])
async def test_a_read_on_a_closed_socket(wait_first: bool) -> None:
    ours, theirs = trio.socket.socketpair()
    ours.close()
    with pytest.raises(trio.ClosedResourceError):
        await sockio.receive_some(ours, 100, wait_first=wait_first)
    theirs.close()
