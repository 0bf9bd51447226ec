"""The thin ASGI edge: typed aliases, body reading, canned responses.

Hypercorn hands us raw ASGI callables; these helpers keep handlers free of
message-dict plumbing without adding a framework (and its per-request cost).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec

from plano_trio.gateway.errors import ApiError, ErrorStyle

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]

JSON_HEADERS: tuple[Header, ...] = ((b"content-type", b"application/json"),)
SSE_HEADERS: tuple[Header, ...] = (
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
)


class ClientDisconnected(Exception):
    """The client went away before its request body arrived."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; raises ApiError(413) past `limit` bytes."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            raise _too_large(limit)
        parts.append(part)
        if not message.get("more_body", False):
            return b"".join(parts)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"Request body is larger than the gateway's limit of {limit} bytes",
        code="request_too_large",
    )


async def send_bytes(send: Send, status: int, headers: Iterable[Header], body: bytes) -> None:
    """A complete response in two ASGI messages (start + one body)."""
    all_headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


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
