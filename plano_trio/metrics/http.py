"""The `/metrics` listener: a minimal HTTP/1.1 responder on trio, bounded like every other edge.

Prometheus sends one `GET /metrics` per scrape; this answers it with
`Connection: close` and nothing else: no keep-alive, no request bodies, no
chunked encoding.  A hostile or broken client gets no more than
`MAX_HEAD_BYTES` read, `HEAD_TIMEOUT_S` to send them, `SEND_TIMEOUT_S` to
take the answer, and one of `MAX_CONNECTIONS` slots (beyond which a
connection is closed at once), so the metrics port can never take memory
or time from the model listeners in the same process.

`answer_for` is the pure part: request head in, status and headers out.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import trio

log = logging.getLogger("plano_trio.metrics")

MAX_HEAD_BYTES = 8 * 1024
HEAD_TIMEOUT_S = 5.0
SEND_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 16
PATH = "/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format (what brightstaff's exporter sends; every Prometheus version reads it)."""

Render = Callable[[], Awaitable[bytes]]


class Answer(NamedTuple):
    status: int
    reason: str
    body: bytes = b""
    metrics: bool = False
    """Send the exposition (the body is produced on demand)."""
    head_only: bool = False


def answer_for(head: bytes) -> Answer:
    """What to answer a request head (the bytes up to the blank line)."""
    line, _, _ = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return Answer(400, "Bad Request", b"bad request\n")
    method, target = parts[0], parts[1]
    path = target.partition(b"?")[0]
    if path != PATH.encode():
        return Answer(404, "Not Found", b"not found: the metrics are at /metrics\n")
    if method not in (b"GET", b"HEAD"):
        return Answer(405, "Method Not Allowed", b"use GET\n")
    return Answer(200, "OK", metrics=True, head_only=method == b"HEAD")


def response_bytes(status: int, reason: str, body: bytes, content_type: str, *, head_only: bool) -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    return head if head_only else head + body


async def _read_head(stream: trio.abc.Stream) -> bytes | None:
    """The request head, or None when the client sent more than `MAX_HEAD_BYTES` or closed first."""
    data = bytearray()
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD_BYTES:
            return None
        chunk = await stream.receive_some(MAX_HEAD_BYTES)
        if not chunk:
            return None
        data += chunk
    return bytes(data)


async def _serve_one(stream: trio.abc.Stream, render: Render) -> None:
    head = None
    with trio.move_on_after(HEAD_TIMEOUT_S):
        head = await _read_head(stream)
    if head is None:
        return
    answer = answer_for(head)
    body = answer.body
    content_type = "text/plain; charset=utf-8"
    if answer.metrics:
        body = await render()
        content_type = CONTENT_TYPE
    data = response_bytes(answer.status, answer.reason, body, content_type, head_only=answer.head_only)
    with trio.move_on_after(SEND_TIMEOUT_S):
        await stream.send_all(data)


class ScrapeServer:
    """Accepts on one listening socket and answers each connection in its own task."""

    def __init__(self, listener: trio.SocketListener, render: Render) -> None:
        self.listener = listener
        self.render = render
        self.open = 0

    async def serve(self) -> None:
        """Until cancelled (by `open_metrics_server`'s exit)."""
        async with self.listener, trio.open_nursery() as nursery:
            while True:
                try:
                    stream = await self.listener.accept()
                except OSError as error:  # out of descriptors for now: wait, as the model listeners do
                    if error.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        raise
                    await trio.sleep(0.1)
                    continue
                if self.open >= MAX_CONNECTIONS:
                    await trio.aclose_forcefully(stream)
                    continue
                self.open += 1
                nursery.start_soon(self._connection, stream)

    async def _connection(self, stream: trio.SocketStream) -> None:
        try:
            await _serve_one(stream, self.render)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
            log.debug("metrics connection ended: %s", error)
        except Exception:  # a bug in a collector: log it, keep serving (and never touch the gateway)
            log.exception("metrics scrape failed")
        finally:
            self.open -= 1
            await trio.aclose_forcefully(stream)
