"""The thin ASGI edge: typed aliases, body reading, canned responses.

Hypercorn hands us raw ASGI callables; these helpers keep handlers free of
message-dict plumbing without adding a framework (and its per-request cost).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple

import msgspec
import trio

from plano_trio.apis.http import Header
from plano_trio.gateway.errors import ApiError, ErrorStyle

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS: tuple[Header, ...] = ((b"content-type", b"application/json"),)


class ClientDisconnected(Exception):
    """The client went away before its request body arrived."""


class BodyLimits(NamedTuple):
    """How much request body a client may send, and how slowly."""

    max_bytes: int
    stall_s: float
    """Longest silence between two pieces of the body."""
    total_s: float
    """Longest the whole upload may take (a trickle of bytes cannot hold a connection either)."""


def declared_length(headers: Iterable[Header]) -> int | None:
    """The request's `Content-Length` as a number; None when absent, not a plain number, or
    overridden by `Transfer-Encoding` (which then frames the body, so the length says nothing)."""
    length: int | None = None
    for name, value in headers:
        if name == b"content-length":
            length = int(value) if value.isdigit() and len(value) <= 18 else None
        elif name == b"transfer-encoding":
            return None
    return length


def carries_body(headers: Iterable[Header]) -> bool:
    """Whether the request's head announces a body: a non-zero `Content-Length` or any
    `Transfer-Encoding` (a malformed length counts: the server's parser decides what follows)."""
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip(b" \t0")):
            return True
    return False


async def read_body(receive: Receive, headers: Iterable[Header], limits: BodyLimits) -> bytes:
    """The whole request body; ApiError 413 past `max_bytes` (before reading, when the length is
    declared), 408 when the client stalls or trickles past the limits.

    The body is complete only at the server's end-of-body message, even when the declared length has
    arrived.  Over HTTP/1.1 that message means h11 has read the request's end: a response sent before
    it finds the connection mid-request and hypercorn closes the connection after the response, without
    saying so in its head, and a keep-alive client's next request on it fails.  Over HTTP/2 clients
    (httpx, so the OpenAI SDK) end a body with an empty DATA frame of its own, and hypercorn raises on a
    frame for a stream already answered, which ends the connection and every request multiplexed on it."""
    declared = declared_length(headers)
    if declared is not None and declared > limits.max_bytes:
        raise _too_large(limits.max_bytes)
    body = _Body(limits.max_bytes)
    take_now = _take_now(receive)
    while take_now is not None:
        try:
            message = take_now()
        except trio.WouldBlock:
            break
        if body.add(message):
            return body.whole()
    return await _read_bounded(receive, limits, body)


def _take_now(receive: Receive) -> Callable[[], Message] | None:
    """A way to take what is already queued without waiting, when `receive` offers one.

    hypercorn hands the app a trio memory channel's `receive`, and a body
    that came with the headers (the usual case) is queued before the app first
    runs (its end-of-body message may come a moment later; a declared length
    tells us the body is complete without it).  Taking it directly spares the
    common request the cancel scope that bounds a wait (several µs on every
    request); a real wait takes the bounded path.
    """
    take: Callable[[], Message] | None = getattr(getattr(receive, "__self__", None), "receive_nowait", None)
    return take


class _Body:
    """The pieces received so far, bounded by `limit` bytes; complete at the end-of-body message."""

    __slots__ = ("limit", "parts", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, message: Message) -> bool:
        """Take one ASGI message; True once the body is complete."""
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        part: bytes = message.get("body", b"")
        self.size += len(part)
        if self.size > self.limit:
            raise _too_large(self.limit)
        if part:
            self.parts.append(part)
        return not message.get("more_body", False)

    def whole(self) -> bytes:
        parts = self.parts
        return parts[0] if len(parts) == 1 else b"".join(parts)


async def _read_bounded(receive: Receive, limits: BodyLimits, body: _Body) -> bytes:
    """Wait for the rest of the body, each wait and the whole bounded by `limits`."""
    now = trio.current_time()
    give_up = now + limits.total_s
    with trio.CancelScope(deadline=min(give_up, now + limits.stall_s)) as scope:
        while not body.add(await receive()):
            scope.deadline = min(give_up, trio.current_time() + limits.stall_s)
        return body.whole()
    raise ApiError(
        408,
        f"Request body did not arrive in time (at most {limits.stall_s:g}s between pieces, "
        f"{limits.total_s:g}s in all)",
        code="request_timeout",
        headers=((b"connection", b"close"),),
    )


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"Request body is larger than the gateway's limit of {limit} bytes",
        code="request_too_large",
        headers=((b"connection", b"close"),),
    )


async def send_bytes(send: Send, status: int, headers: Iterable[Header], body: bytes) -> None:
    """A complete response in two ASGI messages (start + one body)."""
    all_headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def send_body_chunk(send: Send, chunk: bytes) -> None:
    """One piece of a body started without a length, as an ASGI message (more to come)."""
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def send_json(send: Send, status: int, value: object, extra: Iterable[Header] = ()) -> None:
    await send_bytes(send, status, [*JSON_HEADERS, *extra], msgspec.json.encode(value))


async def send_error(send: Send, error: ApiError, style: ErrorStyle, extra: Iterable[Header] = ()) -> None:
    await send_bytes(send, error.status, [*JSON_HEADERS, *error.headers, *extra], error.body(style))


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has gone away.

    Run as a sibling task in a request's nursery after the body was read, so
    the only message left to arrive is `http.disconnect`.
    """
    while (await receive())["type"] != "http.disconnect":
        pass


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer the lifespan protocol (hypercorn-trio crashes if the app just returns)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
