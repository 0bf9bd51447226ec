"""The pooled keep-alive client: checkout, connect, one request/response head, retry-once.

Why not httpx: under trio it costs ~1.5 ms CPU per request and its latency
collapses with concurrency (stack-notes §2); this client is a small sans-I/O
HTTP/1.1 state machine (`http1`) plus a LIFO idle list per origin.
"""

from __future__ import annotations

import ssl

import trio

from . import http1
from .connection import Connection
from .errors import UpstreamError
from .origin import Origin
from .response import UpstreamResponse
from .slots import OriginSlots
from .tls import make_ssl_context

_NO_BODY_METHODS = frozenset((b"GET", b"HEAD", b"DELETE", b"OPTIONS", b"TRACE", b"CONNECT"))
_FRAMING_HEADERS = (b"content-length", b"transfer-encoding")


class UpstreamPool:
    """Keep-alive HTTP/1.1 connections to many origins, shared by all requests of the process.

    - per origin, idle connections are reused newest-first and dropped on
      checkout once idle longer than `idle_timeout` seconds;
    - at most `max_per_host` connections per origin are open; further
      requests wait (FIFO) for one to be released;
    - a request that fails on a *reused* connection before any response byte
      arrived (the upstream had closed the idle socket) is retried once on a
      fresh connection; failures on fresh connections are never retried;
    - https uses `ssl_context`, or a default verifying one built on first use.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        max_per_host: int = 256,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = 60.0,
    ) -> None:
        if max_per_host < 1:
            raise ValueError("max_per_host must be >= 1")
        self._connect_timeout = connect_timeout
        self._max_per_host = max_per_host
        self._ssl_context = ssl_context
        self._idle_timeout = idle_timeout
        self._slots: dict[Origin, OriginSlots] = {}
        self._closed = False

    async def request(
        self,
        origin: Origin,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        read_timeout: float | None = None,
    ) -> UpstreamResponse:
        """Send one request and return once the response head arrived; the body stays unread.

        `headers` are sent as given, except that any Content-Length /
        Transfer-Encoding is replaced by a Content-Length for `body`, and a
        Host header is added when missing.  `read_timeout` bounds sending the
        request plus waiting for the response head, and then each wait for a
        body chunk.  The returned response must be read to the end or closed.
        """
        if self._closed:
            raise UpstreamError("closed", f"upstream pool is closed (request to {origin.host}:{origin.port})")
        slots = self._slots.get(origin)
        if slots is None:
            slots = self._slots[origin] = OriginSlots(origin, self._max_per_host)
        try:  # encoded once, before any socket is touched, and sent as is on a retry
            framed = _request_headers(slots, method, headers, body)
            request = http1.encode_request(method, target, framed, body)
        except http1.LocalProtocolError as exc:
            raise UpstreamError("protocol", f"invalid request for {slots.label}: {exc}") from exc

        await slots.permits.acquire()
        try:
            for attempt in (0, 1):
                conn = await self._checkout(slots) if attempt == 0 else None
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(slots)
                try:
                    head = await _exchange(conn, request, read_timeout)
                except UpstreamError as exc:
                    await conn.aclose()
                    if reused and exc.kind == "closed" and conn.bytes_in == 0:
                        continue  # stale keep-alive socket: the upstream never saw this request
                    raise
                except BaseException:
                    await conn.aclose()
                    raise
                return UpstreamResponse(head, conn, slots, read_timeout)
            raise AssertionError("unreachable: the fresh-connection attempt returns or raises")
        except BaseException:
            slots.permits.release()
            raise

    async def aclose(self) -> None:
        """Close every idle connection; later requests fail, in-flight responses close on completion."""
        self._closed = True
        for slots in self._slots.values():
            slots.closed = True
            idle, slots.idle = slots.idle, []
            for conn in idle:
                await conn.aclose()

    async def _checkout(self, slots: OriginSlots) -> Connection | None:
        conn, expired = slots.take_idle(self._idle_timeout)
        for old in expired:
            await old.aclose()
        return conn

    async def _connect(self, slots: OriginSlots) -> Connection:
        """TCP connect (+ TLS handshake for https) within `connect_timeout`."""
        origin = slots.origin
        label = slots.label
        with trio.move_on_after(self._connect_timeout):
            try:
                tcp = await trio.open_tcp_stream(origin.host, origin.port)
            except OSError as exc:
                raise UpstreamError("connect", f"cannot connect to {label}: {exc}") from exc
            if origin.scheme != "https":
                return Connection(tcp, label)
            if self._ssl_context is None:
                self._ssl_context = make_ssl_context()
            stream = trio.SSLStream(
                tcp, self._ssl_context, server_hostname=slots.server_hostname, https_compatible=True
            )
            try:
                await stream.do_handshake()
            except trio.BrokenResourceError as exc:
                await trio.aclose_forcefully(tcp)
                reason = exc.__cause__ or exc
                raise UpstreamError("connect", f"TLS handshake with {label} failed: {reason}") from exc
            except BaseException:
                await trio.aclose_forcefully(tcp)
                raise
            return Connection(stream, label)
        raise UpstreamError("timeout", f"connecting to {label} timed out after {self._connect_timeout:g}s")


async def _exchange(conn: Connection, request: http1.Request, read_timeout: float | None) -> http1.Response:
    """Write the request in one `send_all` and wait for the response head, bounded by `read_timeout`."""
    data = conn.start_request(request)
    if read_timeout is None:
        await conn.send(data)
        return await conn.receive_head()
    with trio.move_on_after(read_timeout):
        await conn.send(data)
        return await conn.receive_head()
    raise UpstreamError("timeout", f"{conn.label} did not respond within {read_timeout:g}s")


def _request_headers(
    slots: OriginSlots, method: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> list[tuple[bytes, bytes]]:
    """Caller headers with framing owned by the pool: Host if missing, our Content-Length, no TE.

    Names are sent lowercased (as `http1.encode_request` expects, and as
    HTTP/2 would anyway).
    """
    out: list[tuple[bytes, bytes]] = [(b"host", slots.host_header)]
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"host":
            out[0] = (lowered, value)
        elif lowered not in _FRAMING_HEADERS:
            out.append((lowered, value))
    if body or method not in _NO_BODY_METHODS:
        out.append((b"content-length", str(len(body)).encode("ascii")))
    return out
