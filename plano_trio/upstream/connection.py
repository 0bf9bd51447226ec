"""One keep-alive HTTP/1.1 connection: our `http1` state machine fed from a trio stream.

`http1.ClientConnection` does all the protocol work (framing, keep-alive
rules, HEAD/204/304 bodies); this module only moves bytes between it and the
socket, and turns trio/http1 failures into `UpstreamError`s with the right
`kind`.  It knows nothing about pools or retries; it can tell the pool whether
an idle socket is still worth reusing (`idle_socket_is_dead`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable

import trio

from plano_trio import sockio

from . import http1
from .errors import UpstreamError
from .idle import IdleWatch

RECEIVE_SIZE = 65536
"""Bytes asked for per socket read; one read becomes at most one body chunk."""

CLOSE_GRACE = 0.1
"""Seconds a shielded close may take; closing a TCP (or https_compatible TLS) stream is immediate."""

_END_OF_MESSAGE = http1.END_OF_MESSAGE
_NEED_DATA = http1.NEED_DATA
_SOCKET_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)
_Response = http1.Response


class Connection:
    """A client HTTP/1.1 connection over `stream` to the upstream named `label` (`host:port`)."""

    __slots__ = (
        "_drained",
        "_http",
        "_plain",
        "_socket",
        "_stream",
        "closed",
        "idle_since",
        "label",
        "timed_out",
    )

    def __init__(self, stream: trio.abc.Stream, label: str) -> None:
        self._stream = stream
        self._socket = _socket_of(stream)
        self._plain = stream.socket if isinstance(stream, trio.SocketStream) else None
        """The socket of a plain TCP connection, read and written directly (`sockio`); None for TLS."""
        self._drained = True
        """The last read took less than it asked for: the next one waits for readiness first (the answer,
        or a stream's next event, comes later)."""
        self._http = http1.ClientConnection()
        self.label = label
        self.closed = False
        self.timed_out = False
        """Set by `expire`: the read that fails next failed because the upstream went silent."""
        self.idle_since = 0.0

    # --- request --------------------------------------------------------------------------------------

    def start_request(self, request: http1.Request) -> bytes:
        """Begin a cycle with `request` (encoded once by the pool); returns the bytes to send."""
        try:
            return self._http.send(request)
        except http1.LocalProtocolError as exc:
            raise UpstreamError("protocol", f"cannot send request to {self.label}: {exc}") from exc

    async def send(self, data: bytes) -> None:
        try:
            if self._plain is not None:
                await sockio.send_all(self._plain, data)
            else:
                await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            msg = f"connection to {self.label} was closed while sending: {exc}"
            raise UpstreamError("closed", msg) from exc

    # --- response -------------------------------------------------------------------------------------

    async def receive_head(self, watch: IdleWatch | None = None, timeout: float = 0.0) -> http1.Response:
        """Wait for the final response head (1xx interim responses are skipped).

        With `watch`, the whole wait is bounded by `timeout` seconds the way
        body reads are (a deadline in the watch, no cancel scope), and running
        out raises ``UpstreamError("timeout")``; without, it is unbounded here.
        """
        http = self._http
        if watch is not None:
            watch.arm(self, timeout)
        try:
            while True:
                event = http.next_event()
                if type(event) is _Response:
                    return event
                if event is not http1.NEED_DATA:  # cannot happen before a head: a bug, not the upstream's
                    raise UpstreamError("protocol", f"unexpected {event!r} before the head from {self.label}")
                await self._receive()
        except UpstreamError as exc:
            if self.timed_out:
                msg = f"{self.label} sent no response head within {timeout:g}s"
                raise UpstreamError("timeout", msg) from exc
            raise
        except http1.Http1Error as exc:
            raise self._translate(exc, "response head") from exc
        finally:
            if watch is not None:
                watch.disarm(self)

    async def receive_body(self, watch: IdleWatch, timeout: float) -> bytes | None:
        """The next body chunk, or None once the body is complete.

        One call performs at most one socket read, and the state machine hands
        out everything that read completed as one `bytes` (so a read that
        carried several SSE chunks becomes one downstream write).  That read is
        registered with `watch`, which ends it if nothing arrives for
        `timeout` seconds (``UpstreamError("timeout")``).
        """
        http = self._http
        try:
            # Between the chunks of a stream nothing is buffered: read at once, without asking.
            event = _NEED_DATA if http.awaiting_chunk else http.next_event()
            while type(event) is not bytes:
                if event is _END_OF_MESSAGE:
                    return None
                watch.arm(self, timeout)
                try:  # `_read` inline rather than `_receive`: one coroutine less on every token's wait
                    data = await self._read()
                except _SOCKET_GONE as exc:
                    if self.timed_out:
                        msg = f"{self.label} sent nothing for {timeout:g}s in the middle of the response body"
                        raise UpstreamError("timeout", msg) from exc
                    raise self._reset(exc) from exc
                finally:
                    watch.disarm(self)
                self._drained = len(data) < RECEIVE_SIZE
                event = http.feed(data)  # `_take` and `next_event` in one call
            return event
        except http1.Http1Error as exc:
            raise self._translate(exc, "response body") from exc

    def drain_buffered(self) -> bool:
        """Consume whatever body is already buffered, without I/O; True if that completes the response.

        Lets a caller that ignores a bodiless (HEAD/204/304) or already-buffered
        small body still return the connection to the pool.  No unread bytes can
        remain on the socket if this returns True.
        """
        http = self._http
        try:
            while True:
                event = http.next_event()
                if event is _END_OF_MESSAGE:
                    return True
                if type(event) is not bytes:
                    return False
        except http1.Http1Error:
            return False

    async def _receive(self) -> None:
        """One socket read into the state machine (b"" marks EOF); unbounded here, see the callers."""
        try:
            data = await self._read()
        except _SOCKET_GONE as exc:
            raise self._reset(exc) from exc
        self._take(data)

    def _read(self) -> Awaitable[bytes | bytearray]:
        """One socket read (b"" at EOF), returned to be awaited by the caller (no frame of its own)."""
        if self._plain is not None:
            return sockio.receive_some(self._plain, RECEIVE_SIZE, wait_first=self._drained)
        return self._stream.receive_some(RECEIVE_SIZE)

    def _take(self, data: bytes | bytearray) -> None:
        """Feed what `_read` returned to the state machine."""
        self._drained = len(data) < RECEIVE_SIZE
        self._http.receive_data(data)

    def _reset(self, exc: BaseException) -> UpstreamError:
        """A read's socket failed or was closed under it: the connection is gone (``closed``)."""
        return UpstreamError("closed", f"connection to {self.label} was reset: {exc}")

    def _translate(self, exc: http1.Http1Error, where: str) -> UpstreamError:
        """A hang-up is ``closed``; anything else is ``protocol``."""
        if isinstance(exc, http1.IncompleteResponse):
            return UpstreamError("closed", f"{self.label} closed the connection {exc}")
        return UpstreamError("protocol", f"invalid HTTP/1.1 {where} from {self.label}: {exc}")

    # --- lifecycle ------------------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """Both sides finished the exchange and neither asked to close (keep-alive allowed)."""
        return not self.closed and self._http.reusable

    def start_next_cycle(self) -> None:
        """Reset for the next request; only valid when `reusable`."""
        self._http.start_next_cycle()

    def body_remaining(self) -> int | None:
        """Bytes of a Content-Length body not received yet; None if the length is not declared."""
        return self._http.body_remaining

    def idle_socket_is_dead(self) -> bool:
        """Whether this idle connection must not carry another request (one non-blocking poll).

        An idle keep-alive socket has nothing to say: if it polls readable, the
        upstream closed it (EOF), reset it, or sent bytes nobody asked for, and
        a request written to it would fail after it may have been read.  This
        is httpcore's check before reuse.  The raw TCP socket is polled, so a
        TLS close already buffered inside the TLS layer goes unseen; then the
        request fails as ``closed`` and, like any written request, is not
        resent.
        """
        return self._socket is not None and self._socket.is_readable()

    def expire(self) -> None:
        """The read timeout passed (called by the `IdleWatch`): wake the blocked read by closing the socket.

        A trio socket closed from another task makes a pending read raise at
        once; `receive_body` then sees `timed_out` and reports a timeout.
        """
        self.timed_out = True
        if self._socket is not None:
            self._socket.close()

    async def aclose(self) -> None:
        """Close the socket now, even inside a cancelled scope. Idempotent.

        Shielded, with a short deadline, so that a request cancelled because
        the client went away still releases its upstream socket promptly
        (the upstream then sees EOF and can stop generating).
        """
        if self.closed:
            return
        self.closed = True
        with trio.move_on_after(CLOSE_GRACE, shield=True):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await self._stream.aclose()


def _socket_of(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    """The TCP socket under a plain or TLS stream (None for other streams: no idle check, no expiry)."""
    if isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if isinstance(stream, trio.SocketStream):
        return stream.socket
    return None
