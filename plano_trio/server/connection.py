"""One client connection: hypercorn's `TCPServer` with a leaner write path and a direct body path.

hypercorn runs every byte it writes through one method, `protocol_send`, which
takes a lock and opens a shielded cancel scope per write; the
lock's acquire alone costs a pass through trio's run loop.  `ClientConnection`
keeps the lock (HTTP/2 streams of one connection write from several tasks, and
HTTP/1.1's `100 Continue` comes from the read task) but takes it without
waiting when it is free, and leaves the shielding to the stream
(`GuardedStream.send_all` cannot be cancelled).

`send_chunk` writes one chunk of a chunked HTTP/1.1 response body that
hypercorn has already started, framed here instead of by h11, for the
streaming relay: an ASGI `http.response.body` message per streamed event
passes through hypercorn's ASGI stream, its HTTP/1.1 protocol, h11's state
machine and this write path, about as much CPU as everything else the gateway
does for that event.  Chunked framing has no state for h11 to keep (its
chunked writer frames each piece on its own), so the response's last
message, sent the ASGI way, ends the body and the keep-alive cycle as usual.
When no other write is in progress and the kernel takes the chunk at once (a
streamed token, nearly always), the chunk skips the lock too: nothing between
the check and the write yields, so no other task can write in between.

A response head that declares its length (a JSON answer, an error) is held
back and written with the body that follows it, which the app sends right
after: one write instead of two.  Whatever hypercorn does next (end the
cycle, close the connection) lets a held head out, so nothing waits on a body
that never comes.

A request h11 cannot parse (broken framing, a head past its bound) is
answered with hypercorn's status but with an error body an SDK can read
(`framing_errors`): hypercorn's own answer has an empty body.  hypercorn
builds its HTTP/1.1 protocol object inside `TCPServer.run` and offers no hook
for that answer, so the `protocol` attribute's setter replaces the object's
`_send_error_response` as hypercorn stores it.
"""

from __future__ import annotations

import sys
from functools import partial
from http import HTTPStatus

import h11
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, LifespanState

from plano_trio.gateway.clients import error_style
from plano_trio.server.framing_errors import CONTENT_TYPE, framing_error
from plano_trio.server.send_guard import GuardedStream
from plano_trio.sockio import write_now

_HEAD_START = b"HTTP/1.1 "
_LENGTH_HEADER = b"\r\ncontent-length:"
"""How h11 writes the header we (and hypercorn's own error responses) name in lower case."""

_JOIN_UP_TO = 65536
"""A held head is copied in front of a body up to this size; a larger body is written after it."""


class ClientConnection(TCPServer):
    """hypercorn's per-connection server, writing through `write` (see the module docstring)."""

    _held = b""
    """A response head waiting for its body (b"": none)."""

    _writers = 0
    """Writes in progress or waiting for `send_lock`, which `send_chunk` must not overtake (a plain
    count: `Lock.locked()` would be a call per streamed token)."""

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        state: LifespanState,
        stream: trio.SSLStream[trio.SocketStream],
    ) -> None:
        super().__init__(app, config, context, state, stream)
        guarded: object = stream  # hypercorn types it as a TLS stream; ours is a GuardedStream
        self._socket_now = guarded.socket if type(guarded) is GuardedStream else None
        """The client socket `send_chunk` writes to without waiting (None: a stream that has no
        `write_now`, as in tests)."""

    @property
    def protocol(self) -> ProtocolWrapper:
        return self._protocol

    @protocol.setter
    def protocol(self, wrapper: ProtocolWrapper) -> None:
        """hypercorn sets this once per connection (see the module docstring)."""
        self._protocol = wrapper
        inner = wrapper.protocol if isinstance(wrapper, ProtocolWrapper) else None  # tests set a fake
        if type(inner) is H11Protocol:
            inner._send_error_response = partial(_answer_framing_error, inner)  # type: ignore[method-assign]

    async def protocol_send(self, event: Event) -> None:
        if type(event) is RawData:
            data = event.data
            if data.startswith(_HEAD_START) and _LENGTH_HEADER in data:
                self._held = data
            else:
                await self.write(data)
        else:
            if self._held:
                await self.write(b"")
            await super().protocol_send(event)

    async def write(self, data: bytes) -> None:
        """Write `data` (after a held head) in order with every other write; a write that fails means
        the client is gone, which hypercorn learns the way it does from its own writes (its stream
        closes, the request gets `http.disconnect`)."""
        held = self._held
        if held:
            self._held = b""
            if len(data) <= _JOIN_UP_TO:
                data = held + data
            else:
                await self.write(held)
        lock = self.send_lock
        self._writers += 1
        try:
            try:
                lock.acquire_nowait()
            except trio.WouldBlock:
                await lock.acquire()
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                gone = True
            else:
                gone = False
            finally:
                lock.release()
        finally:
            self._writers -= 1
        if gone:
            await self.protocol.handle(Closed())

    async def send_chunk(self, data: bytes) -> None:
        """One chunk of the chunked HTTP/1.1 body of the response in progress (b"": nothing; an empty
        chunk would end the body).  Only for a request whose scope says HTTP/1.1 and a response
        started without a length: the caller knows both, this connection does not."""
        if not data:
            return
        framed = b"%x\r\n%b\r\n" % (len(data), data)
        sock = self._socket_now
        if sock is not None and not self._held and not self._writers:
            # No write is in progress and nothing here yields before the kernel has the bytes, so the
            # lock would be taken and given back with no other task running in between: skip it.
            try:
                sent = write_now(sock, framed)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())
                return
            if sent == len(framed):
                return
            framed = framed[sent:]
        await self.write(framed)


async def _answer_framing_error(protocol: H11Protocol, status_code: int) -> None:
    """hypercorn's answer to bytes h11 refused, with an error body (see `framing_errors`).

    hypercorn calls this only from inside its `except h11.RemoteProtocolError`, so the exception being
    handled is h11's own description of the fault."""
    error = sys.exc_info()[1]
    if not isinstance(error, h11.ProtocolError):
        error = h11.RemoteProtocolError("malformed request", status_code)
    scope = getattr(protocol.stream, "scope", None)  # the request being read, once its head was parsed
    path = scope.get("path", "") if isinstance(scope, dict) else ""
    answer = framing_error(error, protocol.config.h11_max_incomplete_size)
    body = answer.body(error_style(path))
    headers = [
        CONTENT_TYPE,
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
        *protocol.config.response_headers("h11"),
    ]
    reason = HTTPStatus(answer.status).phrase.encode()
    await protocol._send_h11_event(h11.Response(status_code=answer.status, headers=headers, reason=reason))
    await protocol._send_h11_event(h11.Data(data=body))
    await protocol._send_h11_event(h11.EndOfMessage())
