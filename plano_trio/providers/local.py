"""An in-process HTTP/1.1 server end, as a trio stream: how a provider can live inside the gateway.

The upstream pool reaches an origin whose `local` factory is set by calling
it instead of dialling a socket (see `Origin.local`), and then talks to the
stream it gets exactly as to a TCP connection: it writes the encoded
request and parses the response with the same HTTP/1.1 client every real
provider goes through.  So an in-process provider (the built-in demo model)
exercises the whole gateway path (translation, streaming relay, usage,
state) and costs the other providers nothing: the pool only looks at
`local` when it opens a connection.

The server end is deliberately small, because its only client is our own
pool: one request at a time (keep-alive, no pipelining), `Content-Length`
bodies (the pool always frames requests that way), heads and bodies
bounded.  A handler is a pure function from `LocalRequest` to `LocalReply`;
a streamed reply goes out with chunked framing, one read per part, so the
gateway relays it event by event as it would a remote stream.  Nothing here
ever waits: a read with nothing to deliver is end-of-file, which the client
reports as a closed connection rather than hanging.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import NamedTuple

import trio

log = logging.getLogger("plano_trio.providers")

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
"""Far above the gateway's own request limits: a request past these is a bug, answered by a reset."""


class LocalRequest(NamedTuple):
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    """Names lowercased, in the order sent."""
    body: bytes


class LocalReply(NamedTuple):
    status: int
    content_type: bytes
    parts: Sequence[bytes]
    """The body: one part answers with `Content-Length`; several are sent chunked, one read each."""
    stream: bool = False
    """Send chunked even when there is one part (an event stream)."""


Handler = Callable[[LocalRequest], LocalReply]


class InProcessServer(trio.abc.Stream):
    """The server end of one in-process connection, answering each request with `handler`."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._inbox = bytearray()
        self._outbox: deque[bytes] = deque()
        self._closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Take request bytes; each complete request is answered into the outbox at once."""
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise trio.ClosedResourceError("in-process connection is closed")
        self._inbox += data
        try:
            while (request := self._next_request()) is not None:
                self._outbox.extend(frame(self._answer(request)))
        except ValueError as error:
            self._closed = True
            raise trio.BrokenResourceError(f"in-process server refused the request: {error}") from None

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The next part of the answer; b"" (end of file) when there is none."""
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise trio.ClosedResourceError("in-process connection is closed")
        if not self._outbox:
            return b""
        part = self._outbox.popleft()
        if max_bytes is not None and len(part) > max_bytes:
            self._outbox.appendleft(part[max_bytes:])
            part = part[:max_bytes]
        return part

    async def aclose(self) -> None:
        self._closed = True
        self._inbox.clear()
        self._outbox.clear()
        await trio.lowlevel.checkpoint()

    def _next_request(self) -> LocalRequest | None:
        """The first complete request in the inbox (removed from it), None while one is incomplete."""
        inbox = self._inbox
        end = inbox.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4)
        if end < 0:
            if len(inbox) > MAX_HEAD_BYTES:
                raise ValueError(f"request head larger than {MAX_HEAD_BYTES} bytes")
            return None
        lines = bytes(inbox[:end]).split(b"\r\n")
        method, target, _version = lines[0].split(b" ", 2)
        headers = []
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip()
            headers.append((name, value))
            if name == b"content-length":
                length = int(value)
        if not 0 <= length <= MAX_BODY_BYTES:
            raise ValueError(f"request body of {length} bytes")
        start = end + 4
        if len(inbox) < start + length:
            return None
        body = bytes(inbox[start : start + length])
        del inbox[: start + length]
        return LocalRequest(method, target, headers, body)

    def _answer(self, request: LocalRequest) -> LocalReply:
        try:
            return self._handler(request)
        except Exception:  # a bug in the handler: answered as a real server would, and logged
            log.exception("in-process provider failed on %s", request.target.decode("latin-1"))
            return LocalReply(500, b"text/plain", [b"in-process provider failed; see the gateway log"])


def frame(reply: LocalReply) -> list[bytes]:
    """The reply on the wire: the head, then the body in one piece or as chunks (one list item each)."""
    try:
        reason = HTTPStatus(reply.status).phrase.encode()
    except ValueError:
        reason = b""
    head = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n" % (reply.status, reason, reply.content_type)
    if len(reply.parts) == 1 and not reply.stream:
        body = reply.parts[0]
        return [head + b"content-length: %d\r\n\r\n" % len(body) + body]
    chunks = [b"%x\r\n%s\r\n" % (len(part), part) for part in reply.parts if part]
    return [head + b"transfer-encoding: chunked\r\n\r\n", *chunks, b"0\r\n\r\n"]
