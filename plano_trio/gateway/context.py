"""One client request as every stage sees it: who asked, when, and where the answer goes.

Immutable on purpose: stages pass it down and never write into it; what a
stage learns travels back as its return value (`Outcome`, `Delivery`), so
the request's story can be read from the pipeline's code rather than from a
bag of fields set in many places.  The one exception is `trace`, present
only when the request is traced: an append-only record of the child spans
stages ran (see `plano_trio.telemetry.record`), read once by the observe
stage.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import NamedTuple

import trio

from plano_trio.apis.http import Header
from plano_trio.auth import ClientKey
from plano_trio.gateway.asgi import Receive, Send, send_body_chunk, send_error
from plano_trio.gateway.client_watch import ChunkWriter
from plano_trio.gateway.errors import ApiError, ErrorStyle
from plano_trio.telemetry import RequestTrace

_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
"""What a client may choose as `x-request-id`: it is logged, echoed and forwarded upstream, so no
spaces (they would spoof access-log fields), no control or non-ASCII bytes, and a bounded length."""


def new_request_id() -> bytes:
    """32 hex digits; a correlation id, not a secret, so no `getrandom` syscall per request."""
    return b"%032x" % random.getrandbits(128)


def request_id_from(headers: list[Header]) -> bytes:
    """The client's `x-request-id` when it is safe to log and forward as is, else a fresh one."""
    for name, value in headers:
        if name == b"x-request-id":
            return value if _SAFE_REQUEST_ID.fullmatch(value) else new_request_id()
    return new_request_id()


class RequestContext(NamedTuple):
    method: str
    path: str
    headers: list[Header]
    request_id: bytes
    receive: Receive
    send: Send
    started: float
    """`perf_counter()` when the request arrived."""
    http2: bool = False
    """HTTP/2 forbids connection-specific headers (`connection: close`) in a response."""
    trace: RequestTrace | None = None
    """This request's trace when it is sampled (None: tracing is off, or the request is not sampled)."""
    inbound_key: ClientKey | None = None
    """The client key the request presented (None: inbound keys are off, or the path is open)."""
    query: bytes = b""
    """The raw query string (no `?`), for handlers that forward it (the retrieval API's proxy)."""
    connection: Hashable | None = None
    """The client connection, (client, server) addresses (None when the server gave none): the key
    under which the server edge reports the connection's end (`request_scope`)."""
    chunk_writer: ChunkWriter | None = None
    """The connection's direct path for chunked body chunks, for an HTTP/1.1 request (None: send body
    chunks as ASGI messages): how a stream's events skip the server's per-message work."""

    def body_chunk_sender(self) -> Callable[[bytes], Awaitable[None]]:
        """How the body of a response started without a length goes out, chunk by chunk: straight to
        the HTTP/1.1 client connection's chunked body when the server offers that (a streamed event
        then costs one framed write), else one ASGI message per chunk."""
        writer = self.chunk_writer
        return partial(send_body_chunk, self.send) if writer is None else writer.send_chunk

    async def answer_error(self, error: ApiError, style: ErrorStyle) -> None:
        """`error` as the JSON the client's SDK parses, with our request id."""
        extra = ((b"x-request-id", self.request_id),)
        if self.http2 and any(name == b"connection" for name, _ in error.headers):
            error = error.but(headers=tuple(h for h in error.headers if h[0] != b"connection"))
        await send_error(self.send, error, style, extra)

    async def send_last(self, finish: Callable[[], Awaitable[None]], timeout_s: float) -> None:
        """Run a delivery's last send (`finish`), outside the request's nursery.

        Completing the last send makes hypercorn recycle the keep-alive
        connection, which the request's own end must not cancel.  On HTTP/1.1
        it is bounded all the same by the server's send guard (a write that
        makes no progress resets the connection).  HTTP/2 waits for the
        client's flow-control window without writing anything, which no write
        guard sees: that wait is bounded here by `timeout_s`.
        """
        if self.http2:
            with trio.move_on_after(timeout_s):
                await finish()
        else:
            await finish()
