"""A provider that misbehaves on purpose: raw HTTP/1.1 bytes written by a test's script.

The mock provider speaks the wire formats correctly; faults need a server
that does what no well-behaved provider does (endless bodies, impossible
statuses, events cut in half, silence mid-stream).  Each connection's
request is read (head and Content-Length body) and handed, with the stream,
to the script, which writes whatever it likes.  Real sockets, on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import trio

Script = Callable[[trio.SocketStream, bytes], Awaitable[None]]


class ScriptedProvider:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.url = ""

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                request = await _read_request(stream)
                if request is None:
                    return
                self.requests.append(request)
                await self.script(stream, request)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


async def _read_request(stream: trio.SocketStream) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


@asynccontextmanager
async def scripted_provider(script: Script) -> AsyncIterator[ScriptedProvider]:
    provider = ScriptedProvider(script)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, provider._handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        provider.url = f"http://127.0.0.1:{port}"
        yield provider
        nursery.cancel_scope.cancel()


def head(status: int, *headers: tuple[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def json_reply(body: bytes, status: int = 200) -> Script:
    async def script(stream: trio.SocketStream, request: bytes) -> None:
        reply = head(status, ("content-type", "application/json"), ("content-length", str(len(body))))
        await stream.send_all(reply + body)

    return script


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse_then(events: list[bytes], after: Callable[[trio.SocketStream], Awaitable[None]]) -> Script:
    """A 200 SSE response (chunked) that writes `events`, then does `after` (stall, close, ...)."""

    async def script(stream: trio.SocketStream, request: bytes) -> None:
        await stream.send_all(
            head(200, ("content-type", "text/event-stream"), ("transfer-encoding", "chunked"))
        )
        for event in events:
            await stream.send_all(chunk(event))
        await after(stream)

    return script


async def hang_up(stream: trio.SocketStream) -> None:
    await stream.aclose()


async def stall(stream: trio.SocketStream) -> None:
    await trio.sleep_forever()
