"""The overflow lane: what a connection gets while the listener is at its connection bound.

A load balancer must still see the process alive, and a client must get a
well-formed refusal it can retry on, not a connection that hangs in the
kernel's backlog until its own timeout.  So an overflow connection has its
request head read (h11, bounded in size and time), gets `GET /healthz` 200
or else 503 with `Retry-After` in the error shape of the caller's SDK (Anthropic's on
`/v1/messages`, OpenAI's elsewhere), and is closed.  Bytes h11 cannot parse as
a request get its status (400, 431, 501) with an error body, as on the main
lane (`framing_errors`).

`OverflowConnection` is sans-I/O: bytes in, the reply out.
`serve_overflow` is the thin trio edge; every wait in it has a timeout, so
an overflow slot is free again within `HEAD_TIMEOUT_S + SEND_TIMEOUT_S +
LINGER_MAX_S` whatever the client does.
"""

from __future__ import annotations

import json
from http import HTTPStatus

import h11
import trio

from plano_trio.server.framing_errors import CONTENT_TYPE, framing_error

HEAD_TIMEOUT_S = 2.0
"""A request head that has not arrived in full by then is not worth an overflow slot: close."""

SEND_TIMEOUT_S = 1.0
"""The reply is a few hundred bytes; a client that cannot take them in a second is dropped."""

LINGER_IDLE_S = 0.1
LINGER_MAX_S = 1.0
"""After replying, read and discard the rest of a request body still arriving, until it ends, goes
quiet for `LINGER_IDLE_S`, or `LINGER_MAX_S` passes.  Closing a socket while the client's bytes keep
arriving makes the kernel send a reset, which can destroy the reply before the client reads it."""

MAX_HEAD_BYTES = 16 * 1024
"""Same head-size limit as the main lane (hypercorn's `h11_max_incomplete_size`)."""

RECEIVE_BYTES = 16 * 1024

RETRY_AFTER_S = 1

HEALTH_PATH = b"/healthz"

_MESSAGE = "The gateway is at its connection limit; retry shortly."

_OVERLOADED_BODY = json.dumps(
    {"error": {"message": _MESSAGE, "type": "server_error", "param": None, "code": "overloaded"}},
    separators=(",", ":"),
).encode()
"""OpenAI's error shape, which its SDKs parse."""

_OVERLOADED_ANTHROPIC_BODY = json.dumps(
    {"type": "error", "error": {"type": "overloaded_error", "message": _MESSAGE}}, separators=(",", ":")
).encode()
"""Anthropic's, for its SDK on the Messages path (it maps 503 to `overloaded_error` too)."""

ANTHROPIC_PATH = b"/v1/messages"


def encode_response(status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, head: bool) -> bytes:
    """One HTTP/1.1 response that ends the connection (`head`: the request was HEAD, so no body bytes)."""
    lines = [b"HTTP/1.1 %d %s" % (status, HTTPStatus(status).phrase.encode())]
    lines.extend(name + b": " + value for name, value in headers)
    lines.append(b"content-length: %d" % len(body))
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head else body)


def overflow_reply(method: bytes, target: bytes) -> bytes:
    """The reply to a request the main lane has no room for: health checks pass, the rest are refused."""
    head = method == b"HEAD"
    path = target.partition(b"?")[0]
    if path == HEALTH_PATH and method in (b"GET", b"HEAD"):
        return encode_response(200, [(b"content-type", b"text/plain")], b"", head=head)
    body = _OVERLOADED_ANTHROPIC_BODY if path.startswith(ANTHROPIC_PATH) else _OVERLOADED_BODY
    return encode_response(
        503,
        [(b"content-type", b"application/json"), (b"retry-after", b"%d" % RETRY_AFTER_S)],
        body,
        head=head,
    )


class OverflowConnection:
    """Parse one request head (then skip its body) and produce the overflow reply.

    After each `receive`: `reply` is the bytes to send once known (then
    close); `finished` says the client's side is over (its request ended,
    it closed, or it broke the protocol), so there is nothing to linger for.
    Body bytes are parsed and dropped as they come, so memory stays at one
    receive plus h11's bounded head buffer.
    """

    __slots__ = ("_h11", "finished", "reply")

    def __init__(self) -> None:
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.reply: bytes | None = None
        self.finished = False

    def receive(self, data: bytes | bytearray) -> None:
        """Feed bytes read from the client (`b""` when it closed its side)."""
        if self.finished:
            return
        self._h11.receive_data(bytes(data))
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as error:
                self.finished = True
                if self.reply is None:  # no request head was read: OpenAI's shape, the default
                    answer = framing_error(error, MAX_HEAD_BYTES)
                    self.reply = encode_response(answer.status, [CONTENT_TYPE], answer.body(), head=False)
                return
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.Request):
                self.reply = overflow_reply(event.method, event.target)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)) or event is h11.PAUSED:
                self.finished = True
                return


async def serve_overflow(stream: trio.abc.HalfCloseableStream) -> None:
    """Answer one overflow connection and close it; never raises for anything the client does."""
    conn = OverflowConnection()
    try:
        with trio.move_on_after(HEAD_TIMEOUT_S):
            while conn.reply is None and not conn.finished:
                conn.receive(await stream.receive_some(RECEIVE_BYTES))
        if conn.reply is None:
            return
        with trio.move_on_after(SEND_TIMEOUT_S) as sending:
            await stream.send_all(conn.reply)
            await stream.send_eof()
        if not sending.cancelled_caught:
            await _linger(stream, conn)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def _linger(stream: trio.abc.ReceiveStream, conn: OverflowConnection) -> None:
    with trio.move_on_after(LINGER_MAX_S):
        while not conn.finished:
            with trio.move_on_after(LINGER_IDLE_S) as idle:
                data = await stream.receive_some(RECEIVE_BYTES)
            if idle.cancelled_caught:
                return
            conn.receive(data)
